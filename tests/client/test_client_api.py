"""ControllerClient against a real in-process controller (and a fake agent)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from websockets.asyncio.server import ServerConnection, serve

from client.api import ControllerClient
from client.clusterconfig import parse_cluster_config
from client.render import decode_instances, decode_node_statuses
from mgmt.broker import events as ev
from mgmt.broker.records import Configuration, State
from mgmt.exceptions import HandshakeError, InvalidState, RequestTimeout, SessionClosedError
from tests.support.controller_harness import running_cluster
from tests.support.ports import free_port
from tests.support.reference import CONFIGS, LOCAL_AGENT


def cluster_config() -> Configuration:
    parsed = parse_cluster_config(
        (CONFIGS / "cluster.cfg").read_text(),
        hostname=LOCAL_AGENT.removeprefix("agent-"),
        config_id="cfg-1",
    )
    assert parsed.config is not None
    return parsed.config


@pytest.mark.asyncio
async def test_requests_return_typed_results(tmp_path: Path) -> None:
    """Each coroutine returns the decoded results of its response."""
    async with running_cluster(tmp_path) as cluster:
        await cluster.add_agent()
        async with ControllerClient("127.0.0.1", cluster.port, timeout=5) as ctl:
            result = await ctl.get_instances()
            assert [i.name for i in decode_instances(result.data)] == [LOCAL_AGENT]
            (staged,) = await ctl.stage_configuration(cluster_config())
            assert staged.success and staged.data == "cfg-1"
            got = await ctl.get_configuration()
            assert Configuration.from_value(got.data).id == "cfg-1"
            deployed = await ctl.deploy()
            assert deployed[-1].data == "cfg-1" and all(r.success for r in deployed)
            (nodes,) = await ctl.get_nodes()
            states = {s.node: s.state for s in decode_node_statuses(nodes.data)}
            assert states["manager"] is State.RUNNING and states[LOCAL_AGENT] is State.RUNNING
            values = await ctl.get_id_value("LogAscii::use_json", ["manager", "manager"])
            assert [(r.node, r.data) for r in values] == [("manager", "false")]
            restarted = await ctl.restart(["worker-01"])
            assert [(r.node, r.success) for r in restarted] == [("worker-01", True)]
            timeout = await ctl.test_timeout(with_state=True)
            assert not timeout.success and timeout.error == "request timed out"


@pytest.mark.asyncio
async def test_concurrent_requests_and_other_clients(tmp_path: Path) -> None:
    """Responses are matched by request id: concurrent requests on one connection, and
    other clients' relayed traffic, do not mix."""
    async with running_cluster(tmp_path) as cluster:
        await cluster.add_agent()
        async with (
            ControllerClient("127.0.0.1", cluster.port, timeout=5) as a,
            ControllerClient("127.0.0.1", cluster.port, timeout=5) as b,
        ):
            results = await asyncio.gather(
                a.get_instances(), a.get_nodes(), b.get_instances(), b.get_configuration()
            )
            assert results[0].success and results[2].success
            assert results[1][0].instance == LOCAL_AGENT
            assert results[3].error == "no staged configuration available"
            assert results[0].reqid != results[2].reqid


@pytest.mark.asyncio
async def test_timeout_without_answer(tmp_path: Path) -> None:
    """No response within the timeout raises RequestTimeout with zeek-client's text."""
    async with running_cluster(tmp_path) as cluster:
        async with ControllerClient("127.0.0.1", cluster.port, timeout=0.3) as ctl:
            with pytest.raises(RequestTimeout) as info:
                await ctl.test_timeout(with_state=False)
            assert str(info.value) == f"websocket connection to 127.0.0.1:{cluster.port} timed out"
            # The connection stays usable.
            assert (await ctl.get_instances()).success


