"""Misbehaving peers against the real daemons: what one peer costs is bounded.

Each test runs ``zeek-mgmt controller`` (or ``agent``) as a child process and drives it
with raw WebSocket peers (:mod:`tests.support.rawws`): a subscriber that never reads, floods of
silent connections, a process out of file descriptors, megabyte request ids, requests on
foreign topics. Afterwards the daemon must still answer the real zeek-client, its memory
and its log must have stayed small, and the offending peer must have been dealt with.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from mgmt.broker import events as ev
from mgmt.core.peertext import peer_text
from mgmt.core.topics import CONTROLLER_TOPIC
from mgmt.transport.limits import DEFAULT_MAX_CONNECTIONS
from tests.support.cli import run_zeek_client_sync
from tests.support.peerfaults import AGENT_TOPIC, agent, controller, log_size, request_text, rss_mb
from tests.support.rawws import RawPeer, UpgradeRefused
from tests.support.waiting import MS, TIMEOUT

MB = 1 << 20


def answers_zeek_client(port: int) -> None:
    """zeek-client get-instances succeeds against the controller's client port."""
    run = run_zeek_client_sync(port, "get-instances")
    assert run.code == 0, run.stderr
    assert json.loads(run.stdout) == {}


def subscribed(port: int, topic: str = CONTROLLER_TOPIC, **kw: int) -> RawPeer:
    """A raw peer past the HTTP upgrade and the Broker handshake."""
    peer = RawPeer(port, **kw)
    peer.upgrade()
    peer.subscribe(topic)
    return peer


def reqid_of(frame: str) -> str:
    """The request id (first event argument) of a data message."""
    data = json.loads(frame)["data"]
    return str(data[2]["data"][1]["data"][0]["data"])


def next_response(peer: RawPeer) -> str:
    """The request id of the next response (skipping an agent's notify_agent_hello)."""
    while True:
        frame = peer.read_text()
        if "notify_agent_hello" not in frame[:4096]:
            return reqid_of(frame)


def test_subscriber_that_never_reads_is_disconnected(tmp_path: Path) -> None:
    """A client that subscribes and never reads is dropped once 16 MiB wait for it; the
    controller's memory stays bounded and zeek-client still works."""
    with controller(tmp_path) as ctl:
        before = rss_mb(ctl.pid)
        slow = subscribed(ctl.port, rcvbuf=4096)
        fast = subscribed(ctl.port)
        peak = before
        # Each request is relayed to the slow peer (4 MiB) and so is its answer (4 MiB):
        # 160 MB for it in all, unless it is dropped.
        for i in range(20):
            fast.send_text(request_text(ev.GetInstancesRequest(f"{i}-" + "x" * (4 * MB))))
            assert next_response(fast).startswith(f"{i}-")
            peak = max(peak, rss_mb(ctl.pid))
        assert slow.closed_by_server(timeout=TIMEOUT), "the slow subscriber is still connected"
        slow.close()
        fast.close()
        print(f"controller RSS {before:.0f} MB before, {peak:.0f} MB at most")
        assert peak - before < 100, f"controller grew from {before:.0f} to {peak:.0f} MB"
        assert ctl.daemon.log().count("peer is not reading") == 1
        answers_zeek_client(ctl.port)


def test_connection_flood_is_refused_cleanly(tmp_path: Path) -> None:
    """Upgraded connections that stay silent: those above max_connections are refused at
    once, the agent port is unaffected, the silent ones are closed after the handshake
    timeout, and then zeek-client works again; the log stays small."""
    extra = 20
    with controller(tmp_path) as ctl:
        before = rss_mb(ctl.pid)
        upgraded: list[RawPeer] = []
        refused = 0
        for _ in range(DEFAULT_MAX_CONNECTIONS + extra):
            peer = RawPeer(ctl.port)
            try:
                peer.upgrade()
            except (UpgradeRefused, OSError):
                refused += 1
                peer.close()
                continue
            upgraded.append(peer)
        assert refused >= extra and len(upgraded) <= DEFAULT_MAX_CONNECTIONS
        subscribed(ctl.agent_port, "zeek/management/agent").close()
        # The controller closes what sent no subscriptions within handshake_timeout.
        assert all(peer.closed_by_server(timeout=30_000 * MS) for peer in upgraded)
        for peer in upgraded:
            peer.close()
        answers_zeek_client(ctl.port)
        assert rss_mb(ctl.pid) - before < 50
        log = ctl.daemon.log()
        assert log.count("the limit (max_connections)") <= 2, log
        assert "sent no subscriptions within 10 s" in log
        assert log_size(ctl) < 10_000, log


