"""Settings: precedence, sources, value rules, errors, flags and ``zeek-mgmt show-settings``."""

from __future__ import annotations

import argparse
import os
import shlex
import socket
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from mgmt.exceptions import ConfigError
from mgmt.settings.flags import add_settings_flags, settings_from_args
from mgmt.settings.model import AgentSettings, ControllerSettings, Endpoint, Role
from mgmt.settings.schema import HostInfo
from mgmt.settings.show import render_settings
from mgmt.settings.sources import load_settings
from tests.paths import REPO_ROOT
from tests.support.cli import RUN_TIMEOUT
from tests.support.programs import write_executable

HOST = HostInfo(hostname="testhost", is_root=False, home="/home/tester")
#: An empty PATH: no zeek or zeek-archiver is found, whatever is installed here.
ENV = {"PATH": ""}


def load(
    role: Role,
    config: Path | None = None,
    env: dict[str, str] | None = None,
    flags: dict[str, object] | None = None,
    host: HostInfo = HOST,
) -> tuple[Any, dict[str, str]]:
    return load_settings(
        role,
        config_path=None if config is None else str(config),
        env={**ENV, **(env or {})},
        flags=flags or {},
        host=host,
    )


@pytest.fixture
def write(tmp_path: Path) -> Any:
    def write(text: str, name: str = "zeek-mgmt.toml") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    return write


def parse_args(role: Role, argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_settings_flags(parser, role)
    return parser.parse_args(argv)


# --- precedence -------------------------------------------------------------------------

# role, key, default, (section, TOML value, value), (env var, text, value) or None,
# (flags key, raw, value, source)
PRECEDENCE = [
    ("controller", "listen_port", 2150,
     ("controller", "3000", 3000), ("ZEEK_CONTROLLER_PORT", "3001/tcp", 3001),
     ("listen_port", "3002", 3002, "flag --listen-port")),
    ("controller", "listen_port_websocket", 2149,
     ("controller", '"3100/tcp"', 3100), ("ZEEK_CONTROLLER_WEBSOCKET_PORT", "3101", 3101),
     ("listen_port_websocket", "3102/tcp", 3102, "flag --websocket-port")),
    ("controller", "listen_address", "0.0.0.0",
     ("controller", '"10.0.0.1"', "10.0.0.1"), ("ZEEK_CONTROLLER_ADDR", "10.0.0.2", "10.0.0.2"),
     ("listen_address", "10.0.0.3", "10.0.0.3", "flag --listen-address")),
    ("agent", "name", "agent-testhost",
     ("agent", '"a-file"', "a-file"), ("ZEEK_AGENT_NAME", "a-env", "a-env"),
     ("name", "a-flag", "a-flag", "flag --name")),
    ("agent", "state_dir", Path("/home/tester/.local/state/zeek-mgmt"),
     ("common", '"/f"', Path("/f")), ("ZEEK_MANAGEMENT_STATE_DIR", "/e", Path("/e")),
     ("state_dir", "/g", Path("/g"), "flag --state-dir")),
    ("agent", "node_websocket_start_port", 27800,
     ("agent", "28000", 28000), ("ZEEK_MGMT_NODE_WEBSOCKET_START_PORT", "28001", 28001),
     ("agent.node_websocket_start_port", "28002", 28002, "flag --set")),
    ("agent", "keep_nodes", False,
     ("agent", "true", True), None,
     ("keep_nodes", False, False, "flag --keep-nodes")),
    ("controller", "request_timeout", 10.0,
     ("controller", "3", 3.0), None,
     ("request_timeout", "2.5", 2.5, "flag --request-timeout")),
]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "level"),
    [
        pytest.param(case, level, id=f"{case[0]}.{case[1]}-{level}")
        for case in PRECEDENCE
        for level in ("default", "file", "env", "flag")
        if level != "env" or case[4] is not None
    ],
)
def test_precedence(case: Any, level: str, write: Any) -> None:
    """Each source beats the one before: default < file < env < flag, and is recorded."""
    role, key, default, (section, toml, file_value), env_case, flag_case = case
    rank = ["default", "file", "env", "flag"].index(level)
    config = write(f"[{section}]\n{key} = {toml}\n") if rank >= 1 else None
    env = {env_case[0]: env_case[1]} if env_case and rank >= 2 else {}
    flags = {flag_case[0]: flag_case[1]} if rank >= 3 else {}
    settings, got = load(role, config, env, flags)
    expected = {
        "default": (default, "default (no Zeek found)" if key == "state_dir" else "default"),
        "file": (file_value, f"file {config}"),
        "env": (env_case and env_case[2], env_case and f"env {env_case[0]}"),
        "flag": (flag_case[2], flag_case[3]),
    }[level]
    assert (getattr(settings, key), got[key]) == expected


