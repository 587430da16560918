"""The supervisor driver's record of one node: policy, process handle, bookkeeping.

:class:`SupervisedNode` joins a node's pure :class:`~mgmt.supervisor.policy.NodePolicy`
to its process (through the :class:`~mgmt.supervisor.backend.Backend`): it spawns, takes
note of exits, and says what the node table stores and what :class:`NodeInfo` shows.
The driver (:mod:`mgmt.supervisor.driver`) decides when.
"""

from __future__ import annotations

import logging
import time

from mgmt.core.frozen import frozen
from mgmt.exceptions import SpawnError
from mgmt.persist.nodetable import Intent, StoredNode
from mgmt.supervisor.backend import Backend, Handle
from mgmt.supervisor.crashdirs import LastCrash
from mgmt.supervisor.nodefiles import read_outputs
from mgmt.supervisor.policy import (
    Action,
    ExitStatus,
    NodePolicy,
    NodeSpec,
    PolicySettings,
    ProcessState,
)
from mgmt.typing import NodeName

logger = logging.getLogger("mgmt.supervisor")

#: States in which the outcome of the last command is known (see ``wait_settled``).
SETTLED_STATES = frozenset(
    {ProcessState.RUNNING, ProcessState.STOPPED, ProcessState.CRASHED, ProcessState.FAILED}
)

_WANTED_RUNNING = frozenset({ProcessState.PENDING, ProcessState.RUNNING, ProcessState.CRASHED})


@frozen
class NodeInfo:
    """A snapshot of one supervised node.

    Attributes:
        name: the node name.
        state: its state. A node waiting for a deploy's old processes to exit is reported
            PENDING.
        pid: the current process id, if any.
        exit_status: how the previous process ended (``ExitStatus()`` with both fields
            ``None`` if it was adopted and its status is unknown), or ``None``.
        exit_time: when that happened (seconds since the epoch).
        restarts: automatic revivals since the node was last started on request.
        started_at: when the current (or last) process started (seconds since the epoch).
        reason: why the node is FAILED, else ``None``.
        adopted: whether the current process was adopted from an earlier supervisor.
        spec: the node's spec (the one used for its next spawn).
        last_crash: its last unexpected exit while this supervisor ran, if any.
    """

    name: NodeName
    state: ProcessState
    pid: int | None
    exit_status: ExitStatus | None
    exit_time: float | None
    restarts: int
    started_at: float | None
    reason: str | None
    adopted: bool
    spec: NodeSpec
    last_crash: LastCrash | None = None


