"""Crash directories: the evidence kept when a node exits unexpectedly (README, "Crashes").

Layout (a stable interface: ``zeek-mgmt diag`` reads it, housekeeping expires it)::

    <state>/nodes/<node>/crash/<YYYY-MM-DDTHH-MM-SS.mmmZ>/   one crash, named for its UTC time
        crash.json   what happened (schema below)
        stdout       the end of the run's stdout file (at most TAIL_BYTES)
        stderr       the end of the run's stderr file (at most TAIL_BYTES)
        cmdline      the command line, shell-quoted, one line
        env          the node's environment, NAME=value lines, sorted
        status       the node's .status file as the run left it
        core...      core files that appeared in the node directory during the run (moved)

``crash.json``: ``{"v": 1, "node", "pid", "time" (seconds since the epoch), "exit":
{"code", "signal", "signal_name", "text", "time"}, "started" (or null), "restarts" (automatic
restarts before this crash), "gave_up" (no revival follows: max_restarts reached),
"stdout_size", "stderr_size" (the files' full sizes; the copies are their ends),
"core_files": [names], "core_hint": text}``.

Rules:

* A directory is written as ``crash/.<name>.tmp`` and renamed when complete: an entry whose
  name does not start with ``.`` is complete. Readers and expiry ignore every entry that is
  not a crash directory's name (:func:`list_crash_dirs`).
* Names sort chronologically (a second crash within the same millisecond gets ``-1``, ...).
* The directories and files are private to the agent's user (0700/0600): the environment
  may hold secrets.
* :func:`prune` keeps the newest N (``[agent] crash_keep``) and removes those older than a
  time (for an expiry by age).

Everything here is synchronous file I/O on small, bounded amounts of data (the tails are
read from the end of the files): :func:`take_snapshot` runs in the supervisor's driver at
the moment of the exit, before a revival truncates the files; :func:`write_crash_dir` and
:func:`prune` run in a worker thread (:mod:`mgmt.supervisor.nodeevents`).
"""

from __future__ import annotations

import calendar
import contextlib
import json
import os
import re
import resource
import shlex
import shutil
import signal as signals
import time
from dataclasses import field
from pathlib import Path
from typing import Any

from mgmt.core.exittext import exit_payload
from mgmt.core.frozen import frozen
from mgmt.supervisor.nodefiles import STATUS_FILE, STDERR_FILE, STDOUT_FILE, Tail, read_tail
from mgmt.supervisor.policy import ExitStatus, NodeSpec

#: The directory of a node's crashes, inside its node directory.
CRASH_DIR = "crash"
INFO_FILE = "crash.json"
CMDLINE_FILE = "cmdline"
ENV_FILE = "env"
STATUS_COPY = "status"
#: How much of the end of ``stdout`` and ``stderr`` a crash directory keeps (bytes).
TAIL_BYTES = 64 * 1024
#: How much of ``.status`` is kept (it is one line).
STATUS_BYTES = 4096
#: Temporary directories older than this (seconds) are leftovers of a killed agent.
STALE_TMP = 3600.0

_NAME = re.compile(r"^(\d{4})-(\d\d)-(\d\d)T(\d\d)-(\d\d)-(\d\d)\.(\d{3})Z(?:-\d+)?$")

#: Signals whose default action dumps core (POSIX).
CORE_SIGNALS = frozenset(
    int(s)
    for s in (
        signals.SIGQUIT,
        signals.SIGILL,
        signals.SIGTRAP,
        signals.SIGABRT,
        signals.SIGBUS,
        signals.SIGFPE,
        signals.SIGSEGV,
        signals.SIGXCPU,
        signals.SIGXFSZ,
        signals.SIGSYS,
    )
)


def crash_root(node_dir: str | os.PathLike[str]) -> Path:
    """``<node_dir>/crash``."""
    return Path(node_dir) / CRASH_DIR


def dir_name(when: float) -> str:
    """The directory name of a crash at ``when`` (seconds since the epoch), UTC:
    ``2026-01-31T12-34-56.789Z``."""
    ms = int(round(when * 1000))
    seconds, millis = divmod(ms, 1000)
    return time.strftime("%Y-%m-%dT%H-%M-%S", time.gmtime(seconds)) + f".{millis:03d}Z"


def parse_dir_name(name: str) -> float | None:
    """The time a crash directory's name stands for, or ``None`` if it is not one."""
    m = _NAME.match(name)
    if m is None:
        return None
    y, mo, d, h, mi, s, ms = (int(g) for g in m.groups())
    try:
        return calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0)) + ms / 1000
    except (ValueError, OverflowError):
        return None