def test_role_section_beats_common(write: Any) -> None:
    """A key in [controller]/[agent] overrides the same key in [common] for that role only."""
    config = write('[common]\nlog_level = "debug"\n[controller]\nlog_level = "error"\n')
    assert load("controller", config)[0].log_level == "error"
    assert load("agent", config)[0].log_level == "debug"


def test_empty_env_counts_as_unset() -> None:
    """An empty variable is ignored, like Zeek's getenv() == "" check."""
    settings, sources = load("agent", env={"ZEEK_AGENT_PORT": "", "ZEEK_AGENT_NAME": ""})
    assert (settings.listen_port, sources["listen_port"]) == (2151, "default")
    assert settings.name == "agent-testhost"


def test_other_roles_env_is_not_read() -> None:
    """The controller ignores the agent's variables (even broken ones)."""
    settings, _ = load("controller", env={"ZEEK_AGENT_PORT": "abc"})
    assert settings.listen_port == 2150


# --- defaults ---------------------------------------------------------------------------


def test_default_names_use_the_hostname() -> None:
    """Names default to controller-<hostname> / agent-<hostname>, from the real host too."""
    assert load("controller")[0].name == "controller-testhost"
    assert load("agent")[0].name == "agent-testhost"
    settings, _ = load_settings("agent", config_path=None, env=ENV, flags={})
    assert settings.name == f"agent-{socket.gethostname()}"


@pytest.mark.parametrize(
    ("host", "env", "expected"),
    [
        (HostInfo("h", True, "/root"), {"XDG_STATE_HOME": "/xdg"}, "/var/lib/zeek-mgmt"),
        (HOST, {"XDG_STATE_HOME": "/xdg"}, "/xdg/zeek-mgmt"),
        (HOST, {"XDG_STATE_HOME": "relative"}, "/home/tester/.local/state/zeek-mgmt"),
        (HOST, {"HOME": "/envhome"}, "/envhome/.local/state/zeek-mgmt"),
        (HOST, {}, "/home/tester/.local/state/zeek-mgmt"),
    ],
)
def test_state_dir_default(host: HostInfo, env: dict[str, str], expected: str) -> None:
    """state_dir: /var/lib/zeek-mgmt as root, else $XDG_STATE_HOME (absolute) or ~/.local/state."""
    assert load("controller", env=env, host=host)[0].state_dir == Path(expected)


def test_without_zeek_dirs_follow_the_effective_state_dir() -> None:
    """No Zeek found: spool_dir and archive_dir default under state_dir, wherever it came from."""
    settings, sources = load("agent", env={"ZEEK_MANAGEMENT_STATE_DIR": "/srv/z"})
    assert settings.spool_dir == Path("/srv/z/spool")
    assert settings.archive_dir == Path("/srv/z/logs")
    assert sources["spool_dir"] == "default (<state_dir>/spool, no Zeek found)"
    assert sources["archive_dir"] == "default (<state_dir>/logs, no Zeek found)"
    assert load("agent")[1]["state_dir"] == "default (no Zeek found)"


# --- defaults from the Zeek installation ------------------------------------------------


def fake_zeek(
    prefix: Path,
    *,
    zeek_config: bool = True,
    config_fails: bool = False,
    installation: dict[str, str] | None = None,
) -> Path:
    """A Zeek install tree: bin/zeek, bin/zeek-archiver and (optionally) bin/zeek-config,
    which answers like Zeek's and counts its runs in <prefix>/zeek-config.calls."""
    bindir = prefix / "bin"
    bindir.mkdir(parents=True)
    for name in ("zeek", "zeek-archiver"):
        write_executable(bindir / name, "#!/bin/sh\nexit 0\n")
    if zeek_config:
        answer = "exit 1" if config_fails else f"echo {prefix}; echo {prefix}/share/zeek"
        write_executable(
            bindir / "zeek-config",
            f"#!/bin/sh\necho run >> {prefix}/zeek-config.calls\n{answer}\n",
        )
    if installation is not None:
        misc = prefix / "share" / "zeek" / "base" / "misc"
        misc.mkdir(parents=True)
        consts = "".join(f'\tconst {k} = "{v}";\n' for k, v in installation.items())
        (misc / "installation.zeek").write_text(f"module Installation;\nexport {{\n{consts}}}\n")
    return bindir / "zeek"


