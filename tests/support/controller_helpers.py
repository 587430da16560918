"""Helpers for the controller tests: a live controller, the real zeek-client, a fake agent.

* :func:`running_controller` runs a :class:`~mgmt.controller.service.ControllerService` in
  the current event loop on 127.0.0.1, both ports picked by the OS, with a short request
  timeout, and shuts it down cleanly afterwards.
* :func:`run_zeek_client` runs the real ``zeek-client`` CLI (PyPI 1.5.0) against it.
* :class:`ApiClient` is a minimal in-process client of the controller API over
  :func:`mgmt.transport.connect` (for bursts, bad input and the benchmark).
* :class:`FakeAgent` speaks the agent side of the agent API over real sockets: it either
  dials the controller's agent port (:meth:`FakeAgent.dial`) or listens and lets the
  controller dial it (:meth:`FakeAgent.serve`). Its behaviour is configured by plain
  attributes (failing nodes, id values, silent requests, ...), and it records what it got.
* :class:`ControllerProcess` runs ``python -m mgmt controller`` as a child process (for the
  ``kill -9`` and restart tests).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mgmt.broker import events as ev
from mgmt.broker.data import BrokerSet, Port
from mgmt.broker.records import (
    ClusterRole,
    Configuration,
    Instance,
    Node,
    NodeOutputs,
    NodeStatus,
    Result,
    Role,
    State,
)
from mgmt.broker.session import EventReceived
from mgmt.controller.service import ControllerConfig, ControllerService
from mgmt.controller.state import CONTROLLER_TOPIC, ControllerOptions, agent_topic
from mgmt.transport import Connection, ReconnectingClient, Server, connect
from tests.paths import REPO_ROOT
from tests.support.ports import free_port
from tests.support.reference import LOCAL_AGENT

#: Request timeout of the controllers under test (seconds).
REQUEST_TIMEOUT = 1.0


# --------------------------------------------------------------------------------------
# The controller under test


def controller_config(
    state_dir: Path,
    *,
    request_timeout: float = REQUEST_TIMEOUT,
    name: str = "controller-test",
    max_message_size: int | None = None,
    controller_port: int = 2150,
) -> ControllerConfig:
    """A ControllerConfig listening on 127.0.0.1, ports chosen by the OS."""
    extra: dict[str, Any] = {}
    if max_message_size is not None:
        extra["max_message_size"] = max_message_size
    return ControllerConfig(
        name=name,
        state_dir=state_dir,
        client_address="127.0.0.1",
        client_port=0,
        agent_address="127.0.0.1",
        agent_port=0,
        options=ControllerOptions(
            request_timeout=request_timeout, controller_port=Port(controller_port)
        ),
        **extra,
    )


@contextlib.asynccontextmanager
async def running_controller(
    state_dir: Path, *, config: ControllerConfig | None = None, **kw: Any
) -> AsyncIterator[ControllerService]:
    """Run a controller until the block ends; ``service.client_server.port`` etc. are set."""
    svc = ControllerService(config or controller_config(state_dir, **kw))
    task = asyncio.create_task(svc.run(), name="controller-under-test")
    started = asyncio.create_task(svc.started.wait())
    await asyncio.wait({task, started}, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        started.cancel()
        task.result()  # raises the start-up failure
        raise RuntimeError("controller stopped during start-up")
    try:
        yield svc
    finally:
        svc.request_shutdown()
        await asyncio.wait_for(task, 10)


def client_port(svc: ControllerService) -> int:
    """The controller's client (WebSocket) port."""
    assert svc.client_server is not None
    return svc.client_server.port


def agent_uri(svc_or_port: ControllerService | int) -> str:
    """The URI agents dial."""
    if isinstance(svc_or_port, int):
        port = svc_or_port
    else:
        assert svc_or_port.agent_server is not None
        port = svc_or_port.agent_server.port
    return f"ws://127.0.0.1:{port}/v1/messages/json"


# --------------------------------------------------------------------------------------
# An in-process API client


