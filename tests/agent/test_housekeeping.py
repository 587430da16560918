"""Housekeeping on real files: archived logs, crash and old node directories, disk checks."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

import pytest

from mgmt.agent.housekeeping import Housekeeping, file_systems, queue_backlog, scan_archive
from mgmt.agent.retention import DiskEventKind
from tests.support.faultfs import mounted_tmpfs
from tests.support.settings import agent_settings

DAY = 86400.0
#: A fixed "now": 2026-12-07 12:00 UTC.
NOW = 1796644800.0


def put(path: Path, age_days: float, size: int = 1000) -> Path:
    """A file of ``size`` bytes, last modified ``age_days`` before NOW."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    mtime = NOW - age_days * DAY
    os.utime(path, (mtime, mtime))
    return path


def age_dir(path: Path, age_days: float) -> Path:
    """Set a directory's and its entries' mtimes to ``age_days`` before NOW."""
    mtime = NOW - age_days * DAY
    for p in [*path.rglob("*"), path]:
        os.utime(p, (mtime, mtime))
    return path


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[DiskEventKind, str, float]] = []

    def __call__(self, kind: DiskEventKind, path: str, free: float) -> None:
        self.events.append((kind, path, free))


def keeper(tmp_path: Path, nodes: tuple[str, ...] = (), **changes: Any) -> Housekeeping:
    settings = agent_settings(tmp_path / "state", **changes)
    return Housekeeping(settings, lambda: nodes, Recorder(), clock=lambda: NOW)


def archive_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


@pytest.mark.asyncio
async def test_log_expiry_by_age_with_keep_logs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Files older than log_expire_interval go (emptied day directories too), except
    keep_logs matches, today's directory and temporary files; the run logs counts and bytes."""
    hk = keeper(tmp_path, log_expire_interval=3 * DAY, keep_logs=("notice.*",))
    logs = hk.settings.archive_dir
    put(logs / "2026-12-01" / "conn.00:00:00-01:00:00.log.gz", 6)
    put(logs / "2026-12-01" / "notice.00:00:00-01:00:00.log.gz", 6)
    put(logs / "2026-12-02" / "dns.00:00:00-01:00:00.log.gz", 5, size=500)
    put(logs / "2026-12-06" / "conn.00:00:00-01:00:00.log.gz", 1)
    put(logs / "2026-12-07" / "conn.00:00:00-01:00:00.log.gz", 10)  # today: never
    put(logs / "2026-12-02" / ".conn.log.gz.tmp", 10)  # being written
    put(logs / "not-a-day" / "x.log", 10)  # not the archiver's
    with caplog.at_level(logging.INFO, "mgmt.agent"):
        sweep = await hk.run_once()
    assert archive_files(logs) == [
        "2026-12-01/notice.00:00:00-01:00:00.log.gz",
        "2026-12-02/.conn.log.gz.tmp",
        "2026-12-06/conn.00:00:00-01:00:00.log.gz",
        "2026-12-07/conn.00:00:00-01:00:00.log.gz",
        "not-a-day/x.log",
    ]
    assert (sweep.files_expired, sweep.bytes_expired) == (2, 1500)
    assert (hk.files_expired, hk.bytes_expired) == (2, 1500)
    assert (
        f"expired 2 archived log files (1500 bytes) in {logs}: 2 (1500 bytes) older than "
        "log_expire_interval, 0 (0 bytes) for archive_max_size/min_disk_space"
    ) in caplog.messages


@pytest.mark.asyncio
async def test_log_expiry_by_size_removes_oldest_days(tmp_path: Path) -> None:
    """archive_max_size removes whole days, oldest first, until the archive fits."""
    hk = keeper(tmp_path, archive_max_size=3000)
    logs = hk.settings.archive_dir
    for day, age in (("2026-12-03", 4), ("2026-12-04", 3), ("2026-12-05", 2)):
        put(logs / day / "conn.log.gz", age)
        put(logs / day / "dns.log.gz", age)
    put(logs / "2026-12-07" / "conn.log.gz", 0)
    await hk.run_once()
    assert archive_files(logs) == [
        "2026-12-05/conn.log.gz",
        "2026-12-05/dns.log.gz",
        "2026-12-07/conn.log.gz",
    ]
    assert not (logs / "2026-12-03").exists()


@pytest.mark.asyncio
async def test_nothing_expires_by_default(tmp_path: Path) -> None:
    """With the default settings (keep forever) no archived log or directory is removed."""
    hk = keeper(tmp_path)
    logs = hk.settings.archive_dir
    put(logs / "2020-01-01" / "conn.log.gz", 2000)
    crash = hk.settings.state_dir / "nodes" / "w1" / "crash" / "t"
    age_dir(put(crash / "stderr", 2000).parent, 2000)
    await hk.run_once()
    assert (logs / "2020-01-01" / "conn.log.gz").exists()
    assert crash.exists()


