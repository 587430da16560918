"""TLS: contexts from settings (and their start-up errors), ``wss://`` between our own
endpoints, and the real zeek-client and agent processes against a TLS controller."""

from __future__ import annotations

import logging
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mgmt.daemon.exitstatus import EXIT_FATAL
from mgmt.exceptions import ConfigError
from mgmt.settings.model import AgentSettings, ControllerSettings
from mgmt.settings.schema import HostInfo
from mgmt.settings.sources import load_settings
from mgmt.settings.tls import agent_tls, client_context, controller_tls, server_context
from mgmt.transport import Server, connect
from mgmt.transport.client import describe_connect_error
from tests.support.cli import run_zeek_client_sync
from tests.support.daemons import daemon, daemon_env
from tests.support.ports import free_port
from tests.support.tlscerts import Pki, have_openssl, make_pki
from tests.support.waiting import MS

HOST = HostInfo("testhost", is_root=False, home="/nonexistent")


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    if not have_openssl():
        pytest.skip("the openssl command line tool is needed to make test certificates")
    return make_pki(tmp_path_factory.mktemp("pki"))


def controller_settings(tmp_path: Path, **flags: Any) -> ControllerSettings:
    s, _ = load_settings(
        "controller",
        config_path=None,
        env={},
        flags={"state_dir": str(tmp_path), **flags},
        host=HOST,
    )
    return s


def agent_settings(tmp_path: Path, **flags: Any) -> AgentSettings:
    s, _ = load_settings(
        "agent", config_path=None, env={}, flags={"state_dir": str(tmp_path), **flags}, host=HOST
    )
    return s


def tls_flags(pair: Any, ca: Path | None = None, **more: str) -> dict[str, str]:
    flags = {"tls_cert": str(pair.cert), "tls_key": str(pair.key), **more}
    if ca is not None:
        flags["tls_ca"] = str(ca)
    return flags


# --- contexts from settings ------------------------------------------------------------


def test_plaintext_is_the_default(tmp_path: Path) -> None:
    """Without TLS settings there is no context anywhere."""
    c = controller_tls(controller_settings(tmp_path))
    assert (c.client_ssl, c.agent_ssl, c.dial_ssl) == (None, None, None)
    a = agent_tls(agent_settings(tmp_path))
    assert (a.server_ssl, a.dial_ssl) == (None, None)


def test_agent_channel_tls_leaves_the_client_port_plaintext(tmp_path: Path, pki: Pki) -> None:
    """tls_* secure the agent port and the dials only; tls_client_auth asks agents for a
    certificate. The client port stays plaintext, as Zeek's without tls_options_websocket."""
    s = controller_settings(tmp_path, **tls_flags(pki.server, pki.ca, tls_client_auth="true"))
    c = controller_tls(s)
    assert c.client_ssl is None and c.agent_ssl is not None and c.dial_ssl is not None
    assert c.agent_ssl.verify_mode is ssl.CERT_REQUIRED
    assert c.dial_ssl.verify_mode is ssl.CERT_REQUIRED and c.dial_ssl.check_hostname


def test_websocket_tls_secures_the_client_port_only(tmp_path: Path, pki: Pki) -> None:
    """websocket_tls_cert/key: TLS on the client port only; websocket_tls_ca makes it
    mutual (a client certificate is required, as Zeek's enable_peer_verification)."""
    ws = {"websocket_tls_cert": str(pki.server.cert), "websocket_tls_key": str(pki.server.key)}
    c = controller_tls(controller_settings(tmp_path, **ws))
    assert c.client_ssl is not None and (c.agent_ssl, c.dial_ssl) == (None, None)
    assert c.client_ssl.verify_mode is ssl.CERT_NONE
    c = controller_tls(controller_settings(tmp_path, **ws, websocket_tls_ca=str(pki.ca)))
    assert c.client_ssl is not None and c.client_ssl.verify_mode is ssl.CERT_REQUIRED
    both = controller_tls(controller_settings(tmp_path, **ws, **tls_flags(pki.server)))
    assert None not in (both.client_ssl, both.agent_ssl, both.dial_ssl)


