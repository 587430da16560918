"""``zeek-mgmt archive``: the built-in archiver's command line, zeek-archiver's.

Command line (zeek-archiver's)::

    zeek-mgmt archive [-1] [-v] [-i SECS] [-c EXT,CMD] [-d DELIM] [-t FMT] [-z EXTS]
                      <src_dir> <dst_dir>

Output like zeek-archiver's: ``[<unix time>] [INFO] Archived N logs in S seconds`` on
stdout, ``[DEBUG]`` lines on stdout with ``-v``, ``[ERROR]``/``[WARNING]``/``[FATAL]`` on
stderr. Exit status 0, also when single files fail; 1 when the destination directory
cannot be created, the queue exists but cannot be read, or an option value is bad. A
missing queue directory is not an error (nothing to do).

The archiving itself, and how it differs from zeek-archiver, is in
:mod:`mgmt.archive.engine`.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

from mgmt import __version__
from mgmt.archive.engine import ArchiveOptions, archive_queue, make_dirs
from mgmt.archive.names import DEFAULT_ZIP_EXTENSIONS, Compression, NamingOptions
from mgmt.exceptions import ArchiveError, ConfigError

_DEFAULT_INTERVAL = 30


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
        make_dirs(dst, out)
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
