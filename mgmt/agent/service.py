"""The agent daemon: :class:`~mgmt.agent.state.AgentState` wired to the controller link,
the supervisor, and the nodes' channels.

Theory of operation
-------------------
* **Controller link.** By default the agent dials the controller's agent port and keeps
  redialing with back-off forever; it also always serves its own port (default 2151) for
  a controller that dials it. Whenever a controller connection opens, the agent says
  ``notify_agent_hello``. Answers go to every open controller connection. Like Zeek's
  agent (subscribed to ``zeek/management/agent/<name>``), it handles events only on its
  own topic, exactly; others are ignored (counted, logged at debug).
* **Nodes.** A :class:`~mgmt.agent.state.Launch` writes ``cluster-layout.zeek`` and the
  management node script into ``<state>/nodes/<agent>/layout`` and hands the node specs
  to the :class:`~mgmt.supervisor.service.SupervisorService`, which forks and reaps the
  processes. Every state change the supervisor reports becomes a
  :meth:`~mgmt.agent.state.AgentState.nodes_changed` snapshot.
* **Adoption.** The adopted configuration is saved in ``<state>/nodes/<agent>/agent.toml``;
  the supervisor saves its node table. After an agent restart (even ``kill -9``), the
  supervisor adopts the nodes that still run, the saved configuration is re-applied with
  unchanged nodes kept as they are, and a controller redeploying the same configuration
  id is answered at once without restarting anything.
* **Node channel.** get-id-value dispatches go to each node's WebSocket server on
  ``127.0.0.1:<node port>`` (a port per node from ``node_websocket_start_port`` upwards,
  skipping every port the deployment uses), as ``Management::Node::API`` events. The
  agent keeps one connection per RUNNING node process open
  (:mod:`mgmt.agent.nodechannel`), opened when the node becomes RUNNING and replaced
  when it stops or restarts.
* **Archival.** Every ``archive_interval`` the agent runs ``<archive_cmd> -1
  <spool>/log-queue <archive_dir>`` through ``/bin/sh -c`` in its own process group,
  without blocking the event loop, killed at ``archive_timeout``; the outcome is logged
  and the next interval tries again whatever happened. Once more at shutdown, after the
  nodes stopped.
* **Management settings.** ``zeek-mgmt-settings.zeek`` in the layout directory loads
  Zeek's Management configuration scripts (where the nodes' Zeek has them) and redefines
  them to the values in effect, so ``get-id-value Management::...`` answers as on Zeek's
  nodes.

Start-up, in this order, so that a second agent on the same state directory, or one
whose port is taken, changes nothing (no adoption, no node table write, no signal): take
the state directory's agent lock (:mod:`mgmt.persist.lock`), remove temporary files that a
killed write left, read ``agent.toml``, bind our port; only then start the supervisor
(which adopts or starts nodes) and resume the saved configuration.

Persistence failures (``agent.toml``, the node table) are logged, sent to the controller
as ``notify_error``, and reported in the response of every deploy that is answered while
they last (:meth:`~mgmt.agent.state.AgentState.persisted`), so the client shows them.

Shutdown: stop the controller link and server, then stop the nodes (unless
``keep_nodes``), then archive once more (the nodes' final rotation; as Zeek's agent
does when it exits), with a time limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.resources
import logging
import os
import shlex
import shutil
import signal
import socket
import ssl as ssl_module
import sys
import time
from collections.abc import Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, assert_never

from mgmt.agent import layout
from mgmt.agent import state as ast
from mgmt.agent.extactions import ExtensionActions
from mgmt.agent.extensions import ExtensionRequest
from mgmt.agent.nodechannel import NodeChannels, NodeProcess
from mgmt.broker import events as ev
from mgmt.broker.data import Port
from mgmt.broker.directions import CONTROLLER_TO_AGENT, AgentToController
from mgmt.broker.records import Configuration, NodeOutputs, Result, Role, State
from mgmt.broker.session import EventReceived
from mgmt.core import launchable
from mgmt.core.launchable import quote
from mgmt.core.peertext import peer_text
from mgmt.core.topics import agent_topic
from mgmt.core.version import ProcessFacts
from mgmt.daemon.driver import MachineDriver, cancel_and_wait
from mgmt.exceptions import ListenError, StateStoreError
from mgmt.persist.configtoml import config_from_table, config_to_table
from mgmt.persist.lock import InstanceLock
from mgmt.persist.statefile import load_toml, remove_stale_temporaries, save_toml, write_atomic
from mgmt.supervisor.policy import NodeSpec, ProcessState
from mgmt.supervisor.service import NodeInfo, SupervisorService
from mgmt.transport import Connection, ReconnectingClient, Server
from mgmt.transport.limits import (
    DEFAULT_HANDSHAKE_TIMEOUT,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_SEND_BUFFER,
    DEFAULT_MAX_SIZE,
)
from mgmt.typing import NodeName

log = logging.getLogger("mgmt.agent")

STATE_KIND = "zeek-mgmt-agent"
STATE_SCHEMA = 1

#: Variables of the agent's own environment that must not reach nodes: they change from
#: one agent start to the next and would make adopted nodes look outdated.
_VOLATILE_ENV = (
    "NOTIFY_SOCKET",
    "WATCHDOG_USEC",
    "WATCHDOG_PID",
    "INVOCATION_ID",
    "JOURNAL_STREAM",
    "LISTEN_FDS",
    "LISTEN_PID",
    "LISTEN_FDNAMES",
    "ZEEK_MGMT_CONTROLLER_PID",
)

#: Port variables of Zeek's framework that nodes see in Zeek's form (``NNNN/tcp``).
_PORT_ENV = ("ZEEK_CONTROLLER_PORT", "ZEEK_CONTROLLER_WEBSOCKET_PORT", "ZEEK_AGENT_PORT")

_STATE_MAP = {
    ProcessState.PENDING: State.PENDING,
    ProcessState.RUNNING: State.RUNNING,
    ProcessState.STOPPING: State.RUNNING,
    ProcessState.STOPPED: State.STOPPED,
    ProcessState.CRASHED: State.CRASHED,
    ProcessState.FAILED: State.FAILED,
}


@dataclass(frozen=True, slots=True)
class AgentConfig:
    """What the agent daemon needs to run (built from settings by ``main``)."""

    name: str
    state_dir: Path
    spool_dir: Path
    listen_address: str = "0.0.0.0"
    #: Our own port; ``None`` = do not listen, 0 = any free port (tests).
    listen_port: int | None = 2151
    #: ``(host, port)`` of the controller to dial, or ``None`` (the controller dials us).
    controller: tuple[str, int] | None = ("127.0.0.1", 2150)
    zeek: str = "zeek"
    node_scripts: tuple[str, ...] = ()
    node_args: tuple[str, ...] = ()
    request_timeout: float = 5.0
    keep_nodes: bool = False
    stop_grace: float = 26.0
    node_websocket_start_port: int = 27800
    max_message_size: int = DEFAULT_MAX_SIZE
    #: Bytes that may wait to be sent to one peer before it is disconnected.
    max_send_buffer: int = DEFAULT_MAX_SEND_BUFFER
    #: Open connections on our port; more are refused.
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    #: Seconds a new connection has for each of TLS, HTTP upgrade and subscriptions.
    handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT
    #: Environment the nodes inherit (default: the agent's own, minus volatile entries).
    base_env: Mapping[str, str] | None = None
    #: Name and pid file of a controller running beside us (``zeek-mgmt run``).
    controller_name: str | None = None
    controller_pidfile: Path | None = None
    revival_delay: float = 1.0
    version: str = "8.2.2"
    #: Log archival (behaviour §5.13): run ``<archive_cmd> -1 <spool>/log-queue
    #: <archive_dir>`` every ``archive_interval`` seconds. An empty command means the
    #: built-in archiver (``zeek-mgmt archive``).
    archive_logs: bool = True
    archive_interval: float = 3600.0
    archive_dir: Path | None = None
    archive_cmd: str = ""
    #: Seconds an archiver run may take before it is killed.
    archive_timeout: float = 3600.0
    #: TLS for our own port, and for dialing the controller (``wss://``); ``None``: plaintext.
    server_ssl: ssl_module.SSLContext | None = None
    dial_ssl: ssl_module.SSLContext | None = None
    #: The controller's settings as far as we know them, for the nodes'
    #: ``Management::Controller::`` values (default: Zeek's defaults, our controller port).
    controller_view: layout.ControllerView | None = None

    @property
    def work_dir(self) -> Path:
        """The agent's directory, ``<state>/nodes/<name>`` as in Zeek."""
        return self.state_dir / "nodes" / self.name