def zeek_config_calls(prefix: Path) -> int:
    calls = prefix / "zeek-config.calls"
    return len(calls.read_text().splitlines()) if calls.exists() else 0


def dirs(settings: AgentSettings) -> tuple[Path, Path, Path]:
    return settings.state_dir, settings.spool_dir, settings.archive_dir


def test_dirs_default_to_the_zeek_installation_on_path(tmp_path: Path) -> None:
    """With zeek on PATH: <prefix>/var/lib, <prefix>/spool, <prefix>/logs, as Zeek's framework."""
    prefix = tmp_path / "zeek"
    zeek = fake_zeek(prefix)
    settings, sources = load("agent", env={"PATH": str(zeek.parent)})
    assert dirs(settings) == (prefix / "var/lib", prefix / "spool", prefix / "logs")
    origin = f"default (zeek-config --prefix of {zeek})"
    assert sources["state_dir"] == sources["spool_dir"] == sources["archive_dir"] == origin
    # Zeek's agent runs <Installation::root_dir>/bin/zeek-archiver.
    assert settings.archive_cmd == str(prefix / "bin" / "zeek-archiver")
    assert sources["archive_cmd"] == f"default (zeek-archiver beside {zeek})"
    controller, sources = load("controller", env={"PATH": str(zeek.parent)})
    assert (controller.state_dir, sources["state_dir"]) == (prefix / "var/lib", origin)


def test_configured_zeek_decides_for_both_roles(tmp_path: Path, write: Any) -> None:
    """[agent] zeek picks the installation, for the controller too (one state dir for both)."""
    on_path, configured = fake_zeek(tmp_path / "a"), fake_zeek(tmp_path / "b")
    config = write(f'[agent]\nzeek = "{configured}"\n')
    for role in ("controller", "agent"):
        settings, sources = load(role, config, env={"PATH": str(on_path.parent)})
        assert settings.state_dir == tmp_path / "b" / "var/lib"
        assert sources["state_dir"] == f"default (zeek-config --prefix of {configured})"
    settings, _ = load("controller", flags={"agent.zeek": str(configured)})
    assert settings.spool_dir == tmp_path / "b" / "spool"


def test_prefix_of_the_zeek_binary_without_zeek_config(tmp_path: Path) -> None:
    """No usable zeek-config beside zeek: the prefix is that of <prefix>/bin/zeek."""
    for name, options in (("none", {"zeek_config": False}), ("fails", {"config_fails": True})):
        zeek = fake_zeek(tmp_path / name, **options)
        settings, sources = load("agent", flags={"zeek": str(zeek)})
        assert dirs(settings) == (zeek.parents[1] / "var/lib", zeek.parents[1] / "spool",
                                  zeek.parents[1] / "logs")  # fmt: skip
        assert sources["state_dir"] == f"default (prefix of {zeek})"


def test_symlinked_zeek_uses_its_installation(tmp_path: Path) -> None:
    """/usr/local/bin/zeek -> <prefix>/bin/zeek: the zeek-config beside the target answers."""
    zeek = fake_zeek(tmp_path / "opt")
    links = tmp_path / "links"
    links.mkdir()
    (links / "zeek").symlink_to(zeek)
    settings, _ = load("agent", env={"PATH": str(links)})
    assert settings.state_dir == tmp_path / "opt" / "var/lib"
    assert settings.archive_cmd == str(zeek.parent / "zeek-archiver")


def test_zeek_config_on_path_without_zeek(tmp_path: Path) -> None:
    """No zeek anywhere but a zeek-config on PATH: its prefix."""
    zeek = fake_zeek(tmp_path / "z")
    zeek.unlink()
    settings, sources = load("controller", env={"PATH": str(zeek.parent)})
    assert settings.state_dir == tmp_path / "z" / "var/lib"
    assert sources["state_dir"] == f"default ({zeek.parent / 'zeek-config'} --prefix)"


def test_zeek_not_in_a_bin_dir_is_no_installation(tmp_path: Path) -> None:
    """A zeek that is not <prefix>/bin/zeek and has no zeek-config: today's defaults."""
    script = write_executable(tmp_path / "zeek.py", "#!/bin/sh\n")
    settings, sources = load("agent", flags={"zeek": str(script)})
    assert settings.state_dir == Path("/home/tester/.local/state/zeek-mgmt")
    assert sources["state_dir"] == "default (no Zeek found)"


