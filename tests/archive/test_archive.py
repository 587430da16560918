"""The built-in log archiver (``mgmt.archive.engine``) and its naming rules
(``mgmt.archive.names``).

Layers: pure table-driven name parsing; the file work through :func:`archive_queue` on
real files in ``tmp_path``; the CLI as a real subprocess (crash with SIGKILL, SIGTERM,
exit statuses); and, opt-in, a comparison with a real ``zeek-archiver``.
"""

from __future__ import annotations

import ast
import fcntl
import gzip
import hashlib
import logging
import os
import shutil
import signal
import stat
import struct
import subprocess
import sys
from pathlib import Path

import pytest

import mgmt.archive.names
from mgmt.archive.engine import (
    ArchiveOptions,
    ArchiveReport,
    Outcome,
    archive_queue,
)
from mgmt.archive.names import (
    Compression,
    NamingOptions,
    Rejected,
    RotatedName,
    Stamp,
    already_compressed,
    check_time_format,
    parse_timestamp,
)
from mgmt.exceptions import ArchiveError, ConfigError
from tests.paths import REPO_ROOT
from tests.support.cli import RUN_TIMEOUT
from tests.support.programs import killed_at_exit
from tests.support.waiting import MS, TIMEOUT, wait_until

# -- helpers ------------------------------------------------------------------------------


def size_of(path: Path) -> int:
    """The file's size, or -1 if it does not exist (now)."""
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return -1


def cli(*args: str | Path, **kwargs: object) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    return subprocess.run(
        [sys.executable, "-m", "mgmt", "archive", *map(str, args)],
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        **kwargs,  # type: ignore[call-overload]
    )


def tree(root: Path) -> dict[str, bytes]:
    """Relative path -> content (decompressed for .gz) of every file below root."""
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and not p.is_symlink():
            data = p.read_bytes()
            out[str(p.relative_to(root))] = gzip.decompress(data) if p.suffix == ".gz" else data
    return out


def zeek_log(path: str, lines: int = 50, seed: int = 0) -> bytes:
    rows = [
        f"{1795438587 + seed * 3600 + i}.{i:06d}\tC{seed:04d}{i:08d}\t10.0.0.{i % 250}\t{40000 + i}"
        f"\t192.0.2.{(i * 7) % 250}\t443\ttcp\tssl\n"
        for i in range(lines)
    ]
    return (f"#separator \\x09\n#path\t{path}\n" + "".join(rows) + "#close\tx\n").encode()


def put(queue: Path, name: str, data: bytes) -> Path:
    queue.mkdir(parents=True, exist_ok=True)
    p = queue / name
    p.write_bytes(data)
    return p


class Recorder:
    """A ``log`` callback that keeps ``(level, message)`` pairs."""

    def __init__(self) -> None:
        self.records: list[tuple[int, str]] = []

    def __call__(self, level: int, message: str) -> None:
        self.records.append((level, message))

    def at(self, level: int) -> list[str]:
        return [m for lv, m in self.records if lv == level]


# -- pure: names --------------------------------------------------------------------------

D = "2020-07-16-09-43-10"

