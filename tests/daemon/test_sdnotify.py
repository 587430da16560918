"""systemd notifications: the sd_notify client, and the daemons' READY/STATUS/WATCHDOG/STOPPING
against a real ``NOTIFY_SOCKET`` datagram socket."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from mgmt.controller.service import ControllerService
from mgmt.daemon.sdnotify import Notifier, serve_notifying
from tests.support.daemons import Daemon, daemon_env
from tests.support.ports import free_port
from tests.support.settings import controller_settings
from tests.support.waiting import MS, TIMEOUT


class NotifySocket:
    """A bound ``AF_UNIX`` datagram socket standing in for systemd's notify socket."""

    def __init__(self, address: str | bytes, env_value: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address)
        self.env_value = env_value
        self.received: list[dict[str, str]] = []

    def recv(self, timeout: float = TIMEOUT) -> dict[str, str]:
        """The next message as a dict of assignments (fails the test at the timeout)."""
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(4096)
        except TimeoutError:
            pytest.fail(f"no notification within {timeout} s; got {self.received}")
        msg = dict(line.split("=", 1) for line in data.decode().splitlines())
        self.received.append(msg)
        return msg

    def recv_until(self, key: str, timeout: float = TIMEOUT) -> dict[str, str]:
        """Receive until a message carries ``key``; return that message."""
        deadline = time.monotonic() + timeout
        while True:
            msg = self.recv(max(0.01, deadline - time.monotonic()))
            if key in msg:
                return msg

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def abstract_socket() -> Iterator[NotifySocket]:
    name = f"zeek-mgmt-test-{uuid.uuid4().hex}"
    ns = NotifySocket(b"\0" + name.encode(), f"@{name}")
    yield ns
    ns.close()


@pytest.fixture
def path_socket() -> Iterator[NotifySocket]:
    # A short directory: unix socket paths are limited to 107 bytes.
    with tempfile.TemporaryDirectory(prefix="zmn") as d:
        path = os.path.join(d, "notify")
        ns = NotifySocket(path, path)
        yield ns
        ns.close()


# --- the client -------------------------------------------------------------------------


def test_unset_notify_socket_is_a_noop() -> None:
    """Without NOTIFY_SOCKET nothing is sent, no watchdog, and no error."""
    n = Notifier({"WATCHDOG_USEC": "1000000"})
    assert not n.enabled
    assert n.watchdog_interval is None
    assert n.ready("x") is False
    assert n.watchdog() is False


def test_path_socket_gets_assignments(path_socket: NotifySocket) -> None:
    """A path NOTIFY_SOCKET receives one datagram of KEY=VALUE lines; STATUS is one line."""
    n = Notifier({"NOTIFY_SOCKET": path_socket.env_value})
    assert n.ready("two\nlines  here") is True
    assert path_socket.recv() == {"READY": "1", "STATUS": "two lines here"}
    assert n.stopping() is True
    assert path_socket.recv() == {"STOPPING": "1"}
    n.close()


def test_abstract_socket(abstract_socket: NotifySocket) -> None:
    """'@name' addresses the abstract namespace."""
    n = Notifier({"NOTIFY_SOCKET": abstract_socket.env_value})
    assert n.watchdog() is True
    assert abstract_socket.recv() == {"WATCHDOG": "1"}
    n.close()


