"""Start-up without a Zeek: ``zeek-mgmt agent`` and ``zeek-mgmt run`` say so at once,
naming the ``[agent] zeek`` setting, instead of failing at the first deploy."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import sys
from pathlib import Path

import pytest

from tests.paths import REPO_ROOT

WARNING = (
    "nodes cannot start until the [agent] zeek setting names one, e.g. zeek = "
    '"/opt/zeek/bin/zeek" in the settings file (or --zeek)'
)
#: A PATH with the usual system tools (for zeek-config and friends) but no zeek.
NO_ZEEK_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"


async def stderr_until(
    argv: list[str], env: dict[str, str], text: str | re.Pattern[str]
) -> tuple[str, int]:
    """Start ``argv``, read its stderr until it contains ``text``, then SIGTERM it;
    returns what it wrote and its exit status."""
    proc = await asyncio.create_subprocess_exec(
        *argv, env=env, stdin=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    assert proc.stderr is not None
    lines: list[str] = []
    try:
        async with asyncio.timeout(30):
            pattern = re.compile(re.escape(text)) if isinstance(text, str) else text
            while not pattern.search("".join(lines)):
                line = (await proc.stderr.readline()).decode()
                if not line:
                    break
                lines.append(line)
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        rest, _ = await proc.communicate()
    return "".join(lines) + (rest or b"").decode(), proc.returncode or 0


def base_env(tmp_path: Path) -> dict[str, str]:
    if shutil.which("zeek", path=NO_ZEEK_PATH):
        pytest.skip(f"a zeek is installed on {NO_ZEEK_PATH}")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZEEK_", "PYTHON"))}
    (tmp_path / "empty.toml").write_text("")
    env.update(
        PATH=NO_ZEEK_PATH,
        PYTHONPATH=str(REPO_ROOT),
        ZEEK_MGMT_CONFIG=str(tmp_path / "empty.toml"),
        ZEEK_MANAGEMENT_STATE_DIR=str(tmp_path / "state"),
    )
    return env


@pytest.mark.asyncio
async def test_agent_without_zeek_warns_at_start_up(tmp_path: Path) -> None:
    """The agent's start-up log names the missing zeek and the setting to fix it."""
    out, code = await stderr_until(
        [sys.executable, "-m", "mgmt", "agent", "--listen-port", "0", "--controller", "none"],
        base_env(tmp_path),
        "is live",
    )
    assert f"WARNING mgmt.agent: no zeek found on PATH: {WARNING}" in out, out
    assert code == 0


@pytest.mark.asyncio
async def test_agent_with_a_wrong_zeek_path_warns(tmp_path: Path) -> None:
    """A zeek setting that names no executable is named with where it came from."""
    missing = tmp_path / "bin" / "zeek"
    out, code = await stderr_until(
        [sys.executable, "-m", "mgmt", "agent", "--listen-port", "0", "--controller", "none",
         "--zeek", str(missing)],
        base_env(tmp_path),
        "is live",
    )  # fmt: skip
    assert f"{missing} (flag --zeek) is not an executable file: {WARNING}" in out, out
    assert code == 0


@pytest.mark.asyncio
async def test_run_without_zeek_warns_at_start_up(tmp_path: Path) -> None:
    """zeek-mgmt run (its agent) warns too; it still starts and stops cleanly."""
    out, code = await stderr_until(
        [sys.executable, "-m", "mgmt", "run",
         "--set", "controller.listen_port=0", "--set", "controller.listen_port_websocket=0",
         "--set", "agent.listen_port=0"],
        base_env(tmp_path),
        re.compile(r"agent \S+ is live"),
    )  # fmt: skip
    assert f"no zeek found on PATH: {WARNING}" in out, out
    assert code == 0