#: (input name, options, expected date dir, expected archived name without .gz) or reason.
NAME_CASES: list[tuple[str, NamingOptions, str | None, str]] = [
    (f"test__{D}__{D}__.log", NamingOptions(), "2020-07-16", "test.09:43:10-09:43:10.log"),
    (
        f"test__{D}__{D}__log_suffix=logger-test__.log",
        NamingOptions(),
        "2020-07-16",
        "test.09:43:10-09:43:10-logger-test.log",
    ),
    (
        f"test__{D}__{D}__log_suffix=logger-test,pid=4711__.log",
        NamingOptions(),
        "2020-07-16",
        "test.09:43:10-09:43:10-logger-test.log",
    ),
    (
        f"test__{D}__{D}__ log_suffix = a ,x=y__.log",
        NamingOptions(),
        "2020-07-16",
        "test.09:43:10-09:43:10-a.log",
    ),
    (f"test__{D}__{D}____.log", NamingOptions(), "2020-07-16", "test.09:43:10-09:43:10.log"),
    (f"test__{D}__{D}__.log.gz", NamingOptions(), "2020-07-16", "test.09:43:10-09:43:10.log.gz"),
    (
        "test;uptime;__2020-07-16-09-43-10__2020-07-16-09-43-10__.log",
        NamingOptions(),
        "2020-07-16",
        "test;uptime;.09:43:10-09:43:10.log",
    ),
    (
        "test_2020-07-16-09-43-10_2020-07-16-09-43-10_.log",
        NamingOptions(delimiter="_"),
        "2020-07-16",
        "test.09:43:10-09:43:10.log",
    ),
    (
        "test__2020-07-16_09-43-10__2020-07-16_09-43-10__.log",
        NamingOptions(time_format="%Y-%m-%d_%H-%M-%S"),
        "2020-07-16",
        "test.09:43:10-09:43:10.log",
    ),
    # The real run's names (shared/reference/zeek-8.2.2): date dir = open time's date.
    (
        "broker__2026-11-23-12-54-40__2026-11-23-12-57-39__.log",
        NamingOptions(),
        "2026-11-23",
        "broker.12:54:40-12:57:39.log",
    ),
    (
        "conn__2026-11-23-23-00-00__2026-11-24-00-00-00__.log",
        NamingOptions(),
        "2026-11-23",
        "conn.23:00:00-00:00:00.log",
    ),
    # glibc strptime tolerates text after the timestamp (zeek-archiver: debug note only).
    (f"test__{D}xyz__{D}__.log", NamingOptions(), "2020-07-16", "test.09:43:10-09:43:10.log"),
    # Rejected names.
    ("broker.2026-11-23-12-57-46.log", NamingOptions(), None, "non-log"),
    (f"test__{D}__.log", NamingOptions(), None, "non-log"),
    (f"a__{D}__{D}__b=c__d__.log", NamingOptions(), None, "non-log"),
    (f"test__2020-13-16-09-43-10__{D}__.log", NamingOptions(), None, "bad timestamp"),
    (f"test__{D}__2020-07-16-24-00-00__.log", NamingOptions(), None, "bad timestamp"),
    (f"test__{D}__{D}__log_suffix,invalid=4711__.log", NamingOptions(), None, "bad metadata"),
    (f"test__{D}__{D}__log_suffix=logger-test,__.log", NamingOptions(), None, "bad metadata"),
    (f"test__{D}__{D}__ __.log", NamingOptions(), None, "bad metadata"),
    (f"test__{D}__{D}__a=b=c__.log", NamingOptions(), None, "bad metadata"),
    (f"test__{D}__{D}__k= __.log", NamingOptions(), None, "bad metadata"),
]


@pytest.mark.parametrize(("name", "opts", "date", "expected"), NAME_CASES)
def test_rotated_name_parsing(
    name: str, opts: NamingOptions, date: str | None, expected: str
) -> None:
    """Names parse (or are rejected) exactly as zeek-archiver's rules say."""
    parsed = RotatedName.parse(name, opts)
    if date is None:
        assert isinstance(parsed, Rejected)
        assert expected in parsed.reason and parsed.reason.endswith(name)
    else:
        assert isinstance(parsed, RotatedName)
        assert (parsed.dest_dir(), parsed.dest_file()) == (date, expected)
        assert parsed.temp_file() == ".tmp." + expected


def test_name_notes_for_trailing_text_and_unknown_metadata() -> None:
    """Trailing timestamp text and unknown metadata keys become debug notes, not errors."""
    parsed = RotatedName.parse(f"t__{D}zz__{D}__pid=1,log_suffix=l__.log")
    assert isinstance(parsed, RotatedName)
    assert parsed.suffix == "l"
    assert any("timestamp format mismatch" in n for n in parsed.notes)
    assert any("Ignoring unknown metadata entry pid" in n for n in parsed.notes)


