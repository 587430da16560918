"""The node channel (get-id-value): the management node script, the test double's
channel, and the agent's persistent per-node clients (mgmt.agent.nodechannel).

The double plays a Zeek 8.2.2 node that loaded ``zeek-mgmt-node.zeek``: a real
WebSocket server on 127.0.0.1, real processes, real ports.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import signal
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mgmt.agent.nodechannel import NodeChannel, NodeChannels, NodeProcess, relay_for
from mgmt.agent.nodes import node_websocket_ports
from mgmt.broker import events as ev
from mgmt.broker.data import BrokerSet, Port
from mgmt.broker.records import ClusterRole, Configuration, Instance, Node
from mgmt.broker.session import EventReceived
from mgmt.core.topics import node_response_topic as response_topic
from mgmt.transport import Connection, connect
from tests.support.double_nodes import NODE_SCRIPT_TEXT, DoubleCluster, DoubleNode, double_cluster
from tests.support.ports import free_port, free_port_block
from tests.support.waiting import MS, TIMEOUT

NODES = {"manager": "MANAGER", "logger": "LOGGER", "worker-01": "WORKER"}


# --------------------------------------------------------------------------------------
# The management node script (mgmt/scripts/zeek-mgmt-node.zeek)


def _directives(text: str) -> list[str]:
    return [
        m.group(1)
        for line in text.splitlines()
        if (m := re.match(r"^\s*@(if|ifdef|ifndef|else|endif)\b", line))
    ]


def test_node_script_conditionals_are_balanced() -> None:
    """Every @if/@ifdef/@ifndef has one @endif, and @else only inside one."""
    depth = 0
    for word in _directives(NODE_SCRIPT_TEXT):
        if word in ("if", "ifdef", "ifndef"):
            depth += 1
        elif word == "else":
            assert depth > 0
        else:
            depth -= 1
            assert depth >= 0
    assert depth == 0


def test_node_script_braces_are_balanced() -> None:
    """Braces and parentheses balance outside strings and comments."""
    code = re.sub(r'"(?:[^"\\\n]|\\.)*"', '""', NODE_SCRIPT_TEXT)
    code = re.sub(r"#[^\n]*", "", code)
    assert code.count("{") == code.count("}")
    assert code.count("(") == code.count(")")


@pytest.mark.parametrize(
    "needle",
    [
        # the channel
        "Cluster::listen_websocket",
        'getenv("ZEEK_MGMT_NODE_WEBSOCKET_PORT")',
        "127.0.0.1",
        '@if ( Version::at_least("7.2") )',
        "Cluster::subscribe(node_topic_prefix + Cluster::node)",
        'node_topic_prefix + Cluster::node + "/response"',
        "Cluster::publish(",
        "event Management::Node::API::node_dispatch_request(reqid: string, action: vector of "
        "string,\n    nodes: set[string])",
        "Management::Node::API::node_dispatch_response, reqid, res",
        "@load policy/frameworks/management/node/api",
        "to_json(val)",
        "lookup_ID(args[0])",
        # Zeek's error strings (behaviour.md §7)
        '"unknown id"',
        '"no ID value"',
        '"<unknown id>"',
        '"<no ID value>"',
        '"no dispatch arguments provided"',
        '"dispatch %s unknown"',
        '"get_id_value expects name of global identifier"',
        # rotation (behaviour.md §6.8, §8.4)
        'redef Log::default_rotation_postprocessor_cmd = "";',
        'spool_dir + "/log-queue"',
        'getenv("ZEEK_MANAGEMENT_SPOOL_DIR")',
        "redef LogAscii::enable_leftover_log_rotation = T;",
        "redef Log::rotation_format_func = archiver_rotation_format_func;",
    ],
)
def test_node_script_contains(needle: str) -> None:
    """The script carries each piece of the channel and rotation set-up."""
    assert needle in NODE_SCRIPT_TEXT


def test_node_script_does_not_load_the_supervised_node_framework() -> None:
    """Only the generated settings (Management's and the backend's) and the Node API
    declarations are loaded, never management/node itself."""
    loads = re.findall(r"^\s*@load\s+(\S+)", NODE_SCRIPT_TEXT, re.M)
    assert loads == [
        "./zeek-mgmt-settings",
        "./zeek-mgmt-backend",
        "policy/frameworks/management/node/api",
    ]


def test_node_script_guards_the_archiver_format_func() -> None:
    """archiver_rotation_format_func is used only where logger.zeek defined it."""
    lines = NODE_SCRIPT_TEXT.splitlines()
    idx = next(i for i, line in enumerate(lines) if "= archiver_rotation_format_func" in line)
    assert lines[idx - 1].strip() == "@ifdef ( archiver_rotation_format_func )"
    assert lines[idx + 1].strip() == "@endif"


# --------------------------------------------------------------------------------------
# Port assignment


def _config(*nodes: Node, instances: tuple[Instance, ...] = ()) -> Configuration:
    return Configuration(
        id="c1",
        instances=instances or (Instance("agent-a"),),
        nodes=nodes,
    )


def test_node_ports_are_consecutive_from_the_start_port() -> None:
    """Each local node gets the next port, in node-name order."""
    cfg = _config(
        Node("worker-02", "agent-a", ClusterRole.WORKER),
        Node("manager", "agent-a", ClusterRole.MANAGER),
        Node("worker-01", "agent-a", ClusterRole.WORKER),
    )
    assert node_websocket_ports(cfg, "agent-a", 27800) == {
        "manager": 27800,
        "worker-01": 27801,
        "worker-02": 27802,
    }


def test_node_ports_skip_every_port_the_deployment_uses() -> None:
    """Broker, metrics and instance ports of all instances are skipped."""
    cfg = _config(
        Node("a", "agent-a", ClusterRole.MANAGER, p=Port(27800), metrics_port=Port(27802)),
        Node("b", "agent-a", ClusterRole.WORKER),
        Node("c", "agent-b", ClusterRole.WORKER, metrics_port=Port(27803)),
        instances=(Instance("agent-a"), Instance("agent-b", listen_port=Port(27804))),
    )
    assert node_websocket_ports(cfg, "agent-a", 27800) == {"a": 27801, "b": 27805}


def test_node_ports_only_for_this_instance() -> None:
    """Nodes of other instances get no port from this agent."""
    cfg = _config(
        Node("a", "agent-a", ClusterRole.MANAGER),
        Node("b", "agent-b", ClusterRole.WORKER),
        instances=(Instance("agent-a"), Instance("agent-b")),
    )
    assert node_websocket_ports(cfg, "agent-a", 30000) == {"a": 30000}


# --------------------------------------------------------------------------------------
# The double's channel, spoken to with our transport (raw events)


class Recorder:
    """Collects received events; ``wait(n)`` waits until ``n`` arrived."""

    def __init__(self) -> None:
        self.events: list[EventReceived] = []
        self._cond = asyncio.Condition()

    def __call__(self, conn: Connection, received: EventReceived) -> None:
        self.events.append(received)
        asyncio.get_running_loop().create_task(self._notify())

    async def _notify(self) -> None:
        async with self._cond:
            self._cond.notify_all()

    async def wait(self, count: int, limit: float = 5.0) -> list[EventReceived]:
        async with asyncio.timeout(limit):
            async with self._cond:
                await self._cond.wait_for(lambda: len(self.events) >= count)
        return self.events


async def _raw_client(port: int, topics: tuple[str, ...]) -> tuple[Connection, Recorder, object]:
    rec = Recorder()
    conn, reader = await connect(
        f"ws://127.0.0.1:{port}/v1/messages/json", topics, on_event=rec, ping_interval=None
    )
    return conn, rec, reader


@pytest.mark.asyncio
async def test_double_answers_for_itself_and_stays_silent_for_others(tmp_path: Path) -> None:
    """A dispatch naming another node gets no answer; one naming this node does."""
    with double_cluster(tmp_path, NODES) as cluster:
        port = free_port()
        cluster.start("worker-01", port)
        conn, rec, reader = await _raw_client(port, (response_topic("worker-01"),))
        topic = "zeek/management/node/worker-01"
        action = ("get_id_value", "Cluster::node")
        conn.send_event(topic, ev.NodeDispatchRequest("other", action, BrokerSet(["manager"])))
        conn.send_event(topic, ev.NodeDispatchRequest("mine", action, BrokerSet(["worker-01"])))
        conn.send_event(topic, ev.NodeDispatchRequest("all", action, BrokerSet()))
        events = await rec.wait(2)
        await conn.close()
        got = [e.event for e in events]
        assert [e.reqid for e in got] == ["mine", "all"]
        assert all(isinstance(e, ev.NodeDispatchResponse) for e in got)
        result = got[0].result
        assert (result.reqid, result.success, result.node, result.data, result.instance) == (
            "mine",
            True,
            "worker-01",
            '"worker-01"',
            None,
        )
        assert events[0].topic == "zeek/management/node/worker-01/response"


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("action", "error"),
    [
        ((), "no dispatch arguments provided"),
        (("restart",), "dispatch restart unknown"),
        (("get_id_value",), "get_id_value expects name of global identifier"),
        (("get_id_value", "No::such_id"), "unknown id"),
        (("get_id_value", "Test::unset"), "no ID value"),
    ],
)
async def test_double_dispatch_errors_are_zeeks(
    tmp_path: Path, action: tuple[str, ...], error: str
) -> None:
    """Failed dispatches carry Zeek's error strings and no data."""
    with double_cluster(tmp_path, NODES) as cluster:
        port = free_port()
        cluster.start("manager", port, env={"ZEEK_DOUBLE_IDS": '{"Test::unset": null}'})
        conn, rec, reader = await _raw_client(port, (response_topic("manager"),))
        request = ev.NodeDispatchRequest("r", action, BrokerSet())
        conn.send_event("zeek/management/node/manager", request)
        (received,) = await rec.wait(1)
        await conn.close()
        result = received.event.result
        assert (result.success, result.error, result.data, result.node) == (
            False,
            error,
            None,
            "manager",
        )


