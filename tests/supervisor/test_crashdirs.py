"""Crash directories and node events: the evidence of an unexpected exit is kept, bounded,
and reported in order (crashed, gave-up, failed, recovered); a requested stop is none."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import signal
import stat
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from mgmt.core.exittext import ago, exit_text, last_exit_text
from mgmt.supervisor import crashdirs
from mgmt.supervisor.nodeevents import NodeEvent
from mgmt.supervisor.policy import NodeSpec
from mgmt.supervisor.service import SupervisorService
from tests.supervisor.test_supervisor_service import (
    FAST,
    POLL,
    S,
    wait_for,
)
from tests.support.waiting import TIMEOUT


class Events:
    """The node events a supervisor reports, awaitable one by one."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[NodeEvent] = asyncio.Queue()
        self.seen: list[NodeEvent] = []

    def __call__(self, event: NodeEvent) -> None:
        self.seen.append(event)
        self.queue.put_nowait(event)

    async def next(self) -> NodeEvent:
        async with asyncio.timeout(TIMEOUT):
            return await self.queue.get()


@contextlib.asynccontextmanager
async def supervised(
    state_dir: Path, events: Events, **kwargs: object
) -> AsyncIterator[SupervisorService]:
    policy = kwargs.pop("policy", FAST)
    sup = SupervisorService(
        state_dir,
        policy=policy,  # type: ignore[arg-type]
        poll_interval=POLL,
        on_node_event=events,
        **kwargs,  # type: ignore[arg-type]
    )
    async with sup:
        yield sup


@pytest.mark.asyncio
async def test_kill_keeps_the_evidence_and_reports_crashed_then_recovered(
    state_dir: Path, make_spec: Callable[..., NodeSpec]
) -> None:
    """SIGKILL: a crash directory with signal, output tails, command line, env and
    .status; events crashed (with the directory) then recovered."""
    events = Events()
    async with supervised(state_dir, events) as sup:
        spec = make_spec("worker-01")
        sup.deploy([spec])
        first = (await wait_for(sup, lambda n: n["worker-01"].state is S.RUNNING))["worker-01"]
        os.kill(first.pid, signal.SIGKILL)
        crashed = await events.next()
        assert (crashed.kind, crashed.node, crashed.pid) == ("crashed", "worker-01", first.pid)
        assert crashed.exit_status is not None and crashed.exit_status.signal == 9
        recovered = await events.next()
        assert recovered.kind == "recovered" and recovered.pid not in (None, first.pid)
        assert recovered.restarts == 1
        info = sup.status()[0]
        assert info.last_crash is not None and info.last_crash.pid == first.pid

        path = crashed.crash_dir
        assert path is not None and path.parent == Path(spec.cwd) / "crash"
        assert crashdirs.list_crash_dirs(spec.cwd)[0].path == path
        assert stat.S_IMODE(path.stat().st_mode) == 0o700
        data = json.loads((path / "crash.json").read_text())
        assert data["v"] == 1 and data["pid"] == first.pid and data["restarts"] == 0
        assert data["exit"]["signal_name"] == "SIGKILL"
        assert data["exit"]["text"] == "killed by SIGKILL"
        assert data["gave_up"] is False
        assert (path / "stdout").read_text() == "stdout of worker-01\n\n"
        assert (path / "stderr").read_text() == "stderr of worker-01\n"
        assert (path / "cmdline").read_text().endswith("-U .status\n")
        assert "CLUSTER_NODE=worker-01\n" in (path / "env").read_text()
        assert (path / "status").read_text() == "RUNNING [run_loop]\n"
        assert stat.S_IMODE((path / "env").stat().st_mode) == 0o600
        assert "not a core-dumping signal" in data["core_hint"]


@pytest.mark.asyncio
async def test_requested_restart_and_stop_leave_no_crash(
    state_dir: Path, make_spec: Callable[..., NodeSpec]
) -> None:
    """A restart or stop by request is not a crash: no directory, no event."""
    events = Events()
    async with supervised(state_dir, events) as sup:
        spec = make_spec("worker-01")
        sup.deploy([spec])
        first = (await wait_for(sup, lambda n: n["worker-01"].state is S.RUNNING))["worker-01"]
        sup.restart(["worker-01"])
        await wait_for(
            sup, lambda n: n["worker-01"].state is S.RUNNING and n["worker-01"].pid != first.pid
        )
        sup.deploy([])
        await wait_for(sup, lambda n: not n)
    assert events.seen == []
    assert crashdirs.list_crash_dirs(spec.cwd) == []


