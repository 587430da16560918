"""Client settings: sources, precedence, --controller parsing, show-settings output."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from client.config import ClientSettings, parse_controller
from mgmt.exceptions import ConfigError
from tests.support.cli import zeek_client

FILE_TEXT = """\
[client]
request_timeout_secs = 7
peering_attempts = 3
verbosity = 1

[controller]
host = 10.0.0.1
port = 3000

[zzz]
from_file = yes
"""


def load(tmp_path: Path | None = None, **kw: object) -> ClientSettings:
    env = kw.pop("env", {})
    return ClientSettings.load(env=env, **kw)  # type: ignore[arg-type]


def test_defaults_are_zeek_clients() -> None:
    """With no sources the settings are zeek-client 1.5.0's defaults."""
    s = load()
    assert (s.controller_host, s.controller_port) == ("127.0.0.1", 2149)
    assert s.request_timeout == 20 and s.peering_attempts == 10
    assert s.peering_retry_delay == 1.0 and s.pretty_json and not s.rich_logging
    assert s.verbosity == 0 and not s.tls().enable
    assert s.render().startswith("[client]\nrequest_timeout_secs = 20\n")


def test_precedence(tmp_path: Path) -> None:
    """defaults < file < env < --set < --controller < -v."""
    cfg = tmp_path / "zc.cfg"
    cfg.write_text(FILE_TEXT)
    s = load(config_file=str(cfg))
    assert s.request_timeout == 7 and s.controller_host == "10.0.0.1" and s.verbosity == 1
    env = {"ZEEK_CLIENT_CONFIG_SETTINGS": "client.request_timeout_secs=8 controller.port=3001"}
    s = load(env=env, config_file=str(cfg))
    assert s.request_timeout == 8 and s.controller_port == 3001 and s.peering_attempts == 3
    s = load(env=env, config_file=str(cfg), sets=["controller.port=3002", "controller.host=h"])
    assert (s.controller_host, s.controller_port) == ("h", 3002)
    s = load(env=env, config_file=str(cfg), sets=["controller.port=3002"], controller=":3003")
    assert (s.controller_host, s.controller_port) == ("10.0.0.1", 3003)
    s = load(config_file=str(cfg), sets=["client.verbosity=2"], verbose=3)
    assert s.verbosity == 3


def test_config_file_from_env(tmp_path: Path) -> None:
    """ZEEK_CLIENT_CONFIG_FILE names the file when -c is not given; -c wins."""
    cfg = tmp_path / "zc.cfg"
    cfg.write_text(FILE_TEXT)
    other = tmp_path / "other.cfg"
    other.write_text("[controller]\nport = 4000\n")
    env = {"ZEEK_CLIENT_CONFIG_FILE": str(cfg)}
    assert load(env=env).controller_port == 3000
    assert load(env=env, config_file=str(other)).controller_port == 4000
    # A missing file is skipped, as zeek-client's configparser.read() does.
    assert load(config_file=str(tmp_path / "missing.cfg")).controller_port == 2149


def test_env_sections_come_before_file_sections(tmp_path: Path) -> None:
    """Env items are applied before and after the file, so their new sections come first."""
    cfg = tmp_path / "zc.cfg"
    cfg.write_text(FILE_TEXT)
    s = load(env={"ZEEK_CLIENT_CONFIG_SETTINGS": "aaa.x=1"}, config_file=str(cfg))
    text = s.render()
    assert text.index("[aaa]") < text.index("[zzz]")


def test_bad_items_are_reported_not_applied() -> None:
    """Malformed --set and env items are collected as problems; the rest still applies."""
    s = load(
        env={"ZEEK_CLIENT_CONFIG_SETTINGS": "bogus client.verbosity=2"},
        sets=["nodot=1", "client.pretty_json=false", "DEFAULT.x=1", "noequals"],
    )
    assert s.verbosity == 2 and not s.pretty_json
    assert s.problems == [
        'config item "bogus" in ZEEK_CLIENT_CONFIG_SETTINGS invalid. '
        "Please use <section.key>=<val>.",
        'config item "nodot=1" invalid. Please use <section.key>=<val>.',
        'config item "DEFAULT.x=1" invalid. Please use <section.key>=<val>.',
        'config item "noequals" invalid. Please use <section.key>=<val>.',
    ]
    assert "[DEFAULT]" not in s.render()


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("example.org", ("example.org", "")),
        (":2222", ("", "2222")),
        ("10.0.0.1:2222", ("10.0.0.1", "2222")),
        ("[fe80::1]:2222", ("[fe80::1]", "2222")),
        ("[fe80::1]", ("[fe80::1]", "")),
        ("[::1]", ("[::1]", "")),
    ],
)
def test_parse_controller(spec: str, expected: tuple[str, str]) -> None:
    """--controller accepts host, :port, host:port and bracketed IPv6."""
    assert parse_controller(spec) == expected


