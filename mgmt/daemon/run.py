"""``zeek-mgmt run``: the quickstart, like ``zeek -j policy/frameworks/management/...``.

A small process supervisor (kernel name ``zeek``) with two children, the controller
(``zeek.<controller name>``) and the agent (``zeek.<agent name>``). Each child is
restarted with back-off when it dies, without disturbing the other or the cluster nodes,
which are the agent's children and are adopted by the next agent. The back-off is the
node supervisor's pure :class:`~mgmt.supervisor.policy.NodePolicy` with :data:`RUN_POLICY`:
a restart 1 s after the last start, the delay doubling with every restart up to 30 s,
reset after 30 s up. SIGTERM/SIGINT stop the agent first (which stops its nodes), then
the controller; a child still running 60 s after its SIGTERM is killed.

A child that exits with :data:`~mgmt.daemon.exitstatus.EXIT_FATAL` (its settings are invalid,
a state file is corrupt, another instance uses the state directory, its port is taken)
is not restarted: a restart cannot fix that, and restarting, say, an agent that cannot
bind its port in a loop only hides the problem. ``run`` then stops the other child too
(the agent first, which stops its nodes) and exits with ``EXIT_FATAL``: the quickstart
is one unit, and half of it running is not what the operator asked for; they read the
error, fix it and start ``run`` again. A child that cannot even be started (the policy's
FAILED: no Python, no processes left) stops ``run`` the same way, with exit status 1.

The children get the same settings flags (``--settings-file``, ``--state-dir``, ``--spool-dir``,
``--log-level``, ``--set``) and the same environment; the agent also learns the
controller's name and pid file so that get-nodes lists the controller, as Zeek does.

Theory of operation
-------------------
This process imports the controller's and the agent's code once, moves it out of the
garbage collector's reach (``gc.freeze()``) and forks each child from there without
``exec`` (:mod:`mgmt.daemon.forking`): a child starts in milliseconds instead of a
second interpreter start-up and import, and the pages none of the three processes
writes stay shared (about half of the imported heap: a child writes into the objects it
uses, through their reference counts and the interpreter's specialisation of the code
it runs, and gets its own copy of those pages). This process
itself never runs that code: it only forks, waits and signals (no event loop, no
threads), so each child begins clean and sets up its own logging, signal handlers, state
directory lock and event loop, as an executed daemon does. A restart forks again from
the same clean state. Since a forked child starts with the command line it shares with
``run``, ``run`` first makes room for the children's titles
(:func:`~mgmt.daemon.procname.make_title_room`): a child whose title does not fit moves
its command line to a buffer of its own, or, where the kernel refuses that, ``run``
re-executes itself once with a command line padded to what the titles need.

One loop sleeps in ``select()`` on a self-pipe that Python's signal wake-up fd writes to,
so SIGCHLD (a child died), SIGTERM and SIGINT wake it at once, and a pending restart
wakes it by timeout. Signal handlers only set flags (a SIGCHLD handler exists just so
that the wake-up fd is written). Only our own two children are reaped, each with its
``poll()``. In a child, the handlers and the wake-up fd are put back as they were before
``run`` installed them, and the self-pipe is closed.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import gc
import importlib
import logging
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

from mgmt.agent import ENV_CONTROLLER_NAME, ENV_CONTROLLER_PIDFILE
from mgmt.daemon.exitstatus import EXIT_FATAL, start_up_failed
from mgmt.daemon.forking import ForkedProcess, fork_call
from mgmt.daemon.procname import (
    ENV_RUN_PARENT,
    make_title_room,
    set_process_title,
    title_length,
)
from mgmt.exceptions import ConfigError
from mgmt.settings.flags import add_settings_flags, settings_from_args
from mgmt.settings.model import AgentSettings, ControllerSettings
from mgmt.supervisor.policy import Action, ExitStatus, NodePolicy, PolicySettings, Spawn
from mgmt.typing import NodeName

log = logging.getLogger("mgmt.daemon.run")

#: The supervision of a child: restarts 1 s after the last start, the delay doubling with
#: every restart up to 30 s, reset after 30 s up; on stop, SIGTERM and, 60 s later,
#: SIGKILL (SIGTERM is not repeated: a daemon shutting down needs only one).
RUN_POLICY = PolicySettings(
    stop_grace=60.0,
    term_interval=60.0,
    revival_delay=1.0,
    backoff_every=1,
    backoff_factor=2.0,
    max_revival_delay=30.0,
    reset_after=30.0,
)

_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD)
#: The daemons' entry modules, imported by ``run`` before it forks them.
_DAEMON_MODULES = ("mgmt.controller.main", "mgmt.agent.main")
#: What both daemons' start-ups import on their way to their first connection (the
#: codec of host names for bind and connect, the executor's thread pool): imported
#: before the fork too, so the children share them instead of each loading its own.
_START_UP_MODULES = ("encodings.idna", "concurrent.futures.thread")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``zeek-mgmt run``: the settings shared by controller and agent."""
    add_settings_flags(parser, "both")


