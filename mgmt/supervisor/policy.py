"""The per-node supervision policy: a pure state machine (no clocks, no processes).

Rules / theory of operation
---------------------------

One :class:`NodePolicy` tracks one cluster node. It never touches the OS: the driver
(:mod:`mgmt.supervisor.driver`, with the commands of :mod:`mgmt.supervisor.service`)
feeds it *commands* (:meth:`~NodePolicy.start`, :meth:`~NodePolicy.stop`,
:meth:`~NodePolicy.restart`, :meth:`~NodePolicy.adopt`) and *observations*
(:meth:`~NodePolicy.on_spawned`, :meth:`~NodePolicy.on_spawn_failed`,
:meth:`~NodePolicy.on_ready`, :meth:`~NodePolicy.on_exit`, :meth:`~NodePolicy.on_tick`),
each with the current time ``now`` (seconds on any monotonic clock). Every input returns
the list of :data:`Action` the driver must carry out *now*, in order; after executing a
:class:`Spawn` the driver reports back with ``on_spawned`` or ``on_spawn_failed`` before
feeding anything else. :meth:`~NodePolicy.next_deadline` says when ``on_tick`` has work.

States reuse supervisord's vocabulary, extended for Zeek (DESIGN.md, "Nodes without
Zeek's Supervisor")::

    STOPPED --start--> PENDING --ready--> RUNNING
                        |  ^                 |
          exit/         |  | revival         | exit
          spawn failed  v  | (back-off)      v
    FAILED <------- CRASHED <----------------+
    PENDING/RUNNING --stop--> STOPPING --exit--> STOPPED (or PENDING again on restart)

* PENDING: a process was spawned (or is being spawned) and has not said ``RUNNING`` in its
  ``.status`` file yet (behaviour.md §8.5).
* CRASHED: the process exited without being asked to; it will be revived with Zeek's
  back-off (behaviour.md §6.4): a revival happens once ``now - last_spawn >= delay``;
  before each attempt ``attempts += 1`` and, when ``attempts`` is a multiple of 3, the
  delay doubles (1, 1, 1, 2, 2, 2, 4, ...), up to ``max_revival_delay`` if one is set
  (Zeek has none). Once a process has been up for ``reset_after`` (30 s) the counters
  reset.
* FAILED: we gave up: the spawn itself failed (missing executable, unusable directory), or
  ``max_restarts`` consecutive revivals did not help. Zeek retries forever, which is our
  default too (``max_restarts=None``).
* STOPPING: SIGTERM was sent; it is repeated every ``term_interval`` (2 s) and replaced by
  SIGKILL once ``stop_grace`` (26 s, i.e. Zeek's 13 SIGTERMs) has passed
  (behaviour.md §6.4). ``stop_grace=None`` means SIGTERM forever
  (``ZEEK_SUPERVISOR_NO_SIGKILL``).
* STOPPED: no process, and none wanted. A stopped node is never revived.

Every state change goes through :meth:`NodePolicy._set_state`, which checks
:data:`TRANSITIONS`; an illegal transition raises :class:`~mgmt.exceptions.InvalidState`
and leaves the machine unchanged. Commands that make no sense in the current state (e.g.
``start`` on a running node) raise the same error.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Mapping
from dataclasses import field

from mgmt.core.frozen import frozen
from mgmt.exceptions import InvalidState
from mgmt.typing import NodeName

logger = logging.getLogger("mgmt.supervisor")

#: Signal numbers, as plain ints so that this module needs no ``signal`` import. They are
#: the same on every platform Zeek runs on (POSIX fixes 9 and 15).
SIGKILL = 9
SIGTERM = 15


class ProcessState(enum.Enum):
    """The state of a supervised node (names match ``Management::State`` where they exist)."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    STOPPING = "STOPPING"
    STOPPED = "STOPPED"
    CRASHED = "CRASHED"
    FAILED = "FAILED"


_S = ProcessState

