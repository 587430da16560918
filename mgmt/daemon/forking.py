"""Children made by ``fork()`` without ``exec()``, for ``zeek-mgmt run``.

``run`` imports the controller's and the agent's code once, freezes it out of the garbage
collector and forks each daemon from there: a child starts without a second interpreter
start-up or import, and the pages the three processes never write stay shared
(copy-on-write). :func:`fork_call` runs a function in a new child and exits it with the
function's status; :class:`ForkedProcess` is the part of :class:`subprocess.Popen`'s
interface that ``run`` uses (``pid``, ``returncode``, ``poll``, ``wait``,
``send_signal``), so a forked child is supervised exactly like an executed one.

A child never returns into the parent's code: whatever happens, it leaves with
``os._exit`` (after flushing stdout and stderr), so the parent's ``finally`` blocks and
exit handlers run only in the parent. The parent flushes its own buffers before forking,
so nothing it printed is printed twice.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable

#: How often :meth:`ForkedProcess.wait` checks a child without a pidfd (kernels < 5.3).
_POLL_INTERVAL = 0.05


class ForkedProcess:
    """A forked child, awaited through a pidfd (no polling where the kernel has pidfds).

    Args:
        pid: the child's pid (the caller's child).
    """

    def __init__(self, pid: int) -> None:
        self.pid = pid
        #: The exit status as :class:`subprocess.Popen` reports it (``-N``: signal N).
        self.returncode: int | None = None
        try:
            self._pidfd: int | None = os.pidfd_open(pid)
        except (AttributeError, OSError):
            self._pidfd = None

    def poll(self) -> int | None:
        """The exit status if the child has exited (reaping it), else None."""
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:  # reaped elsewhere: its status is lost
                self._exited(255 << 8)
            else:
                if pid:
                    self._exited(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the child to exit; its status.

        Raises:
            subprocess.TimeoutExpired: still running after ``timeout`` seconds.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while (code := self.poll()) is None:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if left == 0.0:
                raise subprocess.TimeoutExpired(str(self.pid), timeout or 0.0)
            if self._pidfd is not None:
                select.select([self._pidfd], [], [], left)
            else:
                time.sleep(_POLL_INTERVAL if left is None else min(left, _POLL_INTERVAL))
        return code

    def send_signal(self, sig: int) -> None:
        """Signal the child, unless it was already reaped (its pid may be reused)."""
        if self.poll() is not None:
            return
        if self._pidfd is not None:
            signal.pidfd_send_signal(self._pidfd, sig)
        else:
            os.kill(self.pid, sig)

    def _exited(self, status: int) -> None:
        self.returncode = os.waitstatus_to_exitcode(status)
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None


def fork_call(target: Callable[[], int]) -> ForkedProcess:
    """Run ``target()`` in a forked child that exits with its return value.

    ``SystemExit`` gives its code; any other exception is printed to stderr and exits 1.

    Raises:
        OSError: the fork failed (no memory, no processes left).
    """
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    pid = os.fork()
    if pid:
        return ForkedProcess(pid)
    code = 1
    try:
        code = target()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if not isinstance(exc.code, int | None):
            print(exc.code, file=sys.stderr)
    except BaseException:
        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(code)