def passthrough_flags(args: argparse.Namespace) -> list[str]:
    """The settings flags given to ``run``, to hand on to both children."""
    out: list[str] = []
    for dest, flag in (
        ("settings_config", "--settings-file"),
        ("settings_state_dir", "--state-dir"),
        ("settings_spool_dir", "--spool-dir"),
        ("settings_log_level", "--log-level"),
    ):
        value = getattr(args, dest, None)
        if value is not None:
            out += [flag, str(value)]
    for entry in getattr(args, "settings_set", None) or []:
        out += ["--set", entry]
    return out


class Child:
    """One supervised daemon process, its restarts decided by a :class:`NodePolicy`.

    Args:
        role: ``controller`` or ``agent`` (for logs).
        argv: its command line (executed unless ``target`` is given).
        env: its environment.
        policy: the supervision timing (default :data:`RUN_POLICY`).
        clock: monotonic clock (injectable).
        target: run this in a forked child instead of executing ``argv`` (its return
            value is the child's exit status; ``env`` is the child's to apply).

    Attributes:
        proc: the running process, if any.
        fatal: it exited with ``EXIT_FATAL`` (then it is not restarted).
        failed: it could not be started (then neither).
    """

    def __init__(
        self,
        role: str,
        argv: list[str],
        env: dict[str, str],
        policy: PolicySettings = RUN_POLICY,
        clock: Callable[[], float] = time.monotonic,
        *,
        target: Callable[[], int] | None = None,
    ) -> None:
        self.role = role
        self.argv = argv
        self.env = env
        self.policy = NodePolicy(NodeName(role), policy)
        self.clock = clock
        self.target = target
        #: Called first thing in a forked child (the supervisor undoes its own set-up).
        self.after_fork: Callable[[], None] = lambda: None
        self.proc: subprocess.Popen[bytes] | ForkedProcess | None = None
        self.fatal = False
        self.failed = False

    @property
    def restarts(self) -> int:
        """How many times it was restarted after dying."""
        return self.policy.restarts

    def next_deadline(self) -> float | None:
        """When :meth:`tick` has something to do (a restart, a back-off reset)."""
        return self.policy.next_deadline()

    def start(self, now: float) -> None:
        """Start the process."""
        self._execute(self.policy.start(now), now)

    def tick(self, now: float) -> None:
        """Let time pass: restart the process when its back-off delay is over."""
        self._execute(self.policy.on_tick(now), now)

    def _execute(self, actions: list[Action], now: float) -> None:
        for action in actions:
            if isinstance(action, Spawn):
                self._spawn(now)
            elif self.proc is not None:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.send_signal(action.sig)

    def _spawn(self, now: float) -> None:
        try:
            if self.target is None:
                self.proc = subprocess.Popen(self.argv, env=self.env, stdin=subprocess.DEVNULL)
            else:
                # Blocked across the fork: a signal for the child that arrives before it
                # has put back its own handling waits for it instead of meeting run's
                # flag-only handlers (a SIGTERM would be lost).
                mask = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
                try:
                    self.proc = fork_call(functools.partial(self._forked, mask))
                finally:
                    signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        except OSError as exc:
            log.error("cannot start %s: %s", self.role, exc)
            self.policy.on_spawn_failed(str(exc), now)
            self.failed = True
            return
        self.policy.on_spawned(self.proc.pid, now)
        self.policy.on_ready(now)  # a daemon has no readiness to wait for here
        log.info("started %s, pid %d", self.role, self.proc.pid)

    def _forked(self, mask: set[int | signal.Signals]) -> int:
        """The child's side of a fork: undo the supervisor's set-up, unblock the signals
        (``mask``: those blocked before the fork), run the target."""
        assert self.target is not None
        self.after_fork()
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        return self.target()

    def reap(self, now: float) -> None:
        """If the process exited, log it and let the policy schedule its restart
        (non-blocking)."""
        if self.proc is None:
            return
        code = self.proc.poll()
        if code is None:
            return
        self.proc = None
        uptime = now - (self.policy.spawn_time or now)
        actions = self.policy.on_exit(ExitStatus.from_returncode(code), now)
        if code == EXIT_FATAL:
            log.error(
                "%s failed with a start-up error that a restart cannot fix (exit status %d, "
                "see its error above); not restarting it",
                self.role,
                code,
            )
            self.fatal = True
            self.policy.stop(now)  # forget the restart the policy may have asked for
            return
        deadline = self.policy.next_deadline()
        log.warning(
            "%s exited with status %s after %.1f s; restarting in %.0f s",
            self.role,
            code,
            uptime,
            0.0 if actions or deadline is None else max(0.0, deadline - now),
        )
        self._execute(actions, now)

    def stop(self) -> None:
        """SIGTERM and wait; SIGKILL when the policy's grace is over. Idempotent."""
        self._execute(self.policy.stop(self.clock()), self.clock())
        while self.proc is not None:
            deadline = self.policy.next_deadline()
            timeout = None if deadline is None else max(0.0, deadline - self.clock())
            try:
                code = self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                grace = self.policy.settings.stop_grace
                log.warning("%s did not stop in %.0f s, killing it", self.role, grace)
                self.tick(self.clock())
                continue
            self.proc = None
            self.policy.on_exit(ExitStatus.from_returncode(code), self.clock())


