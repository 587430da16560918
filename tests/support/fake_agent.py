"""An agent double for the controller and client tests: it speaks the agent side of the
agent API over real sockets, answers like the real agent (result shapes of
``mgmt/agent/state.py``, Zeek's error texts), starts no process, and records what it got.

It either dials the controller's agent port (:meth:`FakeAgent.dial`, reconnecting fast)
or listens and lets the controller dial it (:meth:`FakeAgent.serve`). Its behaviour is set
by plain attributes, which a test may change at any time:

* ``failures``: node -> NodeOutputs; such a node fails its start with those outputs;
  ``bad_interfaces``: a node on one of these interfaces fails like Zeek does (pcap error);
  a failed node reports FAILED without a pid and answers no dispatch;
* ``crashed``: nodes reporting CRASHED; ``pending_polls``: how many get-nodes requests a
  freshly started node reports PENDING before RUNNING (for ``deploy-config --wait``);
* ``id_values``: identifier -> JSON text (every node) or {node: JSON text};
  ``Cluster::node`` answers the node's name unless listed; anything else ``unknown id``;
* ``restart_failures``: nodes whose restart fails; ``silent``: request types it never
  answers; ``welcome_success`` and ``api_version``: what it says at the handshake;
* ``redeploy_same_config``: restart the nodes for a deployment of the configuration it
  already runs, as if forced (a real agent answers that without nodes, behaviour §5.5).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from mgmt.broker import events as ev
from mgmt.broker import extevents as xev
from mgmt.broker import records
from mgmt.broker.directions import CONTROLLER_TO_AGENT
from mgmt.broker.records import ClusterRole, NodeOutputs, NodeStatus, Result, Role, State
from mgmt.broker.session import EventReceived
from mgmt.core.topics import agent_topic
from mgmt.transport import Connection, ReconnectingClient, Server
from tests.support.waiting import MS, TIMEOUT

#: Process ids of fake agents and their nodes: distinct, never a live process's own.
_pids = itertools.count(40000)


def pcap_failure(interface: str) -> NodeOutputs:
    """What Zeek prints when it cannot open ``interface``."""
    stderr = (
        f"fatal error: problem with interface {interface} "
        "(pcap_error: No such device exists (pcap_activate))"
    )
    return NodeOutputs("", stderr)


def _fast_reconnects() -> Iterator[float]:
    yield 0.0
    while True:
        yield 0.05


@dataclass
class FakeAgent:
    """An agent double speaking the agent API over a real socket (see the module text)."""

    name: str
    failures: dict[str, NodeOutputs] = field(default_factory=dict)
    bad_interfaces: frozenset[str] = frozenset()
    crashed: set[str] = field(default_factory=set)
    pending_polls: int = 0
    id_values: dict[str, str | dict[str, str]] = field(default_factory=dict)
    restart_failures: set[str] = field(default_factory=set)
    silent: set[type] = field(default_factory=set)
    welcome_success: bool = True
    api_version: int = 1
    redeploy_same_config: bool = False
    #: Its own process id (the agent row of get-nodes).
    pid: int = field(default_factory=lambda: next(_pids))
    endpoint_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    # What it recorded:
    received: list[Any] = field(default_factory=list)
    config: records.Configuration | None = None
    hellos: int = 0
    #: node -> pid of its current (pretend) process; a failed node has none.
    pids: dict[str, int] = field(default_factory=dict)
    #: node -> get-nodes requests answered since it started.
    polls: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._client: ReconnectingClient | None = None
        self._task: asyncio.Task[None] | None = None
        self.server: Server | None = None
        self.changed = asyncio.Event()

    # -- transport ---------------------------------------------------------------------

    @property
    def topic(self) -> str:
        """Where this agent publishes and listens (``zeek/management/agent/<name>``)."""
        return agent_topic(self.name)

    async def dial(self, uri: str, *, wait: bool = True) -> None:
        """Connect to the controller's agent port (reconnecting forever, fast)."""
        self._client = ReconnectingClient(
            uri,
            (self.topic,),
            on_event=self._on_event,
            on_open=lambda conn: self._hello(conn, connecting=True),
            delays=_fast_reconnects,
            ping_interval=None,
        )
        self._task = asyncio.create_task(self._client.run(), name=f"fake-agent-{self.name}")
        if wait:
            await asyncio.wait_for(self._client.connected.wait(), 5000 * MS)

    async def serve(self, port: int = 0) -> int:
        """Listen on 127.0.0.1 for the controller to dial us; returns the port."""
        self.server = Server(
            "127.0.0.1",
            port,
            on_event=self._on_event,
            on_open=lambda conn: self._hello(conn, connecting=False),
            accept=lambda e: isinstance(e, CONTROLLER_TO_AGENT),
        )
        await self.server.start()
        return self.server.port

    @property
    def connected(self) -> bool:
        """Whether a controller connection is open."""
        if self._client is not None:
            return self._client.connection is not None and self._client.connection.is_open
        if self.server is not None:
            return any(c.is_open for c in self.server.connections)
        return False

    async def stop(self) -> None:
        """Disconnect (dialing) or stop listening (serving)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
            self._client = None
        if self.server is not None:
            await self.server.close()
            self.server = None

    async def drop_connection(self) -> None:
        """Drop the current connection abruptly; a dialing agent reconnects by itself."""
        conns: list[Connection] = []
        if self._client is not None and self._client.connection is not None:
            conns.append(self._client.connection)
        if self.server is not None:
            conns.extend(self.server.connections)
        for conn in conns:
            conn.ws.transport.abort()

    def count(self, kind: type) -> int:
        """How many events of ``kind`` were received."""
        return sum(1 for e in self.received if isinstance(e, kind))

    async def wait_received(self, kind: type, count: int = 1) -> Any:
        """Wait until ``count`` events of ``kind`` were received; the last of them."""
        async with asyncio.timeout(TIMEOUT):
            while self.count(kind) < count:
                self.changed.clear()
                await self.changed.wait()
        return [e for e in self.received if isinstance(e, kind)][-1]

    # -- protocol ------------------------------------------------------------------------

    def _hello(self, conn: Connection, *, connecting: bool) -> None:
        self.hellos += 1
        conn.send_event(
            self.topic,
            ev.NotifyAgentHello(self.name, self.endpoint_id, connecting, self.api_version),
        )
        self.changed.set()

    def _on_event(self, conn: Connection, received: EventReceived) -> None:
        event = received.event
        self.received.append(event)
        self.changed.set()
        if type(event) in self.silent:
            return
        reply = self.answer(event)
        if reply is not None:
            conn.send_event(self.topic, reply)

    def _my_nodes(self, wanted: Iterable[str] = ()) -> list[records.Node]:
        nodes = [] if self.config is None else self.config.nodes_of(self.name)
        chosen = set(wanted)
        return sorted((n for n in nodes if not chosen or n.name in chosen), key=lambda n: n.name)

    def _start_failure(self, node: records.Node) -> NodeOutputs | None:
        if node.name in self.failures:
            return self.failures[node.name]
        if node.interface is not None and node.interface in self.bad_interfaces:
            return pcap_failure(node.interface)
        return None

    def _start(self, node: records.Node) -> NodeOutputs | None:
        """Start (or restart) ``node``: a new pid, or its failure's outputs."""
        self.polls[node.name] = 0
        outputs = self._start_failure(node)
        if outputs is None:
            self.pids[node.name] = next(_pids)
        else:
            self.pids.pop(node.name, None)
        return outputs

    def _state(self, node: str) -> State:
        if node not in self.pids:
            return State.FAILED
        if node in self.crashed:
            return State.CRASHED
        if self.polls.get(node, 0) < self.pending_polls:
            return State.PENDING
        return State.RUNNING

    def answer(self, event: Any) -> Any:
        """The agent's response to ``event`` (``None`` if it gets none)."""
        name = self.name
        match event:
            case ev.AgentWelcomeRequest(reqid=rid):
                if self.welcome_success:
                    return ev.AgentWelcomeResponse(rid, Result(rid, True, instance=name))
                return ev.AgentWelcomeResponse(
                    rid, Result(rid, False, instance=name, error="not welcome")
                )
            case ev.AgentStandbyRequest(reqid=rid):
                self.config = None
                self.pids.clear()
                return ev.AgentStandbyResponse(rid, Result(rid, True, instance=name))
            case ev.AgentDeployRequest(reqid=rid, config=config, force=force):
                same = self.config is not None and self.config.id == config.id
                if same and not force and not self.redeploy_same_config:
                    # behaviour §5.5: already running this config id -> node-less success
                    return ev.AgentDeployResponse(rid, (Result(rid, True, instance=name),))
                self.config = config
                self.pids.clear()
                results = []
                for node in self._my_nodes():
                    outputs = self._start(node)
                    results.append(
                        Result(rid, outputs is None, instance=name, data=outputs, node=node.name)
                    )
                if not results:
                    results.append(Result(rid, True, instance=name))
                return ev.AgentDeployResponse(rid, tuple(results))
            case ev.AgentGetNodesRequest(reqid=rid):
                rows = [NodeStatus(name, State.RUNNING, Role.AGENT, ClusterRole.NONE, self.pid)]
                for node in self._my_nodes():
                    rows.append(
                        NodeStatus(
                            node.name,
                            self._state(node.name),
                            Role.NONE,
                            node.role,
                            self.pids.get(node.name),
                            node.p,
                            node.metrics_port,
                        )
                    )
                    self.polls[node.name] = self.polls.get(node.name, 0) + 1
                return ev.AgentGetNodesResponse(
                    rid, Result(rid, True, instance=name, data=tuple(rows))
                )
            case ev.AgentNodeDispatchRequest(reqid=rid, action=action, nodes=nodes):
                return ev.AgentNodeDispatchResponse(
                    rid, tuple(self._dispatch(rid, action, n.name) for n in self._my_nodes(nodes))
                )
            case xev.AgentGetNodeInfoRequest(reqid=rid):
                # observation (issue 12): what status shows beyond get-nodes
                now = time.time()
                return xev.AgentGetNodeInfoResponse(
                    rid,
                    tuple(
                        xev.payload_result(
                            rid,
                            {
                                "state": self._state(n.name).name,
                                "pid": self.pids.get(n.name),
                                "restarts": 0,
                                "started": now - 75,
                                "now": now,
                                "last_exit": None,
                                "crashes": 0,
                            },
                            instance=name,
                            node=n.name,
                        )
                        for n in self._my_nodes()
                    ),
                )
            case ev.AgentRestartRequest(reqid=rid, nodes=nodes):
                results = []
                for node in self._my_nodes(nodes):
                    ok = node.name not in self.restart_failures
                    if ok:
                        self._start(node)
                    error = None if ok else f"could not restart node {node.name}"
                    results.append(Result(rid, ok, instance=name, error=error, node=node.name))
                return ev.AgentRestartResponse(rid, tuple(results))
        return None

    def _dispatch(self, rid: str, action: tuple[str, ...], node: str) -> Result:
        # The node-side texts of Zeek (behaviour §7, wire spec §6.3).
        def failed(error: str) -> Result:
            return Result(rid, False, instance=self.name, error=error, node=node)

        if node not in self.pids:
            return failed(f"cluster node {node} not in running state")
        if not action:
            return failed("no dispatch arguments provided")
        if action[0] != "get_id_value":
            return failed(f"dispatch {action[0]} unknown")
        if len(action) != 2:
            return failed("get_id_value expects name of global identifier")
        value = self.id_values.get(action[1])
        if isinstance(value, dict):
            value = value.get(node)
        if value is None and action[1] == "Cluster::node":
            value = json.dumps(node)
        if value is None:
            return failed("unknown id")
        return Result(rid, True, instance=self.name, data=value, node=node)


@contextlib.asynccontextmanager
async def fake_agents(*agents: FakeAgent) -> AsyncIterator[tuple[FakeAgent, ...]]:
    """Stop the given agents when the block ends."""
    try:
        yield agents
    finally:
        for agent in agents:
            await agent.stop()