def test_a_configured_zeek_that_does_not_exist_is_no_installation(tmp_path: Path) -> None:
    """[agent] zeek naming a missing file: no Zeek found, not the prefix of that path."""
    settings, sources = load("agent", flags={"zeek": str(tmp_path / "bin" / "zeek")})
    assert sources["state_dir"] == "default (no Zeek found)"


def test_installation_dirs_of_a_custom_build_win(tmp_path: Path) -> None:
    """A Zeek configured with its own dirs: those of its Installation:: module, as Zeek uses."""
    custom = {
        "state_dir": "/var/lib/zeek",
        "spool_dir": "/var/spool/zeek",
        "log_dir": "/var/log/zeek",
    }
    zeek = fake_zeek(tmp_path / "usr", installation=custom)
    settings, _ = load("agent", flags={"zeek": str(zeek)})
    assert dirs(settings) == (Path("/var/lib/zeek"), Path("/var/spool/zeek"), Path("/var/log/zeek"))


def test_explicit_dirs_stay_and_are_independent_as_in_zeek(tmp_path: Path) -> None:
    """An explicit state_dir moves neither the spool nor the archive (Management::get_spool_dir)."""
    prefix = tmp_path / "zeek"
    zeek = fake_zeek(prefix)
    settings, sources = load(
        "agent", env={"PATH": str(zeek.parent), "ZEEK_MANAGEMENT_STATE_DIR": "/srv/state"}
    )
    assert dirs(settings) == (Path("/srv/state"), prefix / "spool", prefix / "logs")
    assert sources["state_dir"] == "env ZEEK_MANAGEMENT_STATE_DIR"


def test_zeek_config_runs_once_and_only_when_needed(tmp_path: Path) -> None:
    """zeek-config runs at most once per process, and never when all three dirs are explicit."""
    prefix = tmp_path / "zeek"
    zeek = fake_zeek(prefix)
    explicit = {"state_dir": "/s", "spool_dir": "/p", "agent.archive_dir": "/l"}
    settings, _ = load("agent", env={"PATH": str(zeek.parent)}, flags=explicit)
    assert dirs(settings) == (Path("/s"), Path("/p"), Path("/l"))
    assert load("controller", env={"PATH": str(zeek.parent)}, flags=explicit)[0].state_dir == Path(
        "/s"
    )
    assert zeek_config_calls(prefix) == 0
    for role in ("controller", "agent", "agent"):
        load(role, env={"PATH": str(zeek.parent)})
    assert zeek_config_calls(prefix) == 1


@pytest.mark.zeek
@pytest.mark.skipif(not Path("/opt/zeek/bin/zeek-config").exists(), reason="no Zeek at /opt/zeek")
def test_show_settings_names_the_real_zeek_installation() -> None:
    """With Zeek 8.2's /opt/zeek/bin on PATH, show-settings shows its directories and why."""
    proc = run_cli(
        ["show-settings", "--config", os.devnull], {"PATH": "/opt/zeek/bin:/usr/bin:/bin"}
    )
    assert proc.returncode == 0, proc.stderr
    origin = "# default (zeek-config --prefix of /opt/zeek/bin/zeek)"
    for line in (
        f'state_dir = "/opt/zeek/var/lib"  {origin}',
        f'spool_dir = "/opt/zeek/spool"  {origin}',
        f'archive_dir = "/opt/zeek/logs"  {origin}',
        'archive_cmd = "/opt/zeek/bin/zeek-archiver"  '
        "# default (zeek-archiver beside /opt/zeek/bin/zeek)",
    ):
        assert line in proc.stdout.splitlines()


def test_agent_controller_default_follows_controller_port(write: Any) -> None:
    """The agent dials 127.0.0.1:<controller port>: 2150, the file's, ZEEK_CONTROLLER_PORT's."""
    assert load("agent")[0].controller == Endpoint("127.0.0.1", 2150)
    config = write("[controller]\nlisten_port = 2160\n")
    assert load("agent", config)[0].controller == Endpoint("127.0.0.1", 2160)
    settings, sources = load("agent", config, env={"ZEEK_CONTROLLER_PORT": "2170/tcp"})
    assert settings.controller == Endpoint("127.0.0.1", 2170)
    assert sources["controller"] == "default, port from env ZEEK_CONTROLLER_PORT"
    settings, _ = load("agent", flags={"controller.listen_port": "2180"})
    assert settings.controller == Endpoint("127.0.0.1", 2180)