@pytest.mark.asyncio
async def test_double_channel_needs_the_node_script(tmp_path: Path) -> None:
    """Without zeek-mgmt-node loaded the node runs but does not listen."""
    with double_cluster(tmp_path, NODES) as cluster:
        port = free_port()
        cluster.start("worker-01", port, script=False)
        with pytest.raises(OSError):
            await _raw_client(port, ())


def test_double_port_in_use_warns_and_runs_on(tmp_path: Path) -> None:
    """A taken channel port gives a warning on stderr; the node still reaches RUNNING."""
    with double_cluster(tmp_path, NODES) as cluster, socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        node = cluster.start("worker-01", port)
        assert node.status().startswith("RUNNING")
        assert (
            f"warning: zeek-mgmt: cannot listen on 127.0.0.1:{port}/tcp; "
            "get-id-value is unavailable" in node.stderr()
        )


@pytest.mark.asyncio
async def test_double_subscriptions_are_prefixes(tmp_path: Path) -> None:
    """Like Broker, the response goes to every client whose subscription prefixes it."""
    with double_cluster(tmp_path, NODES) as cluster:
        port = free_port()
        cluster.start("logger", port)
        asker, asked, r1 = await _raw_client(port, ("zeek/management/node/logger/response",))
        wide, seen, r2 = await _raw_client(port, ("zeek/management/node/",))
        deaf, unseen, r3 = await _raw_client(port, ("zeek/management/controller",))
        asker.send_event(
            "zeek/management/node/logger",
            ev.NodeDispatchRequest("r", ("get_id_value", "LogAscii::use_json"), BrokerSet()),
        )
        await asked.wait(1)
        await seen.wait(1)
        # The deaf client asks too: the only answer it could ever get is to its own
        # request, and it must not get that either.
        request = ev.NodeDispatchRequest("r2", ("x",), BrokerSet())
        deaf.send_event("zeek/management/node/logger", request)
        await asked.wait(2)
        assert unseen.events == []
        for conn in (asker, wide, deaf):
            await conn.close()