def test_controller_rejects_bare_ipv6() -> None:
    """An IPv6 address without brackets is an error (zeek-client raises too)."""
    with pytest.raises(ConfigError, match="brackets"):
        parse_controller("fe80::1:2222")


def test_controller_sets_host_and_port() -> None:
    """--controller host keeps the port, :port keeps the host; brackets stay in the host."""
    assert load(controller="h").controller_host == "h"
    assert load(controller="h").controller_port == 2149
    s = load(controller="[::1]:3000")
    assert (s.controller_host, s.controller_port) == ("[::1]", 3000)


def test_typed_values_are_checked() -> None:
    """A setting that does not convert raises ConfigError naming the setting."""
    with pytest.raises(ConfigError, match="client.request_timeout_secs"):
        _ = load(sets=["client.request_timeout_secs=soon"]).request_timeout
    with pytest.raises(ConfigError, match="client.pretty_json"):
        _ = load(sets=["client.pretty_json=maybe"]).pretty_json
    assert load(sets=["ssl.enable=yes"]).tls().enable
    assert load(sets=["ssl.disable=true"]).tls().legacy_disable


def test_broken_config_file_is_an_error(tmp_path: Path) -> None:
    """A config file that does not parse is a ConfigError (zeek-client: traceback)."""
    cfg = tmp_path / "zc.cfg"
    cfg.write_text("[client]\nverbosity = 1\nverbosity = 2\n")
    with pytest.raises(ConfigError, match="cannot parse client config file"):
        load(config_file=str(cfg))


def _zeek_client_settings(args: list[str], env: dict[str, str]) -> str:
    zc = zeek_client()
    if zc is None:
        pytest.skip("zeek-client 1.5.0 is not installed")
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("ZEEK_CLIENT_")}
    full_env.update(env)
    proc = subprocess.run(
        [zc, *args, "show-settings"], env=full_env, capture_output=True, text=True, check=True
    )
    return proc.stdout


def test_render_matches_show_settings(tmp_path: Path) -> None:
    """client-settings prints what zeek-client show-settings prints, for every source."""
    cfg = tmp_path / "zc.cfg"
    cfg.write_text(FILE_TEXT)
    env = {"ZEEK_CLIENT_CONFIG_SETTINGS": "aaa.x=1 'client.verbosity=2'"}
    args = ["-c", str(cfg), "--set", "ssl.certificate=/x y", "--controller", "[::1]", "-vvv"]
    theirs = _zeek_client_settings(args, env)
    mine = ClientSettings.load(
        env=env,
        config_file=str(cfg),
        sets=["ssl.certificate=/x y"],
        controller="[::1]",
        verbose=3,
    ).render()
    assert mine == theirs
    assert _zeek_client_settings([], {}) == ClientSettings().render()


def test_tls_context_follows_settings(tmp_path: Path) -> None:
    """ssl.enable without a certificate: no verification; missing files are errors."""
    import ssl

    from client.connect import tls_context

    assert tls_context(load()) is None
    ctx = tls_context(load(sets=["ssl.enable=true"]))
    assert ctx is not None and ctx.verify_mode is ssl.CERT_NONE and not ctx.check_hostname
    missing = str(tmp_path / "nope.pem")
    with pytest.raises(ConfigError, match=f'SSL certificate file "{missing}" not found'):
        tls_context(load(sets=["ssl.enable=true", f"ssl.certificate={missing}"]))
    with pytest.raises(ConfigError, match="SSL trusted CAs path"):
        tls_context(load(sets=["ssl.enable=true", f"ssl.capath={missing}"]))
