"""Test doubles for the client tests: a fake agent speaking the agent API, and a harness
that runs a real in-process controller with fake agents behind it.

The fake agent dials the controller's agent port with :func:`mgmt.transport.connect`, says
``notify_agent_hello`` and answers the controller's agent requests the way the real agent
does (result shapes from ``mgmt/agent/state.py``), with deterministic pids and without
starting any process:

* a node whose ``interface`` is in ``bad_interfaces`` fails to start (deploy result with
  NodeOutputs carrying Zeek's pcap error; state FAILED);
* ``pending_polls`` makes fresh nodes report PENDING for that many get-nodes requests
  before RUNNING (for ``deploy-config --wait``); nodes in ``crashed`` report CRASHED;
* ``id_values`` maps identifiers to the JSON text a node returns for get-id-value;
  anything else answers ``unknown id``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from mgmt.broker import events as ev
from mgmt.broker.records import (
    ClusterRole,
    Configuration,
    NodeOutputs,
    NodeStatus,
    Result,
    Role,
    State,
)
from mgmt.broker.session import EventReceived
from mgmt.controller.service import ControllerConfig, ControllerService
from mgmt.controller.state import ControllerOptions
from mgmt.transport import Connection, connect
from tests.support.reference import LOCAL_AGENT


@dataclass
class FakeAgent:
    """An agent double connected to a controller's agent port."""

    name: str
    controller_port: int
    bad_interfaces: frozenset[str] = frozenset()
    pending_polls: int = 0
    crashed: set[str] = field(default_factory=set)
    id_values: Mapping[str, str] = field(default_factory=lambda: {"LogAscii::use_json": "false"})
    config: Configuration = field(default_factory=lambda: Configuration("none"))
    pids: dict[str, int] = field(default_factory=dict)
    polls: dict[str, int] = field(default_factory=dict)
    received: list[object] = field(default_factory=list)
    conn: Connection | None = None
    _reader: asyncio.Task[None] | None = None
    _next_pid: int = 40000
    welcomed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def topic(self) -> str:
        return f"zeek/management/agent/{self.name}"

    async def start(self) -> None:
        self.conn, self._reader = await connect(
            f"ws://127.0.0.1:{self.controller_port}/v1/messages/json",
            (self.topic,),
            on_event=self._on_event,
            ping_interval=None,
        )
        self._send(ev.NotifyAgentHello(self.name, f"id-{self.name}", True, 1))

    async def stop(self) -> None:
        if self.conn is not None and self._reader is not None:
            await self.conn.close()
            await self._reader

    def _send(self, event: object) -> None:
        assert self.conn is not None
        self.conn.send_event(self.topic, event)

    def mine(self) -> list[str]:
        return sorted(n.name for n in self.config.nodes if n.instance == self.name)

    def _failed(self, node: str) -> bool:
        n = self.config.node(node)
        return n is not None and n.interface in self.bad_interfaces

    def _state(self, node: str) -> State:
        if self._failed(node):
            return State.FAILED
        if node in self.crashed:
            return State.CRASHED
        if self.polls.get(node, 0) < self.pending_polls:
            return State.PENDING
        return State.RUNNING

    def _start(self, node: str) -> None:
        self._next_pid += 1
        self.pids[node] = self._next_pid
        self.polls[node] = 0

    def _on_event(self, conn: Connection, received: EventReceived) -> None:
        event = received.event
        self.received.append(event)
        match event:
            case ev.AgentWelcomeRequest(reqid=reqid):
                self._send(ev.AgentWelcomeResponse(reqid, Result(reqid, True, instance=self.name)))
                self.welcomed.set()
            case ev.AgentStandbyRequest(reqid=reqid):
                self.config = Configuration("none")
                self._send(ev.AgentStandbyResponse(reqid, Result(reqid, True, instance=self.name)))
            case ev.AgentDeployRequest(reqid=reqid, config=config):
                self.config = config
                for node in self.mine():
                    self._start(node)
                results = [self._deploy_result(reqid, node) for node in self.mine()]
                if not results:
                    results = [Result(reqid, True, instance=self.name)]
                self._send(ev.AgentDeployResponse(reqid, tuple(results)))
            case ev.AgentGetNodesRequest(reqid=reqid):
                rows = [
                    NodeStatus(self.name, State.RUNNING, Role.AGENT, ClusterRole.NONE, 31337),
                ]
                for name in self.mine():
                    node = self.config.node(name)
                    assert node is not None
                    rows.append(
                        NodeStatus(
                            name,
                            self._state(name),
                            Role.NONE,
                            node.role,
                            None if self._failed(name) else self.pids.get(name),
                            node.p,
                            node.metrics_port,
                        )
                    )
                    self.polls[name] = self.polls.get(name, 0) + 1
                result = Result(reqid, True, instance=self.name, data=tuple(rows))
                self._send(ev.AgentGetNodesResponse(reqid, result))
            case ev.AgentRestartRequest(reqid=reqid, nodes=nodes):
                chosen = [n for n in self.mine() if not nodes or n in nodes]
                for node in chosen:
                    self._start(node)
                results = tuple(Result(reqid, True, instance=self.name, node=n) for n in chosen)
                self._send(ev.AgentRestartResponse(reqid, results))
            case ev.AgentNodeDispatchRequest(reqid=reqid, action=action, nodes=nodes):
                chosen = [n for n in self.mine() if not nodes or n in nodes]
                self._send(
                    ev.AgentNodeDispatchResponse(
                        reqid, tuple(self._dispatch_result(reqid, action, n) for n in chosen)
                    )
                )
            case _:
                pass

    def _deploy_result(self, reqid: str, node: str) -> Result:
        if self._failed(node):
            n = self.config.node(node)
            assert n is not None
            stderr = (
                f"fatal error: problem with interface {n.interface} "
                "(pcap_error: No such device exists (pcap_activate))"
            )
            return Result(reqid, False, instance=self.name, node=node, data=NodeOutputs("", stderr))
        return Result(reqid, True, instance=self.name, node=node)

    def _dispatch_result(self, reqid: str, action: tuple[str, ...], node: str) -> Result:
        if self._failed(node):
            return Result(
                reqid,
                False,
                instance=self.name,
                node=node,
                error=f"cluster node {node} not in running state",
            )
        ident = action[1] if len(action) > 1 else ""
        value = self.id_values.get(ident)
        if ident == "Cluster::node":
            value = f'"{node}"'
        if value is None:
            return Result(reqid, False, instance=self.name, node=node, error="unknown id")
        return Result(reqid, True, instance=self.name, node=node, data=value)