# --------------------------------------------------------------------------------------
# The agent's channels against the double


@pytest.mark.asyncio
async def test_channels_ask_every_node_once_over_one_connection(tmp_path: Path) -> None:
    """Values come back per node; repeated asks reuse one connection per node."""
    with double_cluster(tmp_path, NODES) as cluster:
        base = free_port_block(3)
        nodes = {n: cluster.start(n, base + i, wait=False) for i, n in enumerate(NODES)}
        for node in nodes.values():
            node.wait_running()
        channels = NodeChannels(timeout=5.0)
        channels.update({n: NodeProcess(base + i, nodes[n].pid) for i, n in enumerate(NODES)})
        try:
            first = await channels.ask("req", ("get_id_value", "LogAscii::use_json"), NODES)
            conns = {n: channels.channel(n).client.connection for n in NODES}  # type: ignore[union-attr]
            second = await channels.ask("req", ("get_id_value", "Cluster::node"), NODES)
            streams = await channels.ask("req", ("get_id_value", "Log::all_streams"), ["logger"])
            assert {n: channels.channel(n).client.connection for n in NODES} == conns  # type: ignore[union-attr]
        finally:
            await channels.close()
        assert [(r.node, r.success, r.data) for r in first] == [
            ("manager", True, "false"),
            ("logger", True, "false"),
            ("worker-01", True, "false"),
        ]
        assert [json.loads(r.data) for r in second] == list(NODES)  # type: ignore[arg-type]
        value = json.loads(streams[0].data)  # type: ignore[arg-type]
        assert value["Conn::LOG"]["path"] == "conn"
        assert value["Conn::LOG"]["max_delay_interval"] == "200.0 msecs"
        # Node-level ids, as Zeek's nodes answer: never the agent's request id.
        assert all(r.reqid != "req" for r in first + second)


