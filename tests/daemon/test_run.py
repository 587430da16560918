"""``zeek-mgmt run``'s children: restarts with the node policy's back-off, fatal exits,
stop escalation (real child processes, a fake clock where time matters)."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest

from mgmt.daemon.exitstatus import EXIT_FATAL
from mgmt.daemon.run import RUN_POLICY, Child, RunSupervisor
from mgmt.supervisor.policy import PolicySettings, ProcessState
from tests.support.waiting import wait_until

EXIT_1 = ["/bin/sh", "-c", "exit 1"]


def exited(child: Child) -> None:
    """Wait until the child's current process has exited (it is reaped by ``reap``)."""
    assert child.proc is not None
    child.proc.wait(10)


def _exit_1() -> int:
    return 1


@pytest.mark.parametrize("forked", [False, True], ids=["executed", "forked"])
def test_a_dying_child_is_restarted_with_backoff_up_to_30_s(forked: bool) -> None:
    """Restarts come 1, 2, 4, 8, 16, then 30 s after the previous start, never more (an
    executed child, or one forked as run forks its daemons)."""
    child = Child("controller", EXIT_1, {}, target=_exit_1 if forked else None)
    now = 0.0
    child.start(now)
    starts = [now]
    for _ in range(6):
        exited(child)
        child.reap(now)
        deadline = child.next_deadline()
        assert deadline is not None and child.proc is None
        now = deadline
        child.tick(now)
        assert child.proc is not None
        starts.append(now)
    exited(child)
    assert [b - a for a, b in zip(starts, starts[1:], strict=False)] == [1, 2, 4, 8, 16, 30]
    assert child.restarts == 6


def test_a_child_that_was_up_long_enough_restarts_at_once() -> None:
    """After 30 s up the back-off is forgotten: a crash is followed by a restart at once."""
    child = Child("agent", EXIT_1, {})
    child.start(0.0)
    exited(child)
    child.reap(0.0)
    child.tick(1.0)  # one quick crash: the delay is 2 s now
    exited(child)
    child.reap(40.0)
    assert child.proc is not None  # restarted within the same step
    assert child.policy.revival_delay == 2 * RUN_POLICY.revival_delay
    exited(child)


def test_a_fatal_exit_stops_run_with_its_status() -> None:
    """A child exiting with EXIT_FATAL is not restarted; run stops with EXIT_FATAL."""
    child = Child("agent", ["/bin/sh", "-c", f"exit {EXIT_FATAL}"], {})
    run = RunSupervisor([child], clock=lambda: 0.0)
    child.start(0.0)
    exited(child)
    run.step(100.0)
    assert (run.status, child.fatal, child.next_deadline()) == (EXIT_FATAL, True, None)
    assert child.policy.state is ProcessState.STOPPED


def test_a_child_that_cannot_start_stops_run_with_status_1(tmp_path: Path) -> None:
    """A command that cannot be executed is the policy's FAILED: run stops with 1."""
    child = Child("agent", [str(tmp_path / "missing")], {})
    run = RunSupervisor([child], clock=lambda: 0.0)
    child.start(0.0)
    run.step(0.0)
    assert (run.status, child.failed, child.policy.state) == (1, True, ProcessState.FAILED)


@pytest.mark.parametrize("forked", [False, True], ids=["executed", "forked"])
def test_stop_kills_a_child_that_ignores_sigterm(tmp_path: Path, forked: bool) -> None:
    """stop(): SIGTERM, then SIGKILL once the grace period is over (an executed child, or
    a forked one)."""
    ready = tmp_path / "ready"
    code = (
        "import signal, sys, time, pathlib; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        f"pathlib.Path({str(ready)!r}).touch(); time.sleep(30)"
    )

    def ignores_sigterm() -> int:
        exec(code)
        return 0

    policy = PolicySettings(stop_grace=0.3, term_interval=0.3)
    target = ignores_sigterm if forked else None
    child = Child("agent", [sys.executable, "-c", code], {}, policy, target=target)
    child.start(time.monotonic())
    wait_until(ready.exists, "the child started")
    proc = child.proc
    assert proc is not None
    child.stop()
    assert proc.returncode == -signal.SIGKILL
    assert child.proc is None and child.policy.state is ProcessState.STOPPED


def test_a_sigterm_in_the_forked_childs_first_moments_is_not_lost() -> None:
    """A SIGTERM reaching a forked child before it has put back its own signal handling
    (while run's flag-only handler is still installed) takes effect once it has: signals
    stay blocked across the fork until then."""
    swallowed = signal.signal(signal.SIGTERM, lambda signum, frame: None)  # like run's
    try:
        child = Child("agent", [], {}, target=lambda: 0)

        def early_sigterm_then_restore() -> None:
            os.kill(os.getpid(), signal.SIGTERM)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)

        child.after_fork = early_sigterm_then_restore
        child.start(0.0)
        assert child.proc is not None
        assert child.proc.wait(10) == -signal.SIGTERM
    finally:
        signal.signal(signal.SIGTERM, swallowed)