def test_agent_controller_default_none_when_controller_does_not_listen(write: Any) -> None:
    """Controller listen_port 0 (do not listen) makes the agent's default controller none."""
    config = write("[controller]\nlisten_port = 0\n")
    assert load("controller", config)[0].listen_port == 0
    assert load("agent", config)[0].controller is None


def test_programs_are_found_on_path(tmp_path: Path) -> None:
    """zeek and archive_cmd default to zeek / zeek-archiver on PATH, else empty."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for name in ("zeek", "zeek-archiver"):
        write_executable(bindir / name, "#!/bin/sh\n")
    settings, _ = load("agent", env={"PATH": str(bindir)})
    assert (settings.zeek, settings.archive_cmd) == (
        str(bindir / "zeek"),
        str(bindir / "zeek-archiver"),
    )
    settings, _ = load("agent", env={"PATH": str(tmp_path)})
    assert (settings.zeek, settings.archive_cmd) == ("", "")


def test_found_archiver_path_is_quoted_for_the_shell(tmp_path: Path) -> None:
    """archive_cmd is a shell command line: a zeek-archiver path with a space is quoted."""
    bindir = tmp_path / "my bin"
    bindir.mkdir()
    write_executable(bindir / "zeek-archiver", "#!/bin/sh\n")
    settings, _ = load("agent", env={"PATH": str(bindir)})
    assert shlex.split(settings.archive_cmd) == [str(bindir / "zeek-archiver")]


def test_agent_defaults_match_zeek() -> None:
    """The agent's remaining defaults (behaviour.md §1.3, §1.6 and the brief)."""
    s: AgentSettings = load("agent")[0]
    assert (s.listen_address, s.listen_port, s.request_timeout) == ("0.0.0.0", 2151, 5.0)
    assert (s.keep_nodes, s.stop_grace, s.archive_logs, s.archive_interval) == (
        False, 26.0, True, 3600.0,
    )  # fmt: skip
    assert (s.node_scripts, s.node_args, s.tls_cert, s.max_message_size) == ((), (), None, 2**24)


def test_controller_defaults_match_zeek() -> None:
    """The controller's defaults (behaviour.md §1.2)."""
    s: ControllerSettings = load("controller")[0]
    assert (s.listen_port, s.listen_port_websocket, s.request_timeout) == (2150, 2149, 10.0)
    assert (s.auto_assign_broker_start_port, s.auto_assign_metrics_start_port) == (2200, 9000)
    assert s.auto_assign_broker_ports and s.auto_assign_metrics_ports
    assert not s.tls_client_auth
    assert (s.websocket_tls_cert, s.websocket_tls_key, s.websocket_tls_ca) == (None, None, None)


# --- value rules ------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "port"), [("2150/tcp", 2150), ("2150", 2150), ("1", 1)])
@pytest.mark.parametrize("where", ["env", "file", "flag"])
def test_port_forms(where: str, text: str, port: int, write: Any) -> None:
    """Ports may be written NNNN/tcp (Zeek's form) or NNNN, in every source."""
    if where == "env":
        settings, _ = load("agent", env={"ZEEK_AGENT_PORT": text})
    elif where == "file":
        settings, _ = load("agent", write(f'[agent]\nlisten_port = "{text}"\n'))
    else:
        settings, _ = load("agent", flags={"listen_port": text})
    assert settings.listen_port == port


BAD_PORTS = ["abc", "70000", "2149/udp", "-1", "2149/", " 2149", "2149/TCP", ""]


@pytest.mark.parametrize(
    ("where", "text"),
    # An empty variable means unset (tested above), so "" is bad in the file and flags only.
    [
        (where, text)
        for where in ("env", "file", "flag")
        for text in BAD_PORTS
        if where != "env" or text
    ],
)
def test_bad_port_is_an_error_naming_key_and_source(where: str, text: str, write: Any) -> None:
    """A malformed port is a ConfigError naming the source and the key, never 'not listening'."""
    if where == "env":
        call, source = (
            lambda: load("controller", env={"ZEEK_CONTROLLER_PORT": text}),
            ("env ZEEK_CONTROLLER_PORT"),
        )
    elif where == "file":
        config = write(f'[controller]\nlisten_port = "{text}"\n')
        call, source = lambda: load("controller", config), f"file {config}"
    else:
        call, source = (
            lambda: load("controller", flags={"listen_port": text}),
            ("flag --listen-port"),
        )
    with pytest.raises(ConfigError, match="invalid port") as info:
        call()
    assert str(info.value).startswith(f"{source}: controller.listen_port: ")


