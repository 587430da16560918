"""The built-in log archiver: ``zeek-mgmt archive``, a drop-in for ``zeek-archiver``.

The agent archives its log queue every interval by running
``<archive_cmd> -1 <spool>/log-queue <archive_dir>`` (behaviour.md §5.13). When no
``zeek-archiver`` is installed, this module does the same job with the same command line
and the same result: each rotated file ``<path>__<open>__<close>__[<meta>__]<ext>`` ends
up as ``<archive_dir>/<YYYY-MM-DD>/<path>.<HH:MM:SS>-<HH:MM:SS>[-<log_suffix>]<ext>.gz``.
The naming rules are in :mod:`mgmt.archive.names`. The date directory is the *open*
timestamp's date exactly as written in the file name: like zeek-archiver (``strptime``
then ``strftime`` on the same ``struct tm``) there is no time-zone conversion.

Per file, serially, in name order (zeek-archiver: directory order):

* compress: ``<src> -> <date dir>/.tmp.<name>`` (created ``0664`` minus umask), fsync,
  rename to the final name, fsync the date directory, then remove the source;
* already compressed (``-z`` extensions) or compression off (``-c ""``): rename into
  place, or, across file systems, copy to the temporary name, fsync, rename, remove.

A ``kill -9`` at any point therefore leaves either the source in the queue (and maybe a
temporary file), or the complete archived file (and maybe the source, which the next run
archives again, replacing the target with the same content). Nothing incomplete ever
carries a final name. A stale temporary file is *reused*: its name is deterministic, so the
next run truncates it, writes it again and renames it away. An existing target is replaced,
as zeek-archiver's ``rename(2)`` does; that is also what makes re-archiving idempotent.

Differences from zeek-archiver, all deliberate:

* ``gzip`` and ``gzip -N`` (the default command) run in-process with zlib, level 6 or N,
  streaming; the header carries the source's mtime like ``gzip < file``. Other ``-c``
  commands run through ``sh -c`` with stdin/stdout redirected, as zeek-archiver does.
* Bad queue entries are reported as warnings on stderr (zeek-archiver prints a debug line
  only with ``-v``) and left alone: names that do not parse, empty files (zeek-archiver
  would archive them), directories and other non-regular files, and symlinks (zeek-archiver
  follows them; we never follow, move or delete a symlink). Dot files are ignored silently.
* Durability: the temporary file and the date directory are fsynced before the source
  is removed (zeek-archiver does not fsync).
* Runs are serialised with ``flock(2)`` on the queue directory; a run that finds the lock
  taken does nothing and exits 0 (the agent may start a run while the last still works).
* Argument errors found by argparse exit 2 (zeek-archiver: 1); flags may follow the
  directories. ``-t`` supports the glibc ``strptime`` directives listed in
  :data:`mgmt.archive.names.SUPPORTED_DIRECTIVES` only. ``-z ""`` disables the detection
  of compressed files, as the help text says (zeek-archiver instead treats every file as
  compressed). A queue that exists but cannot be read exits 1 (zeek-archiver: 0, silently).
  SIGTERM exits 131 like zeek-archiver.
"""

from __future__ import annotations

import enum
import errno
import fcntl
import logging
import os
import stat
import struct
import subprocess
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from mgmt.archive.names import (
    DEFAULT_ZIP_EXTENSIONS,
    Compression,
    NamingOptions,
    Rejected,
    RotatedName,
    already_compressed,
)
from mgmt.core.frozen import frozen
from mgmt.exceptions import ArchiveError, ConfigError
from mgmt.persist.statefile import AtomicFile, closing_fd, open_directory, opened_directory

logger = logging.getLogger("mgmt.archive.engine")

#: ``log(level, message)``: level is a :mod:`logging` level (DEBUG, INFO, WARNING, ERROR).
LogFn = Callable[[int, str], None]

_DIR_MODE = 0o775  # zeek-archiver's mkdir mode (umask applies)
_FILE_MODE = 0o664  # zeek-archiver's mode for the compressed file (umask applies)


class Outcome(enum.Enum):
    """What happened to one queue entry."""

    ARCHIVED = "archived"
    SKIPPED = "skipped"  # not a rotated log, or unsafe to touch: left in place
    FAILED = "failed"  # a rotated log that could not be archived this time: left in place


@frozen
class FileResult:
    """The outcome for one queue entry.

    Attributes:
        name: the entry's name in the queue.
        outcome: archived, skipped or failed.
        target: the archived file (when archived).
        message: why it was skipped or failed, or a problem after archival (e.g. the
            source could not be removed); empty when all went well.
    """

    name: str
    outcome: Outcome
    target: Path | None = None
    message: str = ""


