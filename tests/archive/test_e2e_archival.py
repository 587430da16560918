"""Log rotation and archival: the double's rotation into ``<spool>/log-queue`` (what
``zeek-mgmt-node.zeek`` sets up, behaviour.md §6.8, §8.4) and the agent's archival runs
(``<archive_cmd> -1 <queue> <archive_dir>`` every interval, behaviour.md §5.13), end to
end with ``python -m mgmt run`` and the real ``zeek-client``.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import logging
import os
import re
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from mgmt.agent.archival import ARCHIVE_TIMEOUT, Archival
from mgmt.supervisor.backend import CommandResult, CommandRunner, OsBackend
from tests.support.double_nodes import double_cluster
from tests.support.settings import agent_settings
from tests.support.sites import QUICKSTART_CFG, mgmt_run, on_instance
from tests.support.waiting import MS, wait_until, wait_until_async

#: ``<path>__<open>__<close>__[<meta>__].log`` with Zeek's default date format.
QUEUE_NAME = re.compile(
    r"^(?P<path>[a-z_]+)__(?P<open>\d{4}-\d\d-\d\d-\d\d-\d\d-\d\d)__"
    r"(?P<close>\d{4}-\d\d-\d\d-\d\d-\d\d-\d\d)__(?:(?P<meta>.+)__)?\.log$"
)
#: ``<archive>/<YYYY-MM-DD>/<path>.<HH:MM:SS>-<HH:MM:SS>.log.gz`` (zeek-archiver).
ARCHIVE_NAME = re.compile(r"^(?P<path>[a-z_]+)\.\d\d:\d\d:\d\d-\d\d:\d\d:\d\d\.log\.gz$")


def archived_name(queue_name: str) -> str | None:
    """The name zeek-archiver gives a queued file (without the date directory)."""
    m = QUEUE_NAME.match(queue_name)
    if m is None:
        return None
    open_, close = (m.group(k)[11:].replace("-", ":") for k in ("open", "close"))
    return f"{m.group('path')}.{open_}-{close}.log.gz"


def queued(spool: Path) -> list[str]:
    queue = spool / "log-queue"
    return sorted(p.name for p in queue.iterdir()) if queue.is_dir() else []


# --------------------------------------------------------------------------------------
# The double's rotation (as set up by the management node script)


def test_logger_rotates_into_the_queue_with_archiver_names(tmp_path: Path) -> None:
    """Every interval the logger's logs move to <spool>/log-queue, archiver-named."""
    with double_cluster(tmp_path, {"manager": "MANAGER", "logger": "LOGGER"}) as cluster:
        node = cluster.start("logger", None, env={"ZEEK_DOUBLE_ROTATE_INTERVAL": "1"})
        wait_until(lambda: len(queued(cluster.spool)) >= 4, "two rotations of two logs")
        assert node.proc.poll() is None
    names = queued(cluster.spool)
    matches = [QUEUE_NAME.match(n) for n in names]
    assert all(matches), names
    assert {m.group("path") for m in matches if m} == {"conn", "dns"}
    for m in matches:
        assert m is not None and m.group("meta") is None  # a single logger
        assert m.group("open") <= m.group("close")
    text = (cluster.spool / "log-queue" / names[0]).read_text()
    assert text.startswith("#separator \\x09\n") and "#close\t" in text


def test_clean_shutdown_rotates_open_logs(tmp_path: Path) -> None:
    """SIGTERM moves the open logs into the queue and leaves no shadow files behind."""
    with double_cluster(tmp_path, {"logger": "LOGGER"}) as cluster:
        node = cluster.start("logger", None)  # 1 hr interval: no timed rotation
        assert queued(cluster.spool) == []
        assert (node.cwd / "conn.log").exists() and (node.cwd / ".shadow.conn.log").exists()
        assert node.stop() == 0
    names = queued(cluster.spool)
    assert [QUEUE_NAME.match(n).group("path") for n in names] == ["conn", "dns"]  # type: ignore[union-attr]
    assert not list(node.cwd.glob("*.log")) and not list(node.cwd.glob(".shadow.*"))