class RunSupervisor:
    """Runs and restarts the controller and the agent until asked to stop.

    Args:
        children: started in this order, stopped in reverse order.
        clock: monotonic clock (injectable).
    """

    def __init__(self, children: list[Child], clock: Callable[[], float] = time.monotonic):
        self.children = children
        self._clock = clock
        self._shutdown = False
        #: The exit status of :meth:`run`: 0, or ``EXIT_FATAL`` after a fatal child.
        self.status = 0
        self._pipe: tuple[int, int] | None = None
        self._previous: dict[signal.Signals, Any] = {}
        for child in children:
            child.after_fork = self._undo_in_child

    def request_shutdown(self) -> None:
        """Stop everything (idempotent; used by the signal handlers)."""
        self._shutdown = True

    def _undo_in_child(self) -> None:
        """In a forked child: the signal handling from before :meth:`run`, no self-pipe."""
        signal.set_wakeup_fd(-1)
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        for fd in self._pipe or ():
            os.close(fd)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if signum != signal.SIGCHLD:
            self.request_shutdown()

    def next_timeout(self, now: float) -> float | None:
        """Seconds until a child's policy has something to do, or ``None``."""
        due = [d for d in (c.next_deadline() for c in self.children) if d is not None]
        return None if not due else max(0.0, min(due) - now)

    def step(self, now: float) -> None:
        """Reap exited children and restart those whose back-off is over."""
        for child in self.children:
            child.reap(now)
            if child.fatal or child.failed:
                self.status = EXIT_FATAL if child.fatal else 1
                self.request_shutdown()
                continue
            child.tick(now)

    def run(self) -> int:
        """Start the children and supervise them until shutdown, then stop them in order.

        Must run in the main thread (it installs signal handlers, restored on return).

        Returns:
            0 after a requested shutdown, ``EXIT_FATAL`` after a child's fatal error, 1
            when a child could not be started.
        """
        rfd, wfd = self._pipe = os.pipe()
        os.set_blocking(rfd, False)
        os.set_blocking(wfd, False)
        previous = self._previous = {sig: signal.signal(sig, self._on_signal) for sig in _SIGNALS}
        old_wakeup = signal.set_wakeup_fd(wfd, warn_on_full_buffer=False)
        try:
            now = self._clock()
            for child in self.children:
                child.start(now)
            while not self._shutdown:
                self.step(self._clock())
                if self._shutdown:
                    break
                # A signal between step() and select() still wakes us: the wake-up fd is
                # written by the C-level handler.
                select.select([rfd], [], [], self.next_timeout(self._clock()))
                with contextlib.suppress(BlockingIOError):
                    while os.read(rfd, 512):
                        pass
        finally:
            # Agent first (it stops its nodes), then the controller.
            for child in reversed(self.children):
                child.stop()
            signal.set_wakeup_fd(old_wakeup)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            os.close(rfd)
            os.close(wfd)
            self._pipe = None
        return self.status


