"""``zeek-mgmt run``: the quickstart, like ``zeek -j policy/frameworks/management/...``.

A small process supervisor (kernel name ``zeek``) with two children, the controller
(``zeek.<controller name>``) and the agent (``zeek.<agent name>``). Each child is
restarted with back-off when it dies (1 s, doubling up to 30 s, reset after 30 s up),
without disturbing the other or the cluster nodes, which are the agent's children and
are adopted by the next agent. SIGTERM/SIGINT stop the agent first (which stops its
nodes), then the controller.

A child that exits with :data:`~mgmt.daemon.exitstatus.EXIT_FATAL` (its settings are invalid,
a state file is corrupt, another instance uses the state directory, its port is taken)
is not restarted: a restart cannot fix that, and restarting, say, an agent that cannot
bind its port in a loop only hides the problem. ``run`` then stops the other child too
(the agent first, which stops its nodes) and exits with ``EXIT_FATAL``: the quickstart
is one unit, and half of it running is not what the operator asked for; they read the
error, fix it and start ``run`` again.

The children get the same settings flags (``--config``, ``--state-dir``, ``--spool-dir``,
``--log-level``, ``--set``) and the same environment; the agent also learns the
controller's name and pid file so that get-nodes lists the controller, as Zeek does.

Theory of operation
-------------------
This process only forks, waits and signals, so it stays small: no asyncio, no WebSocket
or psutil imports (it is the one process of the quickstart that does nothing else). One
loop sleeps in ``select()`` on a self-pipe that Python's signal wake-up fd writes to, so
SIGCHLD (a child died), SIGTERM and SIGINT wake it at once, and a pending restart wakes it
by timeout. Signal handlers only set flags (a SIGCHLD handler exists just so that the
wake-up fd is written). Only our own two children are reaped, each with ``Popen.poll()``.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType

from mgmt.agent import ENV_CONTROLLER_NAME, ENV_CONTROLLER_PIDFILE
from mgmt.daemon.exitstatus import EXIT_FATAL, start_up_failed
from mgmt.daemon.procname import ENV_RUN_PARENT, set_process_title
from mgmt.exceptions import ConfigError
from mgmt.settings.flags import add_settings_flags, settings_from_args
from mgmt.settings.model import AgentSettings, ControllerSettings

log = logging.getLogger("mgmt.daemon.run")

#: Restart back-off of a child: first delay, cap, and uptime that resets it.
RESTART_DELAY = 1.0
RESTART_DELAY_MAX = 30.0
RESET_AFTER = 30.0
#: How long a child may take to exit after SIGTERM before SIGKILL.
STOP_TIMEOUT = 60.0

_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``zeek-mgmt run``: the settings shared by controller and agent."""
    add_settings_flags(parser, "both")


def passthrough_flags(args: argparse.Namespace) -> list[str]:
    """The settings flags given to ``run``, to hand on to both children."""
    out: list[str] = []
    for dest, flag in (
        ("settings_config", "--config"),
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


@dataclass
class Child:
    """One supervised daemon process.

    Attributes:
        role: ``controller`` or ``agent`` (for logs).
        argv: its command line.
        env: its environment.
        proc: the running process, if any.
        started_at: when it was last started (monotonic seconds).
        delay: the next restart delay.
        restarts: how many times it was restarted.
        restart_at: when a pending restart is due (monotonic), else ``None``.
        fatal: set when it exited with ``EXIT_FATAL`` (then it is not restarted).
    """

    role: str
    argv: list[str]
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    delay: float = RESTART_DELAY
    restarts: int = 0
    restart_at: float | None = None
    fatal: bool = False

    def start(self, now: float) -> None:
        """Start the process; a failure to start schedules a retry with back-off."""
        self.restart_at = None
        self.started_at = now
        try:
            self.proc = subprocess.Popen(self.argv, env=self.env, stdin=subprocess.DEVNULL)
        except OSError as exc:
            log.error("cannot start %s: %s; retrying in %.0f s", self.role, exc, self.delay)
            self.proc = None
            self._schedule(now)
            return
        log.info("started %s, pid %d", self.role, self.proc.pid)

    def _schedule(self, now: float) -> None:
        self.restart_at = now + self.delay
        self.delay = min(self.delay * 2, RESTART_DELAY_MAX)

    def reap(self, now: float) -> None:
        """If the process exited, log it and schedule its restart (non-blocking)."""
        if self.proc is None:
            return
        code = self.proc.poll()
        if code is None:
            return
        self.proc = None
        uptime = now - self.started_at
        if code == EXIT_FATAL:
            log.error(
                "%s failed with a start-up error that a restart cannot fix (exit status %d, "
                "see its error above); not restarting it",
                self.role,
                code,
            )
            self.fatal = True
            return
        if uptime >= RESET_AFTER:
            self.delay = RESTART_DELAY
        log.warning(
            "%s exited with status %s after %.1f s; restarting in %.0f s",
            self.role,
            code,
            uptime,
            self.delay,
        )
        self.restarts += 1
        self._schedule(now)

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """SIGTERM and wait; SIGKILL after ``timeout`` seconds. Idempotent."""
        proc, self.proc = self.proc, None
        self.restart_at = None
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop in %.0f s, killing it", self.role, timeout)
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait()


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

    def request_shutdown(self) -> None:
        """Stop everything (idempotent; used by the signal handlers)."""
        self._shutdown = True

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if signum != signal.SIGCHLD:
            self.request_shutdown()

    def next_timeout(self, now: float) -> float | None:
        """Seconds until the next pending restart, or ``None`` when none is pending."""
        due = [c.restart_at for c in self.children if c.restart_at is not None]
        return None if not due else max(0.0, min(due) - now)

    def step(self, now: float) -> None:
        """Reap exited children and start those whose restart is due."""
        for child in self.children:
            child.reap(now)
            if child.fatal:
                self.status = EXIT_FATAL
                self.request_shutdown()
            if child.restart_at is not None and child.restart_at <= now:
                child.start(now)

    def run(self) -> int:
        """Start the children and supervise them until shutdown, then stop them in order.

        Must run in the main thread (it installs signal handlers, restored on return).

        Returns:
            0 after a requested shutdown, ``EXIT_FATAL`` after a child's fatal error.
        """
        rfd, wfd = os.pipe()
        os.set_blocking(rfd, False)
        os.set_blocking(wfd, False)
        previous = {sig: signal.signal(sig, self._on_signal) for sig in _SIGNALS}
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
    logging.basicConfig(
        level=agent.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    set_process_title("zeek")
    flags = passthrough_flags(args)
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
    children = [
        Child("controller", [*base, "controller", *flags], env),
        Child("agent", [*base, "agent", *flags], agent_env),
    ]
    return RunSupervisor(children).run()