def test_leftovers_of_a_crash_are_rotated_at_start(tmp_path: Path) -> None:
    """Logs left by a killed logger are rotated into the queue when it starts again."""
    with double_cluster(tmp_path, {"logger": "LOGGER"}) as cluster:
        node = cluster.start("logger", None)
        assert node.stop(signal.SIGKILL) == -signal.SIGKILL
        assert (node.cwd / "conn.log").exists() and queued(cluster.spool) == []
        cluster.start("logger", None)
        names = queued(cluster.spool)
    assert [QUEUE_NAME.match(n).group("path") for n in names] == ["conn", "dns"]  # type: ignore[union-attr]


def test_only_the_logging_node_writes_logs(tmp_path: Path) -> None:
    """Workers and a manager with a logger write no logs; a manager-is-logger does."""
    with double_cluster(tmp_path, {"manager": "MANAGER", "worker-01": "WORKER"}) as cluster:
        worker = cluster.start("worker-01", None)
        assert not list(worker.cwd.glob("*.log"))
    with double_cluster(
        tmp_path / "mil", {"manager": "MANAGER", "worker-01": "WORKER"}, manager_is_logger=True
    ) as cluster:
        manager = cluster.start("manager", None)
        assert (manager.cwd / "conn.log").exists()
    with double_cluster(tmp_path / "ml", {"manager": "MANAGER", "logger": "LOGGER"}) as cluster:
        manager = cluster.start("manager", None)
        assert not list(manager.cwd.glob("*.log"))


def test_several_loggers_add_a_log_suffix(tmp_path: Path) -> None:
    """With two loggers, rotated names carry log_suffix=<logger>."""
    with double_cluster(tmp_path, {"logger-1": "LOGGER", "logger-2": "LOGGER"}) as cluster:
        cluster.start("logger-1", None).stop()
    metas = {QUEUE_NAME.match(n).group("meta") for n in queued(cluster.spool)}  # type: ignore[union-attr]
    assert metas == {"log_suffix=logger-1"}


def test_no_rotation_without_the_node_script(tmp_path: Path) -> None:
    """Without zeek-mgmt-node nothing is written into the queue."""
    with double_cluster(tmp_path, {"logger": "LOGGER"}) as cluster:
        cluster.start("logger", None, script=False).stop()
    assert queued(cluster.spool) == []


# --------------------------------------------------------------------------------------
# The agent's archival runs (unit level: real child processes, no nodes)


def _archival(
    tmp_path: Path,
    timeout: float = ARCHIVE_TIMEOUT,
    runner: CommandRunner | None = None,
    **changes: object,
) -> Archival:
    settings = agent_settings(
        tmp_path / "state dir",
        name="agent-test",
        spool_dir=tmp_path / "spool dir",
        archive_dir=tmp_path / "archive dir",
        **changes,
    )
    return Archival(settings, runner or OsBackend(tmp_path / "bin"), timeout)


class FakeRunner:
    """A CommandRunner that runs nothing: it records commands and returns a given result."""

    def __init__(self, result: CommandResult) -> None:
        self.result = result
        self.commands: list[tuple[list[str], float]] = []

    async def run_command(
        self, argv: Sequence[str], *, time_limit: float, output_limit: int
    ) -> CommandResult:
        self.commands.append((list(argv), time_limit))
        return self.result


def test_archive_command_quotes_directories(tmp_path: Path) -> None:
    """The directories are appended quoted to the shell command line, after -1."""
    archival = _archival(tmp_path, archive_cmd="zeek-archiver -v")
    queue, archive = tmp_path / "spool dir" / "log-queue", tmp_path / "archive dir"
    assert archival.command() == f"zeek-archiver -v -1 '{queue}' '{archive}'"


def test_default_archive_command_is_the_builtin_archiver(tmp_path: Path) -> None:
    """An empty archive_cmd means ``<python> -m mgmt archive``."""
    command = _archival(tmp_path).command()
    assert command.startswith(f"{sys.executable} -m mgmt archive -1 ")


@pytest.mark.asyncio
async def test_archiver_run_archives_the_queue(tmp_path: Path) -> None:
    """One run of the built-in archiver compresses queued logs and removes the sources."""
    archival = _archival(tmp_path)
    queue = tmp_path / "spool dir" / "log-queue"
    queue.mkdir(parents=True)
    (queue / "conn__2026-11-23-12-00-00__2026-11-23-13-00-00__.log").write_text("#x\nline\n")
    assert await archival.run_once() == 0
    target = tmp_path / "archive dir" / "2026-11-23" / "conn.12:00:00-13:00:00.log.gz"
    assert gzip.decompress(target.read_bytes()) == b"#x\nline\n"
    assert list(queue.iterdir()) == []