@pytest.mark.asyncio
async def test_any_inbound_message_restarts_the_timeout(tmp_path: Path) -> None:
    """Like zeek-client's per-read timeout, traffic from other clients extends the wait."""
    async with running_cluster(tmp_path, request_timeout=1.0) as cluster:
        async with (
            ControllerClient("127.0.0.1", cluster.port, timeout=0.6) as waiting,
            ControllerClient("127.0.0.1", cluster.port, timeout=5) as chatty,
        ):

            async def chatter() -> None:
                while True:
                    await chatty.get_instances()  # relayed to `waiting` as well
                    await asyncio.sleep(0.1)

            task = asyncio.create_task(chatter())
            try:
                # The controller answers after 1 s, longer than the 0.6 s timeout.
                result = await waiting.test_timeout(with_state=True)
            finally:
                task.cancel()
            assert result.error == "request timed out"


@pytest.mark.asyncio
async def test_controller_going_away_fails_pending_requests(tmp_path: Path) -> None:
    """A closed connection fails the pending request with SessionClosedError."""
    async with running_cluster(tmp_path) as cluster:
        ctl = ControllerClient("127.0.0.1", cluster.port, timeout=None)
        await ctl.connect()
        pending = asyncio.create_task(ctl.test_timeout(with_state=True))
        state = cluster.service.state
        assert state is not None
        await cluster.service.wait_until(lambda: bool(state.requests))
        cluster.service.request_shutdown()
        with pytest.raises(SessionClosedError, match="unexpected error with controller"):
            await pending
        with pytest.raises(SessionClosedError):
            await ctl.get_nodes()
        await ctl.close()


@pytest.mark.asyncio
async def test_unreachable_controller() -> None:
    """With retry_refused, refused connections are retried peering_attempts times, then
    HandshakeError with zeek-client's message."""
    port = free_port()
    ctl = ControllerClient(
        "127.0.0.1", port, peering_attempts=3, retry_delay=0.01, retry_refused=True
    )
    with pytest.raises(HandshakeError) as info:
        await ctl.connect()
    assert str(info.value) == f"websocket connection to 127.0.0.1:{port} timed out in connect()"


@pytest.mark.asyncio
async def test_server_without_ack() -> None:
    """A server answering the handshake with an error is a protocol data error."""

    async def handler(ws: ServerConnection) -> None:
        await ws.recv()
        await ws.send('{"type": "error", "code": "x", "context": "nope"}')
        await ws.wait_closed()

    async with serve(handler, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        ctl = ControllerClient("127.0.0.1", port, peering_attempts=2, retry_delay=0.5)
        with pytest.raises(HandshakeError, match="protocol data error with controller"):
            await ctl.connect()


@pytest.mark.asyncio
async def test_receive_sees_all_controller_traffic(tmp_path: Path) -> None:
    """receive() (monitor) yields other clients' requests and the responses."""
    async with running_cluster(tmp_path) as cluster:
        async with (
            ControllerClient("127.0.0.1", cluster.port, timeout=5) as watcher,
            ControllerClient("127.0.0.1", cluster.port, timeout=5) as other,
        ):
            first = asyncio.create_task(watcher.receive())
            await asyncio.sleep(0)  # let receive() start keeping events
            result = await other.get_instances()
            request = await first
            response = await watcher.receive()
            assert isinstance(request, ev.GetInstancesRequest)
            assert isinstance(response, ev.GetInstancesResponse)
            assert request.reqid == response.reqid == result.reqid


@pytest.mark.asyncio
async def test_misuse() -> None:
    """Out-of-range ports and double connects are refused."""
    with pytest.raises(ValueError, match="outside valid range"):
        ControllerClient("127.0.0.1", 70000)
    with pytest.raises(SessionClosedError):
        await ControllerClient("127.0.0.1", 1).get_nodes()
    ctl = ControllerClient("::1", 1)
    assert ctl.uri == "ws://[::1]:1/v1/messages/json" and ctl.remote == "::1:1"
    ctl._conn = object()  # type: ignore[assignment]
    with pytest.raises(InvalidState):
        await ctl.connect()