@pytest.mark.parametrize(
    ("text", "fmt", "stamp", "used"),
    [
        ("2020-07-16-09-43-10", "%Y-%m-%d-%H-%M-%S", Stamp(2020, 7, 16, 9, 43, 10), 19),
        ("2020-7-6-9-3-1", "%Y-%m-%d-%H-%M-%S", Stamp(2020, 7, 6, 9, 3, 1), 14),
        ("2020-07-16T09:43:10", "%FT%T", Stamp(2020, 7, 16, 9, 43, 10), 19),
        ("20-07-16", "%y-%m-%d", Stamp(2020, 7, 16), 8),
        ("99-07-16", "%y-%m-%d", Stamp(1999, 7, 16), 8),
        ("2020 07  16", "%Y %m %d", Stamp(2020, 7, 16), 11),
        ("2020- 7-16", "%Y-%m-%d", Stamp(2020, 7, 16), 10),
        ("20200716", "%Y%m%d", Stamp(2020, 7, 16), 8),
        ("12:00:61", "%H:%M:%S", Stamp(hour=12, second=61), 8),
        ("10%", "%H%%", Stamp(hour=10), 3),
    ],
)
def test_parse_timestamp_follows_glibc(text: str, fmt: str, stamp: Stamp, used: int) -> None:
    """Numbers are read like glibc's get_number (spaces, short fields, ranges)."""
    assert parse_timestamp(text, fmt) == (stamp, used)


@pytest.mark.parametrize(
    ("text", "fmt"),
    [("2020-00-16", "%Y-%m-%d"), ("2020-07-32", "%Y-%m-%d"), ("x2020", "%Y"), ("10", "%H%%")],
)
def test_parse_timestamp_rejects(text: str, fmt: str) -> None:
    """Out-of-range fields, literal mismatches and missing input do not parse."""
    assert parse_timestamp(text, fmt) is None


GLIBC_CASES = [
    ("2020-07-16-09-43-10", "%Y-%m-%d-%H-%M-%S"),
    ("2020-7-6-9-3-1", "%Y-%m-%d-%H-%M-%S"),
    ("2020-07-16-09-43-10xyz", "%Y-%m-%d-%H-%M-%S"),
    ("2020-07-16-24-00-00", "%Y-%m-%d-%H-%M-%S"),
    ("2020-07-16-09-43-1", "%Y-%m-%d-%H-%M-%S"),
    ("2020-07-16T09:43:10", "%FT%T"),
    ("12345", "%Y"),
    ("  2020", "%Y"),
    ("2020-07-16", "%Y %m-%d"),
    ("07/16/20", "%D"),
    ("69-01-01", "%y-%m-%d"),
    ("9:5", "%R"),
    ("2020\t07", "%Y%n%m"),
    ("2020-07-16 09", "%F%H"),
    (" 3", "%e"),
    ("19", "%M%S"),
    ("599", "%M%S"),
    ("100%", "%H%%"),
]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs glibc")
@pytest.mark.parametrize(("text", "fmt"), GLIBC_CASES)
def test_parse_timestamp_agrees_with_libc_strptime(text: str, fmt: str) -> None:
    """Our strptime gives the same fields and consumed length as the C library's."""
    import ctypes
    import ctypes.util

    class TM(ctypes.Structure):
        _fields_ = [
            (n, ctypes.c_int) for n in "sec min hour mday mon year wday yday isdst".split()
        ] + [("gmtoff", ctypes.c_long), ("zone", ctypes.c_char_p)]

    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    libc.strptime.restype = ctypes.c_char_p
    libc.strptime.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.POINTER(TM)]
    tm = TM(0, 0, 0, 1, 0, 0, 0, 0, 0, 0, None)
    rest = libc.strptime(ctypes.create_string_buffer(text.encode()), fmt.encode(), tm)
    theirs = None
    if rest is not None:
        stamp = Stamp(tm.year + 1900, tm.mon + 1, tm.mday, tm.hour, tm.min, tm.sec)
        theirs = (stamp, len(text) - len(rest))
    assert parse_timestamp(text, fmt) == theirs


@pytest.mark.parametrize("fmt", ["", "%Y-%", "%Y-%b-%d", "%s"])
def test_unsupported_time_formats_are_config_errors(fmt: str) -> None:
    """Time formats we cannot honour are refused up front, naming the problem."""
    with pytest.raises(ConfigError):
        check_time_format(fmt)


def test_compression_option_parsing() -> None:
    """-c is 'ext,cmd' or empty; plain gzip commands map to an in-process level."""
    assert Compression.parse("") is None
    assert Compression.parse("gz,gzip") == Compression("gz", "gzip")
    with pytest.raises(ConfigError, match="ext,compress_cmd"):
        Compression.parse("gzip")
    with pytest.raises(ConfigError):
        Compression.parse("a,b,c")
    assert Compression("gz", "gzip").gzip_level() == 6
    assert Compression("gz", "gzip -9").gzip_level() == 9
    assert Compression("gz", "gzip -c -9").gzip_level() is None
    assert Compression("bz2", "bzip2").gzip_level() is None
    assert Compression("", "gzip").target("x.log") == "x.log"
    assert Compression("zst", "zstd").target("x.log") == "x.log.zst"