def test_port_zero_only_for_listen_ports(write: Any) -> None:
    """0 means 'do not listen' for listen ports and is an error for other ports."""
    settings, _ = load("controller", env={"ZEEK_CONTROLLER_WEBSOCKET_PORT": "0/tcp"})
    assert settings.listen_port_websocket == 0
    assert load("agent", flags={"listen_port": "0"})[0].listen_port == 0
    config = write("[controller]\nauto_assign_broker_start_port = 0\n")
    with pytest.raises(ConfigError, match=r"auto_assign_broker_start_port: .*1-65535"):
        load("controller", config)
    with pytest.raises(ConfigError, match="ZEEK_MGMT_NODE_WEBSOCKET_START_PORT"):
        load("agent", env={"ZEEK_MGMT_NODE_WEBSOCKET_START_PORT": "0"})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10.0.0.1:2150/tcp", Endpoint("10.0.0.1", 2150)),
        ("ctl.example:2150", Endpoint("ctl.example", 2150)),
        ("[::1]:2150", Endpoint("::1", 2150)),
        ("none", None),
        ("NONE", None),
        ("0.0.0.0:2150/tcp", None),
    ],
)
def test_agent_controller_forms(text: str, expected: Endpoint | None) -> None:
    """controller is HOST:PORT ([v6]:PORT), none, or Zeek's 0.0.0.0 meaning 'do not dial'."""
    settings, sources = load("agent", flags={"controller": text})
    assert (settings.controller, sources["controller"]) == (expected, "flag --controller")


@pytest.mark.parametrize("text", ["10.0.0.1", "::1:2150", "host:abc", ":2150", "h:0", ""])
def test_agent_controller_errors(text: str) -> None:
    """A malformed controller address is an error naming the flag and the key."""
    with pytest.raises(ConfigError, match=r"^flag --controller: agent\.controller: "):
        load("agent", flags={"controller": text})


def test_endpoint_str_round_trips() -> None:
    """Endpoint prints as HOST:PORT, IPv6 in brackets."""
    assert str(Endpoint("::1", 2150)) == "[::1]:2150"
    assert str(Endpoint("10.0.0.1", 2150)) == "10.0.0.1:2150"


def test_archive_interval_zero_means_rotation_interval(write: Any) -> None:
    """archive_interval = 0 means the rotation interval, 3600 s (agent/config.zeek)."""
    config = write("[agent]\narchive_interval = 0\n")
    settings, sources = load("agent", config)
    assert (settings.archive_interval, sources["archive_interval"]) == (3600.0, f"file {config}")
    assert load("agent", flags={"archive_interval": "60"})[0].archive_interval == 60.0


def test_text_values_are_parsed() -> None:
    """From text: booleans (yes/no/...), comma-separated lists, case-insensitive log levels."""
    settings, _ = load(
        "agent",
        flags={"keep_nodes": "yes", "node_args": "-C, --foo", "log_level": "DEBUG"},
    )
    assert (settings.keep_nodes, settings.node_args, settings.log_level) == (
        True, ("-C", "--foo"), "debug",
    )  # fmt: skip


# --- errors -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[controller]\nlisten_prot = 1\n",
         "unknown key controller.listen_prot (did you mean controller.listen_port?)"),
        ("[agent]\nauto_assign_broker_ports = true\n", "unknown key agent.auto_assign_broker"),
        ("[common]\nname = 'x'\n", "unknown key common.name"),
        ("[controler]\n", "unknown section [controler]"),
        ("state_dir = '/x'\n", "top-level key 'state_dir' is not allowed"),
        ("[agent\n", "invalid TOML"),
        ("[controller]\nlisten_port = true\n", "controller.listen_port: invalid port True"),
        ("[controller]\nrequest_timeout = 'fast'\n", "request_timeout: expected a number"),
        ("[controller]\nrequest_timeout = 0\n", "request_timeout: must be greater than"),
        ("[agent]\nstop_grace = -1\n", "agent.stop_grace: must not be negative"),
        ("[agent]\nkeep_nodes = 'yes'\n", "agent.keep_nodes: expected a boolean, got string"),
        ("[agent]\nnode_scripts = 'local'\n", "agent.node_scripts: expected an array of strings"),
        ("[agent]\nnode_args = [1]\n", "agent.node_args: expected an array of strings"),
        ("[agent]\nmax_message_size = 1.5\n", "agent.max_message_size: expected an integer"),
        ("[common]\nlog_level = 'verbose'\n", "common.log_level: expected one of debug, info"),
        ("[controller]\nname = ''\n", "controller.name: must not be empty"),
        ("[controller]\ntls_cert = 1\n", "controller.tls_cert: expected a path"),
        ("[agent]\ncontroller = 2150\n", "agent.controller: expected \"HOST:PORT\" or \"none\""),
        ("[agent]\narchive_interval = inf\n", "agent.archive_interval: expected a finite number"),
    ],
)  # fmt: skip
def test_file_errors_name_file_and_key(text: str, message: str, write: Any) -> None:
    """Every file problem is a ConfigError: 'file PATH: [section.key: ]problem'."""
    config = write(text)
    with pytest.raises(ConfigError) as info:
        load("controller", config)
    assert str(info.value).startswith(f"file {config}: ")
    assert message in str(info.value)