def signal_name(number: int | None) -> str | None:
    """``SIGKILL`` for 9 (this platform's name), ``None`` if unknown."""
    if number is None:
        return None
    try:
        return signals.Signals(number).name
    except ValueError:
        return None


@frozen
class CrashDir:
    """One complete crash directory: its path and the time its name stands for."""

    path: Path
    time: float


def list_crash_dirs(node_dir: str | os.PathLike[str]) -> list[CrashDir]:
    """The node's complete crash directories, newest first (``[]`` if none)."""
    try:
        entries = list(os.scandir(crash_root(node_dir)))
    except OSError:
        return []
    found = []
    for entry in entries:
        when = parse_dir_name(entry.name)
        if when is not None and entry.is_dir(follow_symlinks=False):
            found.append(CrashDir(Path(entry.path), when))
    found.sort(key=lambda c: (c.time, c.path.name), reverse=True)
    return found


def prune(
    node_dir: str | os.PathLike[str],
    *,
    keep: int | None = None,
    older_than: float | None = None,
    now: float | None = None,
) -> list[Path]:
    """Remove crash directories beyond the newest ``keep`` and those whose time is before
    ``older_than`` (seconds since the epoch); also temporary leftovers of a killed write
    older than :data:`STALE_TMP`. Returns what was removed; failures are skipped.
    """
    removed = []
    for i, crash in enumerate(list_crash_dirs(node_dir)):
        if (keep is not None and i >= keep) or (older_than is not None and crash.time < older_than):
            shutil.rmtree(crash.path, ignore_errors=True)
            if not crash.path.exists():
                removed.append(crash.path)
    now = time.time() if now is None else now
    with contextlib.suppress(OSError):
        for entry in os.scandir(crash_root(node_dir)):
            if entry.name.startswith(".") and entry.name.endswith(".tmp"):
                with contextlib.suppress(OSError):
                    if now - entry.stat(follow_symlinks=False).st_mtime > STALE_TMP:
                        shutil.rmtree(entry.path, ignore_errors=True)
    return removed


# --------------------------------------------------------------------------------------
# Taking and writing the evidence


@frozen
class LastCrash:
    """A node's last unexpected exit (a requested stop or restart is not one).

    Attributes:
        status: how the process ended.
        time: when (seconds since the epoch).
        pid: the process that ended.
        started: when that process had started (seconds since the epoch), if known.
        restarts: automatic revivals before it, since the node was started on request.
        spec: the spec the process ran.
    """

    status: ExitStatus
    time: float
    pid: int
    started: float | None
    restarts: int
    spec: NodeSpec


@frozen
class CrashSnapshot:
    """What a crashed run left, read at the moment of its exit (bounded in size).

    Attributes:
        crash: the exit (its spec names the node, its directory and command line).
        gave_up: no revival follows (``max_restarts`` reached).
        stdout, stderr: the ends of the output files (at most :data:`TAIL_BYTES`) and
            their full sizes.
        status_file: the node's ``.status`` as the run left it.
        core_files: core files that appeared in the node directory during the run.
        core_hint: where a core file went, or why there is none.
    """

    crash: LastCrash
    gave_up: bool
    stdout: Tail
    stderr: Tail
    status_file: bytes
    core_files: tuple[str, ...] = field(default=())
    core_hint: str = ""

    @property
    def node_dir(self) -> Path:
        """The node directory the run left its files in."""
        return Path(self.crash.spec.cwd)

    def info(self) -> dict[str, Any]:
        """The content of ``crash.json``."""
        crash = self.crash
        sig = crash.status.signal
        return {
            "v": 1,
            "node": crash.spec.name,
            "pid": crash.pid,
            "time": crash.time,
            "exit": exit_payload(crash.status.code, sig, signal_name(sig), crash.time),
            "started": crash.started,
            "restarts": crash.restarts,
            "gave_up": self.gave_up,
            "stdout_size": self.stdout.size,
            "stderr_size": self.stderr.size,
            "core_files": list(self.core_files),
            "core_hint": self.core_hint,
        }


def take_snapshot(crash: LastCrash, *, gave_up: bool) -> CrashSnapshot:
    """Read what a crashed run left in its node directory (the ends of its output files,
    ``.status``, core files), before anything truncates them. Never raises for files that
    cannot be read (they are then empty)."""
    node_dir = Path(crash.spec.cwd)
    cores = find_core_files(node_dir, crash.started)
    return CrashSnapshot(
        crash,
        gave_up,
        stdout=read_tail(node_dir / STDOUT_FILE, TAIL_BYTES),
        stderr=read_tail(node_dir / STDERR_FILE, TAIL_BYTES),
        status_file=read_tail(node_dir / STATUS_FILE, STATUS_BYTES).data,
        core_files=cores,
        core_hint=core_hint(crash.status.signal, cores),
    )