#: Legal transitions: state -> states it may move to.
TRANSITIONS: Mapping[ProcessState, frozenset[ProcessState]] = {
    # start() / adopt()
    _S.STOPPED: frozenset({_S.PENDING}),
    # ready, stop (with or without a pid yet), unexpected exit, spawn failure / give up
    _S.PENDING: frozenset({_S.RUNNING, _S.STOPPING, _S.STOPPED, _S.CRASHED, _S.FAILED}),
    # stop, unexpected exit, give up
    _S.RUNNING: frozenset({_S.STOPPING, _S.CRASHED, _S.FAILED}),
    # the process is gone (a restart then goes STOPPED -> PENDING)
    _S.STOPPING: frozenset({_S.STOPPED}),
    # revival or explicit start, stop, give up
    _S.CRASHED: frozenset({_S.PENDING, _S.STOPPED, _S.FAILED}),
    # explicit start, stop
    _S.FAILED: frozenset({_S.PENDING, _S.STOPPED}),
}

#: States in which the node has (or is getting) a process.
ALIVE_STATES = frozenset({_S.PENDING, _S.RUNNING, _S.STOPPING})


@frozen
class ExitStatus:
    """How a process ended.

    Attributes:
        code: the exit code, if it exited normally and we know it.
        signal: the signal number that killed it, if we know it.

    Both are ``None`` when the process was not our child (adopted), so nobody told us.
    """

    code: int | None = None
    signal: int | None = None

    @classmethod
    def from_returncode(cls, returncode: int) -> ExitStatus:
        """Build from a ``subprocess`` return code (negative means killed by a signal)."""
        if returncode < 0:
            return cls(signal=-returncode)
        return cls(code=returncode)

    def describe(self) -> str:
        """A short text in Zeek's words, e.g. ``exited with status 1``."""
        if self.signal is not None:
            return f"terminated by signal {self.signal}"
        if self.code is not None:
            return f"exited with status {self.code}"
        return "exited (status unknown)"


@frozen
class NodeSpec:
    """What to run for one node.

    Attributes:
        name: the node name; the process's kernel name becomes ``zeek.<name>``.
        argv: the command line, ``argv[0]`` being the executable (a path, or a name looked
            up on ``env["PATH"]``). Executed directly, never through a shell.
        env: the complete environment of the process (nothing is inherited).
        cwd: the node directory, ``<state>/nodes/<name>``; created when missing. The
            node's ``stdout``, ``stderr`` and ``.status`` files live there.
        cpu_affinity: a CPU to pin the process to, or ``None``.
        role: the node's cluster role (``logger``, ``manager``, ``proxy``, ``worker``;
            empty if unknown), for the start and stop order
            (:mod:`mgmt.supervisor.order`). Not part of the spec's identity: a node
            whose role alone changed keeps running.
    """

    name: NodeName
    argv: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict, hash=False)
    cwd: str = "."
    cpu_affinity: int | None = None
    role: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        # Accept lists and dicts from callers but keep immutable copies.
        object.__setattr__(self, "argv", tuple(self.argv))
        object.__setattr__(self, "env", dict(self.env))
        if not self.argv:
            raise ValueError(f"node {self.name}: empty argv")
        if not self.name or "/" in self.name or self.name.startswith("."):
            raise ValueError(f"invalid node name: {self.name!r}")


@frozen(kw_only=True)
class PolicySettings:
    """Timing and retry settings (seconds). Defaults are Zeek's (behaviour.md §6.4);
    ``stop_grace`` has none here: it is the agent's ``stop_grace`` setting.

    Attributes:
        stop_grace: when SIGKILL replaces SIGTERM, counted from the first SIGTERM;
            ``None`` never sends SIGKILL.
        term_interval: how often SIGTERM is repeated while stopping.
        revival_delay: the first revival delay after a crash, counted from the last spawn.
        backoff_every: the delay is multiplied every this many revival attempts.
        backoff_factor: by this factor.
        max_revival_delay: the delay grows no further than this; ``None``: no limit
            (Zeek's).
        reset_after: uptime after which the back-off counters reset.
        max_restarts: consecutive revivals before giving up (FAILED); ``None`` = forever.
    """

    stop_grace: float | None
    term_interval: float = 2.0
    revival_delay: float = 1.0
    backoff_every: int = 3
    backoff_factor: float = 2.0
    max_revival_delay: float | None = None
    reset_after: float = 30.0
    max_restarts: int | None = None


