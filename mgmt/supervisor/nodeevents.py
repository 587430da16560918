"""What happened to a node, reported in order after its evidence is kept.

:class:`NodeEvent` kinds (the words the notification hook gets in ``ZEEK_MGMT_EVENT``):

* ``crashed`` -- the process exited without being asked to; it will be revived;
* ``gave-up`` -- the same, but it will not be revived: ``max_restarts`` consecutive
  revivals did not help (the node is FAILED);
* ``failed`` -- no process could be started at all (FAILED: a missing executable, an
  unusable node directory);
* ``recovered`` -- a node that crashed, gave up or failed is RUNNING again.

A requested stop or restart (the node was STOPPING when its process ended) is none of
them, and leaves no crash directory.

:class:`NodeEventRecorder` takes the events from the supervisor's driver as they happen.
For a crash it writes the crash directory (:mod:`mgmt.supervisor.crashdirs`) from the
snapshot the driver took, in a worker thread so that the event loop is not held up by
the disk, keeps the newest ``keep`` and removes older ones; then it reports the event
with ``crash_dir`` set. Events are reported one at a time, in the order they happened, so
a ``recovered`` never overtakes the ``crashed`` before it.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
import time
from collections.abc import Callable
from pathlib import Path

from mgmt.core.frozen import frozen
from mgmt.supervisor.crashdirs import CrashSnapshot, prune, take_snapshot, write_crash_dir
from mgmt.supervisor.node import SupervisedNode
from mgmt.supervisor.policy import ExitStatus, ProcessState
from mgmt.typing import NodeName

logger = logging.getLogger("mgmt.supervisor")

#: Crash snapshots waiting to be written at most (each holds up to 128 KiB of output);
#: beyond that a crash is reported without a directory (and logged).
MAX_WAITING = 64


@frozen
class NodeEvent:
    """One thing that happened to a node (see the module docstring).

    Attributes:
        kind: ``crashed``, ``gave-up``, ``failed`` or ``recovered``.
        node: the node's name.
        time: when (seconds since the epoch).
        pid: the process that ended (crashed, gave-up) or runs now (recovered).
        exit_status: how it ended (crashed, gave-up).
        restarts: automatic revivals since the node was last started on request.
        reason: why the node is FAILED (gave-up, failed).
        crash_dir: the crash directory written for it, if any.
    """

    kind: str
    node: NodeName
    time: float
    pid: int | None = None
    exit_status: ExitStatus | None = None
    restarts: int = 0
    reason: str | None = None
    crash_dir: Path | None = None


class NodeEventRecorder:
    """Writes crash directories and reports node events, in order (module docstring).

    Args:
        keep: crash directories kept per node (0: none are written).
        on_event: called with each event, in the event loop; exceptions are logged.
    """

    def __init__(self, keep: int, on_event: Callable[[NodeEvent], None] | None) -> None:
        self.keep = keep
        self.on_event = on_event
        self._queue: collections.deque[tuple[NodeEvent, CrashSnapshot | None]] = collections.deque()
        self._task: asyncio.Task[None] | None = None

    @property
    def keeps_crashes(self) -> bool:
        """Whether crash directories are written (``keep`` > 0)."""
        return self.keep > 0

    def crashed(self, node: SupervisedNode, status: ExitStatus) -> None:
        """The node's process exited unexpectedly (``node.exited`` was told): take the
        snapshot of its evidence now, before a revival truncates its files, and report
        ``crashed`` (``gave-up`` if it is FAILED now)."""
        crash = node.last_crash
        if crash is None:
            return
        gave_up = node.policy.state is ProcessState.FAILED
        snapshot = None
        if self.keeps_crashes:
            snapshot = take_snapshot(crash, gave_up=gave_up)
        kind = "gave-up" if gave_up else "crashed"
        self.node_event(node, kind, pid=crash.pid, exit_status=status, snapshot=snapshot)

    def node_event(
        self,
        node: SupervisedNode,
        kind: str,
        *,
        pid: int | None = None,
        exit_status: ExitStatus | None = None,
        snapshot: CrashSnapshot | None = None,
    ) -> None:
        """Report that ``kind`` happened to ``node`` now."""
        p = node.policy
        event = NodeEvent(kind, node.name, time.time(), pid, exit_status, p.restarts, p.reason)
        self.report(event, snapshot)

    def report(self, event: NodeEvent, snapshot: CrashSnapshot | None = None) -> None:
        """Record ``event`` (with the evidence of a crash); returns at once."""
        waiting = sum(1 for _, s in self._queue if s is not None)
        if snapshot is not None and waiting >= MAX_WAITING:
            logger.warning("[%s] crash not kept: %d wait to be written", event.node, waiting)
            snapshot = None
        self._queue.append((event, snapshot))
        if self._task is None or self._task.done():
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # a synchronous caller: no thread to hand the work to
                while self._queue:
                    self._emit(self._written(*self._queue.popleft()))
                return
            self._task = loop.create_task(self._drain(), name="mgmt.supervisor.node-events")

    async def _drain(self) -> None:
        while self._queue:
            event, snapshot = self._queue.popleft()
            if snapshot is not None:
                event = await asyncio.to_thread(self._written, event, snapshot)
            self._emit(event)

    def _written(self, event: NodeEvent, snapshot: CrashSnapshot | None) -> NodeEvent:
        """Write the crash directory and prune (in a worker thread); the event with it."""
        if snapshot is None:
            return event
        try:
            path = write_crash_dir(snapshot)
        except OSError as exc:
            logger.warning(
                "[%s] cannot keep the crash's evidence in %s: %s",
                event.node,
                snapshot.node_dir,
                exc.strerror or exc,
            )
            return event
        logger.info("[%s] crash evidence kept in %s", event.node, path)
        for old in prune(snapshot.node_dir, keep=self.keep):
            logger.debug("[%s] removed old crash directory %s", event.node, old)
        return dataclasses.replace(event, crash_dir=path)

    def _emit(self, event: NodeEvent) -> None:
        if self.on_event is None:
            return
        try:
            self.on_event(event)
        except Exception:
            logger.exception("node event callback failed")

    async def close(self, grace: float = 10.0) -> None:
        """Finish the waiting work (at most ``grace`` seconds), then stop."""
        task = self._task
        if task is None or task.done():
            return
        try:
            async with asyncio.timeout(grace):
                await asyncio.shield(task)
        except TimeoutError:
            logger.warning("node events still waiting at shutdown: %d", len(self._queue))
            task.cancel()
