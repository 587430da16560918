"""A controller to test against, and clients of it.

* :func:`running_controller` runs an :class:`ObservedController` (the real
  :class:`~mgmt.controller.service.ControllerService`, signalling each state-machine step)
  in the current event loop on 127.0.0.1, both ports picked by the OS, with a short
  request timeout, and shuts it down cleanly afterwards; :func:`running_cluster` adds
  :class:`~tests.support.fake_agent.FakeAgent` s dialing it (the client tests' set-up).
* :class:`ApiClient` is a minimal in-process client of the controller API over
  :func:`mgmt.transport.connect` (for bursts, bad input and the benchmark).
* :func:`cluster_config` and :func:`multi_config` build the configurations the tests
  deploy.
* :class:`ControllerProcess` runs ``python -m mgmt controller`` as a child process on
  fixed ports (for the ``kill -9`` and restart tests).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mgmt.broker.data import Port
from mgmt.broker.records import (
    ClusterRole,
    Configuration,
    Instance,
    Node,
)
from mgmt.broker.session import EventReceived
from mgmt.controller.service import ControllerService
from mgmt.core.topics import CONTROLLER_TOPIC
from mgmt.settings.model import ControllerSettings
from mgmt.transport import Connection, connect
from tests.support.cli import Run, ours, run_cmd_sync
from tests.support.daemons import Daemon, daemon_env
from tests.support.fake_agent import FakeAgent
from tests.support.ports import free_port, port_open
from tests.support.reference import LOCAL_AGENT
from tests.support.settings import controller_settings
from tests.support.waiting import TIMEOUT, wait_until_async

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
) -> ControllerSettings:
    """A controller's settings for tests: listening on 127.0.0.1 (on ports the OS picks:
    run it with ``ephemeral_ports``), ``controller_port`` as its configured agent port."""
    extra: dict[str, Any] = {}
    if max_message_size is not None:
        extra["max_message_size"] = max_message_size
    return controller_settings(
        state_dir,
        name=name,
        listen_address="127.0.0.1",
        listen_port=controller_port,
        listen_address_websocket="127.0.0.1",
        request_timeout=request_timeout,
        **extra,
    )


class ObservedController(ControllerService):
    """A controller that signals every state-machine step (an intercepting subclass), so
    that a test can await a state instead of polling for it."""

    def __init__(self, settings: ControllerSettings) -> None:
        super().__init__(settings, ephemeral_ports=True)
        self.stepped = asyncio.Event()

    def _step(self, fn: Callable[[float], object]) -> None:
        super()._step(fn)
        self.stepped.set()

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        """Wait until ``predicate()`` holds after some step (at most :data:`TIMEOUT`)."""
        async with asyncio.timeout(TIMEOUT):
            while not predicate():
                self.stepped.clear()
                await self.stepped.wait()


@contextlib.asynccontextmanager
async def running_controller(
    state_dir: Path, *, config: ControllerSettings | None = None, **kw: Any
) -> AsyncIterator[ObservedController]:
    """Run a controller until the block ends; ``service.client_server.port`` etc. are set."""
    svc = ObservedController(config or controller_config(state_dir, **kw))
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
        await asyncio.wait_for(task, TIMEOUT)


@dataclass
class Cluster:
    """A running in-process controller and the fake agents dialing it."""

    service: ObservedController
    agents: list[FakeAgent]

    @property
    def port(self) -> int:
        """The controller's client port."""
        return client_port(self.service)

    @property
    def agent_port(self) -> int:
        """The controller's agent port."""
        assert self.service.agent_server is not None
        return self.service.agent_server.port

    async def add_agent(self, name: str = LOCAL_AGENT, **knobs: Any) -> FakeAgent:
        """Connect a :class:`FakeAgent` (``knobs``: its attributes) and wait until the
        controller knows it. It answers ``LogAscii::use_json``, has pid 31337, and
        redeploys an unchanged configuration: the parity tests deploy one staged
        configuration twice, once with zeek-client and once with ours, and compare."""
        knobs.setdefault("id_values", {"LogAscii::use_json": "false"})
        knobs.setdefault("pid", 31337)
        knobs.setdefault("redeploy_same_config", True)
        agent = FakeAgent(name, **knobs)
        await agent.dial(agent_uri(self.agent_port))
        self.agents.append(agent)
        state = self.service.state
        assert state is not None
        await self.service.wait_until(lambda: name in state.known)
        return agent