@frozen
class Spawn:
    """Start a process for the node, then report ``on_spawned`` or ``on_spawn_failed``.

    Attributes:
        reason: ``start``, ``restart`` or ``revival`` (for logs).
    """

    reason: str


@frozen
class Signal:
    """Send a signal to the node's current process.

    Attributes:
        sig: the signal number (:data:`SIGTERM` or :data:`SIGKILL`).
    """

    sig: int


#: What the driver must do.
Action = Spawn | Signal


@frozen
class StateChange:
    """A transition that happened, drained with :meth:`NodePolicy.changes`.

    Attributes:
        state: the new state.
        pid: the process id at that moment (``None`` for CRASHED, STOPPED, FAILED).
    """

    state: ProcessState
    pid: int | None


class NodePolicy:
    """The supervision state machine of one node. See the module docstring.

    Args:
        name: the node name (for logs and errors).
        settings: timing and retry settings.

    Attributes (read-only for callers):
        pid: the current process id, ``None`` when there is none (yet).
        spawn_time: ``now`` of the last successful spawn (or the adopted process's start).
        ready_time: ``now`` when the current process became RUNNING.
        last_exit: how the last process ended, ``None`` if none ended yet.
        last_exit_time: ``now`` of that exit.
        restarts: automatic revivals since the last explicit start.
        revival_attempts: consecutive revival attempts (the back-off counter).
        revival_delay: the delay the next revival waits for, counted from ``spawn_time``.
        reason: why the node is FAILED (``None`` otherwise).
    """

    def __init__(self, name: NodeName, settings: PolicySettings) -> None:
        self.name = name
        self.settings = settings
        self._state = ProcessState.STOPPED
        self.pid: int | None = None
        self.spawn_time: float | None = None
        self.ready_time: float | None = None
        self.last_exit: ExitStatus | None = None
        self.last_exit_time: float | None = None
        self.restarts = 0
        self.revival_attempts = 0
        self.revival_delay = self.settings.revival_delay
        self.reason: str | None = None
        # STOPPING bookkeeping.
        self._restart_pending = False
        self._term_next: float | None = None
        self._kill_at: float | None = None
        self._changes: list[StateChange] = []

    # ----------------------------------------------------------------------------------
    # State

    @property
    def state(self) -> ProcessState:
        """The current state."""
        return self._state

    @property
    def restart_pending(self) -> bool:
        """Whether the node will be spawned again as soon as its process exits."""
        return self._restart_pending

    def _set_state(self, new: ProcessState) -> None:
        """The one mutation path of ``state``: validate, log, assign."""
        if new not in TRANSITIONS[self._state]:
            raise InvalidState(
                f"node {self.name}: illegal transition {self._state.name} -> {new.name}"
            )
        logger.debug("[%s] = %s -> %s", self.name, self._state.name, new.name)
        self._state = new
        self._changes.append(StateChange(new, self.pid))

    def changes(self) -> list[StateChange]:
        """The transitions since the last call, oldest first (drained).

        One input can pass through several states (RUNNING -> CRASHED -> PENDING when a
        revival is due at once); this lets the driver report each of them.
        """
        changes, self._changes = self._changes, []
        return changes

    def _reset_backoff(self) -> None:
        self.revival_attempts = 0
        self.revival_delay = self.settings.revival_delay

    def _backoff_is_reset(self) -> bool:
        return self.revival_attempts == 0 and self.revival_delay == self.settings.revival_delay

    # ----------------------------------------------------------------------------------
    # Commands

    def start(self, now: float) -> list[Action]:
        """Start the node (explicitly, so the back-off counters reset).

        Legal in STOPPED, CRASHED and FAILED; raises InvalidState otherwise (use
        :meth:`restart` for a live node).
        """
        if self._state not in (_S.STOPPED, _S.CRASHED, _S.FAILED):
            raise InvalidState(f"node {self.name}: cannot start in state {self._state.name}")
        # STOPPED/CRASHED/FAILED -> PENDING (without a pid until on_spawned)
        self._set_state(_S.PENDING)
        self._reset_backoff()
        self.restarts = 0
        self.reason = None
        return [Spawn("start")]

    def restart(self, now: float) -> list[Action]:
        """Stop the node if it has a process, then spawn it again at once.

        Idempotent while STOPPING (the restart is merely remembered). A node without a
        process is simply started.
        """
        if self._state in (_S.PENDING, _S.RUNNING) and self.pid is not None:
            # PENDING/RUNNING -> STOPPING; on exit -> STOPPED -> PENDING
            actions = self.stop(now)
            self._restart_pending = True
            return actions
        if self._state is _S.STOPPING:
            # STOPPING (no transition): spawn again once the process is gone
            self._restart_pending = True
            return []
        if self._state is _S.PENDING:
            raise InvalidState(f"node {self.name}: restart while its spawn is in progress")
        # STOPPED/CRASHED/FAILED -> PENDING
        return self.start(now)

    def stop(self, now: float) -> list[Action]:
        """Stop the node for good (it is never revived). Idempotent.

        Returns the first SIGTERM when there is a process; later signals come from
        :meth:`on_tick`.
        """
        self._restart_pending = False
        if self._state in (_S.PENDING, _S.RUNNING) and self.pid is not None:
            # PENDING/RUNNING -> STOPPING: first SIGTERM now, escalation in on_tick
            self._set_state(_S.STOPPING)
            self._term_next = now + self.settings.term_interval
            grace = self.settings.stop_grace
            self._kill_at = None if grace is None else now + grace
            return [Signal(SIGTERM)]
        if self._state in (_S.PENDING, _S.CRASHED, _S.FAILED):
            # PENDING (no pid yet) / CRASHED / FAILED -> STOPPED: no process to signal
            self._set_state(_S.STOPPED)
            return []
        # STOPPING / STOPPED: nothing more to do
        return []

    def adopt(self, pid: int, spawn_time: float, ready: bool, now: float) -> list[Action]:
        """Take over a live process started by an earlier supervisor.

        Args:
            pid: its process id (already verified by the caller: alive, same start time).
            spawn_time: when it started, on the same clock as ``now``.
            ready: whether its ``.status`` already says RUNNING.
            now: the current time.

        Legal only in STOPPED (a fresh policy).
        """
        if self._state is not _S.STOPPED:
            raise InvalidState(f"node {self.name}: cannot adopt in state {self._state.name}")
        # STOPPED -> PENDING (-> RUNNING if it is ready already)
        self.pid = pid
        self.spawn_time = spawn_time
        self.ready_time = None
        self._set_state(_S.PENDING)
        if ready:
            self._set_state(_S.RUNNING)
            self.ready_time = now
        return []

    # ----------------------------------------------------------------------------------
    # Observations

    def on_spawned(self, pid: int, now: float) -> list[Action]:
        """The driver executed :class:`Spawn` and the process runs as ``pid``."""
        if self._state is not _S.PENDING or self.pid is not None:
            raise InvalidState(f"node {self.name}: unexpected spawn in state {self._state.name}")
        # PENDING (no transition): now with a pid, waiting for readiness
        self.pid = pid
        self.spawn_time = now
        self.ready_time = None
        return []

    def on_spawn_failed(self, reason: str, now: float) -> list[Action]:
        """The driver could not execute :class:`Spawn`; the node is FAILED."""
        if self._state is not _S.PENDING or self.pid is not None:
            raise InvalidState(
                f"node {self.name}: unexpected spawn failure in state {self._state.name}"
            )
        # PENDING -> FAILED: retrying an unusable executable or directory is pointless
        self._set_state(_S.FAILED)
        self.reason = reason
        return []

    def on_ready(self, now: float) -> list[Action]:
        """The process's ``.status`` says RUNNING.

        No-op in RUNNING and STOPPING (late observations); InvalidState without a process.
        """
        if self._state is _S.PENDING and self.pid is not None:
            # PENDING -> RUNNING
            self._set_state(_S.RUNNING)
            self.ready_time = now
            return []
        if self._state in (_S.RUNNING, _S.STOPPING):
            return []
        raise InvalidState(f"node {self.name}: ready in state {self._state.name}")

    def on_exit(self, status: ExitStatus, now: float) -> list[Action]:
        """The current process is gone.

        Expected while STOPPING (-> STOPPED, or a fresh spawn after :meth:`restart`);
        otherwise a crash (-> CRASHED, or FAILED past ``max_restarts``).
        """
        if self._state not in ALIVE_STATES or self.pid is None:
            raise InvalidState(f"node {self.name}: exit in state {self._state.name}")
        logger.debug("[%s] = pid %d %s", self.name, self.pid, status.describe())
        self.pid = None
        self.last_exit = status
        self.last_exit_time = now
        if self._state is _S.STOPPING:
            self._term_next = self._kill_at = None
            # STOPPING -> STOPPED
            self._set_state(_S.STOPPED)
            if self._restart_pending:
                self._restart_pending = False
                # STOPPED -> PENDING: "nodes that were restarted are respawned at once"
                self._set_state(_S.PENDING)
                self._reset_backoff()
                self.restarts = 0
                return [Spawn("restart")]
            return []
        # PENDING/RUNNING: premature exit. A process that was up long enough would have
        # had its counters reset by on_tick; do it here too in case no tick came.
        if self.spawn_time is not None and now - self.spawn_time >= self.settings.reset_after:
            self._reset_backoff()
        limit = self.settings.max_restarts
        if limit is not None and self.revival_attempts >= limit:
            # PENDING/RUNNING -> FAILED: the retry budget is spent
            self._set_state(_S.FAILED)
            self.reason = f"{status.describe()}; gave up after {self.revival_attempts} restarts"
            return []
        # PENDING/RUNNING -> CRASHED, and maybe revived at once if the delay has passed
        self._set_state(_S.CRASHED)
        return self.on_tick(now)

    def on_tick(self, now: float) -> list[Action]:
        """Let time pass: stop escalation, revival, back-off reset. Call at least at
        :meth:`next_deadline` (calling more often is harmless)."""
        s = self.settings
        if self._state is _S.STOPPING:
            if self._kill_at is not None and now >= self._kill_at:
                # STOPPING (no transition): grace is over; SIGKILL, repeated while the
                # process lingers (e.g. in uninterruptible sleep)
                self._kill_at = now + s.term_interval
                self._term_next = None
                return [Signal(SIGKILL)]
            if self._term_next is not None and now >= self._term_next:
                # STOPPING (no transition): SIGTERM again
                self._term_next = now + s.term_interval
                return [Signal(SIGTERM)]
            return []
        if self._state is _S.CRASHED:
            assert self.spawn_time is not None
            if now - self.spawn_time < self.revival_delay:
                return []
            # CRASHED -> PENDING: Zeek's stem revival (Supervisor.cc): count the attempt,
            # double the delay every ``backoff_every`` attempts, respawn
            self.revival_attempts += 1
            if self.revival_attempts % s.backoff_every == 0:
                self.revival_delay *= s.backoff_factor
                if s.max_revival_delay is not None:
                    self.revival_delay = min(self.revival_delay, s.max_revival_delay)
            self.restarts += 1
            self._set_state(_S.PENDING)
            return [Spawn("revival")]
        if (
            self._state in (_S.PENDING, _S.RUNNING)
            and self.spawn_time is not None
            and now - self.spawn_time >= s.reset_after
            and not self._backoff_is_reset()
        ):
            # PENDING/RUNNING (no transition): up long enough, forget the crash history
            self._reset_backoff()
        return []

    def next_deadline(self) -> float | None:
        """When :meth:`on_tick` next has something to do, or ``None``."""
        if self._state is _S.STOPPING:
            deadlines = [d for d in (self._term_next, self._kill_at) if d is not None]
            return min(deadlines) if deadlines else None
        if self._state is _S.CRASHED:
            assert self.spawn_time is not None
            return self.spawn_time + self.revival_delay
        if (
            self._state in (_S.PENDING, _S.RUNNING)
            and self.spawn_time is not None
            and not self._backoff_is_reset()
        ):
            return self.spawn_time + self.settings.reset_after
        return None
