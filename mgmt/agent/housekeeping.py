"""The agent's housekeeping (issue 13): what ``zeekctl cron`` did, without cron.

Every ``housekeeping_interval`` (and once at start-up) the agent

* expires archived logs (``log_expire_interval``, ``keep_logs``, ``archive_max_size``,
  ``min_disk_space`` with ``expire_for_disk_space``; decided by
  :func:`mgmt.agent.retention.plan_log_expiry`) and logs what it removed, with counts
  and bytes;
* expires crash directories (``<state>/nodes/<node>/crash/<time>/``) and the directories
  of nodes no longer deployed here (``<state>/nodes/<node>``) after
  ``crash_expire_interval``;
* then checks free space on the file systems of ``state_dir``, ``spool_dir`` and
  ``archive_dir``: a crossing of ``min_disk_space`` (low, or ok again) is reported once,
  through the ``on_disk_event`` callback (the service logs it; the ``notify_cmd`` hook
  connects there).

The file-system work runs in a worker thread (a large archive must not stall the event
loop); the callbacks run on the loop. Errors are logged and the next run tries again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from mgmt.agent import retention
from mgmt.agent.retention import ArchivedFile, DiskEventKind, RetentionBounds, Space
from mgmt.core.frozen import frozen
from mgmt.settings.model import AgentSettings

log = logging.getLogger("mgmt.agent")

#: Called on the event loop for each crossing: (kind, mount point, free percent).
DiskEventCallback = Callable[[DiskEventKind, str, float], None]

#: Files in a daemon's own directory: never an old node's directory.
_DAEMON_FILES = ("agent.toml", "nodes.toml", "controller.toml", ".pid", "layout")


# -- file systems --------------------------------------------------------------------------


def _existing(path: Path) -> Path:
    """``path``, or its nearest existing parent (a directory not created yet)."""
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def mount_point(path: Path) -> Path:
    """The mount point of the file system holding ``path``."""
    path = _existing(path.absolute())
    while not os.path.ismount(path) and path != path.parent:
        path = path.parent
    return path


@frozen
class FileSystem:
    """One file system's usage, as ``df -P`` counts it (``used`` + ``avail`` < size
    when blocks are reserved for root).

    Attributes:
        mount: its mount point.
        dirs: the settings whose directories it holds, by name (``state_dir``: path).
        size, used, avail: bytes.
    """

    mount: str
    dirs: dict[str, str]
    size: int
    used: int
    avail: int

    @property
    def space(self) -> Space:
        """What an unprivileged writer has (``df``'s ``Use%`` is its complement)."""
        return Space(self.used + self.avail, self.avail)

    def payload(self) -> dict[str, object]:
        """The ``get_disk_usage`` JSON of this file system (README, "API")."""
        return {
            "fs": self.mount,
            "dirs": self.dirs,
            "size": self.size,
            "used": self.used,
            "avail": self.avail,
            "free_percent": round(self.space.free_percent, 2),
        }


def file_systems(dirs: Mapping[str, Path]) -> list[FileSystem]:
    """The file systems holding ``dirs`` (by setting name), one entry each, in order.

    A directory that does not exist yet counts on its nearest existing parent; one whose
    file system cannot be read is left out (logged at debug level).
    """
    found: dict[int, FileSystem] = {}
    for name, path in dirs.items():
        try:
            existing = _existing(path.absolute())
            dev = existing.stat().st_dev
            if dev in found:
                found[dev].dirs[name] = str(path)
                continue
            st = os.statvfs(existing)
        except OSError as exc:
            log.debug("cannot read the file system of %s: %s", path, exc)
            continue
        found[dev] = FileSystem(
            str(mount_point(existing)),
            {name: str(path)},
            st.f_blocks * st.f_frsize,
            (st.f_blocks - st.f_bfree) * st.f_frsize,
            st.f_bavail * st.f_frsize,
        )
    return list(found.values())


def watched_dirs(settings: AgentSettings) -> dict[str, Path]:
    """The directories whose file systems the agent watches, by setting name."""
    return {
        "state_dir": settings.state_dir,
        "spool_dir": settings.spool_dir,
        "archive_dir": settings.archive_dir,
    }


def queue_backlog(queue: Path) -> tuple[int, int]:
    """Files and bytes waiting in the log queue (``<spool>/log-queue``)."""
    files = size = 0
    with contextlib.suppress(OSError), os.scandir(queue) as entries:
        for entry in entries:
            with contextlib.suppress(OSError):
                if entry.is_file(follow_symlinks=False):
                    files += 1
                    size += entry.stat(follow_symlinks=False).st_size
    return files, size


# -- scanning and removing ----------------------------------------------------------------


def scan_archive(archive_dir: Path) -> list[ArchivedFile]:
    """The files of the archive's day directories, without temporary files."""
    out: list[ArchivedFile] = []
    with contextlib.suppress(FileNotFoundError), os.scandir(archive_dir) as days:
        for day in days:
            if not retention.DAY_NAME.fullmatch(day.name) or not day.is_dir(follow_symlinks=False):
                continue
            with contextlib.suppress(OSError), os.scandir(day.path) as entries:
                for entry in entries:
                    if retention.is_temporary(entry.name):
                        continue
                    with contextlib.suppress(OSError):
                        if entry.is_file(follow_symlinks=False):
                            st = entry.stat(follow_symlinks=False)
                            out.append(ArchivedFile(day.name, entry.name, st.st_size, st.st_mtime))
    return out


def protected_days(now: float) -> frozenset[str]:
    """Today's day directories (local time and UTC: archivers differ)."""
    return frozenset(time.strftime("%Y-%m-%d", t(now)) for t in (time.localtime, time.gmtime))


def _aged_dirs(parent: Path) -> list[retention.AgedEntry]:
    """The sub-directories of ``parent`` with their newest mtime (of the directory and
    its direct entries: a node's output files change while it runs)."""
    out = []
    with contextlib.suppress(OSError), os.scandir(parent) as entries:
        for entry in entries:
            with contextlib.suppress(OSError):
                if not entry.is_dir(follow_symlinks=False):
                    continue
                mtime = entry.stat(follow_symlinks=False).st_mtime
                with os.scandir(entry.path) as inner:
                    for sub in inner:
                        with contextlib.suppress(OSError):
                            mtime = max(mtime, sub.stat(follow_symlinks=False).st_mtime)
                out.append(retention.AgedEntry(entry.name, mtime))
    return out


@dataclass(slots=True)
class Sweep:
    """What one run found and did (counts for the metrics, crossings for the callback)."""

    files_expired: int = 0
    bytes_expired: int = 0
    dirs_expired: int = 0
    file_systems: list[FileSystem] = field(default_factory=list)


class Housekeeping:
    """The agent's housekeeping (see the module docstring).

    Args:
        settings: the agent's settings.
        current_nodes: the names of the nodes this agent runs or is to run now (their
            directories are not "old").
        on_disk_event: called on the loop for each ``min_disk_space`` crossing.
        clock: wall clock (seconds since the epoch, like file times).
    """

    def __init__(
        self,
        settings: AgentSettings,
        current_nodes: Callable[[], Iterable[str]],
        on_disk_event: DiskEventCallback,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.current_nodes = current_nodes
        self.on_disk_event = on_disk_event
        self.clock = clock
        self.bounds = RetentionBounds(
            settings.log_expire_interval,
            settings.keep_logs,
            settings.archive_max_size,
            settings.min_disk_space if settings.expire_for_disk_space else 0.0,
        )
        self.watch = retention.DiskWatch(settings.min_disk_space)
        #: Totals since start-up (metrics).
        self.files_expired = 0
        self.bytes_expired = 0
        self.dirs_expired = 0
        self.runs = 0

    async def run_once(self) -> Sweep:
        """One run: expiry, then disk checks (the file-system work in a worker thread)."""
        now = self.clock()
        current = frozenset(self.current_nodes())
        sweep = await asyncio.to_thread(self._sweep, now, current)
        self.runs += 1
        self.files_expired += sweep.files_expired
        self.bytes_expired += sweep.bytes_expired
        self.dirs_expired += sweep.dirs_expired
        for fs in sweep.file_systems:
            free = fs.space.free_percent
            kind = self.watch.observe(fs.mount, free)
            if kind is not None:
                self.on_disk_event(kind, fs.mount, free)
        return sweep

    async def loop(self) -> None:
        """Run now, then every ``housekeeping_interval`` seconds (cancel to stop)."""
        while True:
            try:
                await self.run_once()
            except Exception:  # a bug here must not end housekeeping for good
                log.exception("housekeeping run failed")
            await asyncio.sleep(self.settings.housekeeping_interval)

    # -- in the worker thread ---------------------------------------------------------------

    def _sweep(self, now: float, current: frozenset[str]) -> Sweep:
        sweep = Sweep()
        if self.bounds.active:
            self._expire_logs(now, sweep)
        if self.settings.crash_expire_interval > 0:
            self._expire_node_dirs(now, current, sweep)
        # After expiry: what it freed does not count as low.
        sweep.file_systems = file_systems(watched_dirs(self.settings))
        return sweep

    def _expire_logs(self, now: float, sweep: Sweep) -> None:
        archive = self.settings.archive_dir
        space = None
        if self.bounds.min_free_percent > 0:
            fs = file_systems({"archive_dir": archive})
            space = fs[0].space if fs else None
        plan = retention.plan_log_expiry(
            scan_archive(archive), self.bounds, now, protected_days(now), space
        )
        removed = {"age": [0, 0], "space": [0, 0]}
        for why, chosen in (("age", plan.by_age), ("space", plan.for_space)):
            for f in chosen:
                try:
                    (archive / f.day / f.name).unlink()
                except FileNotFoundError:
                    continue
                except OSError as exc:
                    log.warning("cannot remove archived log %s/%s: %s", f.day, f.name, exc)
                    continue
                removed[why][0] += 1
                removed[why][1] += f.size
        for day in sorted({f.day for f in plan.files}):
            with contextlib.suppress(OSError):  # not empty: kept files remain
                (archive / day).rmdir()
        files = removed["age"][0] + removed["space"][0]
        if files:
            size = removed["age"][1] + removed["space"][1]
            log.info(
                "expired %d archived log files (%d bytes) in %s: %d (%d bytes) older than "
                "log_expire_interval, %d (%d bytes) for archive_max_size/min_disk_space",
                files,
                size,
                archive,
                *removed["age"],
                *removed["space"],
            )
            sweep.files_expired += files
            sweep.bytes_expired += size

    def _expire_node_dirs(self, now: float, current: frozenset[str], sweep: Sweep) -> None:
        nodes_dir = self.settings.state_dir / "nodes"
        limit = self.settings.crash_expire_interval
        entries = _aged_dirs(nodes_dir)
        for entry in entries:
            crash = nodes_dir / entry.name / "crash"
            for name in retention.expired_entries(_aged_dirs(crash), limit, now):
                if self._remove_tree(crash / name, f"crash directory {crash / name}"):
                    sweep.dirs_expired += 1
        protected = current | {self.settings.name}
        for name in retention.expired_entries(entries, limit, now, protected):
            path = nodes_dir / name
            if any((path / f).exists() for f in _DAEMON_FILES):
                continue  # a daemon's own directory (zeek-mgmt run's controller, ...)
            if self._remove_tree(path, f"directory of node {name}, no longer deployed here,"):
                sweep.dirs_expired += 1

    def _remove_tree(self, path: Path, what: str) -> bool:
        try:
            shutil.rmtree(path)
        except OSError as exc:
            log.warning("cannot remove %s: %s", path, exc)
            return False
        log.info("removed %s older than crash_expire_interval", what)
        return True
