"""What housekeeping removes, decided without I/O (issue 13).

Rules / theory of operation
---------------------------
**Archived logs** (:func:`plan_log_expiry`). The archive holds one directory per day,
``<archive_dir>/YYYY-MM-DD/`` (zeek-archiver's layout). Given its files with sizes and
modification times:

1. *age* (zeekctl's ``LogExpireInterval``): a file older than ``expire_after`` seconds is
   removed, as zeekctl's ``expire-logs`` does (per file, by mtime);
2. *size* (``archive_max_size``) and *free space* (``min_disk_space`` with
   ``expire_for_disk_space``): while the archive is bigger than the bound, or its file
   system has less than the percentage free, whole days go, oldest first.

Never removed: a file whose name matches a ``keep_logs`` pattern (``fnmatch``, the name
only, as zeekctl's ``KeepLogs``), any file of a protected day (today's directory, where
the archiver writes), and files that are being written (the caller leaves out names
starting with ``.`` and ending in ``.tmp``: the archivers' temporary files). The bounds
can only be met as far as that allows.

**Crash and old node directories** (:func:`expired_entries`): entries older than the
interval, by mtime, minus the protected ones.

**Disk checks** (:class:`DiskWatch`): a file system is *low* while its free percentage is
below ``min_disk_space``; each crossing (ok -> low, low -> ok) is reported once.

This module is pure: no I/O, no clocks (``now`` is an argument).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from mgmt.core.frozen import frozen

#: An archive day directory's name (zeek-archiver's ``YYYY-MM-DD``).
DAY_NAME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def is_temporary(name: str) -> bool:
    """Whether a file name is an archiver's (or our writers') temporary file."""
    return name.startswith(".") or name.endswith(".tmp")


@frozen
class ArchivedFile:
    """One file of the archive: ``<archive_dir>/<day>/<name>``."""

    day: str
    name: str
    size: int
    mtime: float


@frozen
class RetentionBounds:
    """The retention settings (see the module docstring); 0 means "no bound"."""

    expire_after: float = 0.0
    keep: tuple[str, ...] = ()
    max_size: int = 0
    min_free_percent: float = 0.0

    @property
    def active(self) -> bool:
        """Whether any bound is set (else nothing is ever removed)."""
        return bool(self.expire_after or self.max_size or self.min_free_percent)


@frozen
class Space:
    """A file system's size and free bytes (for unprivileged users, as ``df``)."""

    total: int
    free: int

    @property
    def free_percent(self) -> float:
        """Free space in percent of the total (100 for an empty file system)."""
        return 100.0 if self.total <= 0 else 100.0 * self.free / self.total


@frozen
class ExpiryPlan:
    """What to remove: by age, and for the size or free-space bound."""

    by_age: tuple[ArchivedFile, ...] = ()
    for_space: tuple[ArchivedFile, ...] = ()

    @property
    def files(self) -> tuple[ArchivedFile, ...]:
        """Every file to remove."""
        return self.by_age + self.for_space

    @property
    def bytes(self) -> int:
        """The bytes they hold."""
        return sum(f.size for f in self.files)


def kept(name: str, patterns: Iterable[str]) -> bool:
    """Whether ``keep_logs`` protects a file name."""
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


def plan_log_expiry(
    files: Sequence[ArchivedFile],
    bounds: RetentionBounds,
    now: float,
    protected_days: frozenset[str],
    space: Space | None = None,
) -> ExpiryPlan:
    """The archived files to remove (see the module docstring).

    Args:
        files: the archive's files (temporary files already left out).
        bounds: the retention settings.
        now: the current time (seconds since the epoch, like the mtimes).
        protected_days: day directories never touched (today's).
        space: the archive's file system, for the free-space bound.
    """
    removable = [f for f in files if f.day not in protected_days and not kept(f.name, bounds.keep)]
    by_age: list[ArchivedFile] = []
    if bounds.expire_after > 0:
        by_age = [f for f in removable if now - f.mtime > bounds.expire_after]
    gone = set(by_age)
    # Bytes still to free for each bound once the aged files are gone.
    freed = sum(f.size for f in by_age)
    need = 0
    if bounds.max_size > 0:
        need = max(need, sum(f.size for f in files) - freed - bounds.max_size)
    if bounds.min_free_percent > 0 and space is not None and space.total > 0:
        wanted_free = bounds.min_free_percent / 100.0 * space.total
        need = max(need, int(wanted_free - space.free - freed + 0.999))
    for_space: list[ArchivedFile] = []
    if need > 0:
        for day in sorted({f.day for f in removable}):
            if need <= 0:
                break
            for f in removable:
                if f.day == day and f not in gone:
                    for_space.append(f)
                    need -= f.size
    return ExpiryPlan(tuple(by_age), tuple(for_space))


@frozen
class AgedEntry:
    """A directory that may expire (a crash directory, an old node directory)."""

    name: str
    mtime: float


def expired_entries(
    entries: Iterable[AgedEntry], expire_after: float, now: float, protected: Iterable[str] = ()
) -> tuple[str, ...]:
    """Names of the entries older than ``expire_after`` seconds (0: none), sorted;
    entries starting with ``.`` (incomplete) and ``protected`` names never expire."""
    if expire_after <= 0:
        return ()
    keep = set(protected)
    return tuple(
        sorted(
            e.name
            for e in entries
            if now - e.mtime > expire_after and e.name not in keep and not e.name.startswith(".")
        )
    )


DiskEventKind = Literal["disk-low", "disk-ok"]


@dataclass(slots=True)
class DiskWatch:
    """Which file systems are low; reports each crossing once.

    Args:
        min_free_percent: the threshold (0: never low).
    """

    min_free_percent: float
    low: set[str] = field(default_factory=set)

    def observe(self, path: str, free_percent: float) -> DiskEventKind | None:
        """Record a file system's free percentage; the crossing it makes, if any."""
        is_low = self.min_free_percent > 0 and free_percent < self.min_free_percent
        was_low = path in self.low
        if is_low and not was_low:
            self.low.add(path)
            return "disk-low"
        if was_low and not is_low:
            self.low.discard(path)
            return "disk-ok"
        return None