def test_already_compressed_is_a_plain_suffix_test() -> None:
    """Extensions match as suffixes without a dot; empty entries disable the test."""
    zips = ("gz", "bz2", "lz", "lz4")
    assert already_compressed(".log.gz", zips)
    assert already_compressed(".log.lz4", zips)
    assert not already_compressed(".log", zips)
    assert not already_compressed(".log.gz", ())
    assert not already_compressed(".log.gz", ("",))


def test_naming_module_is_pure() -> None:
    """mgmt.archive.names imports no I/O modules (it must stay testable without a system)."""
    source = Path(mgmt.archive.names.__file__).read_text()
    imported = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert not imported & {"os", "time", "asyncio", "socket", "signal", "psutil", "subprocess"}


# -- archive_queue on real files ------------------------------------------------------------


def test_archives_several_nodes_and_hours(tmp_path: Path) -> None:
    """Several loggers' and hours' files land in the right date dirs, gzip-valid, sources gone."""
    queue, archive = tmp_path / "log-queue", tmp_path / "logs"
    expected: dict[str, bytes] = {}
    for node in ("logger-1", "logger-2"):
        for hour in (22, 23):
            for path in ("conn", "dns"):
                data = zeek_log(path, seed=hour)
                opened, closed = (
                    f"2026-11-23-{hour}-00-00",
                    (f"2026-11-23-{hour + 1}-00-00" if hour < 23 else "2026-11-24-00-00-00"),
                )
                put(queue, f"{path}__{opened}__{closed}__log_suffix={node}__.log", data)
                close_clock = f"{hour + 1}:00:00" if hour < 23 else "00:00:00"
                expected[f"2026-11-23/{path}.{hour}:00:00-{close_clock}-{node}.log.gz"] = data
    # The agents' own logs without metadata, the day after.
    data = zeek_log("management-agent-vm", seed=3)
    put(queue, "management-agent-vm__2026-11-24-00-00-00__2026-11-24-01-00-00__.log", data)
    expected["2026-11-24/management-agent-vm.00:00:00-01:00:00.log.gz"] = data

    rec = Recorder()
    report = archive_queue(queue, archive, log=rec)

    assert isinstance(report, ArchiveReport)
    assert (report.archived, report.skipped, report.failed) == (len(expected), 0, 0)
    assert tree(archive) == expected
    assert list(queue.iterdir()) == []
    assert {r.target for r in report.results} == {archive / k for k in expected}
    assert rec.at(logging.WARNING) == [] and rec.at(logging.ERROR) == []


def test_gzip_output_is_valid_and_carries_source_mtime(tmp_path: Path) -> None:
    """The .gz is one valid member (gzip -t) with the source's mtime, like `gzip < src`."""
    src = put(tmp_path / "q", f"conn__{D}__{D}__.log", zeek_log("conn", lines=5000))
    os.utime(src, (1_600_000_000, 1_600_000_000))
    archive_queue(tmp_path / "q", tmp_path / "a", options=ArchiveOptions(chunk_size=4096))
    out = tmp_path / "a" / "2020-07-16" / "conn.09:43:10-09:43:10.log.gz"
    raw = out.read_bytes()
    assert raw[:3] == b"\x1f\x8b\x08"
    assert struct.unpack("<I", raw[4:8])[0] == 1_600_000_000
    assert gzip.decompress(raw) == zeek_log("conn", lines=5000)
    if shutil.which("gzip"):
        assert subprocess.run(["gzip", "-t", str(out)]).returncode == 0


def test_precompressed_logs_keep_their_extension(tmp_path: Path) -> None:
    """A .log.gz from the writer is moved as is, not compressed twice."""
    payload = gzip.compress(b"hello\n")
    put(tmp_path / "q", f"test__{D}__{D}__.log.gz", payload)
    report = archive_queue(tmp_path / "q", tmp_path / "a")
    assert report.archived == 1
    assert (tmp_path / "a/2020-07-16/test.09:43:10-09:43:10.log.gz").read_bytes() == payload
    assert list((tmp_path / "q").iterdir()) == []