class SupervisedNode:
    """The driver's record of one node (mutable; owned by the driver)."""

    __slots__ = (
        "spec",
        "proc_spec",
        "policy",
        "handle",
        "held",
        "user_stopped",
        "retiring",
        "started_at",
        "exit_time",
        "exit_outputs",
        "reported",
        "last_crash",
        "unwell",
    )

    def __init__(self, spec: NodeSpec, settings: PolicySettings) -> None:
        self.spec = spec
        #: The spec the current process was started from.
        self.proc_spec: NodeSpec | None = None
        self.policy = NodePolicy(spec.name, settings)
        self.handle: Handle | None = None
        #: Waiting to be started until the deploy's old processes are gone.
        self.held = False
        #: Stopped by a user (``zeek-mgmt stop``): stays STOPPED until started.
        self.user_stopped = False
        #: Left the deployment; forgotten once STOPPED.
        self.retiring = False
        self.started_at: float | None = None
        self.exit_time: float | None = None
        #: stdout/stderr of the last process that exited unexpectedly, read before a
        #: revival truncates the files; cleared by deploy and restart.
        self.exit_outputs: tuple[str, str] | None = None
        #: The last (state, pid) reported to the supervisor's callback.
        self.reported: tuple[ProcessState, int | None] | None = None
        #: The last unexpected exit.
        self.last_crash: LastCrash | None = None
        #: Crashed, gave up or failed, and not RUNNING since (a recovery is news).
        self.unwell = False

    @property
    def name(self) -> NodeName:
        """The node's name."""
        return self.spec.name

    def visible_state(self) -> ProcessState:
        """The state callers see: PENDING while held back by a deploy."""
        return ProcessState.PENDING if self.held else self.policy.state

    def info(self) -> NodeInfo:
        """A snapshot for callers."""
        p = self.policy
        return NodeInfo(
            name=self.name,
            state=self.visible_state(),
            pid=p.pid,
            exit_status=p.last_exit,
            exit_time=self.exit_time,
            restarts=p.restarts,
            started_at=self.started_at,
            reason=p.reason,
            adopted=self.handle is not None and self.handle.adopted,
            spec=self.spec,
            last_crash=self.last_crash,
        )

    def new_steps(self) -> list[tuple[ProcessState, int | None]]:
        """The (state, pid) steps the node went through since this was last called, as
        callers see them (a node held back by a deploy is just PENDING: its old
        process's STOPPING/STOPPED are not its story)."""
        steps = [(c.state, c.pid) for c in self.policy.changes()]
        if self.held:
            steps = []
        steps.append((self.visible_state(), self.policy.pid))
        new = []
        for step in steps:
            if self.reported != step:
                self.reported = step
                new.append(step)
        return new

    def intent(self) -> Intent:
        """What a later supervisor should do with the node (stored in the node table)."""
        if self.retiring:
            return Intent.REMOVE
        if self.user_stopped:
            return Intent.HOLD
        p = self.policy
        if self.held or p.restart_pending or p.state in _WANTED_RUNNING:
            return Intent.RUN
        return Intent.STOP

    def stored(self) -> StoredNode:
        """The node's row in the node table."""
        handle = self.handle
        return StoredNode(
            spec=self.spec,
            intent=self.intent(),
            pid=None if handle is None else handle.pid,
            create_time=None if handle is None else handle.create_time,
            current=self.proc_spec is self.spec or self.proc_spec == self.spec,
        )

    def adopt(self, handle: Handle, current: bool, backend: Backend, now: float) -> None:
        """Take over a live process an earlier supervisor started (``current``: from this
        spec); ``now`` is monotonic, the process's start time is on the wall clock."""
        self.handle = handle
        self.proc_spec = self.spec if current else None
        self.started_at = handle.create_time
        spawn_time = now - max(0.0, time.time() - handle.create_time)
        self.policy.adopt(handle.pid, spawn_time, backend.is_ready(handle), now)
        logger.info("[%s] adopted %s", self.name, backend.describe(handle))

    def spawn(self, backend: Backend, reason: str) -> bool:
        """Start a process for the node (the policy's ``Spawn``) and report the outcome to
        the policy. A failure, whatever the backend raised, makes the node FAILED.

        Returns:
            Whether a process was started.
        """
        try:
            handle = backend.spawn(self.spec)
        except SpawnError as exc:
            logger.warning("[%s] %s", self.name, exc)
            self.policy.on_spawn_failed(exc.reason, time.monotonic())
            return False
        except Exception as exc:
            # A backend bug, or a value it did not expect: this node fails, the driver
            # and every other node carry on.
            logger.exception("[%s] spawn failed unexpectedly", self.name)
            reason = f"cannot start node: {type(exc).__name__}: {exc}"
            self.policy.on_spawn_failed(reason, time.monotonic())
            return False
        self.handle = handle
        self.proc_spec = self.spec
        self.started_at = time.time()
        # Back-off counts from when the process exists, i.e. after the fork.
        self.policy.on_spawned(handle.pid, time.monotonic())
        logger.info("[%s] started (%s): %s", self.name, reason, backend.describe(handle))
        return True

    def exited(self, status: ExitStatus, now: float) -> list[Action]:
        """The node's process is gone: forget it, keep what a crashed one said, and
        return what the policy wants done now."""
        assert self.handle is not None
        pid = self.handle.pid
        self.handle = None
        spec, self.proc_spec = self.proc_spec or self.spec, None
        self.exit_time = time.time()
        if self.policy.state is ProcessState.STOPPING:
            logger.info("[%s] pid %d stopped: %s", self.name, pid, status.describe())
        else:
            # Keep what the dead process said: an immediate revival truncates the files.
            self.exit_outputs = read_outputs(self.spec.cwd)
            self.last_crash = LastCrash(
                status, self.exit_time, pid, self.started_at, self.policy.restarts, spec
            )
            self.unwell = True
            # Zeek: "Supervised node '<n>' (PID <pid>) exited prematurely with status <s>"
            logger.warning("[%s] pid %d %s prematurely", self.name, pid, status.describe())
        return self.policy.on_exit(status, now)