def node_websocket_ports(config: Configuration, instance: str, start: int) -> dict[str, int]:
    """Loopback ports for the node channels of ``instance``'s nodes, from ``start`` up,
    skipping every port the deployment uses.

    Ports are numbered over the nodes of *every* instance (sorted by instance, then name),
    so several agents on one host running the same configuration never pick the same
    port, and the numbering is the same after an agent restart (adoption).
    """
    used = {i.listen_port.number for i in config.instances if i.listen_port is not None}
    for node in config.nodes:
        for port in (node.p, node.metrics_port):
            if port is not None:
                used.add(port.number)
    ports: dict[str, int] = {}
    candidate = start
    for node in sorted(config.nodes, key=lambda n: (n.instance, n.name)):
        while candidate in used:
            candidate += 1
        if node.instance == instance:
            ports[node.name] = candidate
        used.add(candidate)
        candidate += 1
    return ports


class AgentService(MachineDriver):
    """The agent daemon.

    Args:
        config: identity, directories, ports, and node launch settings.
        clock: monotonic clock (injectable).
    """

    def __init__(self, config: AgentConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        super().__init__(clock)
        self.state_file = config.work_dir / "agent.toml"
        self.table_file = config.work_dir / "nodes.toml"
        self.layout_dir = config.work_dir / "layout"
        self.lock = InstanceLock(config.state_dir, "agent")
        #: Why agent.toml could not be written last time, if it could not.
        self._save_error: str | None = None
        #: The persistence errors last reported to the state machine and the controller.
        self._reported_errors: tuple[str, ...] = ()
        self.state: ast.AgentState | None = None
        self.supervisor: SupervisorService | None = None
        self.server: Server | None = None
        self.client: ReconnectingClient | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.started = asyncio.Event()
        self._ports: dict[str, int] = {}
        self.channels = NodeChannels(timeout=config.request_timeout)
        facts = ProcessFacts("agent", config.name, os.getpid(), time.time())
        self.extensions = ExtensionActions(facts, self._zeek)
        #: Local nodes of this deployment that were not handed to the supervisor, and
        #: why (a value no process can take, layout or spool not writable): each is
        #: reported FAILED with the reason as its stderr.
        self._unlaunched: dict[str, str] = {}
        self._feed_scheduled = False
        env = dict(config.base_env if config.base_env is not None else os.environ)
        for key in _VOLATILE_ENV:
            env.pop(key, None)
        for key in _PORT_ENV:
            # We accept a bare number; Zeek's management scripts, which nodes load
            # (zeek-mgmt-settings.zeek), to_port() it at parse time and fail without /tcp.
            if env.get(key, "").isdigit():
                env[key] += "/tcp"
        self._base_env = env

    # -- persistence ------------------------------------------------------------------

    def load(self) -> Configuration | None:
        """The configuration saved by a previous run, if any.

        Raises:
            StateStoreError: the state file is corrupt (it is left untouched).
        """
        doc = load_toml(self.state_file, STATE_KIND, STATE_SCHEMA)
        if doc is None or "config" not in doc:
            return None
        try:
            return config_from_table(doc["config"])
        except (KeyError, ValueError, TypeError, AttributeError) as exc:
            raise StateStoreError(str(self.state_file), f"corrupt configuration: {exc!r}") from exc

    def _save(self, config: Configuration) -> None:
        try:
            save_toml(
                self.state_file, STATE_KIND, STATE_SCHEMA, {"config": config_to_table(config)}
            )
        except StateStoreError as exc:
            log.error("could not persist the configuration: %s", exc)
            self._save_error = str(exc)
        else:
            self._save_error = None
        self._report_persistence()

    def _report_persistence(self) -> None:
        """Tell the state machine (for deploy responses) and, when they change, the
        controller (``notify_error``) which state files cannot be written."""
        errors = []
        if self._save_error is not None:
            errors.append(f"{ast.CONFIG_NOT_PERSISTED}: {self._save_error}")
        table_error = None if self.supervisor is None else self.supervisor.persist_error
        if table_error is not None:
            errors.append(f"{ast.NODES_NOT_PERSISTED}: {table_error}")
        if tuple(errors) == self._reported_errors:
            return
        self._reported_errors = tuple(errors)
        self._state.persisted(tuple(errors), self._clock())
        for error in errors:
            self._send(ev.NotifyError(self.config.name, error))

    def _prepare_state_dir(self) -> Configuration | None:
        """Create our directory, remove leftovers of killed writes, read ``agent.toml``."""
        work_dir = self.config.work_dir
        try:
            work_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StateStoreError(
                str(work_dir), f"cannot create the agent's directory: {exc.strerror or exc}"
            ) from exc
        remove_stale_temporaries(work_dir, (self.state_file.name, self.table_file.name))
        remove_stale_temporaries(
            self.layout_dir, (layout.LAYOUT_FILE, f"{layout.NODE_SCRIPT}.zeek")
        )
        return self.load()

    # -- lifecycle ----------------------------------------------------------------------

    async def run(self, *, install_signals: bool = False) -> None:
        """Serve until :meth:`request_shutdown`.

        Raises:
            InstanceLocked: another agent uses the state directory (nothing was touched).
            StateStoreError: a state file is corrupt (nothing was started).
            ListenError: the agent port cannot be bound (no node was adopted or started).
        """
        cfg = self.config
        # Before anything else: a second agent on this state directory must touch nothing.
        self.lock.acquire()
        try:
            saved = self._prepare_state_dir()
        except BaseException:
            self.lock.release()
            raise
        self.state = ast.AgentState(
            ast.AgentOptions(
                name=cfg.name,
                listen_port=None if not cfg.listen_port else Port(cfg.listen_port),
                dials_controller=cfg.controller is not None,
                request_timeout=cfg.request_timeout,
            ),
            config=saved,
            agent_pid=os.getpid(),
        )
        loop = asyncio.get_running_loop()
        try:
            if cfg.listen_port is not None:
                self.server = Server(
                    cfg.listen_address,
                    cfg.listen_port,
                    on_event=self._on_controller_event,
                    on_open=self._on_controller_open,
                    accept=lambda e: isinstance(e, CONTROLLER_TO_AGENT),
                    topics=self._handles_topic,
                    version=cfg.version,
                    max_size=cfg.max_message_size,
                    max_send_buffer=cfg.max_send_buffer,
                    max_connections=cfg.max_connections,
                    handshake_timeout=cfg.handshake_timeout,
                    ping_interval=20.0,
                    ssl=cfg.server_ssl,
                )
                try:
                    await self.server.start()
                except OSError as exc:
                    raise ListenError(
                        f"{cfg.listen_address}:{cfg.listen_port}", exc.strerror or str(exc)
                    ) from exc
            # The port is ours: only now adopt, start and resume nodes. Nothing from
            # here to _feed_nodes() awaits anything that suspends, so no controller
            # request is handled before the nodes are known.
            self.supervisor = SupervisorService(
                cfg.state_dir,
                table_path=self.table_file,
                stop_grace=cfg.stop_grace,
                revival_delay=cfg.revival_delay,
                on_state_change=self._on_node_change,
            )
            await self.supervisor.start()
            if saved is not None:
                # Re-apply what we ran before: adopted nodes with the same spec keep
                # running, missing ones are started again.
                log.info("resuming configuration %s", peer_text(saved.id))
                self._launch(saved, keep_unchanged=True)
            self._feed_nodes()
            if cfg.controller is not None:
                host, port = cfg.controller
                hostpart = f"[{host}]" if ":" in host else host
                scheme = "ws" if cfg.dial_ssl is None else "wss"
                self.client = ReconnectingClient(
                    f"{scheme}://{hostpart}:{port}/v1/messages/json",
                    (self.topic,),
                    on_event=self._on_controller_event,
                    on_open=self._on_controller_open,
                    accept=lambda e: isinstance(e, CONTROLLER_TO_AGENT),
                    handles=self._handles_topic,
                    max_size=cfg.max_message_size,
                    max_send_buffer=cfg.max_send_buffer,
                    ssl=cfg.dial_ssl,
                )
                self._spawn(self.client.run())
            if cfg.archive_logs and cfg.archive_interval > 0 and cfg.archive_dir is not None:
                self._spawn(self._archive_loop())
            if install_signals:
                self._handle_signals(loop)
            log.info(
                "agent %s is live, pid %d, %s, controller %s",
                cfg.name,
                os.getpid(),
                "no listening port"
                if self.server is None
                else f"listening on {cfg.listen_address}:{self.server.port}",
                "dials us"
                if cfg.controller is None
                else f"{cfg.controller[0]}:{cfg.controller[1]}",
            )
            self.started.set()
            await self._timer_loop()
        finally:
            self._restore_signals(loop)
            await self._close()
            self.lock.release()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run ``coro`` as a task owned by the daemon (cancelled at shutdown)."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _close(self) -> None:
        if self.server is not None:
            await self.server.close()
        await cancel_and_wait(tuple(self._tasks))
        await self.channels.close()
        if self.supervisor is not None:
            await self.supervisor.close(keep_nodes=self.config.keep_nodes)
            if not self.config.keep_nodes and self.started.is_set():
                await self._archive_at_exit()
        log.info(
            "agent %s stopped%s",
            self.config.name,
            " (nodes left running)" if self.config.keep_nodes else "",
        )

    # -- the state machine --------------------------------------------------------------

    @property
    def _state(self) -> ast.AgentState:
        assert self.state is not None
        return self.state

    def _machine(self) -> ast.AgentState:
        return self._state

    @property
    def topic(self) -> str:
        """This agent's topic, ``zeek/management/agent/<name>``."""
        return agent_topic(self.config.name)

    def _execute(self, action: ast.Action) -> None:
        match action:
            case ast.Send(event=event):
                self._send(event)
            case ast.Launch(config=config):
                self._launch(config, keep_unchanged=False)
                self._feed_nodes()
            case ast.PersistConfig(config=config):
                self._save(config)
            case ast.RestartNodes(reqid=reqid, nodes=names):
                self._restart(reqid, names)
            case ast.Dispatch(reqid=reqid, action=act, nodes=names):
                self._spawn(self._dispatch(reqid, act, names))
            case ast.RunExtension(reqid=reqid, event=event):
                self._spawn(self._run_extension(reqid, event))
            case ast.Log(level=level, message=message):
                log.log(int(level), "%s", message)
            case _:
                assert_never(action)

    async def _run_extension(self, reqid: str, event: ExtensionRequest) -> None:
        """Answer an extension request the state machine cannot answer by itself."""
        try:
            results = await self.extensions.answer(event)
        except Exception:
            log.exception("extension request %s failed", peer_text(reqid))
            results = (Result(reqid, False, error="internal error (see the agent's log)"),)
        self._step(lambda now: self._state.extension_done(reqid, results, now))

    def _send(self, event: AgentToController) -> None:
        sent = 0
        if self.client is not None and self.client.send_event(self.topic, event):
            sent += 1
        if self.server is not None:
            sent += self.server.publish(self.topic, event)
        if not sent:
            log.debug("no controller connected, dropping %s", type(event).__name__)

    # -- controller link -----------------------------------------------------------------

    def _on_controller_open(self, conn: Connection) -> None:
        conn.send_event(self.topic, self._state.hello())

    def _handles_topic(self, topic: str) -> bool:
        # Only our own topic: not even "<topic>x", which Broker's prefix match would
        # deliver (a request for agent "<name>x", Q13). Others are ignored and counted.
        return topic == self.topic

    def _on_controller_event(self, conn: Connection, received: EventReceived) -> None:
        if isinstance(received.event, ev.AgentGetNodesRequest):
            self._state.management = self._management()
        self._step(lambda now: self._state.receive(received.event, now))

    def _management(self) -> tuple[ast.ManagementProcess, ...]:
        cfg = self.config
        if cfg.controller_name is None:
            return ()
        pid: int | None = None
        if cfg.controller_pidfile is not None:
            with contextlib.suppress(OSError, ValueError):
                pid = int(cfg.controller_pidfile.read_text().split()[0])
        return (ast.ManagementProcess(cfg.controller_name, Role.CONTROLLER, pid),)

    # -- nodes ------------------------------------------------------------------------------

    @property
    def _sup(self) -> SupervisorService:
        assert self.supervisor is not None
        return self.supervisor

    def _zeek(self) -> str:
        # A bare name ("zeek") is looked up on the nodes' PATH, so that Zeek's default
        # script path can be derived from the real install prefix.
        return shutil.which(self.config.zeek, path=self._base_env.get("PATH")) or self.config.zeek

    def _write_layout(self, config: Configuration) -> None:
        # Atomic: a crashed node may be revived (and read these) while we rewrite them.
        script = importlib.resources.files("mgmt").joinpath("scripts/zeek-mgmt-node.zeek")
        settings = layout.settings_text(
            self.management_settings(), management_scripts=self._has_management_scripts()
        )
        write_atomic(self.layout_dir / layout.LAYOUT_FILE, layout.layout_text(config).encode())
        write_atomic(self.layout_dir / layout.SETTINGS_FILE, settings.encode())
        write_atomic(self.layout_dir / f"{layout.NODE_SCRIPT}.zeek", script.read_bytes())

    def _has_management_scripts(self) -> bool:
        """Whether every one of Zeek's Management config scripts is on the nodes' path."""
        dirs = [
            Path(d)
            for d in layout.node_zeekpath(self._zeek(), self._base_env).split(":")
            if os.path.isabs(d)
        ]
        return all(
            any((d / f"{s}.zeek").is_file() or (d / s / "__load__.zeek").is_file() for d in dirs)
            for s in layout.MANAGEMENT_SCRIPTS
        )

    def management_settings(self) -> layout.ManagementSettings:
        """The Management settings in effect, as the nodes' ``Management::`` values.

        The agent's are its own; the controller's come from ``controller_view`` (under
        ``zeek-mgmt run`` read from the same settings as the controller's), else Zeek's
        defaults with the port we dial.
        """
        cfg = self.config
        view = cfg.controller_view or layout.ControllerView(
            name=cfg.controller_name or f"controller-{socket.gethostname()}",
            listen_port=cfg.controller[1] if cfg.controller is not None else 2150,
        )
        return layout.ManagementSettings(
            state_dir=str(cfg.state_dir),
            spool_dir=str(cfg.spool_dir),
            agent_name=cfg.name,
            agent_listen_address=cfg.listen_address,
            # (Before the server started, e.g. when resuming: the configured port.)
            agent_listen_port=self.server.port if self.server is not None else cfg.listen_port or 0,
            controller_endpoint=cfg.controller,
            archive_logs=cfg.archive_logs and cfg.archive_dir is not None,
            archive_interval=cfg.archive_interval,
            archive_cmd=self._archiver(),
            archive_dir="" if cfg.archive_dir is None else str(cfg.archive_dir),
            controller=view,
        )

    def _specs(self, config: Configuration) -> list[NodeSpec]:
        """Launch specs of our nodes; a node that cannot have one goes to ``_unlaunched``.

        Nodes are checked with :func:`mgmt.core.launchable.problems` (a deployment that fails
        it is refused on receipt, but a saved configuration is resumed as it is), and any
        error while building one node's spec fails that node only.
        """
        cfg = self.config
        self._ports = node_websocket_ports(config, cfg.name, cfg.node_websocket_start_port)
        nodes_dir = cfg.state_dir / "nodes"
        zeek = self._zeek()
        problems: dict[str, str] = {}
        for problem in launchable.problems(config):
            if problem.node is not None:
                problems.setdefault(problem.node, problem.text)
        specs: list[NodeSpec] = []
        for node in sorted(config.nodes_of(cfg.name), key=lambda n: n.name):
            if node.name in problems:  # names used twice included: one process per name
                log.error("node %s not launched: %s", quote(node.name), problems[node.name])
                self._unlaunched[node.name] = problems[node.name]
                continue
            try:
                plan = layout.launch_plan(
                    node,
                    zeek=zeek,
                    layout_dir=self.layout_dir,
                    nodes_dir=nodes_dir,
                    base_env=self._base_env,
                    node_scripts=cfg.node_scripts,
                    node_args=cfg.node_args,
                    extra_env={
                        "ZEEK_MGMT_NODE_WEBSOCKET_PORT": str(self._ports[node.name]),
                        "ZEEK_MANAGEMENT_SPOOL_DIR": str(cfg.spool_dir),
                    },
                )
                specs.append(
                    NodeSpec(
                        NodeName(plan.name), plan.argv, plan.env, str(plan.cwd), plan.cpu_affinity
                    )
                )
            except Exception as exc:  # one node's bad value must not stop the others
                log.exception("node %s: cannot build the launch plan", quote(node.name))
                self._unlaunched[node.name] = f"cannot prepare node: {exc}"
        return specs

    def _launch(self, config: Configuration, *, keep_unchanged: bool) -> None:
        """Make the supervisor run exactly our nodes of ``config``; what cannot be
        launched is reported FAILED with the reason (see ``_views``), never raised."""
        specs: list[NodeSpec] = []
        self._unlaunched = {}
        mine = sorted({n.name for n in config.nodes_of(self.config.name)})
        try:
            if mine:
                self._write_layout(config)
                (self.config.spool_dir / "log-queue").mkdir(parents=True, exist_ok=True)
            specs = self._specs(config)
        except (OSError, StateStoreError) as exc:
            # The nodes cannot start: stop the old ones, and report each new one FAILED
            # with the reason instead of leaving it PENDING forever.
            if isinstance(exc, StateStoreError):
                reason = f"cannot prepare node: {exc.path}: {exc.reason}"
            else:
                reason = f"cannot prepare node: {exc.filename or ''}: {exc.strerror or exc}"
            log.error("cannot prepare nodes of configuration %s: %s", peer_text(config.id), reason)
            self._unlaunched = dict.fromkeys(mine, reason)
        except Exception as exc:  # a bug: still no reason to stop the agent
            log.exception("cannot prepare nodes of configuration %s", peer_text(config.id))
            self._unlaunched = dict.fromkeys(mine, f"cannot prepare node: {exc}")
        self._sup.deploy(specs, keep_unchanged=keep_unchanged)

    def _on_node_change(self, info: NodeInfo) -> None:
        # The supervisor reports a batch of changes at a time (e.g. 64 spawns); one
        # snapshot after the batch is enough, and keeps a deploy O(n) instead of O(n^2).
        if self.state is not None and not self._feed_scheduled:
            self._feed_scheduled = True
            asyncio.get_running_loop().call_soon(self._feed_nodes)

    def _views(self) -> list[ast.NodeView]:
        """The supervisor's nodes as the state machine sees them.

        NodeOutputs, as Zeek reports them in a failed deploy (behaviour §5.8): a PENDING
        node has those of its previous, crashed run in this deployment, if any (kept in
        memory by the supervisor: no file is read for the many PENDING snapshots of a
        deploy); a node that is not running (CRASHED, FAILED, STOPPED) has the tails of
        its files, or those of the crashed run if a revival already emptied them. Never
        output from an earlier deployment (Q10).
        """
        views = []
        for info in self._sup.status():
            state = _STATE_MAP.get(info.state, State.UNKNOWN)
            outputs = None
            if state is not State.RUNNING:
                crashed = self._sup.exit_outputs(info.name)
                if state is State.PENDING:
                    out, err = crashed or ("", "")
                else:
                    out, err = self._sup.outputs(info.name)
                    if not out and not err:
                        out, err = crashed or ("", "")
                if info.reason and info.reason not in err:
                    err = f"{err}\n{info.reason}" if err else info.reason
                if out or err or state is not State.PENDING:
                    outputs = NodeOutputs(out, err)
            views.append(ast.NodeView(info.name, state, info.pid, outputs))
        views += [
            ast.NodeView(name, State.FAILED, None, NodeOutputs("", reason))
            for name, reason in sorted(self._unlaunched.items())
        ]
        return views

    def _feed_nodes(self) -> None:
        self._feed_scheduled = False
        self._report_persistence()
        views = self._views()
        self._update_channels()
        self._step(lambda now: self._state.nodes_changed(views, now))

    def _restart(self, reqid: str, names: Iterable[str]) -> None:
        names = tuple(names)
        before = {i.name: i.pid for i in self._sup.status() if i.name in names}
        try:
            self._sup.restart(names)
        except Exception as exc:
            log.error("restart of %s failed: %s", peer_text(names), exc)
            outcome = {name: False for name in names}
            self._step(lambda now: self._state.restart_done(reqid, outcome, now))
            return
        self._spawn(self._await_restart(reqid, before))

    async def _await_restart(self, reqid: str, before: dict[NodeName, int | None]) -> None:
        """Answer a restart once every node runs a new process (or failed to start)."""

        def respawned(infos: list[NodeInfo]) -> bool:
            return all(
                i.state is ProcessState.FAILED
                or (
                    i.pid is not None
                    and i.pid != before[i.name]
                    and i.state in (ProcessState.PENDING, ProcessState.RUNNING)
                )
                for i in infos
                if i.name in before
            )

        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.config.request_timeout):
                await self._sup.wait_for(respawned)
        infos = {i.name: i for i in self._sup.status() if i.name in before}
        outcome: dict[str, bool] = {
            name: name in infos
            and infos[name].state is not ProcessState.FAILED
            and infos[name].pid != before[name]
            for name in before
        }
        self._step(lambda now: self._state.restart_done(reqid, outcome, now))

    # -- node channels (get-id-value) ---------------------------------------------------

    def _update_channels(self) -> None:
        """One channel per RUNNING node process; a restarted node (new pid) gets a new one.

        A node being stopped (it got SIGTERM; still RUNNING to the controller) loses its
        channel at once: we close it cleanly instead of dialing a terminating node.
        """
        self.channels.update(
            {
                i.name: NodeProcess(self._ports[i.name], i.pid)
                for i in self._sup.status()
                if i.state is ProcessState.RUNNING and i.name in self._ports
            }
        )

    async def _dispatch(self, reqid: str, action: tuple[str, ...], names: tuple[str, ...]) -> None:
        results = await self.channels.ask(reqid, action, names)
        self._step(lambda now: self._state.dispatch_done(reqid, results, now))

    # -- log archival ------------------------------------------------------------------

    def archive_command(self) -> str:
        """The shell command line of one archival run (behaviour §5.13).

        As in Zeek, ``archive_cmd`` is a shell command line, so it may carry its own
        arguments; the queue and archive directories are appended, quoted.
        """
        cfg = self.config
        queue = cfg.spool_dir / "log-queue"
        return (
            f"{self._archiver()} -1 {shlex.quote(str(queue))} {shlex.quote(str(cfg.archive_dir))}"
        )

    def _archiver(self) -> str:
        """The archiver part of the command: ``archive_cmd``, else the built-in one."""
        return self.config.archive_cmd or f"{shlex.quote(sys.executable)} -m mgmt archive"

    async def _archive_at_exit(self) -> None:
        """Archive once more after the nodes stopped, as Zeek's agent does when it exits.

        The nodes rotated their open logs into the queue as they terminated; without this
        run those logs would wait there until the next agent's first interval. Limited to
        :data:`FINAL_ARCHIVE_TIMEOUT` (or ``archive_timeout`` if shorter) so a stop stays
        within the service manager's stop timeout; an archiver killed at the limit leaves
        the rest of the queue for the next run. Not with ``keep_nodes``: the nodes still
        run and did not rotate; nor when start-up failed.
        """
        cfg = self.config
        if not (cfg.archive_logs and cfg.archive_dir is not None):
            return
        try:
            await self.run_archiver(min(cfg.archive_timeout, FINAL_ARCHIVE_TIMEOUT))
        except Exception:  # shutdown must finish whatever the archiver did
            log.exception("log archival at shutdown failed")

    async def run_archiver(self, limit: float | None = None) -> int | None:
        """Run the archive command once, in a child process, with a time limit
        (``limit`` seconds, default ``archive_timeout``).

        The command runs through ``/bin/sh -c`` in its own process group, so that at the
        time limit (or when this coroutine is cancelled, e.g. at agent shutdown) the whole
        group is killed, including e.g. the ``gzip`` children of zeek-archiver. That is
        safe: archivers compress to a temporary file and rename, so an interrupted run
        leaves its source in the queue for the next one.

        Returns:
            Its exit status, or ``None`` if nothing ran (no queue directory), it could not
            start, or it was killed at the limit.

        Cancellation: kills the archiver, then re-raises.
        """
        queue = self.config.spool_dir / "log-queue"
        if not queue.is_dir():
            return None
        command = self.archive_command()
        log.info("triggering log archival via '%s'", command)
        try:
            proc = await asyncio.create_subprocess_exec(
                "/bin/sh",
                "-c",
                command,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as exc:
            log.error("log archival could not start: %s", exc)
            return None
        limit = self.config.archive_timeout if limit is None else limit
        try:
            async with asyncio.timeout(limit):
                output, _ = await proc.communicate()
        except TimeoutError:
            log.error("log archival took longer than %.0f s; killed it", limit)
            await _kill_group(proc)
            return None
        except asyncio.CancelledError:
            await _kill_group(proc)
            raise
        text = output.decode("utf-8", "replace").strip()
        if len(text) > _ARCHIVER_OUTPUT_MAX:
            text = "..." + text[-_ARCHIVER_OUTPUT_MAX:]
        if proc.returncode == 0:
            log.info("log archival finished%s", f": {text}" if text else "")
        else:
            log.error(
                "log archival failed with status %s%s", proc.returncode, f": {text}" if text else ""
            )
        return proc.returncode

    async def _archive_loop(self) -> None:
        # Like Zeek, the first run is one interval after start-up; the next run is one
        # interval after the previous one ended, so runs never overlap.
        while True:
            await asyncio.sleep(self.config.archive_interval)
            try:
                await self.run_archiver()
            except Exception:  # a bug here must not end archival for good
                log.exception("log archival run failed")


#: Longest the archival run at agent shutdown may take (seconds): with the default
#: ``stop_grace`` (26 s) a stop stays within ``zeek-mgmt run``'s 60 s and the systemd
#: unit's ``TimeoutStopSec`` (90 s).
FINAL_ARCHIVE_TIMEOUT = 30.0

#: How much of an archiver's output goes into the log (the end is the interesting part).
_ARCHIVER_OUTPUT_MAX = 4000


async def _kill_group(proc: asyncio.subprocess.Process) -> None:
    """SIGKILL a child started with ``start_new_session`` and its whole process group."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        proc.kill()
    await asyncio.shield(proc.wait())