def test_unreachable_socket_never_raises(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A socket that is gone makes notify() return False and warn once, not raise."""
    n = Notifier({"NOTIFY_SOCKET": str(tmp_path / "missing")})
    with caplog.at_level(logging.DEBUG, "mgmt.daemon.sdnotify"):
        assert n.ready() is False
        assert n.status("x") is False
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "cannot notify systemd" in warnings[0].getMessage()
    n.close()


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"WATCHDOG_USEC": "30000000"}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "4242"}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}, None),  # for another process
        ({"WATCHDOG_USEC": "soon"}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({}, None),
    ],
)
def test_watchdog_interval(env: dict[str, str], expected: float | None) -> None:
    """Pings every half WATCHDOG_USEC, only when WATCHDOG_PID (if set) is ours."""
    n = Notifier({"NOTIFY_SOCKET": "@x", **env}, pid=4242)
    assert n.watchdog_interval == expected


def test_non_unix_address_disables() -> None:
    """A NOTIFY_SOCKET that is neither a path nor '@name' (e.g. vsock) disables notifying."""
    assert not Notifier({"NOTIFY_SOCKET": "vsock:2:1234"}).enabled


# --- serve_notifying in-process --------------------------------------------------------


class FakeService:
    """A daemon with the controller's lifecycle surface and no sockets."""

    def __init__(self, fail: Exception | None = None) -> None:
        self.started = asyncio.Event()
        self._stop = asyncio.Event()
        self._fail = fail

    def request_shutdown(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        if self._fail is not None:
            raise self._fail
        self.started.set()
        await self._stop.wait()


@pytest.mark.asyncio
async def test_status_is_resent_only_when_it_changes(abstract_socket: NotifySocket) -> None:
    """STATUS goes out at READY and again only when the status line changes."""
    service = FakeService()
    status = ["a"]
    notifier = Notifier({"NOTIFY_SOCKET": abstract_socket.env_value})
    task = asyncio.create_task(
        serve_notifying(
            service, notifier, lambda: status[0], install_signals=False, status_interval=0.01
        )
    )
    loop = asyncio.get_running_loop()
    assert await loop.run_in_executor(None, abstract_socket.recv) == {
        "READY": "1",
        "STATUS": "a",
    }
    status[0] = "b"
    assert await loop.run_in_executor(None, abstract_socket.recv) == {"STATUS": "b"}
    service.request_shutdown()
    await task
    assert await loop.run_in_executor(None, abstract_socket.recv) == {"STOPPING": "1"}


@pytest.mark.asyncio
async def test_no_ready_when_start_up_fails(abstract_socket: NotifySocket) -> None:
    """A service that fails to start raises through serve_notifying and never says READY."""
    notifier = Notifier({"NOTIFY_SOCKET": abstract_socket.env_value})
    with pytest.raises(OSError, match="in use"):
        await serve_notifying(
            FakeService(OSError("address in use")), notifier, lambda: "x", install_signals=False
        )
    assert abstract_socket.recv(1.0) == {"STOPPING": "1"}


@pytest.mark.asyncio
async def test_controller_ready_after_ports_listen(
    tmp_path: Path, abstract_socket: NotifySocket
) -> None:
    """In-process: at READY=1 the real controller's ports are bound and accept."""
    service = ControllerService(
        controller_settings(
            tmp_path, name="c", listen_address="127.0.0.1", listen_address_websocket="127.0.0.1"
        ),
        ephemeral_ports=True,
    )
    notifier = Notifier({"NOTIFY_SOCKET": abstract_socket.env_value})
    task = asyncio.create_task(
        serve_notifying(service, notifier, lambda: "up", install_signals=False)
    )
    msg = await asyncio.get_running_loop().run_in_executor(None, abstract_socket.recv)
    assert msg["READY"] == "1"
    for server in (service.client_server, service.agent_server):
        assert server is not None
        _, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.close()
        await writer.wait_closed()
    service.request_shutdown()
    await task


# --- the daemons as processes ----------------------------------------------------------


def _connects(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def _run_and_check(
    role: str, args: list[str], ports: list[int], ns: NotifySocket, tmp_path: Path
) -> tuple[dict[str, str], Daemon]:
    """Start a daemon with NOTIFY_SOCKET and a 0.2 s watchdog; at READY its ports accept."""
    env = daemon_env(NOTIFY_SOCKET=ns.env_value, WATCHDOG_USEC="200000")
    d = Daemon(role, args, tmp_path / f"{role}.log", env)
    try:
        ready = ns.recv_until("READY", timeout=20_000 * MS)
        # Right when READY arrives, every port must already accept connections.
        assert all(_connects(p) for p in ports), d.log()
        assert ns.recv_until("WATCHDOG", timeout=5000 * MS) == {"WATCHDOG": "1"}
        assert ns.recv_until("WATCHDOG", timeout=5000 * MS) == {"WATCHDOG": "1"}
        d.terminate()
        assert ns.recv_until("STOPPING", timeout=5000 * MS)["STOPPING"] == "1"
        assert d.stop() == 0, d.log()
    finally:
        d.stop()
    return ready, d


def test_controller_process_notifies(tmp_path: Path, abstract_socket: NotifySocket) -> None:
    """zeek-mgmt controller: READY once both ports accept, STATUS, WATCHDOG=1, STOPPING on TERM."""
    client_port, agent_port = free_port(), free_port()
    args = [
        "--state-dir", str(tmp_path / "state"),
        "--websocket-address", "127.0.0.1", "--websocket-port", str(client_port),
        "--listen-address", "127.0.0.1", "--listen-port", str(agent_port),
    ]  # fmt: skip
    ready, _ = _run_and_check(
        "controller", args, [client_port, agent_port], abstract_socket, tmp_path
    )
    assert ready["STATUS"] == (
        f"listening on clients ws://127.0.0.1:{client_port}, agents ws://127.0.0.1:{agent_port}; "
        "0 agents connected; no configuration deployed"
    )


def test_agent_process_notifies_without_controller(
    tmp_path: Path, abstract_socket: NotifySocket
) -> None:
    """zeek-mgmt agent: READY once its own port accepts, not waiting for the controller."""
    port, nobody = free_port(), free_port()
    args = [
        "--state-dir", str(tmp_path / "state"), "--name", "a1",
        "--listen-address", "127.0.0.1", "--listen-port", str(port),
        "--controller", f"127.0.0.1:{nobody}",
    ]  # fmt: skip
    ready, _ = _run_and_check("agent", args, [port], abstract_socket, tmp_path)
    assert ready["STATUS"] == (
        f"listening on ws://127.0.0.1:{port}; controller ws://127.0.0.1:{nobody} not connected; "
        "no nodes deployed"
    )
