"""The agent service's extension handlers (mgmt.agent.extactions), with real programs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mgmt.agent.extactions import ExtensionActions
from mgmt.broker import extevents as xev
from mgmt.core.version import ProcessFacts
from tests.support.programs import write_executable
from tests.support.real_zeek import real_zeek
from tests.zeekdouble.fixture import install_zeek_double

FACTS = ProcessFacts("agent", "agent-x", 4242, 1_700_000_123.9)


def script(tmp_path: Path, body: str) -> str:
    return str(write_executable(tmp_path / "zeek", "#!/bin/sh\n" + body))


@pytest.mark.asyncio
async def test_get_version_reports_the_agent_and_its_zeek(tmp_path: Path) -> None:
    """get_version's payload names the agent's process and its Zeek's version."""
    zeek = str(install_zeek_double(tmp_path / "bin"))
    actions = ExtensionActions(FACTS, lambda: zeek)
    (result,) = await actions.answer(xev.AgentGetVersionRequest("r1"))
    assert (result.reqid, result.success, result.instance) == ("r1", True, "agent-x")
    assert xev.payload_of(result) == {
        "v": 1,
        "role": "agent",
        "name": "agent-x",
        "zeek_mgmt": FACTS.zeek_mgmt,
        "python": FACTS.python,
        "pid": 4242,
        "started": 1_700_000_123,
        "zeek": "8.2.2",
    }


@pytest.mark.asyncio
async def test_zeek_version_is_cached(tmp_path: Path) -> None:
    """zeek --version runs once; later requests reuse its answer."""
    runs = tmp_path / "runs"
    zeek = script(tmp_path, f'echo x >> "{runs}"\necho "$0 version 9.1.0-dev.42"\n')
    actions = ExtensionActions(FACTS, lambda: zeek)
    assert [await actions.zeek_version() for _ in range(3)] == ["9.1.0-dev.42"] * 3
    assert runs.read_text() == "x\n"


@pytest.mark.asyncio
async def test_no_zeek_means_null(tmp_path: Path) -> None:
    """A missing, failing or silent zeek gives null (and is asked again next time)."""
    missing = ExtensionActions(FACTS, lambda: str(tmp_path / "nope"))
    assert await missing.zeek_version() is None
    failing = ExtensionActions(FACTS, lambda: script(tmp_path, "exit 3\n"))
    assert await failing.zeek_version() is None
    (result,) = await failing.answer(xev.AgentGetVersionRequest("r2"))
    assert xev.payload_of(result)["zeek"] is None


@pytest.mark.asyncio
async def test_a_hanging_zeek_is_killed_at_the_timeout(tmp_path: Path) -> None:
    """zeek --version that does not answer within the timeout gives null and is killed."""
    pidfile = tmp_path / "pid"
    zeek = script(tmp_path, f'echo $$ > "{pidfile}"\nexec sleep 60\n')
    actions = ExtensionActions(FACTS, lambda: zeek, timeout=0.3)
    assert await actions.zeek_version() is None
    pid = int(pidfile.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


@pytest.mark.zeek
@pytest.mark.asyncio
async def test_real_zeek_version() -> None:
    """With the real Zeek, get_version reports its version as zeek --version says it."""
    real = real_zeek()
    actions = ExtensionActions(FACTS, lambda: "zeek")
    assert await actions.zeek_version() == real.version
