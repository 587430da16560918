"""Per-peer bounds in process: settings, the open-file limit, the transport's limits.

The daemons under real floods are in ``test_peer_faults.py``; here each bound is checked
on its own, with small limits, against a :class:`~mgmt.transport.Server` on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from mgmt.broker import events as be
from mgmt.broker import messages as bm
from mgmt.broker.session import (
    ClientSession,
    EventReceived,
    Ignored,
    ServerSession,
    prefix_filter,
)
from mgmt.daemon.fdlimit import RESERVE, check_fd_budget
from mgmt.exceptions import ConfigError
from mgmt.settings.schema import HostInfo
from mgmt.settings.sources import load_settings
from mgmt.transport import Server
from mgmt.transport.limits import (
    DEFAULT_HANDSHAKE_TIMEOUT,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_SEND_BUFFER,
    LogThrottle,
)
from tests.paths import REPO_ROOT
from tests.support.rawws import RawPeer
from tests.support.waiting import MS, wait_until_async

TOPIC = "zeek/management/controller"
HOST = HostInfo("testhost", is_root=False, home="/nonexistent")


def load(role: str, **flags: object) -> tuple[Any, dict[str, str]]:
    return load_settings(
        role,  # type: ignore[arg-type]
        config_path=None,
        env={},
        flags={"state_dir": "/srv/zm", **flags},
        host=HOST,
    )


# --------------------------------------------------------------------------------------
# Settings


@pytest.mark.parametrize("role", ["controller", "agent"])
def test_limit_settings_defaults_reach_the_daemon(role: str) -> None:
    """max_send_buffer, max_connections and handshake_timeout default to the transport's
    bounds and can be set (the daemons take the settings as they are)."""
    settings, sources = load(role)
    assert (settings.max_send_buffer, settings.max_connections, settings.handshake_timeout) == (
        DEFAULT_MAX_SEND_BUFFER,
        DEFAULT_MAX_CONNECTIONS,
        DEFAULT_HANDSHAKE_TIMEOUT,
    )
    assert sources["max_connections"] == "default"
    settings, sources = load(
        role, max_send_buffer="1000", max_connections="7", handshake_timeout="2.5"
    )
    assert sources["max_connections"] == "flag --set"
    assert (settings.max_send_buffer, settings.max_connections, settings.handshake_timeout) == (
        1000,
        7,
        2.5,
    )


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("max_connections", "0", "must be greater than 0"),
        ("max_connections", "many", "expected an integer"),
        ("max_send_buffer", "-1", "must be greater than 0"),
        ("handshake_timeout", "0", "must be greater than 0"),
    ],
)
def test_limit_settings_reject_nonsense(key: str, value: str, message: str) -> None:
    """A limit of zero, a negative one or a word stops start-up with a clear message."""
    with pytest.raises(ConfigError, match=message):
        load("controller", **{key: value})


def test_raise_fd_limit_to_the_hard_limit() -> None:
    """At start-up the soft open-file limit is raised to the hard one (as Zeek does)."""
    code = (
        "import resource\n"
        "from mgmt.daemon.fdlimit import raise_fd_limit\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (256, 512))\n"
        "print(raise_fd_limit(), resource.getrlimit(resource.RLIMIT_NOFILE)[0])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["512", "512"]


def test_fd_budget_warns_when_the_limit_is_too_low(caplog: pytest.LogCaptureFixture) -> None:
    """A limit too small for max_connections on every port is reported at start-up."""
    with caplog.at_level(logging.WARNING, "mgmt"):
        assert check_fd_budget(2 * 256 + RESERVE, 2, 256)
        assert not caplog.records
        assert not check_fd_budget(1024, 2, 1000)
    assert "the open file limit (1024) is below the 2064" in caplog.text


# --------------------------------------------------------------------------------------
# Topics (the sans-I/O session)


def test_server_session_ignores_events_on_other_topics() -> None:
    """A valid event on a topic the endpoint does not handle is Ignored and counted, with
    no answer; on a handled topic it is delivered."""
    s = ServerSession(endpoint="e", version="v", topics=prefix_filter(TOPIC))
    s.receive_text('["x"]')
    s.messages_to_send()
    s.events_received()
    for topic in ("", "x", "zeek/management/agent/a", TOPIC + "/sub"):
        s.receive_text(bm.data_message_text(topic, be.event_to_json(be.GetNodesRequest("r"))))
    events = s.events_received()
    assert [type(e) for e in events] == [Ignored, Ignored, Ignored, EventReceived]
    assert s.messages_to_send() == [] and (s.ignored, s.rejected) == (3, 0)


def test_client_session_handles_its_subscriptions_by_default() -> None:
    """Our client side only delivers events on the topics it subscribed to."""
    c = ClientSession(("zeek/management/node/w1/response",))
    c.receive_text('{"type":"ack","endpoint":"e","version":"v"}')
    c.events_received()
    reply = be.event_to_json(be.GetNodesRequest("r"))
    c.receive_text(bm.data_message_text("zeek/management/node/w10/response", reply))
    c.receive_text(bm.data_message_text("zeek/management/node/w1/response", reply))
    assert [type(e) for e in c.events_received()] == [Ignored, EventReceived]


# --------------------------------------------------------------------------------------
# The transport


def test_log_throttle_counts_what_it_does_not_log(caplog: pytest.LogCaptureFixture) -> None:
    """The first occurrence is logged, the next ones are counted into one line."""

    async def main() -> None:
        throttle = LogThrottle(logging.getLogger("mgmt.test"), logging.WARNING)
        for i in range(5):
            throttle("refused %s", i)
        assert len(caplog.records) == 1
        throttle.flush()
        throttle.flush()  # nothing new: no line

    with caplog.at_level(logging.WARNING, "mgmt.test"):
        asyncio.run(main())
    assert [r.getMessage() for r in caplog.records] == [
        "refused 0",
        "refused 4 (4 times in the last 10 s)",
    ]


@contextlib.asynccontextmanager
async def serving(**kw: Any) -> AsyncIterator[tuple[Server, asyncio.Event]]:
    closed = asyncio.Event()
    server = Server(
        "127.0.0.1",
        0,
        on_event=lambda conn, e: None,
        on_close=lambda conn: closed.set(),
        **kw,
    )
    await server.start()
    try:
        async with asyncio.timeout(30_000 * MS):
            yield server, closed
    finally:
        await server.close()


def uri(server: Server) -> str:
    return f"ws://127.0.0.1:{server.port}{bm.API_PATH}"


@pytest.mark.asyncio
async def test_peer_that_does_not_read_is_dropped(caplog: pytest.LogCaptureFixture) -> None:
    """Once more than max_send_buffer bytes wait for a peer, it is disconnected, with one
    warning; a peer that reads gets everything."""
    caplog.set_level(logging.WARNING, "mgmt.transport")
    async with serving(max_send_buffer=256 * 1024) as (server, closed):
        slow = await asyncio.to_thread(_subscribed_raw, server.port)
        async with ws_connect(uri(server), max_size=None) as reader:
            await reader.send(json.dumps([TOPIC]))
            await reader.recv()
            await wait_until_async(lambda: len(server.connections) == 2)
            got = 0
            for i in range(2000):
                server.publish(TOPIC, be.GetNodesRequest(f"{i}-" + "x" * 10_000))
                await asyncio.sleep(0)
                if closed.is_set():
                    break
            await closed.wait()
            while got < i:  # the reading peer is still served
                await reader.recv()
                got += 1
        slow.close()
    assert caplog.text.count("peer is not reading") == 1


def _subscribed_raw(port: int) -> RawPeer:
    peer = RawPeer(port, rcvbuf=4096)
    peer.upgrade()
    peer.subscribe(TOPIC)
    return peer


@pytest.mark.asyncio
async def test_connections_over_the_limit_are_refused(caplog: pytest.LogCaptureFixture) -> None:
    """With max_connections open, the next connection gets a 503 and is closed; a closed
    connection frees its slot."""
    caplog.set_level(logging.WARNING, "mgmt.transport")
    async with serving(max_connections=2) as (server, _):
        first = await ws_connect(uri(server))
        second = await ws_connect(uri(server))
        with pytest.raises((InvalidStatus, ConnectionError, ConnectionClosed)) as info:
            await ws_connect(uri(server))
        if isinstance(info.value, InvalidStatus):
            assert info.value.response.status_code == 503
        await first.close()
        await wait_until_async(lambda: server.open_connections == 1)
        third = await ws_connect(uri(server))
        await third.send(json.dumps([TOPIC]))
        assert json.loads(await third.recv())["type"] == "ack"
        await second.close()
        await third.close()
        await wait_until_async(lambda: server.open_connections == 0)
    assert "2 connections open, the limit (max_connections)" in caplog.text


@pytest.mark.asyncio
async def test_silent_connections_are_closed_after_the_handshake_timeout() -> None:
    """A peer that upgrades but sends no subscriptions is closed (1008), and one that never
    sends its HTTP request is dropped, both after handshake_timeout."""
    async with serving(handshake_timeout=0.2) as (server, _):
        async with ws_connect(uri(server)) as ws:
            with pytest.raises(ConnectionClosed):
                await ws.recv()
            assert (ws.close_code, ws.close_reason) == (1008, "no subscriptions")
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        assert await reader.read() == b""
        writer.close()
        await wait_until_async(lambda: server.open_connections == 0)


@pytest.mark.asyncio
async def test_port_in_use_is_an_oserror() -> None:
    """Binding a port that is taken fails at start() with an OSError naming the address."""
    async with serving() as (server, _):
        other = Server("127.0.0.1", server.port, on_event=lambda c, e: None)
        with pytest.raises(OSError, match="address already in use"):
            await other.start()


def test_units_leave_room_for_the_connection_limits() -> None:
    """Both systemd units set LimitNOFILE= well above what the default connection limit
    on their ports needs."""
    for unit, ports in (("zeek-mgmt-controller.service", 2), ("zeek-mgmt-agent.service", 1)):
        text = (Path(REPO_ROOT) / "systemd" / unit).read_text()
        (line,) = [x for x in text.splitlines() if x.startswith("LimitNOFILE=")]
        assert int(line.split("=", 1)[1]) >= 10 * (ports * DEFAULT_MAX_CONNECTIONS + RESERVE)