@frozen
class ArchiveReport:
    """The result of one :func:`archive_queue` run.

    Attributes:
        results: one entry per queue entry looked at, in processing order.
        busy: another archiver held the queue lock, so nothing was done.
        seconds: how long the run took.
    """

    results: tuple[FileResult, ...] = ()
    busy: bool = False
    seconds: float = 0.0

    def _count(self, outcome: Outcome) -> int:
        return sum(1 for r in self.results if r.outcome is outcome)

    @property
    def archived(self) -> int:
        """How many files were archived."""
        return self._count(Outcome.ARCHIVED)

    @property
    def skipped(self) -> int:
        """How many entries were left alone because they are not (safe) rotated logs."""
        return self._count(Outcome.SKIPPED)

    @property
    def failed(self) -> int:
        """How many rotated logs could not be archived (they stay in the queue)."""
        return self._count(Outcome.FAILED)

    @property
    def messages(self) -> tuple[str, ...]:
        """Every non-empty per-file message, in order."""
        return tuple(r.message for r in self.results if r.message)


@frozen
class ArchiveOptions:
    """zeek-archiver's options, besides the directories.

    Attributes:
        naming: delimiter (``-d``) and time format (``-t``).
        compression: extension and command (``-c``); ``None`` disables compression.
        zip_extensions: extensions of already compressed files (``-z``).
        chunk_size: bytes read per step when compressing in-process.
    """

    naming: NamingOptions = field(default_factory=NamingOptions)
    compression: Compression | None = field(default_factory=Compression)
    zip_extensions: tuple[str, ...] = DEFAULT_ZIP_EXTENSIONS
    chunk_size: int = 1 << 20

    def check(self) -> None:
        """Validate the options.

        Raises:
            ConfigError: a bad delimiter, time format or chunk size.
        """
        self.naming.check()
        if self.chunk_size <= 0:
            raise ConfigError("chunk_size: must be positive")


def _default_log(level: int, message: str) -> None:
    logger.log(level, "%s", message)


