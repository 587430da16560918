"""The supervisor's command surface: :class:`SupervisorService`.

Theory of operation
-------------------

The nodes and the task that steps them are the driver's
(:class:`~mgmt.supervisor.driver.NodeDriver`); this class adds what callers do with them.
:meth:`~SupervisorService.start` adopts the nodes a previous supervisor left running
and starts the driver. Commands (:meth:`~SupervisorService.deploy`,
:meth:`~SupervisorService.restart`, :meth:`~SupervisorService.stop`,
:meth:`~SupervisorService.start_nodes`) are synchronous: they run in the event loop's
thread, apply the policy at once (sending the first SIGTERM or spawning right away), and
return; :meth:`~SupervisorService.wait_settled` awaits the outcome.

Shutdown is one ordered path, :meth:`~SupervisorService.close`: refuse new commands; then
either stop every node (SIGTERM, escalating to SIGKILL after the grace period; in the
reverse start order if there is one) and wait until all processes are gone, or, with
``keep_nodes``, release them; write the table; end the driver.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable

from mgmt.core import startorder
from mgmt.exceptions import InvalidState
from mgmt.persist.nodetable import Intent, StoredNode
from mgmt.supervisor.driver import NodeDriver
from mgmt.supervisor.node import SETTLED_STATES, NodeInfo, SupervisedNode
from mgmt.supervisor.nodefiles import read_outputs
from mgmt.supervisor.order import GroupOrder, Member
from mgmt.supervisor.policy import NodeSpec, ProcessState
from mgmt.typing import NodeName

logger = logging.getLogger("mgmt.supervisor")


class SupervisorService(NodeDriver):
    """Runs Zeek cluster nodes as child processes, zeekctl style.

    Constructed with the driver's arguments (:class:`~mgmt.supervisor.driver.NodeDriver`):
    the state directory, the policy settings, the backend and the callbacks.
    """

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


def _spec_changes(old: NodeSpec, new: NodeSpec | None) -> list[str]:
    """What differs between two specs of a node, for logs (env by variable name)."""
    if new is None:
        return ["removed"]
    out = [f for f in ("argv", "cwd", "cpu_affinity") if getattr(old, f) != getattr(new, f)]
    keys = set(old.env) | set(new.env)
    out += [f"env {k}" for k in sorted(keys) if old.env.get(k) != new.env.get(k)]
    return out
