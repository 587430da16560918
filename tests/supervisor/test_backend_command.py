"""The OS seam's one-shot commands (the agent's archiver): bounded output, start failures."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from mgmt.supervisor.backend import CommandResult, OsBackend


@pytest.mark.asyncio
async def test_only_the_end_of_the_output_is_kept(tmp_path: Path) -> None:
    """A command writing more than the limit leaves its last bytes, after ``...``; stdout
    and stderr are one stream; the exit status is reported."""
    code = (
        "import sys; sys.stdout.write('a' * 100000 + 'END'); sys.stdout.flush(); "
        "sys.stderr.write('ERR')"
    )
    result = await OsBackend(tmp_path).run_command(
        [sys.executable, "-c", f"{code}; sys.exit(3)"], time_limit=30, output_limit=10
    )
    assert result == CommandResult(3, "...aaaaENDERR")


@pytest.mark.asyncio
async def test_a_command_that_cannot_start_has_no_status(tmp_path: Path) -> None:
    """A missing executable gives no status and the reason as its output."""
    result = await OsBackend(tmp_path).run_command(
        [str(tmp_path / "missing")], time_limit=30, output_limit=100
    )
    assert result.status is None and not result.timed_out
    assert "No such file" in result.output
