"""The asyncio driver of the supervisor: :class:`SupervisorService`.

Theory of operation
-------------------

One task (the *driver*) owns every node. Each wake-up it

1. polls every live process (``Backend.poll``, one handle at a time: only our own
   children are reaped) and feeds exits to the node's :class:`NodePolicy`;
2. polls the ``.status`` file of PENDING nodes and feeds readiness;
3. ticks every policy (stop escalation, revival back-off) and executes the actions;
4. releases nodes held back by a deploy once no old process is left;
5. writes the node table if it changed, and reports state changes.

It then sleeps until the earliest policy deadline, or until a command or a process exit
wakes it. Exits are watched with a pidfd per process where the backend offers one
(:mod:`mgmt.supervisor.exitwatch`), so a cluster of RUNNING nodes costs no CPU at all;
otherwise it wakes every ``poll_interval``, and while a node is PENDING (its ``.status``
file is polled) every ``ready_poll_interval`` (20 ms). Each node's record, its policy and
its process, is a :class:`~mgmt.supervisor.node.SupervisedNode`. Commands
(:meth:`~SupervisorService.deploy`, :meth:`~SupervisorService.restart`,
:meth:`~SupervisorService.stop`) are synchronous: they run in the event loop's thread,
apply the policy at once (sending the first SIGTERM or spawning right away), and return;
:meth:`~SupervisorService.wait_settled` awaits the outcome. Spawn failures, whatever the
backend raised, become state (FAILED with a
reason), never exceptions: one node's failure leaves the driver and the others alone.

Shutdown is one ordered path, :meth:`~SupervisorService.close`: refuse new commands; then
either stop every node (SIGTERM, escalating to SIGKILL after the grace period) and wait
until all processes are gone, or, with ``keep_nodes``, release them; write the table; end
the driver.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from mgmt.core import startorder
from mgmt.exceptions import InvalidState, NoSuchNode
from mgmt.persist.nodetable import Intent, NodeTableStore, StoredNode
from mgmt.supervisor.backend import Backend, OsBackend
from mgmt.supervisor.exitwatch import ExitWatcher
from mgmt.supervisor.node import SETTLED_STATES, NodeInfo, SupervisedNode
from mgmt.supervisor.nodeevents import NodeEvent, NodeEventRecorder
from mgmt.supervisor.nodefiles import read_outputs
from mgmt.supervisor.order import GroupOrder, Member
from mgmt.supervisor.policy import (
    Action,
    ExitStatus,
    NodeSpec,
    PolicySettings,
    ProcessState,
    Signal,
    Spawn,
)
from mgmt.typing import NodeName

logger = logging.getLogger("mgmt.supervisor")


class SupervisorService:
    """Runs Zeek cluster nodes as child processes, zeekctl style.

    Args:
        state_dir: the agent's state directory. Node symlinks go to
            ``<state_dir>/nodes/.bin`` and the node table to
            ``<state_dir>/supervisor-nodes.toml`` unless given otherwise.
        policy: the timing of every node's policy (stop grace, revival back-off).
        backend: the OS seam; defaults to :class:`OsBackend`.
        table_path: where to persist the node table for adoption.
        poll_interval: how often live processes are polled where no pidfd watches them.
        ready_poll_interval: how often the ``.status`` files of PENDING nodes are polled
            (at most ``poll_interval``): a deploy answers when the slowest node is up,
            so this bounds its overhead; it lasts only while nodes start.
        on_state_change: called with a :class:`NodeInfo` for every state a node passes
            through, and when its pid changes; ``state`` and ``pid`` are as of that
            moment (a crash with an immediate revival reports CRASHED, then PENDING with
            the new pid). Runs in the event loop; exceptions are logged and ignored.
        crash_keep: crash directories kept per node (``<node dir>/crash/<time>``,
            :mod:`~mgmt.supervisor.crashdirs`); 0 keeps none.
        on_node_event: called with each :class:`~mgmt.supervisor.nodeevents.NodeEvent`
            (crashed, gave-up, failed, recovered), in order, a crash once its directory
            is written. Runs in the event loop; exceptions are logged and ignored.
        start_order: start the nodes a deploy holds back group by group, by role
            (:mod:`mgmt.supervisor.order`); ``None``: all at once.
    """

    def __init__(
        self,
        state_dir: Path,
        *,
        policy: PolicySettings,
        backend: Backend | None = None,
        table_path: Path | None = None,
        poll_interval: float = 0.1,
        ready_poll_interval: float = 0.02,
        on_state_change: Callable[[NodeInfo], None] | None = None,
        crash_keep: int = 10,
        on_node_event: Callable[[NodeEvent], None] | None = None,
        start_order: GroupOrder | None = None,
    ) -> None:
        self.state_dir = Path(state_dir)
        self.backend: Backend = (
            backend if backend is not None else OsBackend(self.state_dir / "nodes" / ".bin")
        )
        self.store = NodeTableStore(
            table_path if table_path is not None else self.state_dir / "supervisor-nodes.toml"
        )
        self.settings = policy
        self.poll_interval = poll_interval
        self.ready_poll_interval = min(ready_poll_interval, poll_interval)
        self.on_state_change = on_state_change
        self.start_order = start_order
        self._nodes: dict[NodeName, SupervisedNode] = {}
        self._task: asyncio.Task[None] | None = None
        self._wakeup = asyncio.Event()
        self._changed = asyncio.Event()
        self._closing = False
        self._stop_driver = False
        self._close_task: asyncio.Task[None] | None = None
        #: Wakes the driver when a process exits (pidfds), where the backend can.
        self._exits = ExitWatcher(self.backend, self._wakeup.set)
        #: Keeps the evidence of crashes and reports node events.
        self._events = NodeEventRecorder(crash_keep, on_node_event)

    @property
    def persist_error(self) -> str | None:
        """Why the node table could not be written last time (``None``: it was)."""
        return self.store.error

    # ----------------------------------------------------------------------------------
    # Lifecycle

    async def start(self) -> list[NodeInfo]:
        """Load the node table, adopt the nodes still running, and start the driver.

        For each stored node: a live process whose start time matches the stored one is
        adopted (RUNNING at once if its ``.status`` says so, else PENDING); one that runs
        an outdated spec is then restarted; one that should not run is stopped. A node
        that should run but whose process is gone (or whose pid now belongs to another
        process, which is never signalled) is started afresh.

        Returns:
            The status of all nodes after adoption.

        Raises:
            StateStoreError: the table is unreadable or corrupt (it is left untouched).
            InvalidState: already started, or closed.
        """
        if self._task is not None or self._closing:
            raise InvalidState("supervisor already started")
        stored = self.store.load()
        now = time.monotonic()
        for row in stored:
            self._adopt(row, now)
        self._task = asyncio.create_task(self._drive(), name="mgmt.supervisor")
        self._after_change()
        return self.status()

    def _adopt(self, row: StoredNode, now: float) -> None:
        spec = row.spec
        handle = None
        if row.pid is not None and row.create_time is not None:
            handle = self.backend.adopt(row.pid, row.create_time, spec.cwd)
            if handle is None:
                logger.info("[%s] pid %d is gone or reused; not adopted", spec.name, row.pid)
        if handle is None and row.intent is not Intent.RUN:
            if row.intent in (Intent.STOP, Intent.HOLD):
                node = self._nodes[spec.name] = SupervisedNode(spec, self.settings)
                node.user_stopped = row.intent is Intent.HOLD
            return
        node = SupervisedNode(spec, self.settings)
        node.user_stopped = row.intent is Intent.HOLD
        self._nodes[spec.name] = node
        if handle is None:
            # Should run, but nothing to adopt: start it.
            self._execute(node, node.policy.start(now))
            return
        node.adopt(handle, row.current, self.backend, now)
        self._exits.watch(node.name, handle)
        if row.intent is Intent.RUN and not row.current:
            self._execute(node, node.policy.restart(now))
        elif row.intent is not Intent.RUN:
            node.retiring = row.intent is Intent.REMOVE
            self._execute(node, node.policy.stop(now))

    async def close(self, keep_nodes: bool = False) -> None:
        """Shut down: stop all nodes (or, with ``keep_nodes``, leave them running for a
        later supervisor to adopt), write the node table, end the driver.

        Idempotent: later calls wait for the first one (their ``keep_nodes`` is ignored).
        Cancelling the caller does not interrupt the shutdown. Stopping waits for every
        process to exit, which ``stop_grace`` bounds (unbounded with ``stop_grace=None``).

        Raises:
            Exception: whatever made the driver task fail, if it did.
        """
        if self._close_task is None:
            self._close_task = asyncio.create_task(self._close(keep_nodes))
        await asyncio.shield(self._close_task)

    async def _close(self, keep_nodes: bool) -> None:
        self._closing = True
        if self._task is None:
            return
        now = time.monotonic()
        if keep_nodes:
            for node in self._nodes.values():
                if node.handle is not None:
                    logger.info(
                        "[%s] left running: %s", node.name, self.backend.describe(node.handle)
                    )
                    self._exits.unwatch(node.name)
                    self.backend.release(node.handle)
        elif self.start_order is not None:
            await self._stop_in_order(self.start_order.timeout)
        else:
            for node in self._nodes.values():
                node.held = False
                self._execute(node, node.policy.stop(now))
            self._after_change()
            await self._wait_for(lambda: all(n.handle is None for n in self._nodes.values()))
        self._stop_driver = True
        self._wakeup.set()
        try:
            await self._task
        finally:
            # The table reflects what is left: live pids with keep_nodes, none otherwise.
            self._persist()
            await self._events.close()

    async def _stop_in_order(self, group_wait: float) -> None:
        """Stop every node in the reverse start order: workers first, loggers last, each
        group once the previous one is gone (or after ``group_wait`` seconds)."""
        order = GroupOrder(reverse=True, timeout=group_wait)
        waiting = set(self._nodes)
        for node in self._nodes.values():
            node.held = False
        while True:
            changed = self._changed
            members = [
                Member(
                    n.name,
                    startorder.rank(n.spec.role),
                    waiting=n.name in waiting,
                    busy=n.policy.state is ProcessState.STOPPING,
                )
                for n in self._nodes.values()
            ]
            now = time.monotonic()
            for group in order.release(members, now):
                logger.info("stopping %s: %s", group.group, ", ".join(group.names))
                for name in group.names:
                    waiting.discard(name)
                    node = self._nodes[name]
                    self._execute(node, node.policy.stop(now))
            self._after_change()
            if not waiting and all(n.handle is None for n in self._nodes.values()):
                return
            if self._task is not None and self._task.done():
                self._task.result()  # re-raise the driver's failure
                raise InvalidState("supervisor is closed")
            due = order.next_deadline()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(None if due is None else max(0.0, due - now)):
                    await changed.wait()

    async def __aenter__(self) -> SupervisorService:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # ----------------------------------------------------------------------------------
    # Commands

    def deploy(self, specs: Iterable[NodeSpec], *, keep_unchanged: bool = False) -> None:
        """Replace the whole set of nodes with ``specs``.

        Every current node is stopped (nodes not in ``specs`` are forgotten once stopped),
        and the new nodes are started once no old process is left, so a new node never
        races an old one for a port or a directory. With ``keep_unchanged``, a live node
        whose spec is identical keeps running untouched (useful after adoption). A node a
        user stopped (:meth:`stop` with ``hold``) whose spec is identical stays stopped.

        Returns at once; await :meth:`wait_settled` for the outcome.

        Raises:
            ValueError: two specs share a name.
            InvalidState: the supervisor is not running.
        """
        self._check_running()
        new: dict[NodeName, NodeSpec] = {}
        for spec in specs:
            if spec.name in new:
                raise ValueError(f"duplicate node name: {spec.name}")
            new[spec.name] = spec
        now = time.monotonic()
        kept = 0
        for name, node in self._nodes.items():
            wanted = new.get(name)
            if node.user_stopped and wanted == node.spec and not node.retiring:
                new.pop(name)  # stays stopped until started
                continue
            if node.user_stopped:
                logger.info(
                    "[%s] was stopped by request; its spec changed (%s): starting it",
                    name,
                    ", ".join(_spec_changes(node.spec, wanted)),
                )
            node.user_stopped = False
            alive = node.policy.state in (ProcessState.PENDING, ProcessState.RUNNING)
            if (
                keep_unchanged
                and wanted == node.spec
                and wanted == node.proc_spec
                and alive
                and not node.held
            ):
                new.pop(name)  # keep it running untouched
                kept += 1
                continue
            node.held = False
            self._execute(node, node.policy.stop(now))
            if wanted is None:
                node.retiring = True
        for name, spec in new.items():
            node = self._nodes.get(name) or SupervisedNode(spec, self.settings)
            self._nodes[name] = node
            node.spec = spec
            node.retiring = False
            node.held = True
            node.exit_outputs = None
        logger.info("deploying %d nodes (%d kept running)", len(new), kept)
        self._release_held(now)
        self._after_change()

    def restart(self, names: Iterable[str] | None = None) -> None:
        """Restart nodes (all when ``names`` is ``None``): stop each live process, then
        spawn it again at once; a node without a process is simply started. This also
        revives STOPPED and FAILED nodes and resets their back-off.

        Raises:
            NoSuchNode: a name is not supervised (nothing is changed then).
            InvalidState: the supervisor is not running.
        """
        now, nodes = self._command(names)
        for node in nodes:
            node.user_stopped = False
            if node.held:
                continue  # already waiting to start
            if node.policy.state is ProcessState.PENDING and node.policy.pid is None:
                continue  # cannot happen between driver steps; be safe
            node.exit_outputs = None
            self._execute(node, node.policy.restart(now))
        self._after_change()

    def stop(self, names: Iterable[str] | None = None, *, hold: bool = False) -> None:
        """Stop nodes (all when ``names`` is ``None``) for good: SIGTERM every
        ``term_interval``, SIGKILL after ``stop_grace``. They stay listed as STOPPED and
        are never revived. Idempotent. Raises as :meth:`restart`.

        With ``hold`` (``zeek-mgmt stop``) the nodes also stay stopped across a restart
        of the supervisor and a :meth:`deploy` of their unchanged spec, until
        :meth:`start_nodes` or :meth:`restart`.
        """
        now, nodes = self._command(names)
        for node in nodes:
            node.held = False
            node.user_stopped = node.user_stopped or hold
            self._execute(node, node.policy.stop(now))
        self._after_change()

    def start_nodes(self, names: Iterable[str] | None = None) -> None:
        """Start nodes (all when ``names`` is ``None``) that have no process (STOPPED,
        CRASHED, FAILED), ending a :meth:`stop` hold; live nodes are left alone. A node a
        deploy still holds back starts with it. Raises as :meth:`restart`."""
        now, nodes = self._command(names)
        for node in nodes:
            node.user_stopped = False
            state = node.policy.state
            if node.held or state not in (
                ProcessState.STOPPED,
                ProcessState.CRASHED,
                ProcessState.FAILED,
            ):
                continue
            node.exit_outputs = None
            self._execute(node, node.policy.start(now))
        self._after_change()

    # ----------------------------------------------------------------------------------
    # Queries

    def status(self, names: Iterable[str] | None = None) -> list[NodeInfo]:
        """Snapshots of nodes (all when ``names`` is ``None``), sorted by name.

        Nodes that left the deployment and are still stopping are not listed.

        Raises:
            NoSuchNode: a name is not supervised.
        """
        return [node.info() for node in sorted(self._select(names), key=lambda n: n.name)]

    def outputs(self, name: str) -> tuple[str, str]:
        """The node's NodeOutputs: the last 100 non-empty lines of its stdout and stderr
        files, each joined by ``"\\n"``. Works in any state (the files stay).

        Raises:
            NoSuchNode: the name is not supervised.
        """
        (node,) = self._select([name])
        return read_outputs(node.spec.cwd)

    def exit_outputs(self, name: str) -> tuple[str, str] | None:
        """NodeOutputs of the node's last unexpected exit in this deployment, as read when
        the process died (before a revival truncated the files); ``None`` if it has not
        crashed since it was last deployed or restarted.

        Raises:
            NoSuchNode: the name is not supervised.
        """
        (node,) = self._select([name])
        return node.exit_outputs

    async def wait_settled(self, names: Iterable[str] | None = None) -> list[NodeInfo]:
        """Wait until each node's last command has an outcome: RUNNING, STOPPED, CRASHED
        or FAILED (not PENDING or STOPPING).

        A crash-looping node counts as settled each time it is CRASHED. Nodes that left
        the deployment do not count. Bound the wait with ``asyncio.timeout()`` and call
        :meth:`status` after a timeout to see who is still pending. Safe to cancel.

        Returns:
            The status of the nodes (all when ``names`` is ``None``) once settled.

        Raises:
            NoSuchNode: a name is not supervised.
        """
        wanted = None if names is None else [NodeName(name) for name in names]
        self._select(wanted)

        def settled() -> bool:
            return all(
                n.visible_state() in SETTLED_STATES
                for n in self._nodes.values()
                if not n.retiring and (wanted is None or n.name in wanted)
            )

        await self._wait_for(settled)
        return [
            n.info()
            for n in sorted(self._nodes.values(), key=lambda n: n.name)
            if not n.retiring and (wanted is None or n.name in wanted)
        ]

    async def wait_for(self, predicate: Callable[[list[NodeInfo]], bool]) -> list[NodeInfo]:
        """Wait until ``predicate(self.status())`` is true; it is re-checked at each
        state change. Bound it with ``asyncio.timeout()``. Safe to cancel.

        Returns:
            The status that satisfied the predicate.
        """
        await self._wait_for(lambda: predicate(self.status()))
        return self.status()

    # ----------------------------------------------------------------------------------
    # The driver

    async def _drive(self) -> None:
        try:
            while not self._stop_driver:
                self._step(time.monotonic())
                delay = self._sleep_time(time.monotonic())
                self._wakeup.clear()
                if self._stop_driver:
                    break
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self._wakeup.wait()
        except Exception:
            logger.exception("supervisor driver failed")
            raise
        finally:
            # Wake waiters so that nobody waits for a dead driver.
            self._fire_changed()

    def _step(self, now: float) -> None:
        for node in list(self._nodes.values()):
            policy = node.policy
            # 1. exits
            if node.handle is not None:
                status = self.backend.poll(node.handle)
                if status is not None:
                    self._exited(node, status, now)
            # 2. readiness
            if (
                node.handle is not None
                and policy.state is ProcessState.PENDING
                and self.backend.is_ready(node.handle)
            ):
                self._execute(node, policy.on_ready(now))
                logger.info("[%s] running (%s)", node.name, self.backend.describe(node.handle))
                if node.unwell:
                    node.unwell = False
                    self._events.node_event(node, "recovered", pid=node.handle.pid)
            # 3. timers
            self._execute(node, policy.on_tick(now))
        # 4. deploys waiting for old processes
        self._release_held(now)
        # 5. forget departed nodes (a change for whoever waits for them to be gone, though
        # no listed node's state changed)
        departed = [
            n.name
            for n in self._nodes.values()
            if n.retiring and n.handle is None and n.policy.state is ProcessState.STOPPED
        ]
        for name in departed:
            del self._nodes[name]
        if departed:
            self._fire_changed()
        self._after_change()

    def _exited(self, node: SupervisedNode, status: ExitStatus, now: float) -> None:
        self._exits.unwatch(node.name)
        expected = node.policy.state is ProcessState.STOPPING
        actions = node.exited(status, now)
        if not expected:
            # Before the actions: a revival truncates the files the evidence comes from.
            self._events.crashed(node, status)
        self._execute(node, actions)

    def _execute(self, node: SupervisedNode, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, Spawn):
                if not node.spawn(self.backend, action.reason):
                    node.unwell = True
                    self._events.node_event(node, "failed")
                elif node.handle is not None:
                    self._exits.watch(node.name, node.handle)
            elif isinstance(action, Signal):
                if node.handle is not None:
                    logger.debug("[%s] > signal %d", node.name, action.sig)
                    self.backend.signal(node.handle, action.sig)

    def _release_held(self, now: float) -> None:
        """Start the nodes a deploy holds back, once no process is stopping any more.

        Nodes kept running by ``keep_unchanged`` do not hold anything back.
        """
        held = [n for n in self._nodes.values() if n.held]
        if not held or any(n.policy.state is ProcessState.STOPPING for n in self._nodes.values()):
            return
        if self.start_order is not None:
            held = self._next_groups(self.start_order, now)
        for node in held:
            node.held = False
            if node.policy.state in (
                ProcessState.STOPPED,
                ProcessState.CRASHED,
                ProcessState.FAILED,
            ):
                self._execute(node, node.policy.start(now))

    def _next_groups(self, order: GroupOrder, now: float) -> list[SupervisedNode]:
        """The held nodes whose start group may go now (zeekctl's order), logged."""
        members = [
            Member(
                n.name,
                startorder.rank(n.spec.role),
                waiting=n.held,
                busy=n.policy.state in (ProcessState.PENDING, ProcessState.CRASHED),
            )
            for n in self._nodes.values()
            if not n.retiring
        ]
        out: list[SupervisedNode] = []
        for group in order.release(members, now):
            if group.overdue:
                logger.warning(
                    "starting %s after %g s without waiting any longer for %s to run",
                    group.group,
                    order.timeout,
                    ", ".join(group.overdue),
                )
            logger.info("starting %s: %s", group.group, ", ".join(group.names))
            out += [self._nodes[name] for name in group.names]
        return out

    def _sleep_time(self, now: float) -> float | None:
        deadlines = [
            d for d in (n.policy.next_deadline() for n in self._nodes.values()) if d is not None
        ]
        if self.start_order is not None and any(n.held for n in self._nodes.values()):
            group_due = self.start_order.next_deadline()
            if group_due is not None:
                deadlines.append(group_due)
        live = [n for n in self._nodes.values() if n.handle is not None]
        if any(n.policy.state is ProcessState.PENDING for n in live):
            deadlines.append(now + self.ready_poll_interval)
        elif any(n.name not in self._exits for n in live):
            deadlines.append(now + self.poll_interval)
        if not deadlines:
            return None
        return max(0.0, min(deadlines) - now)

    # ----------------------------------------------------------------------------------
    # Helpers

    def _command(self, names: Iterable[str] | None) -> tuple[float, list[SupervisedNode]]:
        """The time and the nodes (all for ``None``) of a command, allowed only now that
        the supervisor runs."""
        self._check_running()
        return time.monotonic(), self._select(names)

    def _check_running(self) -> None:
        if self._task is None:
            raise InvalidState("supervisor not started")
        if self._closing:
            raise InvalidState("supervisor is closing")

    def _select(self, names: Iterable[str] | None) -> list[SupervisedNode]:
        if names is None:
            return [n for n in self._nodes.values() if not n.retiring]
        selected = []
        for name in names:
            node = self._nodes.get(NodeName(name))
            if node is None or node.retiring:
                raise NoSuchNode(name)
            selected.append(node)
        return selected

    def _after_change(self) -> None:
        """Persist the table, report state changes, wake the driver."""
        self._persist()
        changed = False
        for node in list(self._nodes.values()):
            for state, pid in node.new_steps():
                changed = True
                if not node.retiring:
                    self._report(node, state, pid)
        if changed:
            self._fire_changed()
        self._wakeup.set()

    def _report(self, node: SupervisedNode, state: ProcessState, pid: int | None) -> None:
        logger.debug("[%s] = %s (pid %s)", node.name, state.name, pid)
        if self.on_state_change is None:
            return
        try:
            self.on_state_change(dataclasses.replace(node.info(), state=state, pid=pid))
        except Exception:
            logger.exception("on_state_change callback failed")

    def _fire_changed(self) -> None:
        # Each waiter holds the event of its generation; replace it, then set the old one.
        event, self._changed = self._changed, asyncio.Event()
        event.set()

    async def _wait_for(self, predicate: Callable[[], bool]) -> None:
        while not predicate():
            if self._task is not None and self._task.done():
                self._task.result()  # re-raise the driver's failure
                raise InvalidState("supervisor is closed")
            await self._changed.wait()

    def _persist(self) -> None:
        """Write the node table if its content changed (called after every step)."""
        self.store.update(
            tuple(
                node.stored()
                for node in self._nodes.values()
                if not (node.retiring and node.handle is None)
            )
        )


def _spec_changes(old: NodeSpec, new: NodeSpec | None) -> list[str]:
    """What differs between two specs of a node, for logs (env by variable name)."""
    if new is None:
        return ["removed"]
    out = [f for f in ("argv", "cwd", "cpu_affinity") if getattr(old, f) != getattr(new, f)]
    keys = set(old.env) | set(new.env)
    out += [f"env {k}" for k in sorted(keys) if old.env.get(k) != new.env.get(k)]
    return out