@contextlib.asynccontextmanager
async def worker_channel(
    tmp_path: Path, request_timeout: float
) -> AsyncIterator[tuple[DoubleCluster, int, DoubleNode, NodeChannels]]:
    """A double worker-01 on a free port and the channels that reach it, with that request
    timeout (closed at the end): ``(cluster, port, node, channels)``."""
    with double_cluster(tmp_path, NODES) as cluster:
        port = free_port()
        node = cluster.start("worker-01", port)
        channels = NodeChannels(timeout=request_timeout)
        channels.update({"worker-01": NodeProcess(port, node.pid)})
        try:
            yield cluster, port, node, channels
        finally:
            await channels.close()


@pytest.mark.asyncio
async def test_channel_follows_a_restarted_node(tmp_path: Path) -> None:
    """A node restarted on the same port (new pid) is reached through a new channel."""
    async with worker_channel(tmp_path, 5.0) as (cluster, port, node, channels):
        before = await channels.ask("a", ("get_id_value", "Cluster::node"), ["worker-01"])
        old = channels.channel("worker-01")
        await asyncio.to_thread(node.stop)
        channels.update({})  # the supervisor saw it stop
        down = await channels.ask("b", ("get_id_value", "Cluster::node"), ["worker-01"])
        again = cluster.start("worker-01", port)
        channels.update({"worker-01": NodeProcess(port, again.pid)})
        after = await channels.ask("c", ("get_id_value", "Cluster::node"), ["worker-01"])
        assert channels.channel("worker-01") is not old
        assert before[0].success and after[0].success
        assert (down[0].success, down[0].error, down[0].reqid) == (
            False,
            "cluster node worker-01 not in running state",
            "b",
        )


@pytest.mark.asyncio
async def test_a_lost_dispatch_is_sent_again(tmp_path: Path) -> None:
    """A node that never saw the first two requests (ZeroMQ's proxy drops what precedes
    a subscription) still answers within the request timeout."""
    with double_cluster(tmp_path, NODES) as cluster:
        port = free_port()
        node = cluster.start("worker-01", port, env={"ZEEK_DOUBLE_DROP_DISPATCHES": "2"})
        channels = NodeChannels(timeout=5.0)
        channels.update({"worker-01": NodeProcess(port, node.pid)})
        try:
            (result,) = await channels.ask("r", ("get_id_value", "Cluster::node"), ["worker-01"])
        finally:
            await channels.close()
    assert (result.success, result.data, result.node) == (True, '"worker-01"', "worker-01")


@pytest.mark.asyncio
async def test_waiting_ask_fails_fast_when_the_node_dies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A node that dies with a request outstanding gets 'not in running state' at once."""
    async with worker_channel(tmp_path, 30.0) as (_, _, node, channels):
        chan = channels.channel("worker-01")
        assert chan is not None
        await chan.client.connected.wait()
        sent = asyncio.Event()
        send = chan.client.send_event

        def send_and_note(topic: str, event: object) -> bool:
            ok = send(topic, event)
            sent.set()
            return ok

        monkeypatch.setattr(chan.client, "send_event", send_and_note)
        node.proc.send_signal(signal.SIGSTOP)  # it will not answer now
        task = asyncio.create_task(
            channels.ask("r", ("get_id_value", "Cluster::node"), ["worker-01"])
        )
        async with asyncio.timeout(TIMEOUT):
            await sent.wait()  # the request is outstanding
        node.proc.kill()
        async with asyncio.timeout(TIMEOUT):
            (result,) = await task
        assert result.error == "cluster node worker-01 not in running state"


@pytest.mark.asyncio
async def test_unreachable_running_node_times_out(tmp_path: Path) -> None:
    """A RUNNING node without a listening channel gets 'request timed out'."""
    port = free_port()
    channels = NodeChannels(timeout=0.3)
    channels.update({"worker-01": NodeProcess(port, 1)})
    try:
        (result,) = await channels.ask("r", ("get_id_value", "Cluster::node"), ["worker-01"])
    finally:
        await channels.close()
    assert (result.success, result.error, result.node, result.reqid) == (
        False,
        "request timed out",
        "worker-01",
        "r",
    )


@pytest.mark.asyncio
async def test_node_without_channel_is_not_running() -> None:
    """Asking a node the channels do not know gives Zeek's not-running error."""
    channels = NodeChannels(timeout=1.0)
    (result,) = await channels.ask("r", ("get_id_value", "x"), ["manager"])
    assert result.error == "cluster node manager not in running state"
    await channels.close()