@pytest.mark.asyncio
async def test_crash_dirs_are_bounded_and_giving_up_is_reported(
    state_dir: Path, make_spec: Callable[..., NodeSpec]
) -> None:
    """With crash_keep=2, four crashes leave the newest two; the last is gave-up (FAILED),
    and a core file in the node directory is moved into its crash directory."""
    events = Events()
    policy = dataclasses.replace(FAST, revival_delay=0.05, max_restarts=3)
    spec = make_spec("worker-01", mode="exit1")
    async with supervised(state_dir, events, policy=policy, crash_keep=2) as sup:
        sup.deploy([spec])
        kinds = [(await events.next()).kind for _ in range(4)]
        assert kinds == ["crashed", "crashed", "crashed", "gave-up"]
        assert sup.status()[0].state is S.FAILED
    last = events.seen[-1]
    assert last.reason == "exited with status 1; gave up after 3 restarts"
    dirs = crashdirs.list_crash_dirs(spec.cwd)
    assert [d.path for d in dirs] == [events.seen[3].crash_dir, events.seen[2].crash_dir]
    newest = crashdirs.read_crash_dir(dirs[0].path, 1000)
    assert newest["info"]["gave_up"] is True and newest["info"]["restarts"] == 3
    assert newest["info"]["exit"]["text"] == "exited with status 1"
    assert newest["stderr"].endswith("fatal error: problem with interface eth9\n")


def test_core_file_is_moved_into_the_crash_directory(tmp_path: Path) -> None:
    """A core file that appeared during the run moves into the crash directory and the
    hint names it; an older one stays."""
    node_dir = tmp_path / "worker-01"
    node_dir.mkdir()
    (node_dir / "core.old").write_bytes(b"x")
    os.utime(node_dir / "core.old", (1000, 1000))
    (node_dir / "core.1234").write_bytes(b"\x7fELF")
    (node_dir / "stderr").write_text("segfault\n")
    spec = NodeSpec(name="worker-01", argv=("zeek", "-i", "lo"), env={}, cwd=str(node_dir))  # type: ignore[arg-type]
    from mgmt.supervisor.policy import ExitStatus

    crash = crashdirs.LastCrash(ExitStatus(signal=11), time.time(), 1234, time.time() - 5, 0, spec)
    snap = crashdirs.take_snapshot(crash, gave_up=False)
    path = crashdirs.write_crash_dir(snap)
    assert (path / "core.1234").read_bytes() == b"\x7fELF"
    assert not (node_dir / "core.1234").exists() and (node_dir / "core.old").exists()
    read = crashdirs.read_crash_dir(path, 100)
    assert read["core_files"] == ["core.1234"]
    assert read["info"]["core_hint"].startswith("core file core.1234")
    assert read["info"]["exit"]["text"] == "killed by SIGSEGV"


def test_names_sort_by_time_and_leftovers_are_ignored(tmp_path: Path) -> None:
    """Directory names stand for their UTC time; temporary and foreign entries are not
    crash directories, stale temporary ones are removed by prune."""
    when = 1767225296.789
    assert crashdirs.dir_name(when) == "2025-12-31T23-54-56.789Z"
    assert crashdirs.parse_dir_name("2025-12-31T23-54-56.789Z") == pytest.approx(when)
    assert crashdirs.parse_dir_name("2025-12-31T23-54-56.789Z-1") == pytest.approx(when)
    root = crashdirs.crash_root(tmp_path)
    for name in ("2025-01-01T00-00-00.000Z", "2026-01-01T00-00-00.000Z", "notes"):
        (root / name).mkdir(parents=True)
    tmp = root / ".2026-02-01T00-00-00.000Z.tmp"
    tmp.mkdir()
    os.utime(tmp, (1000, 1000))
    names = [d.path.name for d in crashdirs.list_crash_dirs(tmp_path)]
    assert names == ["2026-01-01T00-00-00.000Z", "2025-01-01T00-00-00.000Z"]
    removed = crashdirs.prune(tmp_path, keep=1)
    assert [p.name for p in removed] == ["2025-01-01T00-00-00.000Z"]
    assert sorted(os.listdir(root)) == ["2026-01-01T00-00-00.000Z", "notes"]


def test_exit_texts() -> None:
    """Exits read as operators say them, with how long ago."""
    assert exit_text(None, 9, "SIGKILL") == "killed by SIGKILL"
    assert exit_text(1, None) == "exited with status 1"
    assert exit_text(None, None) == "exited (status unknown)"
    assert [ago(s) for s in (0.5, 12, 190, 7300, 90000, 200000)] == [
        "just now",
        "12 s ago",
        "3 min ago",
        "2 h ago",
        "1 day ago",
        "2 days ago",
    ]
    last = {"code": None, "signal": 9, "text": "killed by SIGKILL", "time": 100.0}
    assert last_exit_text(last, 280.0) == "killed by SIGKILL 3 min ago"
    assert last_exit_text({"signal": 15}, 0) == "killed by signal 15"
    assert last_exit_text(None, 0) is None