@pytest.mark.parametrize("where", ["file", "flag"])
def test_removed_tls_client_auth_websocket_says_what_replaces_it(
    tmp_path: Path, where: str
) -> None:
    """The old tls_client_auth_websocket key is refused with a pointer to websocket_tls_*."""
    config = tmp_path / "z.toml"
    config.write_text("[controller]\ntls_client_auth_websocket = true\n")
    with pytest.raises(ConfigError) as info:
        load_settings(
            "controller",
            config_path=str(config) if where == "file" else None,
            env={},
            flags={"tls_client_auth_websocket": "true"} if where == "flag" else {},
            host=HOST,
        )
    message = str(info.value)
    assert "controller.tls_client_auth_websocket was removed" in message
    assert "websocket_tls_ca" in message


def test_agent_contexts(tmp_path: Path, pki: Pki) -> None:
    """An agent with a certificate serves TLS and dials wss://, verifying the controller."""
    a = agent_tls(agent_settings(tmp_path, **tls_flags(pki.agent, pki.ca)))
    assert a.server_ssl is not None and a.dial_ssl is not None
    assert a.dial_ssl.verify_mode is ssl.CERT_REQUIRED
    only_ca = agent_settings(tmp_path, tls_ca=str(pki.ca), listen_port="0")
    a = agent_tls(only_ca)
    assert a.server_ssl is None and a.dial_ssl is not None


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (
            {"tls_cert": "/nonexistent/cert.pem"},
            "controller.tls_cert: cannot read /nonexistent/cert.pem: No such file or directory",
        ),
        ({"tls_cert": "{server.key}"}, "{server.key}: no PEM certificate"),
        ({"tls_cert": "{server.cert}"}, "{server.cert}: no PEM private key (set tls_key)"),
        (
            {"tls_cert": "{server.cert}", "tls_key": "{agent.key}"},
            "the private key {agent.key} does not match the certificate",
        ),
        (
            {"tls_cert": "{server.cert}", "tls_key": "{encrypted}"},
            "the private key is encrypted",
        ),
        (
            {"tls_cert": "{server.cert}", "tls_key": "{server.key}", "tls_client_auth": "true"},
            "controller.tls_client_auth needs controller.tls_ca",
        ),
        (
            {"tls_cert": "{server.cert}", "tls_key": "{server.key}", "tls_ca": "{server.key}"},
            "controller.tls_ca: {server.key}: no PEM certificate",
        ),
        ({"tls_ca": "{ca}"}, "controller.tls_ca is set but controller.tls_cert is not"),
        (
            {"websocket_tls_ca": "{ca}", "tls_cert": "{server.cert}", "tls_key": "{server.key}"},
            "controller.websocket_tls_ca is set but controller.websocket_tls_cert is not",
        ),
        (
            {"websocket_tls_cert": "{server.cert}"},
            "controller.websocket_tls_cert: {server.cert}: no PEM private key "
            "(set websocket_tls_key)",
        ),
        (
            {
                "websocket_tls_cert": "{server.cert}",
                "websocket_tls_key": "{server.key}",
                "websocket_tls_ca": "/nonexistent/ca.pem",
            },
            "controller.websocket_tls_ca: cannot read /nonexistent/ca.pem",
        ),
    ],
)
def test_controller_tls_errors(
    tmp_path: Path, pki: Pki, flags: dict[str, str], message: str
) -> None:
    """Unusable TLS files or settings are a ConfigError naming the setting and the file."""
    encrypted = tmp_path / "encrypted.key"
    subprocess.run(
        ["openssl", "pkey", "-in", str(pki.server.key), "-aes256", "-passout", "pass:x",
         "-out", str(encrypted)],
        check=True,
    )  # fmt: skip
    names = {"server": pki.server, "agent": pki.agent, "ca": pki.ca, "encrypted": encrypted}
    flags = {k: v.format(**names) for k, v in flags.items()}
    s = controller_settings(tmp_path, **flags)
    with pytest.raises(ConfigError) as info:
        controller_tls(s)
    assert message.format(**names) in str(info.value)


