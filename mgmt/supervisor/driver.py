"""The supervisor's driver: :class:`NodeDriver`, the one task that owns every node.

Theory of operation
-------------------

Each wake-up the driver

1. polls every live process (``Backend.poll``, one handle at a time: only our own
   children are reaped) and feeds exits to the node's :class:`NodePolicy`;
2. polls the ``.status`` file of PENDING nodes and feeds readiness;
3. ticks every policy (stop escalation, revival back-off) and executes the actions;
4. releases nodes held back by a deploy once no old process is left (group by group
   with a start order, :mod:`mgmt.supervisor.order`);
5. writes the node table if it changed, and reports state changes.

It then sleeps until the earliest policy deadline, or until a command or a process exit
wakes it. Exits are watched with a pidfd per process where the backend offers one
(:mod:`mgmt.supervisor.exitwatch`), so a cluster of RUNNING nodes costs no CPU at all;
otherwise it wakes every ``poll_interval``, and while a node is PENDING (its ``.status``
file is polled) every ``ready_poll_interval`` (20 ms). Each node's record, its policy and
its process, is a :class:`~mgmt.supervisor.node.SupervisedNode`. Spawn failures, whatever
the backend raised, become state (FAILED with a reason), never exceptions: one node's
failure leaves the driver and the others alone.

The command surface (start and adoption, deploy, restart, stop, queries, shutdown) is
:class:`~mgmt.supervisor.service.SupervisorService`, built on this class; commands change
nodes through :meth:`NodeDriver._execute` and end with :meth:`NodeDriver._after_change`.
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
from mgmt.persist.nodetable import NodeTableStore
from mgmt.supervisor.backend import Backend, OsBackend
from mgmt.supervisor.exitwatch import ExitWatcher
from mgmt.supervisor.node import NodeInfo, SupervisedNode
from mgmt.supervisor.nodeevents import NodeEvent, NodeEventRecorder
from mgmt.supervisor.order import GroupOrder, Member
from mgmt.supervisor.policy import (
    Action,
    ExitStatus,
    PolicySettings,
    ProcessState,
    Signal,
    Spawn,
)
from mgmt.typing import NodeName

logger = logging.getLogger("mgmt.supervisor")


class NodeDriver:
    """The nodes, the task that steps them, and how their changes are reported.

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
    # The driver loop

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