def test_whole_file_is_checked_for_either_role(write: Any) -> None:
    """An error in [agent] fails the controller too (zeek-mgmt run loads both)."""
    with pytest.raises(ConfigError, match=r"agent\.listen_port"):
        load("controller", write("[agent]\nlisten_port = 'x'\n"))


def test_missing_file_is_an_error(tmp_path: Path) -> None:
    """A named file that does not exist is an error naming it."""
    with pytest.raises(ConfigError, match=r"^file .*nope\.toml: cannot read"):
        load("agent", tmp_path / "nope.toml")


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ({"bogus": "1"}, "flag --set: unknown key agent.bogus"),
        ({"controller.nope": "1"}, "flag --set: unknown key controller.nope"),
        ({"other.name": "1"}, "flag --set: unknown key other.name"),
        ({"controller.listen_port": "abc"}, "flag --set: controller.listen_port: invalid port"),
        ({"request_timeout": "soon"}, "flag --request-timeout: agent.request_timeout: expected"),
        ({"keep_nodes": "maybe"}, "flag --keep-nodes: agent.keep_nodes: expected true or false"),
    ],
)
def test_flag_errors(flags: dict[str, object], message: str) -> None:
    """Unknown keys and bad values in flags (own role or the other's) name the flag."""
    with pytest.raises(ConfigError) as info:
        load("agent", flags=flags)
    assert str(info.value).startswith(message)


# --- command line -----------------------------------------------------------------------


def test_settings_from_args_flags_and_sources(write: Any) -> None:
    """Dedicated flags, --set and --config feed load_settings with flag sources."""
    config = write('[agent]\nnode_scripts = ["x"]\nstop_grace = 1\n')
    args = parse_args(
        "agent",
        [
            "--config", str(config), "--node-script", "a", "--node-script", "b",
            "--keep-nodes", "--set", "stop_grace=2", "--set", "common.log_level=error",
            "--node-arg=-C",
        ],
    )  # fmt: skip
    settings, sources = settings_from_args("agent", args, ENV, host=HOST)
    assert settings.node_scripts == ("a", "b")
    assert settings.node_args == ("-C",)
    assert (settings.keep_nodes, sources["keep_nodes"]) == (True, "flag --keep-nodes")
    assert (settings.stop_grace, sources["stop_grace"]) == (2.0, "flag --set")
    assert (settings.log_level, sources["log_level"]) == ("error", "flag --set")
    assert sources["node_scripts"] == "flag --node-script"


def test_dedicated_flag_beats_set() -> None:
    """--listen-port wins over --set listen_port=..., however --set spells the key."""
    args = parse_args(
        "controller", ["--set", "controller.listen_port=1", "--listen-port", "2", "--set",
                       "listen_port=3"],
    )  # fmt: skip
    settings, sources = settings_from_args("controller", args, ENV, host=HOST)
    assert (settings.listen_port, sources["listen_port"]) == (2, "flag --listen-port")


def test_set_for_the_other_role_is_checked_and_used_for_the_controller_port() -> None:
    """controller.listen_port via --set moves the agent's default controller address."""
    args = parse_args("agent", ["--set", "controller.listen_port=3000"])
    settings, sources = settings_from_args("agent", args, ENV, host=HOST)
    assert settings.controller == Endpoint("127.0.0.1", 3000)
    assert sources["controller"] == "default, port from flag --set"