def test_error_names_the_source(tmp_path: Path) -> None:
    """The message says where the bad value came from."""
    s = controller_settings(tmp_path, tls_cert="/nonexistent/c.pem")
    with pytest.raises(ConfigError, match=r"controller\.tls_cert \(file /etc/z\.toml\): cannot"):
        controller_tls(s, {"tls_cert": "file /etc/z.toml"})


def test_agent_listening_with_only_a_ca_is_an_error(tmp_path: Path, pki: Pki) -> None:
    """TLS on (tls_ca) but no certificate for the agent's own port: a clear error."""
    with pytest.raises(ConfigError, match="needs tls_cert and tls_key"):
        agent_tls(agent_settings(tmp_path, tls_ca=str(pki.ca)))
    with pytest.raises(ConfigError, match="agent.tls_client_auth needs agent.tls_ca"):
        agent_tls(agent_settings(tmp_path, **tls_flags(pki.agent, tls_client_auth="true")))


def test_daemon_refuses_to_start_with_a_missing_file(tmp_path: Path) -> None:
    """zeek-mgmt controller checks TLS files at start-up: fatal exit (78), the setting named."""
    proc = subprocess.run(
        [sys.executable, "-m", "mgmt", "controller", "--state-dir", str(tmp_path),
         "--set", "tls_cert=/nonexistent/c.pem"],
        capture_output=True, text=True, timeout=30_000 * MS, env=daemon_env(),
    )  # fmt: skip
    assert proc.returncode == EXIT_FATAL
    assert (
        "zeek-mgmt controller: error: controller.tls_cert (flag --set): cannot read "
        "/nonexistent/c.pem: No such file or directory"
    ) in proc.stderr


# --- wss:// between our endpoints --------------------------------------------------------


async def _dial(uri: str, ctx: ssl.SSLContext | None) -> str:
    try:
        conn, reader = await connect(
            uri, ("t",), on_event=lambda c, e: None, open_timeout=5, ssl=ctx
        )
    except Exception as exc:
        return describe_connect_error(uri, exc)
    await conn.close()
    reader.cancel()
    return "ok"


@pytest.mark.asyncio
async def test_mutual_tls_between_endpoints(pki: Pki, caplog: pytest.LogCaptureFixture) -> None:
    """A mutual-TLS port admits only CA-signed clients; every refusal is explained on both
    sides (the client's error text, the server's WARNING)."""
    ctx = server_context(
        pki.server.cert, pki.server.key, pki.ca, client_auth=True, port="agent port"
    )
    server = Server("127.0.0.1", 0, on_event=lambda c, e: None, ssl=ctx)
    await server.start()
    wss = f"wss://127.0.0.1:{server.port}/v1/messages/json"
    ws = f"ws://127.0.0.1:{server.port}/v1/messages/json"
    try:
        with caplog.at_level(logging.WARNING, "mgmt.settings.tls"):
            good = client_context(pki.agent.cert, pki.agent.key, pki.ca)
            assert await _dial(wss, good) == "ok"

            assert "is its port TLS (wss://)?" in await _dial(ws, None)
            assert "does not speak TLS" in caplog.text

            caplog.clear()
            no_cert = client_context(None, None, pki.ca)
            assert "refused our client certificate" in await _dial(wss, no_cert)
            assert "client certificate refused" in caplog.text

            caplog.clear()
            rogue = client_context(pki.rogue.cert, pki.rogue.key, pki.ca)
            assert "refused our client certificate" in await _dial(wss, rogue)
            assert "client certificate refused (unable to get local issuer" in caplog.text

            wrong_ca = client_context(pki.agent.cert, pki.agent.key, pki.other_ca)
            assert "cannot verify the server's certificate" in await _dial(wss, wrong_ca)
    finally:
        await server.close()


@pytest.mark.asyncio
async def test_tls_client_to_plaintext_server(pki: Pki) -> None:
    """wss:// to a plaintext port fails with a hint that the port is plaintext."""
    server = Server("127.0.0.1", 0, on_event=lambda c, e: None)
    await server.start()
    try:
        uri = f"wss://127.0.0.1:{server.port}/v1/messages/json"
        result = await _dial(uri, client_context(None, None, pki.ca))
        assert "plaintext" in result
    finally:
        await server.close()


# --- processes: zeek-client and agents against a TLS controller ---------------------------


