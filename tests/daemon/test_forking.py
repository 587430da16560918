"""Forked children of ``zeek-mgmt run`` (mgmt.daemon.forking): exit statuses, waiting,
signals, and a child never returning into the parent's code."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mgmt.daemon.forking import ForkedProcess, fork_call
from tests.support.waiting import wait_until


def test_the_target_return_value_is_the_exit_status() -> None:
    """A target returning 3 makes a child that exits with status 3."""
    assert fork_call(lambda: 3).wait(10) == 3


def _exits_via_system_exit() -> int:
    sys.exit(7)


def _raises() -> int:
    raise RuntimeError("boom in the child")


def test_system_exit_gives_its_code_and_an_exception_exits_1(
    capfd: pytest.CaptureFixture[str],
) -> None:
    """sys.exit(7) in the child exits 7; an exception is printed and exits 1."""
    assert fork_call(_exits_via_system_exit).wait(10) == 7
    assert fork_call(_raises).wait(10) == 1
    assert "RuntimeError: boom in the child" in capfd.readouterr().err


def test_a_child_never_runs_the_parents_code_after_the_fork(tmp_path: Path) -> None:
    """Code after fork_call (and finally blocks around it) runs once, in the parent only."""
    marks = tmp_path / "marks"
    try:
        proc = fork_call(lambda: 0)
        with marks.open("a") as f:
            f.write(f"{os.getpid()}\n")
    finally:
        with marks.open("a") as f:
            f.write("finally\n")
    assert proc.wait(10) == 0
    assert marks.read_text() == f"{os.getpid()}\nfinally\n"


def _sleeps() -> int:
    time.sleep(60)
    return 0


def test_wait_times_out_and_a_signal_ends_the_child() -> None:
    """wait() with a timeout raises TimeoutExpired while the child runs; SIGTERM ends it
    with -SIGTERM, as Popen reports it; signalling it afterwards is harmless."""
    proc = fork_call(_sleeps)
    assert proc.poll() is None
    with pytest.raises(subprocess.TimeoutExpired):
        proc.wait(0.05)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(10) == -signal.SIGTERM
    proc.send_signal(signal.SIGTERM)  # reaped: its pid may belong to another process now
    assert proc.returncode == -signal.SIGTERM


def test_poll_reaps_a_child_that_exited() -> None:
    """poll() returns None while the child runs and its status once it exited."""
    proc = fork_call(lambda: 5)
    assert wait_until(lambda: proc.poll() is not None, what="the child exited")
    assert proc.returncode == 5


def test_a_child_reaped_elsewhere_reads_as_failed() -> None:
    """If someone else reaped the child, poll() reports 255 instead of blocking or raising."""
    proc = fork_call(lambda: 0)
    os.waitpid(proc.pid, 0)
    assert ForkedProcess.poll(proc) == 255