class ApiClient:
    """A controller API client on :func:`mgmt.transport.connect`; matches responses by reqid."""

    def __init__(self) -> None:
        self.conn: Connection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._pending: dict[str, asyncio.Future[Any]] = {}
        self.others: list[Any] = []

    @classmethod
    async def open(cls, port: int) -> ApiClient:
        """Connect to a controller's client port."""
        self = cls()
        self.conn, self._reader = await connect(
            f"ws://127.0.0.1:{port}/v1/messages/json",
            (CONTROLLER_TOPIC,),
            on_event=self._on_event,
            ping_interval=None,
        )
        self._reader.add_done_callback(self._closed)
        return self

    def _closed(self, _task: asyncio.Task[None]) -> None:
        # The connection is gone: nothing pending will ever be answered.
        pending, self._pending = self._pending, {}
        for fut in pending.values():
            if not fut.done():
                fut.set_exception(ConnectionError("connection to the controller closed"))

    def _on_event(self, conn: Connection, received: EventReceived) -> None:
        event = received.event
        if type(event).__name__.endswith("Response"):
            fut = self._pending.pop(event.reqid, None)
            if fut is not None and not fut.done():
                fut.set_result(event)
                return
        self.others.append(event)

    def send(self, event: Any) -> asyncio.Future[Any]:
        """Send a request; the future resolves with its response."""
        assert self.conn is not None
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self._reader is not None and self._reader.done():
            fut.set_exception(ConnectionError("connection to the controller closed"))
            return fut
        self._pending[event.reqid] = fut
        self.conn.send_event(CONTROLLER_TOPIC, event)
        return fut

    async def request(self, event: Any, limit: float = 5.0) -> Any:
        """Send a request and wait (at most ``limit`` seconds) for its response."""
        return await asyncio.wait_for(self.send(event), limit)

    async def close(self) -> None:
        """Close the connection and wait for the reader."""
        if self.conn is not None:
            await self.conn.close()
        if self._reader is not None:
            with contextlib.suppress(Exception):
                await self._reader


def reqid() -> str:
    """A fresh request id."""
    return str(uuid.uuid4())


# --------------------------------------------------------------------------------------
# Configurations


def cluster_config(
    instance: str = LOCAL_AGENT,
    *,
    config_id: str | None = None,
    workers: int = 2,
    listen_port: int | None = None,
    host: str = "0.0.0.0",
) -> Configuration:
    """The reference ``cluster.cfg`` as zeek-client sends it (manager, logger, workers)."""
    import ipaddress

    nodes = [
        Node("manager", instance, ClusterRole.MANAGER),
        Node("logger", instance, ClusterRole.LOGGER),
    ]
    nodes += [
        Node(f"worker-{i:02d}", instance, ClusterRole.WORKER, interface="lo")
        for i in range(1, workers + 1)
    ]
    inst = Instance(
        instance, ipaddress.ip_address(host), None if listen_port is None else Port(listen_port)
    )
    return Configuration(config_id or str(uuid.uuid4()), (inst,), tuple(nodes))


def multi_config(
    agents: Iterable[str], nodes_per_agent: int, *, config_id: str | None = None
) -> Configuration:
    """One manager on the first agent, workers everywhere else (for scale tests)."""
    names = list(agents)
    nodes: list[Node] = []
    for i, agent in enumerate(names):
        for j in range(nodes_per_agent):
            role = ClusterRole.MANAGER if i == 0 and j == 0 else ClusterRole.WORKER
            nodes.append(Node(f"{agent}-n{j:02d}", agent, role, interface="lo"))
    return Configuration(
        config_id or str(uuid.uuid4()), tuple(Instance(n) for n in names), tuple(nodes)
    )


# --------------------------------------------------------------------------------------
# The fake agent

_pids = itertools.count(40000)