def test_compression_disabled_moves_plain_files(tmp_path: Path) -> None:
    """compress=False (-c "") renames the log into place, keeping its bytes."""
    put(tmp_path / "q", f"test__{D}__{D}__.log", b"hello\n")
    report = archive_queue(tmp_path / "q", tmp_path / "a", compress=False)
    assert report.archived == 1
    assert (tmp_path / "a/2020-07-16/test.09:43:10-09:43:10.log").read_bytes() == b"hello\n"
    assert list((tmp_path / "q").iterdir()) == []


def test_custom_compress_command_runs_through_sh(tmp_path: Path) -> None:
    """A non-gzip -c command gets the log on stdin; its stdout becomes <name>.<ext>."""
    put(tmp_path / "q", f"test__{D}__{D}__.log", b"hello\n")
    opts = ArchiveOptions(compression=Compression("rev", "tr a-z A-Z"))
    report = archive_queue(tmp_path / "q", tmp_path / "a", options=opts)
    assert report.archived == 1
    assert (tmp_path / "a/2020-07-16/test.09:43:10-09:43:10.log.rev").read_bytes() == b"HELLO\n"


def test_failing_compress_command_keeps_source_and_leaves_no_file(tmp_path: Path) -> None:
    """A failing command is an error; the source stays, no final or temp file remains."""
    src = put(tmp_path / "q", f"test__{D}__{D}__.log", b"hello\n")
    rec = Recorder()
    opts = ArchiveOptions(compression=Compression("false", "echo partial; exit 3"))
    report = archive_queue(tmp_path / "q", tmp_path / "a", options=opts, log=rec)
    assert (report.archived, report.failed) == (0, 1)
    assert "command exit status: 3" in rec.at(logging.ERROR)[0]
    assert src.read_bytes() == b"hello\n"
    assert list((tmp_path / "a/2020-07-16").iterdir()) == []


def test_bad_queue_entries_are_skipped_reported_and_untouched(tmp_path: Path) -> None:
    """Unparseable names, empty files, directories and symlinks are left alone and reported."""
    queue, archive, outside = tmp_path / "q", tmp_path / "a", tmp_path / "outside"
    outside.mkdir()
    secret = outside / "secret.log"
    secret.write_bytes(b"not yours\n")
    put(queue, "broker.2026-11-23-12-57-46.log", b"default rotation name\n")
    put(queue, f"conn__{D}__{D}__pid__x__.log", b"too many parts\n")
    put(queue, f"empty__{D}__{D}__.log", b"")
    (queue / f"dir__{D}__{D}__.log").mkdir()
    (queue / f"link__{D}__{D}__.log").symlink_to(secret)
    (queue / f"dirlink__{D}__{D}__.log").symlink_to(outside)
    (queue / f"dangling__{D}__{D}__.log").symlink_to(tmp_path / "nowhere")
    os.mkfifo(queue / f"fifo__{D}__{D}__.log")
    put(queue, ".hidden", b"dot files are ignored\n")
    put(queue, f"ok__{D}__{D}__.log", b"fine\n")
    before = sorted(p.name for p in queue.iterdir())

    rec = Recorder()
    report = archive_queue(queue, archive, log=rec)

    assert (report.archived, report.skipped, report.failed) == (1, 8, 0)
    assert sorted(p.name for p in queue.iterdir()) == sorted(set(before) - {f"ok__{D}__{D}__.log"})
    assert secret.read_bytes() == b"not yours\n"
    assert (queue / f"link__{D}__{D}__.log").is_symlink()
    assert tree(archive) == {"2020-07-16/ok.09:43:10-09:43:10.log.gz": b"fine\n"}
    warnings = "\n".join(rec.at(logging.WARNING))
    for needle in (
        "non-log: broker.2026-11-23-12-57-46.log",
        "non-log: conn__",
        "empty file: empty__",
        "non-file: dir__",
        "symlink: link__",
        "symlink: dirlink__",
        "symlink: dangling__",
        "non-file: fifo__",
    ):
        assert needle in warnings
    assert ".hidden" not in warnings
    assert len(report.messages) == 8