@contextlib.asynccontextmanager
async def running_cluster(tmp_path: Path, request_timeout: float = 2.0) -> AsyncIterator[Cluster]:
    """:func:`running_controller` (state under ``tmp_path``) and its fake agents, which
    :meth:`Cluster.add_agent` connects; they are stopped when the block ends."""
    async with running_controller(tmp_path / "state", request_timeout=request_timeout) as svc:
        cluster = Cluster(svc, [])
        try:
            yield cluster
        finally:
            for agent in cluster.agents:
                await agent.stop()


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
# The controller as a child process


class ControllerProcess:
    """``python -m mgmt controller`` as a child process on fixed ports; each :meth:`start`
    runs a new :class:`~tests.support.daemons.Daemon` appending to :attr:`log`. As an
    async context manager: started and listening in the block, gone after it."""

    def __init__(
        self,
        state_dir: Path,
        *,
        client_port: int | None = None,
        agent_port: int | None = None,
        name: str = "controller-test",
        request_timeout: float = REQUEST_TIMEOUT,
        log: Path | None = None,
    ) -> None:
        self.state_dir = state_dir
        self.client_port = client_port or free_port()
        self.agent_port = agent_port or free_port()
        self.name = name
        self.request_timeout = request_timeout
        self.daemon: Daemon | None = None
        self.log = log or state_dir / f"{name}.log"

    @property
    def state_file(self) -> Path:
        """The controller's persisted configurations."""
        return self.state_dir / "nodes" / self.name / "controller.toml"

    @property
    def proc(self) -> subprocess.Popen[bytes]:
        """The current child process."""
        assert self.daemon is not None
        return self.daemon.proc

    def args(self) -> list[str]:
        """Its command-line arguments."""
        return ["--state-dir", str(self.state_dir), "--request-timeout", str(self.request_timeout)]

    def argv(self) -> list[str]:
        """Its whole command line (to run it to its end, e.g. when it must refuse to start)."""
        return ours("controller", *self.args())

    def env(self) -> dict[str, str]:
        """Its environment: Zeek's variables name its ports."""
        return daemon_env(
            ZEEK_CONTROLLER_PORT=str(self.agent_port),
            ZEEK_CONTROLLER_WEBSOCKET_PORT=str(self.client_port),
            ZEEK_CONTROLLER_ADDR="127.0.0.1",
            ZEEK_CONTROLLER_WEBSOCKET_ADDR="127.0.0.1",
            ZEEK_MANAGEMENT_STATE_DIR=str(self.state_dir),
            ZEEK_CONTROLLER_NAME=self.name,
        )

    def start(self) -> None:
        """Start the controller."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.daemon = Daemon("controller", self.args(), self.log, self.env())

    async def wait_listening(self) -> None:
        """Wait until the client port accepts connections (failing if the child died)."""

        def listening() -> bool:
            assert self.daemon is not None and self.daemon.alive(), (
                f"controller exited with {self.proc.returncode}: {self.log.read_text()}"
            )
            return port_open(self.client_port)

        await wait_until_async(listening, "the controller's client port")

    async def restart(self) -> None:
        """Stop it cleanly (SIGTERM, exit status 0), start it again, wait until it listens."""
        assert self.kill(signal.SIGTERM) == 0, self.log.read_text()
        self.start()
        await self.wait_listening()

    def run_to_end(self) -> Run:
        """Run it in the foreground until it exits (for a controller that must refuse to
        start)."""
        return run_cmd_sync(self.argv(), env=self.env(), timeout=3 * TIMEOUT)

    async def __aenter__(self) -> ControllerProcess:
        """Start it and wait until it listens."""
        self.start()
        await self.wait_listening()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.stop()

    def kill(self, sig: int = signal.SIGKILL) -> int:
        """Send ``sig`` and reap the child; returns its exit status."""
        assert self.daemon is not None
        return self.daemon.kill(sig)

    def stop(self) -> None:
        """Make sure the child is gone."""
        if self.daemon is not None and self.daemon.alive():
            self.daemon.kill()