def test_both_roles_from_one_parser() -> None:
    """A "both" parser (zeek-mgmt run) serves both roles; qualified --set keys pick the role."""
    parser = argparse.ArgumentParser()
    add_settings_flags(parser, "both")
    assert "--name" not in parser.format_help()
    args = parser.parse_args(
        ["--state-dir", "/s", "--set", "controller.name=c", "--set", "agent.name=a"]
    )
    ctl, ctl_sources = settings_from_args("controller", args, ENV, host=HOST)
    agent, _ = settings_from_args("agent", args, ENV, host=HOST)
    assert (ctl.name, agent.name, ctl.state_dir, agent.state_dir) == (
        "c",
        "a",
        Path("/s"),
        Path("/s"),
    )
    assert ctl_sources["state_dir"] == "flag --state-dir"


def test_set_without_equals_is_an_error() -> None:
    """--set needs KEY=VALUE."""
    with pytest.raises(ConfigError, match="flag --set: expected"):
        settings_from_args("agent", parse_args("agent", ["--set", "keep_nodes"]), ENV, host=HOST)


def test_config_file_lookup(write: Any, tmp_path: Path) -> None:
    """--config beats $ZEEK_MGMT_CONFIG, which beats the default path (used only if present)."""
    default = write("[agent]\nname = 'from-default'\n", "default.toml")
    by_env = write("[agent]\nname = 'from-env'\n", "env.toml")
    by_flag = write("[agent]\nname = 'from-flag'\n", "flag.toml")

    def name(argv: list[str], env: dict[str, str], default_path: Path) -> str:
        args = parse_args("agent", argv)
        settings, _ = settings_from_args(
            "agent", args, {**ENV, **env}, default_config_path=str(default_path), host=HOST
        )
        return str(settings.name)

    assert name([], {}, default) == "from-default"
    assert name([], {}, tmp_path / "absent.toml") == "agent-testhost"
    assert name([], {"ZEEK_MGMT_CONFIG": str(by_env)}, default) == "from-env"
    assert name(["--config", str(by_flag)], {"ZEEK_MGMT_CONFIG": str(by_env)}, default) == (
        "from-flag"
    )


def test_rendered_settings_load_back(write: Any) -> None:
    """show-settings output is TOML that loads back to the same settings."""
    config = write('[agent]\ncontroller = "none"\nnode_args = ["-C"]\ntls_ca = "/ca.pem"\n')
    originals = {role: load(role, config)[0] for role in ("controller", "agent")}
    text = "\n".join(
        f"[{role}]\n" + "\n".join(render_settings(s, {})) for role, s in originals.items()
    )
    assert set(tomllib.loads(text)) == {"controller", "agent"}
    again = write(text, "again.toml")
    for role, original in originals.items():
        assert load(role, again)[0] == original  # type: ignore[arg-type]


# --- show-settings ----------------------------------------------------------------------


def run_cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ZEEK_")}
    return subprocess.run(
        [sys.executable, "-m", "mgmt", *args],
        env={**clean, "PYTHONPATH": str(REPO_ROOT), **env},
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )


def test_show_settings_prints_values_and_sources(write: Any) -> None:
    """zeek-mgmt show-settings prints 'key = value  # source' per role, exit 0."""
    config = write('[common]\nstate_dir = "/srv/zm"\n[agent]\nname = "a1"\n')
    proc = run_cli(
        ["show-settings", "--config", str(config)],
        {"ZEEK_AGENT_PORT": "2999/tcp", "ZEEK_CONTROLLER_WEBSOCKET_PORT": "2148", "PATH": ""},
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == f"# config file: {config}"
    for expected in [
        "[controller]",
        "[agent]",
        'name = "a1"  # file ' + str(config),
        f'state_dir = "/srv/zm"  # file {config}',
        'spool_dir = "/srv/zm/spool"  # default (<state_dir>/spool, no Zeek found)',
        "listen_port = 2999  # env ZEEK_AGENT_PORT",
        "listen_port_websocket = 2148  # env ZEEK_CONTROLLER_WEBSOCKET_PORT",
        "max_message_size = 16777216  # default",
    ]:
        assert expected in lines
    agent = run_cli(["show-settings", "agent", "--config", str(config)], {})
    assert "[controller]" not in agent.stdout and "[agent]" in agent.stdout


def test_show_settings_reports_config_errors(write: Any) -> None:
    """A ConfigError prints 'error: <message>' on stderr and exits 1."""
    config = write("[agent]\nlisten_port = 'abc'\n")
    proc = run_cli(["show-settings", "controller", "--config", str(config)], {})
    assert (proc.returncode, proc.stdout) == (1, "")
    assert proc.stderr.startswith(f"error: file {config}: agent.listen_port: invalid port")