@pytest.mark.asyncio
async def test_archiver_missing_queue_runs_nothing(tmp_path: Path) -> None:
    """Without a queue directory nothing runs (Zeek checks the directory first)."""
    runner = FakeRunner(CommandResult(0))
    assert await _archival(tmp_path, runner=runner, archive_cmd="touch ran").run_once() is None
    assert runner.commands == []
    assert not (tmp_path / "ran").exists()


@pytest.mark.asyncio
async def test_archiver_failure_is_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A missing or failing command is reported with its status and output."""
    (tmp_path / "spool dir" / "log-queue").mkdir(parents=True)
    archival = _archival(tmp_path, archive_cmd=str(tmp_path / "no-such-archiver"))
    with caplog.at_level(logging.INFO, "mgmt.agent"):
        assert await archival.run_once() == 127
    assert "log archival failed with status 127" in caplog.text
    assert "no-such-archiver" in caplog.text and "not found" in caplog.text


@pytest.mark.asyncio
async def test_archiver_time_limit_kills_it_without_blocking(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A hung archiver is killed at the limit; the event loop keeps running meanwhile."""
    (tmp_path / "spool dir" / "log-queue").mkdir(parents=True)
    archival = _archival(tmp_path, 0.5, archive_cmd="sleep 30; :")
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    task = asyncio.create_task(ticker())
    started = time.monotonic()
    with caplog.at_level(logging.INFO, "mgmt.agent"):
        status = await archival.run_once()
    elapsed = time.monotonic() - started
    task.cancel()
    assert status is None
    assert elapsed < 5
    assert ticks >= 10  # the loop was free while the archiver ran
    assert "log archival took longer than" in caplog.text