@pytest.mark.asyncio
async def test_crash_and_old_node_dirs_expire(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """crash_expire_interval removes old crash directories (not incomplete ones) and the
    directories of nodes no longer deployed, but never a current node's, the agent's own,
    a controller's or .bin."""
    hk = keeper(tmp_path, nodes=("worker-1",), crash_expire_interval=2 * DAY)
    nodes = hk.settings.state_dir / "nodes"
    age_dir(put(nodes / "worker-1" / "stdout", 10).parent, 10)  # current: stays
    for d in ("2026-12-01T00-00-00.000Z", "2026-12-06T23-00-00.000Z", ".2026-11-01T00-00-00.000Z"):
        put(nodes / "worker-1" / "crash" / d / "stderr", 0)
    age_dir(nodes / "worker-1" / "crash" / "2026-12-01T00-00-00.000Z", 6)
    age_dir(nodes / "worker-1" / "crash" / ".2026-11-01T00-00-00.000Z", 30)
    age_dir(nodes / "worker-1" / "crash" / "2026-12-06T23-00-00.000Z", 0.5)
    age_dir(put(nodes / "worker-old" / "stdout", 10).parent, 10)
    age_dir(put(nodes / "worker-recent" / "stdout", 1).parent, 1)
    age_dir(put(nodes / hk.settings.name / "agent.toml", 10).parent, 10)
    age_dir(put(nodes / "controller-x" / "controller.toml", 10).parent, 10)
    age_dir(put(nodes / ".bin" / "zeek.worker-1", 10).parent, 10)
    with caplog.at_level(logging.INFO, "mgmt.agent"):
        sweep = await hk.run_once()
    assert sorted(p.name for p in nodes.iterdir()) == sorted(
        [".bin", "controller-x", hk.settings.name, "worker-1", "worker-recent"]
    )
    assert sorted(p.name for p in (nodes / "worker-1" / "crash").iterdir()) == [
        ".2026-11-01T00-00-00.000Z",
        "2026-12-06T23-00-00.000Z",
    ]
    assert sweep.dirs_expired == 2
    assert (
        "removed directory of node worker-old, no longer deployed here, older than "
        "crash_expire_interval" in caplog.messages
    )


@pytest.mark.asyncio
async def test_free_space_bound_and_disk_events_on_a_tmpfs(tmp_path: Path) -> None:
    """On a small file system below min_disk_space, expire_for_disk_space removes the
    oldest days until enough is free; the low and ok crossings are each reported once."""
    with mounted_tmpfs(tmp_path / "fs", size="1m") as fs:
        hk = keeper(
            tmp_path,
            archive_dir=fs.path / "logs",
            min_disk_space=60.0,
            expire_for_disk_space=True,
        )
        events = hk.on_disk_event
        assert isinstance(events, Recorder)
        for day, age in (("2026-12-02", 5), ("2026-12-03", 4), ("2026-12-04", 3)):
            put(fs.path / "logs" / day / "conn.log.gz", age, size=250_000)
        await hk.run_once()
        # 1 MiB, 750 kB used: the 2 oldest days go to get 60 % free; then it is not low.
        assert archive_files(fs.path / "logs") == ["2026-12-04/conn.log.gz"]
        assert events.events == []
        (fs.path / "other").write_bytes(b"x" * 500_000)  # not the archive's
        await hk.run_once()
        # The last day went too, and still less than 60 % is free.
        assert archive_files(fs.path / "logs") == []
        assert [e[:2] for e in events.events] == [("disk-low", str(fs.path))]
        await hk.run_once()  # still low: reported once
        assert len(events.events) == 1
        (fs.path / "other").unlink()
        await hk.run_once()
        assert [e[:2] for e in events.events] == [
            ("disk-low", str(fs.path)),
            ("disk-ok", str(fs.path)),
        ]


def test_file_systems_group_directories(tmp_path: Path) -> None:
    """Directories on one file system are one entry (naming each); one not created yet
    counts on its parent's file system."""
    settings = agent_settings(tmp_path / "state")
    found = file_systems(
        {"state_dir": settings.state_dir, "archive_dir": tmp_path / "no" / "such" / "dir"}
    )
    assert len(found) == 1
    assert set(found[0].dirs) == {"state_dir", "archive_dir"}
    assert found[0].size >= found[0].used + found[0].avail > 0


def test_queue_backlog_and_scan(tmp_path: Path) -> None:
    """The log queue's backlog counts its files and bytes; a missing queue or archive is
    empty."""
    put(tmp_path / "q" / "conn__2026-12-07-10-00-00__2026-12-07-11-00-00__.log", 0, 300)
    put(tmp_path / "q" / "dns__2026-12-07-10-00-00__2026-12-07-11-00-00__.log", 0, 200)
    assert queue_backlog(tmp_path / "q") == (2, 500)
    assert queue_backlog(tmp_path / "none") == (0, 0)
    assert scan_archive(tmp_path / "none") == []


def test_today_is_protected_in_local_time_and_utc() -> None:
    """Today's directory is protected whatever time zone the archiver used."""
    from mgmt.agent.housekeeping import protected_days

    now = time.time()
    assert time.strftime("%Y-%m-%d", time.gmtime(now)) in protected_days(now)
    assert time.strftime("%Y-%m-%d", time.localtime(now)) in protected_days(now)
