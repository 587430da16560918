"""Helpers for tests that run ``zeek-mgmt`` daemons and ``zeek-client`` as processes."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.paths import REPO_ROOT


def daemon_env(**extra: str) -> dict[str, str]:
    """The environment for a daemon subprocess: ours, with the repo on PYTHONPATH and
    without the variables that would change its settings."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("ZEEK_", "NOTIFY_", "WATCHDOG_"))
    }
    env["PYTHONPATH"] = str(REPO_ROOT)
    env.update(extra)
    return env


class Daemon:
    """A ``python -m mgmt <role> ...`` subprocess whose stderr goes to a file.

    ``nofile`` sets its open-file limit (soft and hard, so it cannot raise it).
    """

    def __init__(
        self,
        role: str,
        args: list[str],
        log: Path,
        env: dict[str, str],
        *,
        nofile: int | None = None,
    ) -> None:
        self.log_path = log
        self._log = open(log, "wb")  # noqa: SIM115 - closed in stop()
        self.terminated = False

        def limit() -> None:
            if nofile is not None:
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mgmt", role, *args],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
            preexec_fn=limit if nofile is not None else None,  # noqa: PLW1509 - tests only
        )

    def log(self) -> str:
        """Everything the daemon logged so far."""
        return self.log_path.read_text(errors="replace")

    def wait_log(self, text: str, timeout: float = 30.0) -> None:
        """Wait until ``text`` appears in the log (or fail, showing the log)."""
        deadline = time.monotonic() + timeout
        while text not in self.log():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"{text!r} not logged; log:\n{self.log()}")
            time.sleep(0.02)

    def terminate(self) -> None:
        """Send SIGTERM once (a second one could hit the default handler while the daemon
        is already exiting, as with any asyncio program that restores its handlers)."""
        if not self.terminated and self.proc.poll() is None:
            self.terminated = True
            self.proc.send_signal(signal.SIGTERM)

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM (unless sent already), wait (SIGKILL at the deadline); the exit status."""
        if self.proc.poll() is None:
            self.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


@contextmanager
def daemon(role: str, args: list[str], log: Path, env: dict[str, str]) -> Iterator[Daemon]:
    """Run a daemon for the duration of a ``with`` block."""
    d = Daemon(role, args, log, env)
    try:
        yield d
    finally:
        d.stop()