@dataclass
class FakeAgent:
    """An agent double speaking the agent API over a real socket.

    Attributes (behaviour knobs):
        name: the instance name.
        failures: node name -> NodeOutputs; such nodes fail their deploy with those outputs.
        id_values: identifier -> JSON text (same on every node) or {node: JSON text};
            identifiers not listed answer Zeek's ``unknown id``.
        restart_failures: nodes whose restart fails (``could not restart node <n>``).
        silent: request event types this agent never answers.
        welcome_success: the ``success`` of the welcome response.
        api_version: sent in the hello.
    Records:
        received: every event received, in order.
        config: the configuration it "runs" (``None`` after standby).
        hellos: how many hellos were sent.
    """

    name: str
    failures: dict[str, NodeOutputs] = field(default_factory=dict)
    id_values: dict[str, str | dict[str, str]] = field(default_factory=dict)
    restart_failures: set[str] = field(default_factory=set)
    silent: set[type] = field(default_factory=set)
    welcome_success: bool = True
    api_version: int = 1
    received: list[Any] = field(default_factory=list)
    config: Configuration | None = None
    hellos: int = 0
    endpoint_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    pid: int = field(default_factory=lambda: next(_pids))

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

        def delays() -> Any:
            yield 0.0
            while True:
                yield 0.05

        self._client = ReconnectingClient(
            uri,
            (self.topic,),
            on_event=self._on_event,
            on_open=lambda conn: self._hello(conn, connecting=True),
            delays=delays,
            ping_interval=None,
        )
        self._task = asyncio.create_task(self._client.run(), name=f"fake-agent-{self.name}")
        if wait:
            await asyncio.wait_for(self._client.connected.wait(), 5)

    async def serve(self, port: int = 0) -> int:
        """Listen on 127.0.0.1 for the controller to dial us; returns the port."""
        self.server = Server(
            "127.0.0.1",
            port,
            on_event=self._on_event,
            on_open=lambda conn: self._hello(conn, connecting=False),
            accept=lambda e: isinstance(e, ev.CONTROLLER_TO_AGENT),
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

    # -- protocol ------------------------------------------------------------------------

    def _hello(self, conn: Connection, *, connecting: bool) -> None:
        self.hellos += 1
        conn.send_event(
            self.topic,
            ev.NotifyAgentHello(self.name, self.endpoint_id, connecting, self.api_version),
        )
        self.changed.set()

    def _my_nodes(self, wanted: BrokerSet | Iterable[str] = ()) -> list[Node]:
        nodes = [] if self.config is None else self.config.nodes_of(self.name)
        wanted = set(wanted)
        nodes = [n for n in nodes if not wanted or n.name in wanted]
        return sorted(nodes, key=lambda n: n.name)

    def _on_event(self, conn: Connection, received: EventReceived) -> None:
        event = received.event
        self.received.append(event)
        self.changed.set()
        if type(event) in self.silent:
            return
        reply = self.answer(event)
        if reply is not None:
            conn.send_event(self.topic, reply)

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
                return ev.AgentStandbyResponse(rid, Result(rid, True, instance=name))
            case ev.AgentDeployRequest(reqid=rid, config=config, force=force):
                if self.config is not None and self.config.id == config.id and not force:
                    # behaviour §5.5: already running this config id -> node-less success
                    return ev.AgentDeployResponse(rid, (Result(rid, True, instance=name),))
                self.config = config
                mine = self._my_nodes()
                if not mine:
                    return ev.AgentDeployResponse(rid, (Result(rid, True, instance=name),))
                results = []
                for node in mine:
                    outputs = self.failures.get(node.name)
                    results.append(
                        Result(rid, outputs is None, instance=name, data=outputs, node=node.name)
                    )
                return ev.AgentDeployResponse(rid, tuple(results))
            case ev.AgentGetNodesRequest(reqid=rid):
                rows = [NodeStatus(name, State.RUNNING, Role.AGENT, ClusterRole.NONE, self.pid)]
                for i, node in enumerate(self._my_nodes()):
                    rows.append(
                        NodeStatus(
                            node.name,
                            State.RUNNING,
                            Role.NONE,
                            node.role,
                            self.pid + 1 + i,
                            node.p,
                            node.metrics_port,
                        )
                    )
                return ev.AgentGetNodesResponse(
                    rid, Result(rid, True, instance=name, data=tuple(rows))
                )
            case ev.AgentNodeDispatchRequest(reqid=rid, action=action, nodes=nodes):
                results = []
                for node in self._my_nodes(nodes):
                    results.append(self._dispatch(rid, action, node.name))
                return ev.AgentNodeDispatchResponse(rid, tuple(results))
            case ev.AgentRestartRequest(reqid=rid, nodes=nodes):
                results = []
                for node in self._my_nodes(nodes):
                    ok = node.name not in self.restart_failures
                    results.append(
                        Result(
                            rid,
                            ok,
                            instance=name,
                            error=None if ok else f"could not restart node {node.name}",
                            node=node.name,
                        )
                    )
                return ev.AgentRestartResponse(rid, tuple(results))
        return None

    def _dispatch(self, rid: str, action: tuple[str, ...], node: str) -> Result:
        # Zeek's node-side texts (behaviour §7, wire spec §6.3).
        if not action:
            return Result(
                rid, False, instance=self.name, error="no dispatch arguments provided", node=node
            )
        if action[0] != "get_id_value":
            return Result(
                rid, False, instance=self.name, error=f"dispatch {action[0]} unknown", node=node
            )
        if len(action) != 2:
            return Result(
                rid,
                False,
                instance=self.name,
                error="get_id_value expects name of global identifier",
                node=node,
            )
        value = self.id_values.get(action[1])
        if isinstance(value, dict):
            value = value.get(node)
        if value is None:
            return Result(rid, False, instance=self.name, error="unknown id", node=node)
        return Result(rid, True, instance=self.name, data=value, node=node)

    def count(self, kind: type) -> int:
        """How many events of ``kind`` were received."""
        return sum(1 for e in self.received if isinstance(e, kind))


@contextlib.asynccontextmanager
async def fake_agents(*agents: FakeAgent) -> AsyncIterator[tuple[FakeAgent, ...]]:
    """Stop the given agents when the block ends."""
    try:
        yield agents
    finally:
        for agent in agents:
            await agent.stop()


# --------------------------------------------------------------------------------------
# The controller as a child process


class ControllerProcess:
    """``python -m mgmt controller`` in a child process on fixed ports."""

    def __init__(
        self,
        state_dir: Path,
        *,
        client_port: int | None = None,
        agent_port: int | None = None,
        name: str = "controller-test",
        request_timeout: float = REQUEST_TIMEOUT,
    ) -> None:
        self.state_dir = state_dir
        self.client_port = client_port or free_port()
        self.agent_port = agent_port or free_port()
        self.name = name
        self.request_timeout = request_timeout
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = state_dir / f"{name}.log"

    @property
    def state_file(self) -> Path:
        """The controller's persisted configurations."""
        return self.state_dir / "nodes" / self.name / "controller.toml"

    def env(self) -> dict[str, str]:
        """The child's environment (Zeek's variables)."""
        env = dict(os.environ)
        env.update(
            PYTHONPATH=str(REPO_ROOT),
            ZEEK_CONTROLLER_PORT=str(self.agent_port),
            ZEEK_CONTROLLER_WEBSOCKET_PORT=str(self.client_port),
            ZEEK_CONTROLLER_ADDR="127.0.0.1",
            ZEEK_CONTROLLER_WEBSOCKET_ADDR="127.0.0.1",
            ZEEK_MANAGEMENT_STATE_DIR=str(self.state_dir),
            ZEEK_CONTROLLER_NAME=self.name,
        )
        return env

    def argv(self) -> list[str]:
        """The command line."""
        return [
            sys.executable,
            "-m",
            "mgmt",
            "controller",
            "--state-dir",
            str(self.state_dir),
            "--request-timeout",
            str(self.request_timeout),
        ]

    def start(self) -> None:
        """Start the child (output appended to :attr:`log`)."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                self.argv(),
                env=self.env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    async def wait_listening(self, limit: float = 10.0) -> None:
        """Wait until the client port accepts connections (or the child died)."""
        deadline = time.monotonic() + limit
        while True:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"controller exited with {self.proc.returncode}: {self.log.read_text()}"
                )
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.client_port)
            except OSError:
                if time.monotonic() > deadline:
                    raise TimeoutError("controller did not start listening") from None
                await asyncio.sleep(0.02)
                continue
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            return

    def kill(self, sig: int = signal.SIGKILL) -> int:
        """Send ``sig`` and reap the child; returns its exit status."""
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(sig)
        return self.proc.wait(10)

    def stop(self) -> None:
        """Make sure the child is gone."""
        if self.proc is not None and self.proc.poll() is None:
            self.kill(signal.SIGKILL)
