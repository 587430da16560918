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

Command line (zeek-archiver's)::

    zeek-mgmt archive [-1] [-v] [-i SECS] [-c EXT,CMD] [-d DELIM] [-t FMT] [-z EXTS]
                      <src_dir> <dst_dir>

Output like zeek-archiver's: ``[<unix time>] [INFO] Archived N logs in S seconds`` on
stdout, ``[DEBUG]`` lines on stdout with ``-v``, ``[ERROR]``/``[WARNING]``/``[FATAL]`` on
stderr. Exit status 0, also when single files fail; 1 when the destination directory
cannot be created, the queue exists but cannot be read, or an option value is bad. A
missing queue directory is not an error (nothing to do).

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

import argparse
import contextlib
import enum
import errno
import fcntl
import logging
import os
import shutil
import signal
import stat
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from mgmt import __version__
from mgmt.archive.names import (
    DEFAULT_ZIP_EXTENSIONS,
    Compression,
    NamingOptions,
    Rejected,
    RotatedName,
    already_compressed,
)
from mgmt.exceptions import ArchiveError, ConfigError

logger = logging.getLogger("mgmt.archive.engine")

#: ``log(level, message)``: level is a :mod:`logging` level (DEBUG, INFO, WARNING, ERROR).
LogFn = Callable[[int, str], None]

_DIR_MODE = 0o775  # zeek-archiver's mkdir mode (umask applies)
_FILE_MODE = 0o664  # zeek-archiver's mode for the compressed file (umask applies)
_DEFAULT_INTERVAL = 30


class Outcome(enum.Enum):
    """What happened to one queue entry."""

    ARCHIVED = "archived"
    SKIPPED = "skipped"  # not a rotated log, or unsafe to touch: left in place
    FAILED = "failed"  # a rotated log that could not be archived this time: left in place


@dataclass(frozen=True, slots=True)
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


@dataclass(frozen=True, slots=True)
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


@dataclass(frozen=True, slots=True)
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


def archiver_command() -> list[str]:
    """The archive command to run when none is configured (behaviour.md §5.13).

    Returns:
        ``[<path of zeek-archiver>]`` when ``zeek-archiver`` is on ``PATH``, else the
        built-in ``[sys.executable, "-m", "mgmt", "archive"]``. Callers append
        ``-1 <queue> <archive dir>``.
    """
    found = shutil.which("zeek-archiver")
    return [found] if found else [sys.executable, "-m", "mgmt", "archive"]


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

    _make_dirs(archive_dir, emit)
    try:
        qfd = os.open(queue_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        emit(logging.DEBUG, f"Source directory '{queue_dir}', does not exist")
        return ArchiveReport(seconds=time.monotonic() - started)
    except OSError as exc:
        raise ArchiveError(str(queue_dir), f"cannot open log queue: {exc.strerror}") from exc
    with _closing_fd(qfd):
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


@contextlib.contextmanager
def _closing_fd(fd: int) -> Iterator[int]:
    try:
        yield fd
    finally:
        os.close(fd)


def _make_dirs(path: Path, emit: LogFn) -> None:
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


class _Run:
    """One pass over the queue: per-entry checks, then the file work."""

    def __init__(
        self,
        qfd: int,
        archive_dir: Path,
        opts: ArchiveOptions,
        compression: Compression | None,
        emit: LogFn,
    ) -> None:
        self.qfd = qfd
        self.archive_dir = archive_dir
        self.opts = opts
        self.compression = compression
        self.emit = emit
        self.gzip_level = compression.gzip_level() if compression else None
        self.dir_fds: dict[str, int] = {}
        self.buf = bytearray(opts.chunk_size)

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
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
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
        with _closing_fd(sfd):
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
            tfd = os.open(
                tmp,
                os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC,
                _FILE_MODE,
                dir_fd=dfd,
            )
        except OSError as exc:
            return self.fail(name, f"Failed to open dst_file {dst_dir / tmp}: {exc.strerror}")
        try:
            try:
                if compression is None:
                    self.copy(sfd, tfd)
                elif self.gzip_level is not None:
                    self.gzip(sfd, tfd, int(st.st_mtime), self.gzip_level)
                else:
                    problem = _run_command(compression.command, sfd, tfd)
                    if problem:
                        raise _StepFailed(f"Compression of {name} failed, {problem}")
                os.fsync(tfd)
            finally:
                os.close(tfd)
        except (OSError, _StepFailed) as exc:
            # Like zeek-archiver: a failed step removes the partial temporary file.
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=dfd)
            if isinstance(exc, _StepFailed):
                return self.fail(name, str(exc))
            return self.fail(name, f"Failed to write {dst_dir / tmp}: {exc.strerror}")
        try:
            os.rename(tmp, target, src_dir_fd=dfd, dst_dir_fd=dfd)
            os.fsync(dfd)
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

    def gzip(self, sfd: int, tfd: int, mtime: int, level: int) -> None:
        """Stream ``sfd`` into ``tfd`` as one gzip member (RFC 1952), like ``gzip < src``."""
        # Header: magic, deflate, no flags, mtime, extra flags (2 = best, 4 = fastest), Unix.
        xfl = 2 if level == 9 else 4 if level == 1 else 0
        _write_all(tfd, struct.pack("<4BIBB", 0x1F, 0x8B, 8, 0, mtime & 0xFFFFFFFF, xfl, 3))
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
            out = deflate.compress(chunk)
            if out:
                _write_all(tfd, out)
        _write_all(tfd, deflate.flush() + struct.pack("<II", crc, size & 0xFFFFFFFF))

    def copy(self, sfd: int, tfd: int) -> None:
        """Copy ``sfd`` to ``tfd`` in chunks."""
        view = memoryview(self.buf)
        while True:
            n = os.readv(sfd, [self.buf])
            if n == 0:
                return
            _write_all(tfd, view[:n])


class _StepFailed(Exception):
    """Internal: a compression command failed (message already worded)."""


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


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


# -- command line ----------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add zeek-archiver's options to the ``archive`` sub-parser."""
    parser.description = (
        "Archive rotated Zeek logs from <src_dir> into <dst_dir>/<YYYY-MM-DD>/, "
        "compatible with zeek-archiver."
    )
    parser.add_argument("src_dir", help="a directory to monitor for Zeek log files")
    parser.add_argument("dst_dir", help="a directory to archive Zeek logs into")
    parser.add_argument("--version", action="version", version=f"zeek-mgmt archive {__version__}")
    parser.add_argument(
        "-1",
        dest="oneshot",
        action="store_true",
        help="archive current logs and exit w/o looping",
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="print verbose/debug logs to stdout"
    )
    parser.add_argument(
        "-i",
        "--interval",
        type=int,
        default=_DEFAULT_INTERVAL,
        metavar="SECS",
        help=f"poll interval in seconds (default: {_DEFAULT_INTERVAL})",
    )
    parser.add_argument(
        "-c",
        "--compress",
        default="gz,gzip",
        metavar="EXT,CMD",
        help='file extension and compression command, "" disables compression '
        '(default: "gz,gzip"; gzip and "gzip -N" run in-process)',
    )
    parser.add_argument(
        "-d",
        "--delimiter",
        default=NamingOptions().delimiter,
        help='delimiter between timestamps in log names (default: "__")',
    )
    parser.add_argument(
        "-t",
        "--time-fmt",
        default=NamingOptions().time_format,
        metavar="FMT",
        help='format of timestamps within input file names (default: "%%Y-%%m-%%d-%%H-%%M-%%S")',
    )
    parser.add_argument(
        "-z",
        "--zip-extensions",
        default=",".join(DEFAULT_ZIP_EXTENSIONS),
        metavar="EXTS",
        help='extensions of already-compressed logs, "" disables this feature '
        '(default: "gz,bz2,lz,lz4")',
    )


_LEVEL_NAMES = {
    logging.DEBUG: "DEBUG",
    logging.INFO: "INFO",
    logging.WARNING: "WARNING",
    logging.ERROR: "ERROR",
    logging.CRITICAL: "FATAL",
}


class _Printer:
    """zeek-archiver's output format: ``[<unix time>] [LEVEL] message``."""

    def __init__(self, verbose: bool) -> None:
        self.verbose = verbose

    def __call__(self, level: int, message: str) -> None:
        if level < logging.INFO and not self.verbose:
            return
        name = _LEVEL_NAMES.get(level, "ERROR")
        stream = sys.stdout if level <= logging.INFO else sys.stderr
        print(f"[{time.time():17.06f}] [{name}] {message}", file=stream, flush=True)


def _options_from_args(args: argparse.Namespace) -> ArchiveOptions:
    if args.interval <= 0:
        raise ConfigError("invalid '--interval' value - must be a positive interval")
    naming = NamingOptions(delimiter=args.delimiter, time_format=args.time_fmt)
    zips = tuple(e for e in args.zip_extensions.split(",") if e)
    options = ArchiveOptions(
        naming=naming, compression=Compression.parse(args.compress), zip_extensions=zips
    )
    options.check()
    return options


@contextlib.contextmanager
def _sigterm_exits() -> Iterator[None]:
    """zeek-archiver exits 131 on SIGTERM; the temporary-file protocol makes it safe."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(131)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run(args: argparse.Namespace) -> int:
    """Run ``zeek-mgmt archive``; returns the exit status (see the module docstring)."""
    out = _Printer(args.verbose)
    try:
        options = _options_from_args(args)
    except ConfigError as exc:
        print(f"zeek-mgmt archive: error: {exc}", file=sys.stderr)
        return 1
    src, dst = Path(args.src_dir), Path(args.dst_dir)
    out(logging.DEBUG, f"Using src_dir: '{src}'")
    out(logging.DEBUG, f"Using dst_dir: '{dst}'")
    out(logging.DEBUG, f"Using oneshot option: '{int(args.oneshot)}'")
    out(logging.DEBUG, f"Using delimiter option: '{options.naming.delimiter}'")
    out(logging.DEBUG, f"Using timestamp format option: '{options.naming.time_format}'")
    comp = options.compression
    out(logging.DEBUG, f"Using compression extension option: '{comp.ext if comp else ''}'")
    out(logging.DEBUG, f"Using compression command option: '{comp.command if comp else ''}'")
    out(logging.DEBUG, f"Using poll interval: '{args.interval}'")
    for ext in options.zip_extensions:
        out(logging.DEBUG, f"Using zip-extension option: '{ext}'")
    try:
        _make_dirs(dst, out)
    except ArchiveError as exc:
        out(logging.CRITICAL, f"Failed to create destination archive dir: {exc}")
        return 1
    with _sigterm_exits():
        try:
            while True:
                try:
                    report = archive_queue(src, dst, options=options, log=out)
                except ArchiveError as exc:
                    out(logging.ERROR, str(exc))
                    if args.oneshot:
                        return 1
                    time.sleep(args.interval)
                    continue
                if report.archived:
                    out(
                        logging.INFO,
                        f"Archived {report.archived} logs in {report.seconds:f} seconds",
                    )
                if args.oneshot:
                    return 0
                time.sleep(1 if report.archived else args.interval)
        except KeyboardInterrupt:
            return 130
