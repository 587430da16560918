"""Running the command-line clients: the real ``zeek-client`` (PyPI 1.5.x) and ours
(``python -m mgmt <command>``), as child processes.

Every run gives a :class:`Run`. The ``*_async`` forms run the child without blocking the
event loop, for tests whose controller lives in that loop; a run that is cancelled or
times out kills its child. No run reads the user's zeek-client configuration
(``ZEEK_CLIENT_CONFIG_FILE``/``ZEEK_CLIENT_CONFIG_SETTINGS`` are dropped).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.paths import REPO_ROOT
from tests.support.waiting import MS

#: Upper bound for one CLI run (zeek-client retries its connection for a while).
RUN_TIMEOUT = 60_000 * MS
#: The header of ``zeek-mgmt status``'s table, words as a user reads them (``LAST EXIT`` is
#: one column): compare with ``header_line.split() == STATUS_HEADER.split()``.
STATUS_HEADER = "INSTANCE  NODE  ROLE  STATE  PID  PORT  METRICS  RESTARTS  UPTIME  LAST EXIT"


@dataclass(frozen=True)
class Run:
    """A finished command: its exit code and what it printed."""

    argv: list[str]
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        """stdout parsed as JSON (an AssertionError showing the run if it is not JSON)."""
        try:
            return json.loads(self.stdout)
        except json.JSONDecodeError as exc:
            raise AssertionError(f"not JSON: {self}") from exc


def zeek_client() -> str | None:
    """The real ``zeek-client``: beside this interpreter (the venv's), else on PATH."""
    beside = Path(sys.executable).with_name("zeek-client")
    if beside.exists():
        return str(beside)
    return shutil.which("zeek-client")


def zeek_client_path() -> str:
    """:func:`zeek_client`, skipping the test when it is not installed."""
    found = zeek_client()
    if found is None:
        pytest.skip("zeek-client is not installed (pip install zeek-client==1.5.*)")
    return found


def zeek_client_argv(
    port: int, *args: str, settings: Mapping[str, str] | None = None, attempts: int = 3
) -> list[str]:
    """``zeek-client --controller 127.0.0.1:<port> --set k=v ... <args>``: ``attempts``
    connection attempts 0.2 s apart (zeek-client's default is 10, a second apart), then
    ``settings``."""
    peering = {
        "client.peering_attempts": str(attempts),
        "client.peering_retry_delay_secs": "0.2",
    }
    sets: list[str] = []
    for key, value in {**peering, **(settings or {})}.items():
        sets += ["--set", f"{key}={value}"]
    return [zeek_client_path(), "--controller", f"127.0.0.1:{port}", *sets, *args]


def ours(*args: str) -> list[str]:
    """Our CLI: ``python -m mgmt <args>``."""
    return [sys.executable, "-m", "mgmt", *args]


def cli_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """``base`` (default: ours) without zeek-client configuration, with the repository
    on PYTHONPATH (for :func:`ours`)."""
    env = {k: v for k, v in (base or os.environ).items() if not k.startswith("ZEEK_CLIENT_")}
    env["PYTHONPATH"] = str(REPO_ROOT)
    return env


def run_cmd_sync(
    argv: Sequence[str],
    *,
    stdin: str | None = None,
    cwd: Path | str | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = RUN_TIMEOUT,
) -> Run:
    """Run ``argv`` to the end (environment :func:`cli_env` of ``env``)."""
    proc = subprocess.run(
        list(argv),
        input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
        capture_output=True,
        text=True,
        cwd=cwd,
        env=cli_env(env),
        timeout=timeout,
    )
    return Run(list(argv), proc.returncode, proc.stdout, proc.stderr)


async def run_cmd(
    argv: Sequence[str],
    *,
    stdin: str | None = None,
    cwd: Path | str | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = RUN_TIMEOUT,  # noqa: ASYNC109 - the child is killed at the deadline
) -> Run:
    """:func:`run_cmd_sync` without blocking the event loop."""
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=cwd,
        env=cli_env(env),
    )
    try:
        async with asyncio.timeout(timeout):
            out, err = await proc.communicate(None if stdin is None else stdin.encode())
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return Run(list(argv), proc.returncode, out.decode(), err.decode())


def run_zeek_client_sync(
    port: int,
    *args: str,
    settings: Mapping[str, str] | None = None,
    cwd: Path | str | None = None,
    timeout: float = RUN_TIMEOUT,
) -> Run:
    """Run the real zeek-client against the controller on ``127.0.0.1:<port>``
    (see :func:`zeek_client_argv`)."""
    return run_cmd_sync(zeek_client_argv(port, *args, settings=settings), cwd=cwd, timeout=timeout)


async def run_zeek_client(
    port: int,
    *args: str,
    settings: Mapping[str, str] | None = None,
    cwd: Path | str | None = None,
    timeout: float = RUN_TIMEOUT,  # noqa: ASYNC109 - the child is killed at the deadline
) -> Run:
    """:func:`run_zeek_client_sync` without blocking the event loop."""
    argv = zeek_client_argv(port, *args, settings=settings)
    return await run_cmd(argv, cwd=cwd, timeout=timeout)
