"""The daemons as child processes: ``python -m mgmt <role> <args>``, one launcher for all.

A :class:`Daemon` runs in its own session (as under systemd: no terminal signals from
the test run), writes stdout and stderr to a log file, and imports the package from this
repository. :func:`daemon_env` is the environment it gets unless a test says otherwise:
ours without the variables that would change its settings or its supervision.
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from tests.paths import REPO_ROOT
from tests.support.cli import ours
from tests.support.waiting import TIMEOUT, wait_until

#: Variables a daemon must not inherit from the test run: its settings (Zeek's and ours),
#: systemd's notify/watchdog sockets, and the test runner's Python and coverage set-up.
_NOT_INHERITED = ("ZEEK_", "NOTIFY_", "WATCHDOG_", "PYTHON", "PYTEST_", "COVERAGE_PROCESS_START")


def daemon_env(base: Mapping[str, str] | None = None, **extra: str) -> dict[str, str]:
    """``base`` (default: ours) without :data:`_NOT_INHERITED`, with the repository on
    PYTHONPATH, then ``extra``."""
    env = {k: v for k, v in (base or os.environ).items() if not k.startswith(_NOT_INHERITED)}
    env["PYTHONPATH"] = str(REPO_ROOT)
    env.update(extra)
    return env


class Daemon:
    """A ``python -m mgmt <role> <args>`` child process, its output appended to ``log``.

    Args:
        role: the sub-command (``controller``, ``agent``, ``run``, ...).
        args: its arguments.
        log: the file stdout and stderr go to (appended: a restarted daemon keeps one log).
        env: its whole environment (see :func:`daemon_env`).
        cwd: its working directory.
        nofile: its open-file limit (soft and hard, so that it cannot raise it).
        name: what messages call it (default: ``role``).
    """

    def __init__(
        self,
        role: str,
        args: Sequence[str],
        log: Path,
        env: Mapping[str, str],
        *,
        cwd: Path | None = None,
        nofile: int | None = None,
        name: str | None = None,
    ) -> None:
        self.role = role
        self.name = name or role
        self.log_path = log
        self.terminated = False

        def limit_files() -> None:
            assert nofile is not None
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

        with open(log, "ab") as out:
            self.proc = subprocess.Popen(
                ours(role, *args),
                env=dict(env),
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=limit_files if nofile is not None else None,  # noqa: PLW1509 - tests only
            )

    @property
    def pid(self) -> int:
        """The process id (also its process group and session id)."""
        return self.proc.pid

    def log(self) -> str:
        """Everything the daemon wrote so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def alive(self) -> bool:
        """Whether the process has not exited yet."""
        return self.proc.poll() is None

    def wait_log(self, text: str, timeout: float = 3 * TIMEOUT) -> None:
        """Wait until ``text`` is in the log; fail, showing the log, at the deadline or
        when the daemon exits first."""
        with contextlib.suppress(AssertionError):  # the deadline: said below, with the log
            wait_until(lambda: text in self.log() or not self.alive(), timeout=timeout)
        if text not in self.log():
            status = self.proc.poll()
            state = "still running" if status is None else f"exit status {status}"
            raise AssertionError(f"{text!r} not logged by {self.name} ({state}):\n{self.log()}")

    def terminate(self) -> None:
        """Send SIGTERM once (a second one could hit the default handler while the daemon
        is already exiting, as with any asyncio program that restores its handlers)."""
        if not self.terminated and self.alive():
            self.terminated = True
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)

    def stop(self, timeout: float = 2 * TIMEOUT) -> int:
        """SIGTERM (unless sent already), wait; SIGKILL at the deadline. The exit status."""
        self.terminate()
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return self.kill()

    def kill(self, sig: int = signal.SIGKILL) -> int:
        """Send ``sig`` (default SIGKILL: no clean-up by the daemon) and reap; the status."""
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(sig)
        return self.proc.wait(TIMEOUT)


@contextlib.contextmanager
def daemon(role: str, args: Sequence[str], log: Path, env: Mapping[str, str]) -> Iterator[Daemon]:
    """A :class:`Daemon` for the duration of a ``with`` block (stopped at its end)."""
    d = Daemon(role, args, log, env)
    try:
        yield d
    finally:
        d.stop()