def _controller_args(tmp_path: Path, client_port: int, agent_port: int) -> list[str]:
    return [
        "--state-dir", str(tmp_path / "controller"),
        "--websocket-address", "127.0.0.1", "--websocket-port", str(client_port),
        "--listen-address", "127.0.0.1", "--listen-port", str(agent_port),
    ]  # fmt: skip


def _sets(**values: object) -> list[str]:
    out: list[str] = []
    for key, value in values.items():
        out += ["--set", f"{key}={value}"]
    return out


def _agent_args(tmp_path: Path, name: str, agent_port: int, **tls: object) -> list[str]:
    return [
        "--state-dir", str(tmp_path / name), "--name", name, "--listen-port", "0",
        "--controller", f"127.0.0.1:{agent_port}", *_sets(archive_logs="false", **tls),
    ]  # fmt: skip


def test_only_agents_with_a_ca_certificate_register(tmp_path: Path, pki: Pki) -> None:
    """Mutual TLS on the agent port: the agent with a CA-signed certificate registers
    (get-instances over wss:// lists it); one with another CA's certificate and a plaintext
    one are refused, and both sides log why. zeek-client with ssl.enable and a CA file
    works; a plaintext zeek-client fails clearly."""
    client_port, agent_port = free_port(), free_port()
    ctl_args = _controller_args(tmp_path, client_port, agent_port) + _sets(
        tls_cert=pki.server.cert, tls_key=pki.server.key, tls_ca=pki.ca, tls_client_auth="true"
    )
    env = daemon_env()
    with daemon("controller", ctl_args, tmp_path / "controller.log", env) as ctl:
        ctl.wait_log("is live")
        good_args = _agent_args(
            tmp_path, "good", agent_port, tls_cert=pki.agent.cert, tls_key=pki.agent.key,
            tls_ca=pki.ca,
        )  # fmt: skip
        rogue_args = _agent_args(
            tmp_path, "rogue", agent_port, tls_cert=pki.rogue.cert, tls_key=pki.rogue.key,
            tls_ca=pki.ca,
        )  # fmt: skip
        plain_args = _agent_args(tmp_path, "plain", agent_port)
        with (
            daemon("agent", good_args, tmp_path / "good.log", env) as good,
            daemon("agent", rogue_args, tmp_path / "rogue.log", env) as rogue,
            daemon("agent", plain_args, tmp_path / "plain.log", env) as plain,
        ):
            good.wait_log("connected to wss://127.0.0.1")
            ctl.wait_log("rx notify_agent_hello good")
            rogue.wait_log("it probably refused our client certificate")
            plain.wait_log("is its port TLS (wss://)? then set tls_ca")
            failed = "agent port: TLS handshake with a peer failed"
            ctl.wait_log(f"{failed}: client certificate refused")
            ctl.wait_log(f"{failed}: the peer does not speak TLS")

            # The client port is not part of the agent channel: plaintext zeek-client.
            result = run_zeek_client_sync(client_port, "get-instances")
            assert result.code == 0, result.stderr
            assert '"good"' in result.stdout
            assert "rogue" not in result.stdout and "plain" not in result.stdout


def test_tls_for_clients_only(tmp_path: Path, pki: Pki) -> None:
    """websocket_tls_*: zeek-client with ssl.enable and ssl.cafile gets wss:// on the client
    port while a plaintext agent registers on the agent port, as with Zeek's
    tls_options_websocket; a plaintext zeek-client is refused and the controller says why."""
    client_port, agent_port = free_port(), free_port()
    ctl_args = _controller_args(tmp_path, client_port, agent_port) + _sets(
        websocket_tls_cert=pki.server.cert, websocket_tls_key=pki.server.key
    )
    env = daemon_env()
    with (
        daemon("controller", ctl_args, tmp_path / "controller.log", env) as ctl,
        daemon("agent", _agent_args(tmp_path, "plain", agent_port), tmp_path / "a.log", env),
    ):
        ctl.wait_log(
            f"websocket port 127.0.0.1:{client_port} (TLS), "
            f"agent port 127.0.0.1:{agent_port} (plaintext)"
        )
        ctl.wait_log("rx notify_agent_hello plain")
        # zeek-client verifies only when it also has a certificate; its TLS 1.2 cipher list
        # is anonymous-only, so this checks that TLS 1.3 with our certificate works for it.
        result = run_zeek_client_sync(
            client_port, "get-instances",
            settings={"ssl.enable": "true", "ssl.cafile": str(pki.ca)},
        )  # fmt: skip
        assert result.code == 0, result.stderr
        assert '"plain"' in result.stdout

        plain_client = run_zeek_client_sync(client_port, "get-instances")
        assert plain_client.code == 1
        assert "Connection to remote host was lost" in plain_client.stderr
        ctl.wait_log("client port: TLS handshake with a peer failed: the peer does not")