def find_core_files(node_dir: Path, since: float | None) -> tuple[str, ...]:
    """Core files in the node directory that appeared since ``since`` (as zeekctl's
    crash-diag finds them: names containing ``core``, not ending in ``.log``)."""
    found = []
    with contextlib.suppress(OSError):
        for entry in os.scandir(node_dir):
            if "core" not in entry.name or entry.name.endswith(".log"):
                continue
            with contextlib.suppress(OSError):
                st = entry.stat(follow_symlinks=False)
                if entry.is_file(follow_symlinks=False) and (
                    since is None or st.st_mtime >= since - 1
                ):
                    found.append(entry.name)
    return tuple(sorted(found))


def core_hint(signal: int | None, cores: tuple[str, ...]) -> str:
    """Where a core file went, or why there is none (a line for ``diag``)."""
    if cores:
        return f"core file {', '.join(cores)} (moved into the crash directory)"
    if signal is None or signal not in CORE_SIGNALS:
        return "no core file expected: the exit was not a core-dumping signal"
    try:
        with open("/proc/sys/kernel/core_pattern") as f:
            pattern = f.read().strip()
    except OSError:
        pattern = ""
    if pattern.startswith("|"):
        program = pattern[1:].split()[0] if pattern[1:].split() else "?"
        return (
            f"no core file in the node directory: the kernel hands core dumps to {program} "
            "(/proc/sys/kernel/core_pattern); look there (e.g. coredumpctl list zeek)"
        )
    if resource.getrlimit(resource.RLIMIT_CORE)[0] == 0:
        return (
            "no core file: core dumps are disabled for the nodes (ulimit -c is 0 for the "
            "agent; e.g. LimitCORE=infinity in its systemd unit)"
        )
    if pattern.startswith("/"):
        return f"no core file in the node directory: core_pattern writes them to {pattern}"
    return "no core file found in the node directory"


def _write(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def write_crash_dir(snap: CrashSnapshot) -> Path:
    """Write the crash directory of ``snap`` (complete or not at all) and move the core
    files into it.

    Raises:
        OSError: it cannot be written (nothing is left behind but a temporary entry,
            which :func:`prune` removes later).
    """
    root = crash_root(snap.node_dir)
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    base = dir_name(snap.crash.time)
    name, n = base, 0
    while (root / name).exists():
        n += 1
        name = f"{base}-{n}"
    tmp = root / f".{name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(mode=0o700)
    try:
        _write(tmp / INFO_FILE, json.dumps(snap.info(), indent=1, sort_keys=True).encode() + b"\n")
        _write(tmp / STDOUT_FILE, snap.stdout.data)
        _write(tmp / STDERR_FILE, snap.stderr.data)
        spec = snap.crash.spec
        _write(tmp / CMDLINE_FILE, shlex.join(spec.argv).encode("utf-8", "replace") + b"\n")
        env = "".join(f"{k}={v}\n" for k, v in sorted(spec.env.items()))
        _write(tmp / ENV_FILE, env.encode("utf-8", "replace"))
        _write(tmp / STATUS_COPY, snap.status_file)
        for core in snap.core_files:
            with contextlib.suppress(OSError):  # gone meanwhile, or another file system
                os.rename(snap.node_dir / core, tmp / core)
        os.rename(tmp, root / name)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return root / name


# --------------------------------------------------------------------------------------
# Reading


def read_crash_dir(path: Path, tail_bytes: int) -> dict[str, Any]:
    """A crash directory for ``diag``: ``info`` (``crash.json``, ``{}`` if unreadable),
    the ends of ``stdout``/``stderr`` (at most ``tail_bytes`` each, as text), ``cmdline``,
    ``env`` and ``status`` (bounded too), and the core files it holds."""

    def text(name: str, limit: int) -> str:
        data, size = read_tail(path / name, limit)
        return ("..." if size > len(data) else "") + data.decode("utf-8", "replace")

    try:
        info = json.loads((path / INFO_FILE).read_text())
    except (OSError, ValueError):
        info = {}
    cores = []
    with contextlib.suppress(OSError):
        cores = sorted(e.name for e in os.scandir(path) if "core" in e.name)
    return {
        "dir": str(path),
        "info": info if isinstance(info, dict) else {},
        "stdout": text(STDOUT_FILE, tail_bytes),
        "stderr": text(STDERR_FILE, tail_bytes),
        "cmdline": text(CMDLINE_FILE, tail_bytes),
        "env": text(ENV_FILE, 4 * tail_bytes),
        "status": text(STATUS_COPY, STATUS_BYTES),
        "core_files": cores,
    }