def test_out_of_file_descriptors(tmp_path: Path) -> None:
    """With a low open-file limit, accept() fails for lack of descriptors: the controller
    logs that a bounded number of times (not a traceback per attempt), pauses accepting,
    and serves again once the connections are gone; it warned about the limit at start."""
    with controller(tmp_path, nofile=96) as ctl:
        conns = [socket.create_connection(("127.0.0.1", ctl.port)) for _ in range(150)]
        ctl.daemon.wait_log("cannot accept connections: Too many open files")
        # Seconds without descriptors: asyncio used to log a traceback for every one of
        # thousands of attempts per second. A new connection waits in the backlog.
        with RawPeer(ctl.agent_port, timeout=3000 * MS) as probe, pytest.raises(OSError):
            probe.upgrade()
        log = ctl.daemon.log()
        assert log_size(ctl) < 10_000 and "Traceback" not in log, log[-3000:]
        assert log.count("cannot accept connections") <= 2
        for conn in conns:
            conn.close()
        answers_zeek_client(ctl.port)
        assert "the open file limit (96) is below" in log


@pytest.mark.parametrize("role", ["controller", "agent"])
def test_huge_request_ids_do_not_flood_the_log(tmp_path: Path, role: str) -> None:
    """Requests with 6 MiB request ids are answered, and each costs the log a short line."""
    with controller(tmp_path) if role == "controller" else agent(tmp_path) as run:
        topic = CONTROLLER_TOPIC if role == "controller" else AGENT_TOPIC
        make = ev.GetInstancesRequest if role == "controller" else ev.AgentWelcomeRequest
        peer = subscribed(run.port, topic)
        before = log_size(run)
        for i in range(10):
            rid = f"{i}-\n" + "y" * (6 * MB)
            peer.send_text(request_text(make(rid), topic))
            assert next_response(peer) == rid
        peer.close()
        grown = log_size(run) - before
        assert grown < 10 * 1000, run.daemon.log()[-2000:]
        assert peer_text("0-\n" + "y" * (6 * MB)) in run.daemon.log()


def test_requests_on_other_topics_are_ignored(tmp_path: Path) -> None:
    """Requests published on topics the daemon does not handle get no answer and change
    nothing; the same request on the API's topic is answered; the ignored ones are counted
    in the disconnect line."""
    others = ["", "x", "zeek/management/agent/x", "zeek/management/controlle", "zeek/"]
    with controller(tmp_path) as ctl:
        peer = subscribed(ctl.port, "")  # sees everything that is published
        for topic in others:
            peer.send_text(request_text(ev.GetInstancesRequest(f"on {topic!r}"), topic))
            peer.send_text(request_text(ev.TestTimeoutRequest(f"t {topic!r}", True), topic))
        peer.send_text(request_text(ev.GetInstancesRequest("marker")))
        # Responses come in order: the first one is the marker's.
        assert reqid_of(peer.read_text()) == "marker"
        peer.close()
        ctl.daemon.wait_log(f"{2 * len(others)} events on other topics ignored")
        answers_zeek_client(ctl.port)
    with agent(tmp_path) as ag:
        peer = subscribed(ag.port, "")
        for topic in [*others, "zeek/management/agent", f"{AGENT_TOPIC}x"]:
            peer.send_text(request_text(ev.AgentWelcomeRequest(f"on {topic!r}"), topic))
        peer.send_text(request_text(ev.AgentWelcomeRequest("marker"), AGENT_TOPIC))
        assert next_response(peer) == "marker"
        peer.close()
        ag.daemon.wait_log(f"{len(others) + 2} events on other topics ignored")
