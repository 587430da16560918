"""Client errors that say what to do: nothing listening, TLS mix-ups, unreadable files.

Our CLI runs as a child process (``python -m mgmt``) against a real WebSocket server of
ours (plaintext, TLS, mutual TLS) or against a port where nothing listens. Each message is
asserted exactly; stdout stays empty and the exit code is 1, as with zeek-client.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from client.api import ControllerClient, ControllerRefused
from mgmt.settings.tls import server_context
from mgmt.transport import Server
from tests.support.cli import Run, ours, run_cmd
from tests.support.tlscerts import Pki, have_openssl, make_pki

needs_openssl = pytest.mark.skipif(not have_openssl(), reason="openssl tool not installed")


@pytest.fixture
def unused_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    if not have_openssl():
        pytest.skip("openssl tool not installed")
    return make_pki(tmp_path_factory.mktemp("pki"))


@asynccontextmanager
async def serving(ctx: ssl.SSLContext | None) -> AsyncIterator[int]:
    """A WebSocket server of ours on a free port (TLS with ``ctx``); yields the port."""
    server = Server("127.0.0.1", 0, on_event=lambda c, e: None, ssl=ctx)
    await server.start()
    try:
        yield server.port
    finally:
        await server.close()


async def get_nodes(port: int, *sets: str) -> Run:
    argv = ours("get-nodes", "--controller", f"127.0.0.1:{port}")
    for item in ("client.peering_attempts=2", "client.peering_retry_delay_secs=0.2", *sets):
        argv += ["--set", item]
    return await run_cmd(argv)


def failed_with(run: Run, message: str) -> None:
    """Exit 1, nothing on stdout, exactly one error line."""
    assert (run.code, run.stdout, run.stderr) == (1, "", f"error: {message}\n"), run


@pytest.mark.asyncio
async def test_nothing_listening_says_so_at_once(unused_port: int) -> None:
    """A refused connection names the address and what to check, with default settings
    (zeek-client's 10 attempts would say 'timed out in connect()' after 10 s)."""
    run = await run_cmd(ours("get-nodes", "--controller", f"127.0.0.1:{unused_port}"))
    failed_with(
        run,
        f"connection refused: no controller at 127.0.0.1:{unused_port} "
        "(is zeek-mgmt controller running? see --controller)",
    )


@pytest.mark.asyncio
async def test_library_refused_is_not_retried(unused_port: int) -> None:
    """ControllerClient raises ControllerRefused on the first refusal (a retry would wait a
    minute here; retry_refused=True keeps zeek-client's retries, see test_client_api)."""
    ctl = ControllerClient("127.0.0.1", unused_port, peering_attempts=3, retry_delay=60)
    async with asyncio.timeout(30):
        with pytest.raises(ControllerRefused) as info:
            await ctl.connect()
    assert str(info.value) == f"connection refused: no controller at 127.0.0.1:{unused_port}"


@needs_openssl
@pytest.mark.asyncio
async def test_plaintext_against_a_tls_port(pki: Pki) -> None:
    """Plaintext against a TLS port: zeek-client's message and a hint to enable TLS."""
    ctx = server_context(pki.server.cert, pki.server.key, None, client_auth=False)
    async with serving(ctx) as port:
        run = await get_nodes(port)
    failed_with(
        run,
        f"websocket error in connect() with controller 127.0.0.1:{port}: did not receive a "
        "valid HTTP response (is the controller's port TLS? then --set ssl.enable=true)",
    )


@pytest.mark.asyncio
async def test_tls_against_a_plaintext_port() -> None:
    """TLS against a plaintext port: the reset is named and the hint says plaintext."""
    async with serving(None) as port:
        run = await get_nodes(port, "ssl.enable=true")
    failed_with(
        run,
        f"socket error in connect() with controller 127.0.0.1:{port}: connection reset by "
        "peer (is the controller's port plaintext? then leave ssl.enable off)",
    )


@needs_openssl
@pytest.mark.asyncio
async def test_no_client_certificate_for_a_mutual_tls_port(pki: Pki) -> None:
    """A mutual-TLS port drops a client without a certificate: the hint names the settings."""
    ctx = server_context(pki.server.cert, pki.server.key, pki.ca, client_auth=True)
    async with serving(ctx) as port:
        run = await get_nodes(port, "ssl.enable=true")
    assert run.code == 1 and run.stdout == ""
    assert run.stderr.endswith(
        "(does the controller require a client certificate? then set ssl.certificate and "
        "ssl.keyfile)\n"
    ), run.stderr


@pytest.mark.parametrize("command", ["stage-config", "deploy-config"])
@pytest.mark.asyncio
async def test_cluster_file_that_does_not_exist(
    command: str, tmp_path: Path, unused_port: int
) -> None:
    """A missing cluster file is named with the reason, before any connection is tried;
    a directory too."""
    missing = tmp_path / "clusterr.cfg"
    run = await run_cmd(ours(command, str(missing), "--controller", f"127.0.0.1:{unused_port}"))
    failed_with(run, f"cannot read {missing}: No such file or directory")
    run = await run_cmd(ours(command, str(tmp_path), "--controller", f"127.0.0.1:{unused_port}"))
    failed_with(run, f"cannot read {tmp_path}: Is a directory")