class ObservedController(ControllerService):
    """A controller that signals every state-machine step (an intercepting subclass)."""

    def __init__(self, config: ControllerConfig) -> None:
        super().__init__(config)
        self.stepped = asyncio.Event()

    def _step(self, fn: Callable[[float], object]) -> None:
        super()._step(fn)
        self.stepped.set()

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        """Wait (at most 5 s) until ``predicate()`` holds after some step."""
        async with asyncio.timeout(5):
            while not predicate():
                self.stepped.clear()
                await self.stepped.wait()


@dataclass
class Cluster:
    """A running in-process controller (and its fake agents)."""

    service: ObservedController
    agents: list[FakeAgent]

    @property
    def port(self) -> int:
        assert self.service.client_server is not None
        return self.service.client_server.port

    @property
    def agent_port(self) -> int:
        assert self.service.agent_server is not None
        return self.service.agent_server.port

    async def add_agent(self, name: str = LOCAL_AGENT, **kw: object) -> FakeAgent:
        agent = FakeAgent(name, self.agent_port, **kw)  # type: ignore[arg-type]
        await agent.start()
        self.agents.append(agent)
        state = self.service.state
        assert state is not None
        await self.service.wait_until(lambda: name in state.known)
        return agent


@contextlib.asynccontextmanager
async def running_controller(
    tmp_path: Path, request_timeout: float = 2.0
) -> AsyncIterator[Cluster]:
    """Run a controller on free ports under ``tmp_path`` for the duration of the block."""
    svc = ObservedController(
        ControllerConfig(
            "controller-test",
            tmp_path / "state",
            "127.0.0.1",
            0,
            "127.0.0.1",
            0,
            ControllerOptions(request_timeout=request_timeout),
        )
    )
    task = asyncio.create_task(svc.run())
    async with asyncio.timeout(10):
        await svc.started.wait()
    cluster = Cluster(svc, [])
    try:
        yield cluster
    finally:
        for agent in cluster.agents:
            await agent.stop()
        svc.request_shutdown()
        await task