def run(args: argparse.Namespace) -> int:
    """Run controller and agent until SIGTERM/SIGINT (0), or until one of them fails
    fatally (``EXIT_FATAL``)."""
    try:
        controller, _ = settings_from_args("controller", args)
        agent, _ = settings_from_args("agent", args)
    except ConfigError as exc:
        return start_up_failed("run", str(exc))
    assert isinstance(controller, ControllerSettings) and isinstance(agent, AgentSettings)
    flags = passthrough_flags(args)
    make_title_room(
        max(
            title_length(f"zeek.{controller.name}", ["controller", *flags]),
            title_length(f"zeek.{agent.name}", ["agent", *flags]),
        )
    )
    logging.basicConfig(
        level=agent.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    set_process_title("zeek")
    base = [sys.executable, "-m", "mgmt"]
    env = dict(os.environ)
    # Notifications are the main process's business (NotifyAccess=main): children that
    # inherited NOTIFY_SOCKET would announce readiness or pings on our behalf.
    for key in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
        env.pop(key, None)
    # Children get SIGTERM if we die, even by kill -9 (see mgmt.daemon.procname).
    env[ENV_RUN_PARENT] = str(os.getpid())
    agent_env = dict(env)
    agent_env[ENV_CONTROLLER_NAME] = controller.name
    agent_env[ENV_CONTROLLER_PIDFILE] = str(
        controller.state_dir / "nodes" / controller.name / ".pid"
    )
    try:
        for module in (*_DAEMON_MODULES, *_START_UP_MODULES):
            importlib.import_module(module)
    except ImportError as exc:  # a broken installation: no restart can fix it
        return start_up_failed("run", f"cannot load the daemons' code: {exc}")
    # What was imported lives as long as the processes: no collection of the parent's or a
    # child's needs to visit it (and visiting would write to the shared pages).
    gc.freeze()
    children = [
        Child(
            role,
            [*base, role, *flags],
            child_env,
            target=functools.partial(_daemon, role, flags, child_env),
        )
        for role, child_env in (("controller", env), ("agent", agent_env))
    ]
    return RunSupervisor(children).run()


def _daemon(role: str, flags: list[str], env: dict[str, str]) -> int:
    """A forked child's life: ``zeek-mgmt <role> <flags>`` with ``env``, as if executed
    (stdin from /dev/null, the logging set up afresh by the daemon).

    The flags are parsed by the role's own parser only: the whole command line's parser
    (every command's help text through gettext) would cost more than the rest of the
    child's start-up before its event loop.
    """
    os.environ.clear()
    os.environ.update(env)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    sys.argv = [sys.argv[0], role, *flags]
    module = importlib.import_module(f"mgmt.{role}.main")
    parser = argparse.ArgumentParser(prog=f"zeek-mgmt {role}")
    module.add_arguments(parser)
    code: int = module.run(parser.parse_args(flags))
    return code