@pytest.mark.asyncio
async def test_running_node_nothing_relays_to_says_so() -> None:
    """A RUNNING ZeroMQ logger with no node on its host to relay through gets an error
    naming the cause, not 'not in running state'."""
    channels = NodeChannels(timeout=1.0)
    channels.update({"logger": None})
    (result,) = await channels.ask("r", ("get_id_value", "x"), ["logger"])
    await channels.close()
    assert (result.success, result.node, result.error) == (
        False,
        "logger",
        "cluster node logger cannot be reached: no other node on its host relays to it",
    )


def test_a_relayed_node_keeps_its_relay_while_that_node_runs() -> None:
    """A relayed ZeroMQ logger is reached through the first RUNNING node's port, and
    stays there when a node earlier in that order comes up (a restart of all nodes that
    brings the manager up after the proxy); it moves only when its relay stops."""
    manager, proxy, worker = NodeProcess(9001, 11), NodeProcess(9002, 12), NodeProcess(9003, 13)
    assert relay_for(20, [], None) is None
    first = relay_for(20, [proxy, worker], None)
    assert first == NodeProcess(proxy.port, 20)
    assert relay_for(20, [manager, proxy, worker], first) == first
    assert relay_for(21, [manager, proxy, worker], first) == NodeProcess(proxy.port, 21)
    assert relay_for(20, [manager, worker], first) == NodeProcess(manager.port, 20)


@pytest.mark.asyncio
async def test_closed_channels_open_no_new_ones() -> None:
    """After close() (the agent is stopping its nodes), update() opens no channel."""
    channels = NodeChannels(timeout=1.0)
    await channels.close()
    channels.update({"worker-01": NodeProcess(free_port(), 1)})
    assert "worker-01" not in channels
    (result,) = await channels.ask("r", ("get_id_value", "x"), ["worker-01"])
    assert result.error == "cluster node worker-01 not in running state"


@pytest.mark.asyncio
async def test_channel_close_fails_waiters() -> None:
    """Closing a channel's run task answers its waiters instead of leaving them hanging."""
    dialed = asyncio.Event()

    async def never_upgrade(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        dialed.set()
        await reader.read()  # hold the connection until the client drops it
        writer.close()

    server = await asyncio.start_server(never_upgrade, "127.0.0.1", 0)
    chan = NodeChannel("worker-01", server.sockets[0].getsockname()[1])
    task = asyncio.create_task(chan.run())
    ask = asyncio.create_task(chan.ask("r", ("get_id_value", "x"), 30.0))
    async with asyncio.timeout(TIMEOUT):
        await dialed.wait()  # run() is connecting; ask() waits for the channel
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    async with asyncio.timeout(5000 * MS):
        result = await ask
    server.close()
    await server.wait_closed()
    assert result.error == "cluster node worker-01 not in running state"


def test_node_ports_are_disjoint_across_agents_on_one_host() -> None:
    """Two agents sharing a configuration pick different node-channel ports."""
    from mgmt.broker.records import ClusterRole, Configuration, Instance, Node

    config = Configuration(
        "c",
        (Instance("agent-a"), Instance("agent-b")),
        tuple(
            Node(f"{inst}-w{i}", inst, ClusterRole.WORKER)
            for inst in ("agent-a", "agent-b")
            for i in range(3)
        ),
    )
    a = node_websocket_ports(config, "agent-a", 27800)
    b = node_websocket_ports(config, "agent-b", 27800)
    assert len(a) == len(b) == 3
    assert not set(a.values()) & set(b.values())