def test_existing_target_is_replaced_like_zeek_archiver(tmp_path: Path) -> None:
    """Re-archiving a source whose target exists (crash after rename) replaces it."""
    target = tmp_path / "a/2020-07-16/test.09:43:10-09:43:10.log.gz"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"stale")
    put(tmp_path / "q", f"test__{D}__{D}__.log", b"hello\n")
    assert archive_queue(tmp_path / "q", tmp_path / "a").archived == 1
    assert gzip.decompress(target.read_bytes()) == b"hello\n"


def test_stale_temp_file_is_reused_and_removed(tmp_path: Path) -> None:
    """A temp file left by a crash is overwritten and renamed away by the next run."""
    date_dir = tmp_path / "a/2020-07-16"
    date_dir.mkdir(parents=True)
    (date_dir / ".tmp.test.09:43:10-09:43:10.log").write_bytes(b"\x1f\x8bhalf a file")
    put(tmp_path / "q", f"test__{D}__{D}__.log", b"hello\n")
    assert archive_queue(tmp_path / "q", tmp_path / "a").archived == 1
    assert sorted(p.name for p in date_dir.iterdir()) == ["test.09:43:10-09:43:10.log.gz"]


def test_concurrent_run_backs_off(tmp_path: Path) -> None:
    """While another archiver holds the queue lock, a run does nothing and says so."""
    put(tmp_path / "q", f"test__{D}__{D}__.log", b"hello\n")
    fd = os.open(tmp_path / "q", os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        rec = Recorder()
        report = archive_queue(tmp_path / "q", tmp_path / "a", log=rec)
        assert report.busy and report.results == ()
        assert "Another archiver" in rec.at(logging.INFO)[0]
    finally:
        os.close(fd)
    assert archive_queue(tmp_path / "q", tmp_path / "a").archived == 1


def test_missing_queue_is_nothing_to_do(tmp_path: Path) -> None:
    """No queue directory: an empty report, and the archive dir still gets created."""
    report = archive_queue(tmp_path / "nope", tmp_path / "a")
    assert report == ArchiveReport(seconds=report.seconds)
    assert (tmp_path / "a").is_dir()


def test_unusable_directories_raise_archive_error(tmp_path: Path) -> None:
    """An archive path blocked by a file, or a queue that is a file, raises ArchiveError."""
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(ArchiveError, match="not a directory"):
        archive_queue(tmp_path, tmp_path / "file" / "logs")
    with pytest.raises(ArchiveError, match="log queue"):
        archive_queue(tmp_path / "file", tmp_path / "a")


def test_invalid_options_raise_config_error(tmp_path: Path) -> None:
    """Bad options are refused before anything is touched."""
    with pytest.raises(ConfigError):
        archive_queue(tmp_path, tmp_path / "a", options=ArchiveOptions(NamingOptions("", "%Y")))
    assert not (tmp_path / "a").exists()


# -- the CLI --------------------------------------------------------------------------------


def test_cli_oneshot_output_and_exit_status(tmp_path: Path) -> None:
    """`archive -1` archives, prints zeek-archiver's INFO line, warns on stderr, exits 0."""
    put(tmp_path / "q", f"test__{D}__{D}__.log", b"hello\n")
    put(tmp_path / "q", "broker.2026-11-23-12-57-46.log", b"x\n")
    proc = cli("-1", tmp_path / "q", tmp_path / "a")
    assert proc.returncode == 0, proc.stderr
    assert "] [INFO] Archived 1 logs in " in proc.stdout
    assert "[WARNING] Skipping archival of non-log: broker.2026-11-23-12-57-46.log" in proc.stderr
    assert "[DEBUG]" not in proc.stdout
    assert (tmp_path / "q/broker.2026-11-23-12-57-46.log").exists()
    assert tree(tmp_path / "a") == {"2020-07-16/test.09:43:10-09:43:10.log.gz": b"hello\n"}


def test_cli_options_like_zeek_archiver(tmp_path: Path) -> None:
    """-v, -d, -t and -z "" (compress even .gz files) work as in zeek-archiver's tests."""
    put(tmp_path / "q", "t_20200716T094310_20200716T094310_.log", b"hello\n")
    put(tmp_path / "q", "u_20200716T094310_20200716T094310_.log.gz", b"raw\n")
    proc = cli(
        "-1", "-v", "-d", "_", "--time-fmt=%Y%m%dT%H%M%S", "-z", "",
        tmp_path / "q", tmp_path / "a",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "[DEBUG] Archive via compression" in proc.stdout
    assert tree(tmp_path / "a") == {
        "2020-07-16/t.09:43:10-09:43:10.log.gz": b"hello\n",
        "2020-07-16/u.09:43:10-09:43:10.log.gz.gz": b"raw\n",
    }


def test_cli_compress_empty_disables_compression(tmp_path: Path) -> None:
    """--compress= moves logs uncompressed (zeek-archiver's disable-compression test)."""
    put(tmp_path / "q", f"test__{D}__{D}__.log", b"hello\n")
    proc = cli("-1", "--compress=", tmp_path / "q", tmp_path / "a")
    assert proc.returncode == 0, proc.stderr
    assert tree(tmp_path / "a") == {"2020-07-16/test.09:43:10-09:43:10.log": b"hello\n"}


@pytest.mark.parametrize(
    ("args", "status"),
    [
        (["-1", "-c", "gzip"], 1),
        (["-1", "-t", "%Y-%Q"], 1),
        (["-1", "-i", "0"], 1),
        (["-1", "-d", ""], 1),
        (["-1", "--bogus"], 2),
    ],
)
def test_cli_bad_arguments_fail(tmp_path: Path, args: list[str], status: int) -> None:
    """Unusable arguments give a non-zero status and touch nothing."""
    src = put(tmp_path / "q", f"test__{D}__{D}__.log", b"hello\n")
    proc = cli(*args, tmp_path / "q", tmp_path / "a")
    assert proc.returncode == status
    assert proc.stderr
    assert src.exists() and not (tmp_path / "a").exists()


def test_cli_unusable_archive_dir_is_fatal(tmp_path: Path) -> None:
    """Unusable directories exit 1 (FATAL for the destination); a missing queue exits 0."""
    (tmp_path / "file").write_bytes(b"")
    proc = cli("-1", tmp_path / "q", tmp_path / "file" / "logs")
    assert proc.returncode == 1
    assert "[FATAL] Failed to create destination archive dir" in proc.stderr
    assert cli("-1", tmp_path / "missing", tmp_path / "a").returncode == 0
    proc = cli("-1", tmp_path / "file", tmp_path / "a")
    assert proc.returncode == 1
    assert "[ERROR]" in proc.stderr and "cannot open log queue" in proc.stderr


def test_cli_modes_follow_umask(tmp_path: Path) -> None:
    """Date dirs are 0775 and compressed files 0664, minus the umask (zeek-archiver's modes)."""
    put(tmp_path / "q", f"test__{D}__{D}__.log", b"hello\n")
    assert cli("-1", tmp_path / "q", tmp_path / "a", umask=0o077).returncode == 0
    date_dir = tmp_path / "a/2020-07-16"
    assert stat.S_IMODE(date_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE((date_dir / "test.09:43:10-09:43:10.log.gz").stat().st_mode) == 0o600
    put(tmp_path / "q", f"test__{D}__2020-07-16-09-43-11__.log", b"hello\n")
    assert cli("-1", tmp_path / "q", tmp_path / "b", umask=0o002).returncode == 0
    date_dir = tmp_path / "b/2020-07-16"
    assert stat.S_IMODE(date_dir.stat().st_mode) == 0o775
    assert stat.S_IMODE((date_dir / "test.09:43:10-09:43:11.log.gz").stat().st_mode) == 0o664


def test_cli_loop_mode_and_sigterm(tmp_path: Path) -> None:
    """Without -1 it keeps polling; files added later are archived; SIGTERM exits 131."""
    queue, archive = tmp_path / "q", tmp_path / "a"
    queue.mkdir()
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    argv = [sys.executable, "-m", "mgmt", "archive", "-i", "1", str(queue), str(archive)]
    with (
        subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc,
        killed_at_exit(proc),
    ):
        put(queue, f"test__{D}__{D}__.log", b"hello\n")
        out = archive / "2020-07-16/test.09:43:10-09:43:10.log.gz"
        wait_until(out.exists, "the first archived file")
        put(queue, f"test__{D}__2020-07-16-10-00-00__.log", b"again\n")
        wait_until((archive / "2020-07-16/test.09:43:10-10:00:00.log.gz").exists, "a later file")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=TIMEOUT) == 131


def test_kill_9_mid_file_loses_nothing(tmp_path: Path) -> None:
    """SIGKILL while compressing: source intact, no final file; a rerun archives everything."""
    queue, archive = tmp_path / "q", tmp_path / "a"
    big = os.urandom(8 << 20).hex().encode()  # 16 MB, slow enough to catch mid-way
    src = put(queue, f"big__{D}__{D}__.log", big)
    small = put(queue, f"small__{D}__2020-07-16-09-50-00__.log", b"small\n")
    digest = hashlib.sha256(big).hexdigest()
    date_dir = archive / "2020-07-16"
    tmp = date_dir / ".tmp.big.09:43:10-09:43:10.log"
    final = date_dir / "big.09:43:10-09:43:10.log.gz"

    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    proc = subprocess.Popen(
        [sys.executable, "-m", "mgmt", "archive", "-1", str(queue), str(archive)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: size_of(tmp) > 0, "a non-empty temp file", interval=2 * MS)
        proc.kill()
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, "archiver finished before it could be killed"
    assert hashlib.sha256(src.read_bytes()).hexdigest() == digest
    assert small.exists()
    assert not final.exists()
    assert tmp.exists()  # the half file only ever has the temporary name

    rerun = cli("-1", queue, archive)
    assert rerun.returncode == 0, rerun.stderr
    assert list(queue.iterdir()) == []
    assert sorted(p.name for p in date_dir.iterdir()) == [
        "big.09:43:10-09:43:10.log.gz",
        "small.09:43:10-09:50:00.log.gz",
    ]
    assert hashlib.sha256(gzip.decompress(final.read_bytes())).hexdigest() == digest


def test_report_outcomes_name_each_entry(tmp_path: Path) -> None:
    """Each looked-at entry gets one result with its outcome and, when archived, its target."""
    put(tmp_path / "q", f"a__{D}__{D}__.log", b"a\n")
    put(tmp_path / "q", "junk", b"j\n")
    report = archive_queue(tmp_path / "q", tmp_path / "a", log=Recorder())
    by_name = {r.name: r for r in report.results}
    assert by_name[f"a__{D}__{D}__.log"].outcome is Outcome.ARCHIVED
    assert by_name["junk"].outcome is Outcome.SKIPPED and by_name["junk"].target is None
    assert report.messages == ("Skipping archival of non-log: junk",)


# -- opt-in: the real zeek-archiver -----------------------------------------------------------


@pytest.mark.zeek
@pytest.mark.skipif(shutil.which("zeek-archiver") is None, reason="zeek-archiver not on PATH")
def test_same_tree_as_real_zeek_archiver(tmp_path: Path) -> None:
    """Both archivers turn identical queues into identical trees (names and contents)."""
    names = [
        "conn__2026-11-23-12-00-00__2026-11-23-13-00-00__.log",
        "conn__2026-11-23-23-00-00__2026-11-24-00-00-00__log_suffix=logger-2__.log",
        "dns__2026-11-23-12-00-00__2026-11-23-13-00-00__log_suffix=logger-1,pid=7__.log",
        "http__2026-11-23-12-00-00__2026-11-23-13-00-00____.log",
        "broker.2026-11-23-12-57-46.log",
        "bad__2026-11-23-12-00-00__2026-11-23-13-00-00__x__.log",
    ]
    for which in ("ours", "theirs"):
        for i, name in enumerate(names):
            put(tmp_path / which / "q", name, zeek_log(name.split("_")[0], seed=i))
        put(tmp_path / which / "q", "ssl__2026-11-23-12-00-00__2026-11-23-13-00-00__.log.gz",
            gzip.compress(zeek_log("ssl")))  # fmt: skip
    assert cli("-1", tmp_path / "ours/q", tmp_path / "ours/a").returncode == 0
    real = subprocess.run(
        ["zeek-archiver", "-1", str(tmp_path / "theirs/q"), str(tmp_path / "theirs/a")],
        capture_output=True,
        timeout=RUN_TIMEOUT,
    )
    assert real.returncode == 0
    assert tree(tmp_path / "ours/a") == tree(tmp_path / "theirs/a")
    assert tree(tmp_path / "ours/q") == tree(tmp_path / "theirs/q")
    assert modes(tmp_path / "ours/a") == modes(tmp_path / "theirs/a")


def modes(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): stat.S_IMODE(p.stat().st_mode) for p in root.rglob("*")}