def archive_queue(
    queue_dir: Path,
    archive_dir: Path,
    *,
    compress: bool = True,
    options: ArchiveOptions | None = None,
    log: LogFn | None = None,
) -> ArchiveReport:
    """Archive every rotated log in ``queue_dir`` into ``archive_dir``, once.

    Blocking (file I/O and compression); call it from a worker thread in asyncio code.
    Safe to interrupt or kill at any point (see the module docstring) and to run again.

    Args:
        queue_dir: the log queue (``<spool>/log-queue``). A missing directory means
            there is nothing to do.
        archive_dir: the archive root; created (with parents) if needed.
        compress: ``False`` is ``-c ""``: move files without compressing them.
        options: zeek-archiver's other options; its defaults if omitted.
        log: receives ``(logging level, message)`` for every remark; defaults to the
            ``mgmt.archive.engine`` logger.

    Returns:
        What happened to each queue entry.

    Raises:
        ConfigError: invalid ``options``.
        ArchiveError: ``archive_dir`` cannot be created, or ``queue_dir`` exists but
            cannot be read.
    """
    opts = options or ArchiveOptions()
    opts.check()
    emit = log or _default_log
    compression = opts.compression if compress else None
    started = time.monotonic()

    make_dirs(archive_dir, emit)
    try:
        qfd = open_directory(queue_dir)
    except FileNotFoundError:
        emit(logging.DEBUG, f"Source directory '{queue_dir}', does not exist")
        return ArchiveReport(seconds=time.monotonic() - started)
    except OSError as exc:
        raise ArchiveError(str(queue_dir), f"cannot open log queue: {exc.strerror}") from exc
    with closing_fd(qfd):
        try:
            fcntl.flock(qfd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            emit(logging.INFO, f"Another archiver is working on {queue_dir}; not running")
            return ArchiveReport(busy=True, seconds=time.monotonic() - started)
        try:
            names = sorted(os.listdir(qfd))
        except OSError as exc:
            raise ArchiveError(str(queue_dir), f"cannot list log queue: {exc.strerror}") from exc
        run = _Run(qfd, archive_dir, opts, compression, emit)
        try:
            results = [r for r in (run.entry(name) for name in names) if r is not None]
        finally:
            run.close()
    return ArchiveReport(results=tuple(results), seconds=time.monotonic() - started)


def make_dirs(path: Path, emit: LogFn) -> None:
    """``mkdir -p`` with zeek-archiver's mode for every level it creates."""
    parts = [path, *path.parents][::-1]
    for part in parts:
        try:
            os.mkdir(part, _DIR_MODE)
        except FileExistsError:
            if not part.is_dir():
                raise ArchiveError(
                    str(path), f"cannot create {part}: exists but is not a directory"
                ) from None
        except OSError as exc:
            if part.is_dir():  # e.g. EACCES on "/" or an existing mount point
                continue
            raise ArchiveError(str(path), f"cannot create {part}: {exc.strerror}") from exc
        else:
            emit(logging.DEBUG, f"Created directory {part}")


@dataclass(eq=False)
class _Run:
    """One pass over the queue: per-entry checks, then the file work."""

    qfd: int
    archive_dir: Path
    opts: ArchiveOptions
    compression: Compression | None
    emit: LogFn
    dir_fds: dict[str, int] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        self.gzip_level = self.compression.gzip_level() if self.compression else None
        self.buf = bytearray(self.opts.chunk_size)

    def close(self) -> None:
        for fd in self.dir_fds.values():
            os.close(fd)
        self.dir_fds.clear()

    # -- outcomes ------------------------------------------------------------------------

    def skip(self, name: str, message: str) -> FileResult:
        self.emit(logging.WARNING, message)
        return FileResult(name, Outcome.SKIPPED, message=message)

    def fail(self, name: str, message: str) -> FileResult:
        self.emit(logging.ERROR, message)
        return FileResult(name, Outcome.FAILED, message=message)

    # -- per entry -----------------------------------------------------------------------

    def entry(self, name: str) -> FileResult | None:
        """Check one queue entry and archive it if it is a rotated log."""
        if name.startswith("."):
            return None  # zeek-archiver ignores dot files without a word
        try:
            st = os.stat(name, dir_fd=self.qfd, follow_symlinks=False)
        except FileNotFoundError:
            return None  # gone since listing
        except OSError as exc:
            return self.fail(name, f"can't stat {name}: {exc.strerror}")
        if stat.S_ISLNK(st.st_mode):
            return self.skip(name, f"Skipping archival of symlink: {name}")
        if not stat.S_ISREG(st.st_mode):
            return self.skip(name, f"Skipping archival of non-file: {name}")
        parsed = RotatedName.parse(name, self.opts.naming)
        if isinstance(parsed, Rejected):
            return self.skip(name, parsed.reason)
        for note in parsed.notes:
            self.emit(logging.DEBUG, note)
        if parsed.suffix:
            self.emit(logging.DEBUG, f"Using log_suffix '{parsed.suffix}'")
        return self.archive(parsed)

    def date_dir(self, rn: RotatedName) -> int:
        """Open (creating it if needed) the date directory; fds are cached per run."""
        key = rn.dest_dir()
        fd = self.dir_fds.get(key)
        if fd is not None:
            return fd
        path = self.archive_dir / key
        try:
            os.mkdir(path, _DIR_MODE)
        except FileExistsError:
            pass
        else:
            # Make the new directory's entry durable before files in it count as archived.
            _fsync_dir(self.archive_dir)
        fd = open_directory(path)
        self.dir_fds[key] = fd
        return fd

    def archive(self, rn: RotatedName) -> FileResult:
        name = rn.name
        dst_dir = self.archive_dir / rn.dest_dir()
        try:
            dfd = self.date_dir(rn)
        except OSError as exc:
            return self.fail(
                name, f"Skipped archiving {name}: failed to create dir {dst_dir}: {exc.strerror}"
            )
        try:
            sfd = os.open(
                name,
                os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                dir_fd=self.qfd,
            )
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                return self.skip(name, f"Skipping archival of symlink: {name}")
            return self.fail(name, f"Failed to open {name}: {exc.strerror}")
        with closing_fd(sfd):
            st = os.fstat(sfd)
            if not stat.S_ISREG(st.st_mode):
                return self.skip(name, f"Skipping archival of non-file: {name}")
            if st.st_size == 0:
                return self.skip(name, f"Skipping archival of empty file: {name}")
            compress = self.compression is not None and not already_compressed(
                rn.ext, self.opts.zip_extensions
            )
            if self.compression is not None and compress:
                target = self.compression.target(rn.dest_file())
                self.emit(logging.DEBUG, f"Archive via compression: {name} -> {dst_dir / target}")
                return self.via_temp(rn, sfd, st, dfd, target, self.compression)
            target = rn.dest_file()
            self.emit(logging.DEBUG, f"Archive via rename: {name} -> {dst_dir / target}")
            try:
                os.rename(name, target, src_dir_fd=self.qfd, dst_dir_fd=dfd)
            except OSError as exc:
                if exc.errno != errno.EXDEV:
                    return self.fail(
                        name, f"Failed to rename {name} -> {dst_dir / target}: {exc.strerror}"
                    )
                self.emit(logging.DEBUG, f"Archive via copy: {name} -> {dst_dir / target}")
                return self.via_temp(rn, sfd, st, dfd, target, None)
            os.fsync(dfd)
            return FileResult(name, Outcome.ARCHIVED, dst_dir / target)

    def via_temp(
        self,
        rn: RotatedName,
        sfd: int,
        st: os.stat_result,
        dfd: int,
        target: str,
        compression: Compression | None,
    ) -> FileResult:
        """Write the temporary file (compressed or copied), then rename and unlink."""
        name = rn.name
        dst_dir = self.archive_dir / rn.dest_dir()
        tmp = rn.temp_file()
        try:
            out = AtomicFile(dfd, target, tmp, _FILE_MODE)
        except OSError as exc:
            return self.fail(name, f"Failed to open dst_file {dst_dir / tmp}: {exc.strerror}")
        try:
            if compression is None:
                self.copy(sfd, out)
            elif self.gzip_level is not None:
                self.gzip(sfd, out, int(st.st_mtime), self.gzip_level)
            else:
                assert out.fd is not None
                problem = _run_command(compression.command, sfd, out.fd)
                if problem:
                    raise _StepFailed(f"Compression of {name} failed, {problem}")
            out.close()
        except (OSError, _StepFailed) as exc:
            # Like zeek-archiver: a failed step removes the partial temporary file.
            out.discard()
            if isinstance(exc, _StepFailed):
                return self.fail(name, str(exc))
            return self.fail(name, f"Failed to write {dst_dir / tmp}: {exc.strerror}")
        try:
            out.commit()
        except OSError as exc:
            return self.fail(
                name, f"Failed to rename {dst_dir / tmp} -> {dst_dir / target}: {exc.strerror}"
            )
        return FileResult(name, Outcome.ARCHIVED, dst_dir / target, self.remove_source(name, st))

    def remove_source(self, name: str, st: os.stat_result) -> str:
        """Unlink the archived source unless the name now points at something else."""
        try:
            now = os.stat(name, dir_fd=self.qfd, follow_symlinks=False)
            if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino):
                message = f"{name} was replaced while being archived; left in place"
                self.emit(logging.WARNING, message)
                return message
            os.unlink(name, dir_fd=self.qfd)
        except OSError as exc:
            message = f"Failed to unlink {name}; {exc.strerror}"
            self.emit(logging.ERROR, message)
            return message
        return ""

    # -- data movers ---------------------------------------------------------------------

    def gzip(self, sfd: int, out: AtomicFile, mtime: int, level: int) -> None:
        """Stream ``sfd`` into ``out`` as one gzip member (RFC 1952), like ``gzip < src``."""
        # Header: magic, deflate, no flags, mtime, extra flags (2 = best, 4 = fastest), Unix.
        xfl = 2 if level == 9 else 4 if level == 1 else 0
        out.write(struct.pack("<4BIBB", 0x1F, 0x8B, 8, 0, mtime & 0xFFFFFFFF, xfl, 3))
        deflate = zlib.compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS)
        crc = 0
        size = 0
        view = memoryview(self.buf)
        while True:
            n = os.readv(sfd, [self.buf])
            if n == 0:
                break
            chunk = view[:n]
            crc = zlib.crc32(chunk, crc)
            size += n
            out.write(deflate.compress(chunk))
        out.write(deflate.flush() + struct.pack("<II", crc, size & 0xFFFFFFFF))

    def copy(self, sfd: int, out: AtomicFile) -> None:
        """Copy ``sfd`` to ``out`` in chunks."""
        view = memoryview(self.buf)
        while True:
            n = os.readv(sfd, [self.buf])
            if n == 0:
                return
            out.write(view[:n])


class _StepFailed(Exception):
    """Internal: a compression command failed (message already worded)."""


def _fsync_dir(path: Path) -> None:
    with opened_directory(path) as fd:
        os.fsync(fd)


def _run_command(command: str, sfd: int, tfd: int) -> str:
    """Run ``sh -c command`` with stdin=sfd, stdout=tfd; return a problem or ``""``."""
    try:
        proc = subprocess.run(["sh", "-c", command], stdin=sfd, stdout=tfd, check=False)
    except OSError as exc:
        return f"cannot run sh: {exc.strerror}"
    if proc.returncode < 0:
        return f"got signal: {-proc.returncode}"
    if proc.returncode > 0:
        return f"command exit status: {proc.returncode}"
    return ""