def test_zeek_client_with_certificate_on_mutual_tls_client_port(tmp_path: Path, pki: Pki) -> None:
    """websocket_tls_ca: zeek-client with a CA-signed ssl.certificate connects and verifies
    the controller; without a certificate, or trusting another CA, it fails."""
    client_port, agent_port = free_port(), free_port()
    ctl_args = _controller_args(tmp_path, client_port, agent_port) + _sets(
        websocket_tls_cert=pki.server.cert, websocket_tls_key=pki.server.key,
        websocket_tls_ca=pki.ca,
    )  # fmt: skip
    with daemon("controller", ctl_args, tmp_path / "controller.log", daemon_env()) as ctl:
        ctl.wait_log("is live")
        with_cert = {
            "ssl.enable": "true",
            "ssl.certificate": str(pki.agent.cert),
            "ssl.keyfile": str(pki.agent.key),
            "ssl.cafile": str(pki.ca),
        }
        ok = run_zeek_client_sync(client_port, "get-instances", settings=with_cert)
        assert ok.code == 0, ok.stderr
        assert ok.stdout.strip() == "{}"

        no_cert = run_zeek_client_sync(
            client_port, "get-instances", settings={"ssl.enable": "true"}
        )
        assert no_cert.code == 1
        ctl.wait_log(
            "client port: TLS handshake with a peer failed: client certificate refused "
            "(peer did not return a certificate): one signed by websocket_tls_ca is required"
        )

        distrust = run_zeek_client_sync(
            client_port, "get-instances", settings={**with_cert, "ssl.cafile": str(pki.other_ca)}
        )
        assert distrust.code == 1
        assert "CERTIFICATE_VERIFY_FAILED" in distrust.stderr


def test_controller_dials_a_tls_agent(tmp_path: Path, pki: Pki) -> None:
    """An instance given as host:port is dialed over wss://: the agent's port requires the
    controller's CA-signed certificate (agent tls_client_auth) and the controller checks
    the agent's; deploy succeeds and get-instances lists the agent."""
    client_port, agent_listen = free_port(), free_port()
    ctl_args = _controller_args(tmp_path, client_port, 0) + _sets(
        tls_cert=pki.server.cert, tls_key=pki.server.key, tls_ca=pki.ca
    )
    agent_args = [
        "--state-dir", str(tmp_path / "dialed"), "--name", "dialed", "--controller", "none",
        "--listen-address", "127.0.0.1", "--listen-port", str(agent_listen),
        *_sets(archive_logs="false", tls_cert=pki.agent.cert, tls_key=pki.agent.key,
               tls_ca=pki.ca, tls_client_auth="true"),
    ]  # fmt: skip
    config = tmp_path / "cluster.ini"
    config.write_text(f"[instances]\ndialed = 127.0.0.1:{agent_listen}\n")
    env = daemon_env()
    with (
        daemon("controller", ctl_args, tmp_path / "controller.log", env) as ctl,
        daemon("agent", agent_args, tmp_path / "agent.log", env) as agent,
    ):
        ctl.wait_log("is live")
        agent.wait_log("is live")
        deployed = run_zeek_client_sync(client_port, "deploy-config", str(config))
        assert deployed.code == 0, deployed.stderr + ctl.log()
        ctl.wait_log(f"connected to wss://127.0.0.1:{agent_listen}/")
        instances = run_zeek_client_sync(client_port, "get-instances")
        assert instances.code == 0, instances.stderr
        assert '"dialed"' in instances.stdout