@pytest.mark.asyncio
async def test_archiver_runs_through_the_os_seam(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A run is one shell command line through the backend, with the time limit; a
    failure is logged with its status and the end of its output."""
    (tmp_path / "spool dir" / "log-queue").mkdir(parents=True)
    runner = FakeRunner(CommandResult(2, "...the end of it"))
    archival = _archival(tmp_path, 60.0, runner, archive_cmd="zeek-archiver")
    with caplog.at_level(logging.INFO, "mgmt.agent"):
        assert await archival.run_once() == 2
    assert runner.commands == [(["/bin/sh", "-c", archival.command()], 60.0)]
    assert "log archival failed with status 2: ...the end of it" in caplog.text


@pytest.mark.asyncio
async def test_archive_loop_tries_again_after_failures(tmp_path: Path) -> None:
    """Each interval runs the command again, whatever the previous run's outcome."""
    (tmp_path / "spool dir" / "log-queue").mkdir(parents=True)
    counter = tmp_path / "runs"
    archival = _archival(
        tmp_path, archive_cmd=f"echo x >> '{counter}'; exit 3; :", archive_interval=0.05
    )
    task = asyncio.create_task(archival.loop())
    try:
        await wait_until_async(
            lambda: counter.exists() and len(counter.read_text().split()) >= 3, "3 runs"
        )
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


# --------------------------------------------------------------------------------------
# End to end: zeek-mgmt run, a logger that rotates every second, archival every second

CLUSTER = on_instance(QUICKSTART_CFG, "agent-test")


@pytest.mark.slow
def test_agent_archives_rotated_logs(tmp_path: Path) -> None:
    """Rotated logs end up gzipped in archive_dir/<date>/ and leave the queue."""
    archive = tmp_path / "archive"
    with mgmt_run(
        tmp_path,
        settings=["agent.archive_interval=1", f"agent.archive_dir={archive}", "agent.archive_cmd="],
        env={"ZEEK_DOUBLE_ROTATE_INTERVAL": "1"},
    ) as run:
        res = run.deploy_config(CLUSTER)
        assert res.code == 0, (res.stdout, res.stderr)

        def archived() -> list[Path]:
            return sorted(archive.glob("*/*.log.gz"))

        wait_until(lambda: len({p.name.split(".")[0] for p in archived()}) >= 2, "archived logs")
        files = archived()
        assert all(ARCHIVE_NAME.match(p.name) for p in files), files
        assert all(re.fullmatch(r"\d{4}-\d\d-\d\d", p.parent.name) for p in files)
        assert gzip.decompress(files[0].read_bytes()).startswith(b"#separator")
        # Sources leave the queue once archived.
        wait_until(
            lambda: not {archived_name(n) for n in queued(run.spool_dir)} & {p.name for p in files},
            "archived sources gone from the queue",
        )
        log = run.daemon_logs()
    assert "triggering log archival via" in log
    assert "-m mgmt archive -1" in log


def test_agent_archives_once_more_at_shutdown(tmp_path: Path) -> None:
    """Stopping the agent stops the nodes (the logger rotates its open logs into the queue),
    then archives the queue once more, as Zeek's agent does when it exits."""
    archive = tmp_path / "archive"
    settings = [f"agent.archive_dir={archive}", "agent.archive_cmd="]
    with mgmt_run(tmp_path, settings=settings) as run:
        res = run.deploy_config(CLUSTER)
        assert res.code == 0, (res.stdout, res.stderr)
        logger = run.node_dir("logger")
        wait_until(lambda: (logger / "conn.log").exists(), "the logger's conn.log")
        assert queued(run.spool_dir) == []  # nothing rotated yet (hourly rotation)
        run.stop_daemons()
        log = run.daemon_logs()
    assert queued(run.spool_dir) == []
    names = sorted(p.name for p in archive.glob("*/*.log.gz"))
    assert {n.split(".")[0] for n in names} == {"conn", "dns"}, names
    assert all(ARCHIVE_NAME.match(n) for n in names)
    assert log.index("[logger] pid") < log.index("triggering log archival via")
    assert log.index("log archival finished") < log.index("agent agent-test stopped")


@pytest.mark.slow
def test_keep_nodes_stop_does_not_archive(tmp_path: Path) -> None:
    """With keep_nodes the nodes keep running (and did not rotate): no archival at stop."""
    archive = tmp_path / "archive"
    settings = [f"agent.archive_dir={archive}", "agent.archive_cmd=", "agent.keep_nodes=true"]
    with mgmt_run(tmp_path, settings=settings) as run:
        res = run.deploy_config(CLUSTER)
        assert res.code == 0, (res.stdout, res.stderr)
        node_pids = [
            row["pid"] for row in run.nodes_of("agent-test").values() if row.get("cluster_role")
        ]
        try:
            run.stop_daemons()
            assert "agent agent-test stopped (nodes left running)" in run.daemon_logs()
            assert "triggering log archival" not in run.daemon_logs()
            assert not archive.exists()
        finally:
            for pid in node_pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


@pytest.mark.slow
def test_agent_reports_a_missing_archiver_and_retries(tmp_path: Path) -> None:
    """A missing archive command is logged at every interval and the queue is kept."""
    with mgmt_run(
        tmp_path,
        settings=["agent.archive_interval=1", "agent.archive_cmd=/nonexistent/zeek-archiver"],
        env={"ZEEK_DOUBLE_ROTATE_INTERVAL": "1"},
    ) as run:
        res = run.deploy_config(CLUSTER)
        assert res.code == 0, (res.stdout, res.stderr)
        wait_until(lambda: any(n.startswith("conn__") for n in queued(run.spool_dir)), "rotation")
        failures = run.daemon_logs().count("log archival failed with status 127")
        wait_until(
            lambda: run.daemon_logs().count("log archival failed with status 127") >= failures + 2,
            "two more failed archival runs",
            timeout=15_000 * MS,
        )
        # Nothing was archived: the rotated logs are all still queued.
        assert any(n.startswith("conn__") for n in queued(run.spool_dir))
        assert "/nonexistent/zeek-archiver: not found" in run.daemon_logs()


@pytest.mark.asyncio
async def test_cancelled_archival_kills_the_archiver_group(tmp_path: Path) -> None:
    """Cancelling a run (agent shutdown) kills the archiver and its children."""
    import psutil

    (tmp_path / "spool dir" / "log-queue").mkdir(parents=True)
    pidfile = tmp_path / "child.pid"
    archival = _archival(tmp_path, archive_cmd=f"sleep 30 & echo $! > '{pidfile}'; wait; :")
    task = asyncio.create_task(archival.run_once())
    await wait_until_async(
        lambda: pidfile.exists() and pidfile.read_text().strip() != "", "the child"
    )
    child = int(pidfile.read_text())
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    def gone() -> bool:
        try:
            return psutil.Process(child).status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    await wait_until_async(gone, "the archiver's child killed")
