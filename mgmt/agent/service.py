"""The agent daemon: :class:`~mgmt.agent.state.AgentState` wired to its parts.

Theory of operation
-------------------
The service owns the pure state machine and wires it to one part per job:

* **Controller link** (:mod:`mgmt.agent.controllerlink`): our own port and the controller
  we dial; ``notify_agent_hello`` on every connection; events on our own topic only.
* **Node specs and layout** (:mod:`mgmt.agent.nodes`): a
  :class:`~mgmt.agent.state.Launch` writes ``cluster-layout.zeek`` and the management
  node scripts into ``<state>/nodes/<agent>/layout`` and becomes node specs.
* **Supervisor views** (:mod:`mgmt.agent.supervised`): the
  :class:`~mgmt.supervisor.service.SupervisorService` forks and reaps the processes;
  every state change it reports becomes a :meth:`~mgmt.agent.state.AgentState.nodes_changed`
  snapshot (one per batch of changes).
* **Node channels** (:mod:`mgmt.agent.nodechannel`): get-id-value dispatches go to each
  RUNNING node's WebSocket server on ``127.0.0.1:<node port>``, one connection per node
  process, opened when it becomes RUNNING and replaced when it stops or restarts.
* **Archival** (:mod:`mgmt.agent.archival`): the archiver every ``archive_interval``,
  through the same OS seam as the nodes (:mod:`mgmt.supervisor.backend`), and once more
  at shutdown.
* **Housekeeping** (:mod:`mgmt.agent.housekeeping`): log retention, disk checks, expiry
  of crash and old node directories, every ``housekeeping_interval``.
* **Metrics** (:mod:`mgmt.agent.metrics`): Prometheus exposition on ``metrics_port``
  (bound with our own port, before any node is touched), requests timed from their
  arrival to their response.

Adoption: the adopted configuration is saved in ``<state>/nodes/<agent>/agent.toml``; the
supervisor saves its node table. After an agent restart (even ``kill -9``), the
supervisor adopts the nodes that still run, the saved configuration is re-applied with
unchanged nodes kept as they are, and a controller redeploying the same configuration
id is answered at once without restarting anything.

Management settings: ``zeek-mgmt-settings.zeek`` in the layout directory loads Zeek's
Management configuration scripts (where the nodes' Zeek has them) and redefines them to
the values in effect, so ``get-id-value Management::...`` answers as on Zeek's nodes.

Start-up, in this order, so that a second agent on the same state directory, or one
whose port is taken, changes nothing (no adoption, no node table write, no signal): take
the state directory's agent lock (:mod:`mgmt.persist.lock`), remove temporary files that a
killed write left, read ``agent.toml``, bind our port; only then start the supervisor
(which adopts or starts nodes) and resume the saved configuration.

Persistence failures (``agent.toml``, the node table) are logged, sent to the controller
as ``notify_error``, and reported in the response of every deploy that is answered while
they last (:meth:`~mgmt.agent.state.AgentState.persisted`), so the client shows them.

Shutdown: stop the controller link and server, then stop the nodes (unless
``keep_nodes``), then archive once more (the nodes' final rotation; an addition: Zeek 8.2.2's agent
archives only on its timer), with a time limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable, Coroutine, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, assert_never

from mgmt.agent import layout
from mgmt.agent import state as ast
from mgmt.agent.archival import Archival
from mgmt.agent.configcheck import ConfigCheck
from mgmt.agent.controllerlink import ControllerLink
from mgmt.agent.extactions import ExtensionActions
from mgmt.agent.extensions import ExtensionRequest
from mgmt.agent.housekeeping import Housekeeping, watched_dirs
from mgmt.agent.nodechannel import NodeChannels
from mgmt.agent.nodes import LAYOUT_FILES, NodeSetup
from mgmt.agent.notify import Notifier, NotifyEvent, from_node_event
from mgmt.agent.retention import DiskEventKind
from mgmt.agent.supervised import SupervisedNodes
from mgmt.broker import events as ev
from mgmt.broker import extevents as xev
from mgmt.broker.directions import ControllerToAgent
from mgmt.broker.records import Configuration, Result, Role
from mgmt.core.frozen import frozen
from mgmt.core.peertext import peer_text
from mgmt.core.version import ProcessFacts
from mgmt.daemon.driver import MachineDriver, cancel_and_wait
from mgmt.exceptions import ListenError, StateStoreError
from mgmt.persist.configtoml import config_from_table, config_to_table
from mgmt.persist.lock import InstanceLock
from mgmt.persist.statefile import load_toml, remove_stale_temporaries, save_toml
from mgmt.settings.model import AgentSettings, ControllerSettings
from mgmt.settings.tls import AgentTLS
from mgmt.supervisor.backend import OsBackend
from mgmt.supervisor.node import NodeInfo
from mgmt.supervisor.order import GroupOrder
from mgmt.supervisor.policy import PolicySettings
from mgmt.supervisor.service import SupervisorService
from mgmt.typing import NodeName

if TYPE_CHECKING:  # built only with a metrics port (prometheus_client is imported then)
    from prometheus_client import CollectorRegistry

    from mgmt.metrics.endpoint import MetricsEndpoint
    from mgmt.metrics.requests import RequestMetrics

log = logging.getLogger("mgmt.agent")

STATE_KIND = "zeek-mgmt-agent"
STATE_SCHEMA = 1


@frozen
class RunController:
    """The controller running beside the agent under ``zeek-mgmt run`` (shown in get-nodes).

    Attributes:
        name: its name.
        pidfile: the file holding its pid (``<state>/nodes/<name>/.pid``), if known.
    """

    name: str
    pidfile: Path | None = None

    def process(self) -> ast.ManagementProcess:
        """It as a management process, with the pid its pid file holds now."""
        pid: int | None = None
        if self.pidfile is not None:
            with contextlib.suppress(OSError, ValueError):
                pid = int(self.pidfile.read_text().split()[0])
        return ast.ManagementProcess(self.name, Role.CONTROLLER, pid)


class AgentService(MachineDriver[ast.AgentState]):
    """The agent daemon.

    Args:
        settings: the agent's settings.
        controller_settings: the controller's settings as far as we know them, for the
            nodes' ``Management::Controller::`` values (see ``agent.main``).
        tls: the TLS contexts built from the settings (default: plaintext).
        run_controller: the controller running beside us under ``zeek-mgmt run``.
        base_env: the environment the nodes inherit (default: the agent's own, minus
            volatile entries).
        clock: monotonic clock (injectable).
    """

    def __init__(
        self,
        settings: AgentSettings,
        *,
        controller_settings: ControllerSettings,
        tls: AgentTLS | None = None,
        run_controller: RunController | None = None,
        base_env: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(clock)
        self.settings = settings
        self.controller_settings = controller_settings
        self.run_controller = run_controller
        self.state_file = settings.work_dir / "agent.toml"
        self.table_file = settings.work_dir / "nodes.toml"
        self.lock = InstanceLock(settings.state_dir, "agent")
        #: The OS seam of node processes and of the archiver.
        self.backend = OsBackend(settings.state_dir / "nodes" / ".bin")
        self.link = ControllerLink(
            settings,
            tls or AgentTLS(),
            on_event=self._on_controller_event,
            hello=lambda: self._state.hello(),
        )
        self.node_setup = NodeSetup(settings, os.environ if base_env is None else base_env)
        self.channels = NodeChannels(timeout=settings.request_timeout)
        facts = ProcessFacts("agent", settings.name, os.getpid(), time.time())
        self.config_check = ConfigCheck(
            settings,
            os.environ if base_env is None else base_env,
            self.backend,
            self.management_settings,
            time_limit=max(1.0, settings.request_timeout - 1.0),
        )
        self.extensions = ExtensionActions(
            facts,
            self.node_setup.zeek,
            nodes=lambda: [] if self.supervisor is None else self.supervisor.status(),
            ask=lambda reqid, action, names: self.channels.ask(reqid, action, names),
            disk_dirs=watched_dirs(settings),
            supervised=lambda: self.nodes,
            settle_within=max(1.0, settings.request_timeout - 1.0),
            check=self.config_check.check,
        )
        self.archival = Archival(settings, self.backend)
        self.notifier = Notifier(settings)
        self.housekeeping = Housekeeping(settings, self._current_nodes, self.on_disk_event)
        #: Request metrics and their endpoint, only with a metrics port: without one
        #: prometheus_client is not even imported (~15 % of a daemon's import time).
        self.request_metrics: RequestMetrics | None = None
        self.metrics: MetricsEndpoint | None = None
        self.registry: CollectorRegistry | None = None
        if settings.metrics_port:
            from mgmt.agent.metrics import agent_registry

            self.registry, self.request_metrics = agent_registry(self, time.time)
        self.supervisor: SupervisorService | None = None
        self.nodes: SupervisedNodes | None = None
        self.started = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._feed_scheduled = False
        #: Why agent.toml could not be written last time, if it could not.
        self._save_error: str | None = None
        #: The persistence errors last reported to the state machine and the controller.
        self._reported_errors: tuple[str, ...] = ()

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
        table_error = None if self.nodes is None else self.nodes.persist_error
        if table_error is not None:
            errors.append(f"{ast.NODES_NOT_PERSISTED}: {table_error}")
        if tuple(errors) == self._reported_errors:
            return
        self._reported_errors = tuple(errors)
        self._state.persisted(tuple(errors), self._clock())
        for error in errors:
            self.link.send(ev.NotifyError(self.settings.name, error))

    def _prepare_state_dir(self) -> Configuration | None:
        """Create our directory, remove leftovers of killed writes, read ``agent.toml``."""
        work_dir = self.settings.work_dir
        try:
            work_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StateStoreError(
                str(work_dir), f"cannot create the agent's directory: {exc.strerror or exc}"
            ) from exc
        remove_stale_temporaries(work_dir, (self.state_file.name, self.table_file.name))
        remove_stale_temporaries(self.node_setup.layout_dir, LAYOUT_FILES)
        return self.load()

    # -- lifecycle ----------------------------------------------------------------------

    async def run(self) -> None:
        """Serve until :meth:`request_shutdown`.

        Raises:
            InstanceLocked: another agent uses the state directory (nothing was touched).
            StateStoreError: a state file is corrupt (nothing was started).
            ListenError: the agent port cannot be bound (no node was adopted or started).
        """
        cfg = self.settings
        # Before anything else: a second agent on this state directory must touch nothing.
        self.lock.acquire()
        try:
            saved = self._prepare_state_dir()
        except BaseException:
            self.lock.release()
            raise
        self.state = ast.AgentState(cfg, config=saved, agent_pid=os.getpid())
        try:
            await self.link.listen()
            await self._serve_metrics()
            # The port is ours: only now adopt, start and resume nodes. Nothing from
            # here to _feed_nodes() awaits anything that suspends, so no controller
            # request is handled before the nodes are known.
            self.supervisor = SupervisorService(
                cfg.state_dir,
                policy=PolicySettings(
                    stop_grace=cfg.stop_grace, max_restarts=cfg.max_restarts or None
                ),
                start_order=(
                    GroupOrder(reverse=False, timeout=cfg.start_group_timeout)
                    if cfg.ordered_start
                    else None
                ),
                backend=self.backend,
                table_path=self.table_file,
                on_state_change=self._on_node_change,
                crash_keep=cfg.crash_keep,
                on_node_event=lambda e: self.notifier.post(from_node_event(cfg.name, e)),
            )
            await self.supervisor.start()
            self.nodes = SupervisedNodes(self.supervisor)
            if saved is not None:
                # Re-apply what we ran before: adopted nodes with the same spec keep
                # running, missing ones are started again.
                log.info("resuming configuration %s", peer_text(saved.id))
                self._launch(saved, keep_unchanged=True)
            self._feed_nodes()
            self.link.dial()
            if self.archival.enabled and cfg.archive_interval > 0:
                self._spawn(self.archival.loop())
            self._spawn(self.housekeeping.loop())
            log.info("agent %s is live, pid %d, %s", cfg.name, os.getpid(), self.link.describe())
            self.started.set()
            await self._timer_loop()
        finally:
            await self._close()
            self.lock.release()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run ``coro`` as a task owned by the daemon (cancelled at shutdown)."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve_metrics(self) -> None:
        cfg = self.settings
        if self.registry is None:  # no metrics port
            return
        from mgmt.metrics.endpoint import MetricsEndpoint

        self.metrics = MetricsEndpoint(cfg.metrics_address, cfg.metrics_port, self.registry)
        try:
            await self.metrics.start()
        except OSError as exc:
            where = f"{cfg.metrics_address}:{cfg.metrics_port}"
            raise ListenError(where, exc.strerror or str(exc)) from exc

    async def _close(self) -> None:
        keep_nodes = self.settings.keep_nodes
        await self.link.close()
        if self.metrics is not None:
            await self.metrics.close()
        await cancel_and_wait(tuple(self._tasks))
        await self.channels.close()
        if self.supervisor is not None:
            await self.supervisor.close(keep_nodes=keep_nodes)
            # Not with keep_nodes: the nodes still run and did not rotate; nor when
            # start-up failed.
            if not keep_nodes and self.started.is_set():
                await self.archival.at_exit()
        await self.notifier.close()
        log.info(
            "agent %s stopped%s", self.settings.name, " (nodes left running)" if keep_nodes else ""
        )

    # -- housekeeping -------------------------------------------------------------------

    def _current_nodes(self) -> list[str]:
        """The nodes whose directories are in use: deployed here or supervised."""
        supervised = [] if self.supervisor is None else self.supervisor.status()
        return self._state.my_nodes() + [info.name for info in supervised]

    def on_disk_event(self, kind: DiskEventKind, path: str, free_percent: float) -> None:
        """A file system crossed ``min_disk_space`` (reported once per crossing): logged,
        and told to the ``notify_cmd`` hook as ``disk-low`` / ``disk-ok``."""
        if kind == "disk-low":
            text = f"disk space low on {path}: {free_percent:.1f}% free, below min_disk_space"
            log.warning("%s (%g%%)", text, self.settings.min_disk_space)
        else:
            text = f"disk space on {path} is sufficient again: {free_percent:.1f}% free"
            log.info("%s", text)
        extra = {"path": path, "free_percent": f"{free_percent:.1f}"}
        self.notifier.post(NotifyEvent(kind, "", text, extra))

    # -- the state machine --------------------------------------------------------------

    def _execute(self, action: ast.Action) -> None:
        match action:
            case ast.Send(event=event):
                if self.request_metrics is not None:
                    self.request_metrics.answered(event, self._clock())
                self.link.send(event)
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

    def _on_controller_event(self, event: ControllerToAgent) -> None:
        if isinstance(event, xev.AgentClusterKeysRequest):
            self.node_setup.receive_curve_keys(event.keys)  # for the deploy that follows
            return
        if self.request_metrics is not None:
            self.request_metrics.received(event, self._clock())
        if isinstance(event, ev.AgentGetNodesRequest) and self.run_controller is not None:
            # Its pid changes when zeek-mgmt run restarts it: read it for each get-nodes.
            process = self.run_controller.process()
            self._step(lambda now: self._state.management_changed((process,), now))
        self._step(lambda now: self._state.receive(event, now))

    # -- nodes ------------------------------------------------------------------------------

    @property
    def _nodes(self) -> SupervisedNodes:
        assert self.nodes is not None
        return self.nodes

    def management_settings(self) -> layout.ManagementSettings:
        """The Management settings in effect, as the nodes' ``Management::`` values.

        The agent's are its own; the controller's are ``controller_settings`` (under
        ``zeek-mgmt run`` read from the same sources as the controller's).
        """
        return layout.ManagementSettings(
            agent=self.settings,
            controller=self.controller_settings,
            agent_listen_port=self.link.port,
            archive_cmd=self.archival.archiver(),
        )

    def _launch(self, config: Configuration, *, keep_unchanged: bool) -> None:
        """Make the supervisor run exactly our nodes of ``config``; what cannot be
        launched is reported FAILED with the reason, never raised."""
        specs = self.node_setup.prepare(config, self.management_settings())
        self._nodes.deploy(specs, keep_unchanged=keep_unchanged)

    def _on_node_change(self, info: NodeInfo) -> None:
        # The supervisor reports a batch of changes at a time (e.g. 64 spawns); one
        # snapshot after the batch is enough, and keeps a deploy O(n) instead of O(n^2).
        if self.state is not None and not self._feed_scheduled:
            self._feed_scheduled = True
            asyncio.get_running_loop().call_soon(self._feed_nodes)

    def _feed_nodes(self) -> None:
        self._feed_scheduled = False
        self._report_persistence()
        views = self._nodes.views(self.node_setup.unlaunched)
        # One channel per RUNNING node process; a restarted node (new pid) gets a new one.
        self.channels.update(
            self._nodes.running(
                self.node_setup.ports, self.node_setup.relayed, self.channels.processes()
            )
        )
        self._step(lambda now: self._state.nodes_changed(views, now))

    def _restart(self, reqid: str, names: Iterable[str]) -> None:
        names = tuple(names)
        before = self._nodes.restart(names)
        if before is None:
            outcome = dict.fromkeys(names, False)
            self._step(lambda now: self._state.restart_done(reqid, outcome, now))
        else:
            self._spawn(self._answer_restart(reqid, before))

    async def _answer_restart(self, reqid: str, before: dict[NodeName, int | None]) -> None:
        """Answer a restart once every node runs a new process (or failed to start)."""
        outcome = await self._nodes.restart_outcome(before, self.settings.request_timeout)
        self._step(lambda now: self._state.restart_done(reqid, outcome, now))

    async def _dispatch(self, reqid: str, action: tuple[str, ...], names: tuple[str, ...]) -> None:
        results = await self.channels.ask(reqid, action, names)
        self._step(lambda now: self._state.dispatch_done(reqid, results, now))
