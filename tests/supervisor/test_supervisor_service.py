"""Tests of the supervisor driver, backend and store, with real child processes.

The "nodes" are small Python scripts with a ``#!<sys.executable>`` line, run through the
supervisor's ``zeek.<node>`` symlink like a real zeek. Intervals are shortened through the
constructor so that the suite stays fast.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import signal
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import psutil
import pytest
import pytest_asyncio

from mgmt.exceptions import NoSuchNode, SpawnError, StateStoreError
from mgmt.persist.nodetable import Intent, NodeTableStore, StoredNode
from mgmt.supervisor import nodefiles
from mgmt.supervisor.backend import Handle, OsBackend, process_name
from mgmt.supervisor.node import NodeInfo
from mgmt.supervisor.nodefiles import read_outputs, read_status, tail_lines
from mgmt.supervisor.order import GroupOrder
from mgmt.supervisor.policy import ExitStatus, NodeSpec, PolicySettings, ProcessState
from mgmt.supervisor.service import SupervisorService
from tests.paths import REPO_ROOT
from tests.support.waiting import MS, TIMEOUT, wait_until_async

S = ProcessState

#: Quick timing for tests: short SIGTERM interval, grace and revival delay.
FAST = PolicySettings(term_interval=0.1, stop_grace=2.0, revival_delay=0.1)
POLL = 0.02


@pytest.fixture
def leftover_pids() -> Iterator[list[int]]:
    """Pids a test leaves running on purpose; killed at teardown."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest_asyncio.fixture
async def sup(state_dir: Path) -> AsyncIterator[SupervisorService]:
    service = SupervisorService(state_dir, policy=FAST, poll_interval=POLL)
    await service.start()
    yield service
    await service.close()


async def deployed(sup: SupervisorService, *specs: NodeSpec) -> dict[str, NodeInfo]:
    """Deploy ``specs`` and wait until every node runs; the nodes by name."""
    sup.deploy(list(specs))
    return await wait_for(sup, lambda n: all(i.state is S.RUNNING for i in n.values()))


def by_name(infos: list[NodeInfo]) -> dict[str, NodeInfo]:
    return {info.name: info for info in infos}


async def wait_for(sup: SupervisorService, pred: Callable[[dict[str, NodeInfo]], bool]) -> dict:
    async with asyncio.timeout(TIMEOUT):
        return by_name(await sup.wait_for(lambda infos: pred(by_name(infos))))


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


class ObservedBackend(OsBackend):
    """The real backend, noting each readiness check (an intercepting subclass). The
    driver checks a PENDING node at every step, so the checks are the steps a test
    awaits to show that something did not happen."""

    def __init__(self, bin_dir: Path) -> None:
        super().__init__(bin_dir)
        self.declined: list[float] = []  # when a check found a node not ready
        self._checked = asyncio.Event()

    def is_ready(self, handle: Handle) -> bool:
        ready = super().is_ready(handle)
        if not ready:
            self.declined.append(time.monotonic())
        self._checked.set()
        return ready

    async def steps_after(self, moment: float, count: int) -> None:
        """Wait for ``count`` driver steps that found a node not ready after ``moment``."""
        async with asyncio.timeout(TIMEOUT):
            while sum(1 for t in self.declined if t >= moment) < count:
                self._checked.clear()
                await self._checked.wait()


# --------------------------------------------------------------------------------------
# Starting, readiness, names, outputs


@pytest.mark.asyncio
async def test_node_runs_with_zeek_name_cwd_env_and_outputs(
    sup: SupervisorService, make_spec: Callable[..., NodeSpec], state_dir: Path
) -> None:
    """A deployed node becomes RUNNING via .status, is named zeek.<node>, writes its files."""
    cpu = min(os.sched_getaffinity(0))
    spec = make_spec("worker-longname-01", cpu_affinity=cpu)
    sup.deploy([spec])
    async with asyncio.timeout(TIMEOUT):
        (info,) = await sup.wait_settled()
    assert info.state is S.RUNNING
    assert info.pid is not None and info.started_at is not None and not info.adopted
    proc = psutil.Process(info.pid)
    assert proc.name() == "zeek.worker-longname-01"[:15] == process_name(spec.name)
    assert proc.cwd() == str(state_dir / "nodes" / "worker-longname-01")
    assert proc.environ()["CLUSTER_NODE"] == "worker-longname-01"
    assert proc.cpu_affinity() == [cpu]
    # A #! script sees the path it was executed by (our symlink) instead of argv[0].
    assert proc.cmdline()[1:] == [
        str(state_dir / "nodes" / ".bin" / "zeek.worker-longname-01"),
        "-U",
        ".status",
    ]
    assert os.getsid(info.pid) == info.pid  # own session: no terminal signals from the agent
    out, err = sup.outputs("worker-longname-01")
    assert out == "stdout of worker-longname-01"  # the empty line is dropped
    assert err == "stderr of worker-longname-01"
    await sup.close()
    assert sup.status()[0].state is S.STOPPED
    assert not alive(info.pid)


@pytest.mark.asyncio
async def test_pending_until_status_says_running(
    state_dir: Path, make_spec: Callable[..., NodeSpec]
) -> None:
    """A node whose .status never says RUNNING stays PENDING with a pid."""
    backend = ObservedBackend(state_dir / "nodes" / ".bin")
    async with SupervisorService(
        state_dir, backend=backend, policy=FAST, poll_interval=POLL
    ) as sup:
        sup.deploy([make_spec("manager", mode="never_ready")])
        infos = await wait_for(sup, lambda n: n["manager"].pid is not None)
        status_file = Path(infos["manager"].spec.cwd) / ".status"
        await wait_until_async(lambda: read_status(status_file.parent) == "INITIALIZING [main]")
        # Steps that read INITIALIZING: readiness must not be invented.
        await backend.steps_after(time.monotonic(), 2)
        assert sup.status()[0].state is S.PENDING
        # Writing RUNNING (as zeek would) makes it RUNNING.
        status_file.write_text("RUNNING [run_loop]\n")
        await wait_for(sup, lambda n: n["manager"].state is S.RUNNING)


# --------------------------------------------------------------------------------------
# Crashes


@pytest.mark.asyncio
async def test_crash_is_recorded_and_node_revived(
    state_dir: Path, make_spec: Callable[..., NodeSpec]
) -> None:
    """A killed node goes CRASHED (signal recorded) and is revived with a new pid."""
    changes: list[tuple[S, int | None]] = []
    sup = SupervisorService(
        state_dir,
        on_state_change=lambda info: changes.append((info.state, info.pid)),
        policy=FAST,
        poll_interval=POLL,
    )
    async with sup:
        sup.deploy([make_spec("worker-01")])
        first = (await wait_for(sup, lambda n: n["worker-01"].state is S.RUNNING))["worker-01"]
        assert first.pid is not None
        os.kill(first.pid, signal.SIGKILL)
        infos = await wait_for(
            sup, lambda n: n["worker-01"].state is S.RUNNING and n["worker-01"].pid != first.pid
        )
        second = infos["worker-01"]
        assert second.restarts == 1
        assert second.exit_status == ExitStatus(signal=9)
        assert second.exit_time is not None and second.exit_time >= first.started_at
        assert (S.CRASHED, None) in changes
        assert changes.index((S.CRASHED, None)) < changes.index((S.RUNNING, second.pid))


@pytest.mark.asyncio
async def test_failing_node_backs_off_then_gives_up(
    state_dir: Path, make_spec: Callable[..., NodeSpec]
) -> None:
    """A node exiting 1 is revived with back-off, then FAILED after max_restarts."""
    spawns: list[float] = []

    def record(info: NodeInfo) -> None:
        if info.state is S.PENDING and info.pid is not None:
            assert info.started_at is not None
            spawns.append(info.started_at)

    sup = SupervisorService(
        state_dir,
        on_state_change=record,
        policy=dataclasses.replace(FAST, revival_delay=0.15, max_restarts=3),
        poll_interval=POLL,
    )
    async with sup:
        sup.deploy([make_spec("worker-01", mode="exit1")])
        infos = await wait_for(sup, lambda n: n["worker-01"].state is S.FAILED)
        info = infos["worker-01"]
        assert info.restarts == 3
        assert info.exit_status == ExitStatus(code=1)
        assert info.reason == "exited with status 1; gave up after 3 restarts"
        assert sup.outputs("worker-01")[1].endswith("fatal error: problem with interface eth9")
        # Delays between spawns: 0.15, 0.15, 0.15 (attempt 3 doubles the next one).
        gaps = [b - a for a, b in zip(spawns, spawns[1:], strict=False)]
        assert len(gaps) == 3
        assert all(gap >= 0.15 for gap in gaps), gaps
        # restart() brings a FAILED node back with a fresh budget.
        sup.restart(["worker-01"])
        assert sup.status()[0].state is S.PENDING


# --------------------------------------------------------------------------------------
# Stop and restart


@pytest.mark.asyncio
async def test_stop_escalates_to_sigkill(
    state_dir: Path, make_spec: Callable[..., NodeSpec]
) -> None:
    """A node ignoring SIGTERM is SIGKILLed after the grace period and stays STOPPED."""
    backend = ObservedBackend(state_dir / "nodes" / ".bin")
    policy = dataclasses.replace(FAST, stop_grace=0.5)
    async with SupervisorService(
        state_dir, backend=backend, policy=policy, poll_interval=POLL
    ) as sup:
        # A node that never gets ready keeps the driver stepping (it polls its status).
        sup.deploy([make_spec("logger", mode="ignore_term"), make_spec("canary", "never_ready")])
        info = (await wait_for(sup, lambda n: n["logger"].state is S.RUNNING))["logger"]
        started = time.monotonic()
        sup.stop(["logger"])
        assert by_name(sup.status())["logger"].state is S.STOPPING
        async with asyncio.timeout(TIMEOUT):
            (stopped,) = await sup.wait_settled(["logger"])
        assert time.monotonic() - started >= 0.5  # stop_grace
        assert stopped.state is S.STOPPED
        assert stopped.exit_status == ExitStatus(signal=9)
        assert stopped.pid is None
        assert info.pid is not None and not alive(info.pid)
        # Steps past the moment a crashed node would have been revived (3: whatever the
        # order in which one step visits the nodes, one began after that moment).
        await backend.steps_after(time.monotonic() + policy.revival_delay, 3)
        assert by_name(sup.status())["logger"].state is S.STOPPED  # never revived


@pytest.mark.asyncio
async def test_close_returns_once_a_departing_node_is_gone(
    state_dir: Path, make_spec: Callable[..., NodeSpec]
) -> None:
    """close() while a node that left the deployment is still stopping (it ignores
    SIGTERM) returns once the node is SIGKILLed and forgotten, not never."""
    sup = SupervisorService(
        state_dir, policy=dataclasses.replace(FAST, stop_grace=0.3), poll_interval=POLL
    )
    await sup.start()
    info = (await deployed(sup, make_spec("logger", mode="ignore_term")))["logger"]
    sup.deploy([])
    assert sup.status() == []  # departing nodes are not listed while they stop
    async with asyncio.timeout(TIMEOUT):
        await sup.close()
    assert info.pid is not None and not alive(info.pid)


@pytest.mark.asyncio
async def test_stop_with_sigterm(
    sup: SupervisorService, make_spec: Callable[..., NodeSpec]
) -> None:
    """stop() of a well-behaved node: SIGTERM, exit 0, STOPPED, no process left."""
    sup.deploy([make_spec("proxy-1")])
    info = (await wait_for(sup, lambda n: n["proxy-1"].state is S.RUNNING))["proxy-1"]
    sup.stop()
    async with asyncio.timeout(TIMEOUT):
        (stopped,) = await sup.wait_settled()
    assert (stopped.state, stopped.exit_status) == (S.STOPPED, ExitStatus(code=0))
    assert info.pid is not None and not alive(info.pid)
    assert read_status(stopped.spec.cwd) == "TERMINATED [atexit]"


@pytest.mark.asyncio
async def test_restart_gives_new_process(
    sup: SupervisorService, make_spec: Callable[..., NodeSpec]
) -> None:
    """restart() stops the node and starts it again with a new pid."""
    before = await deployed(sup, make_spec("manager"), make_spec("logger"))
    sup.restart(["manager"])
    after = await wait_for(
        sup,
        lambda n: n["manager"].state is S.RUNNING and n["manager"].pid != before["manager"].pid,
    )
    assert after["logger"].pid == before["logger"].pid
    old = before["manager"].pid
    assert old is not None and not alive(old)
    assert after["manager"].restarts == 0
    with pytest.raises(NoSuchNode):
        sup.restart(["nope"])
    with pytest.raises(NoSuchNode):
        sup.stop(["manager", "nope"])
    assert sup.status(["manager"])[0].state is S.RUNNING  # nothing changed


@pytest.mark.asyncio
async def test_held_stop_survives_redeploy_and_new_supervisor_until_start(
    state_dir: Path, make_spec: Callable[..., NodeSpec]
) -> None:
    """stop(hold=True) keeps a node STOPPED through a deploy of its unchanged spec and a
    new supervisor on the same table; start_nodes() runs it again, other nodes untouched."""
    manager, logger = make_spec("manager"), make_spec("logger")
    async with SupervisorService(state_dir, policy=FAST, poll_interval=POLL) as a:
        before = await deployed(a, manager, logger)
        a.stop(["manager"], hold=True)
        async with asyncio.timeout(TIMEOUT):
            await a.wait_settled(["manager"])
        a.deploy([manager, logger], keep_unchanged=True)
        after = await wait_for(a, lambda n: n["logger"].state is S.RUNNING)
        assert after["manager"].state is S.STOPPED
        assert after["logger"].pid == before["logger"].pid
        await a.close(keep_nodes=True)
    async with SupervisorService(state_dir, policy=FAST, poll_interval=POLL) as b:
        b.deploy([manager, logger], keep_unchanged=True)
        nodes = await wait_for(b, lambda n: n["logger"].state is S.RUNNING)
        assert nodes["manager"].state is S.STOPPED
        b.start_nodes(["manager"])
        nodes = await wait_for(b, lambda n: n["manager"].state is S.RUNNING)
        assert nodes["logger"].pid == before["logger"].pid


@pytest.mark.asyncio
async def test_held_stop_ends_when_the_spec_changes(
    sup: SupervisorService, make_spec: Callable[..., NodeSpec]
) -> None:
    """A deploy that changes a held node's spec starts it (a new configuration)."""
    await deployed(sup, make_spec("manager"))
    sup.stop(hold=True)
    async with asyncio.timeout(TIMEOUT):
        await sup.wait_settled()
    changed = dataclasses.replace(make_spec("manager"), cpu_affinity=0)
    await deployed(sup, changed)


@pytest.mark.asyncio
async def test_ordered_start_and_reverse_stop_by_role(
    state_dir: Path, make_spec: Callable[..., NodeSpec], caplog: pytest.LogCaptureFixture
) -> None:
    """With a start order, the worker is spawned only once the logger is RUNNING; close()
    stops the worker first and the logger once the worker is gone."""
    logger = dataclasses.replace(make_spec("logger"), role="logger")
    worker = dataclasses.replace(make_spec("worker"), role="worker")
    order = GroupOrder(reverse=False, timeout=TIMEOUT)
    caplog.set_level(logging.INFO, logger="mgmt.supervisor")
    async with SupervisorService(
        state_dir, policy=FAST, poll_interval=POLL, start_order=order
    ) as sup:
        await deployed(sup, worker, logger)
    messages = [r.getMessage() for r in caplog.records if r.name == "mgmt.supervisor"]
    steps = [m for m in messages if m.startswith(("starting ", "stopping ", "[logger] running"))]
    assert [m.split(" (pid")[0] for m in steps] == [
        "starting loggers: logger", "[logger] running", "starting workers: worker",
        "stopping workers: worker", "stopping loggers: logger",
    ]  # fmt: skip
    exits = [m for m in messages if " stopped: " in m]
    assert [m.split("]")[0] for m in exits] == ["[worker", "[logger"]


# --------------------------------------------------------------------------------------
# Deploy


@pytest.mark.asyncio
async def test_deploy_replaces_the_set(
    sup: SupervisorService, make_spec: Callable[..., NodeSpec]
) -> None:
    """deploy() stops removed nodes, restarts kept names, starts new ones."""
    first = await deployed(sup, make_spec("a"), make_spec("b"))
    sup.deploy([make_spec("b"), make_spec("c")])
    assert [i.name for i in sup.status()] == ["b", "c"]
    async with asyncio.timeout(TIMEOUT):
        second = by_name(await sup.wait_settled())
    assert {i.state for i in second.values()} == {S.RUNNING}
    assert second["b"].pid != first["b"].pid
    for old in (first["a"].pid, first["b"].pid):
        assert old is not None and not alive(old)
    with pytest.raises(NoSuchNode):
        sup.outputs("a")
    # keep_unchanged leaves identical live nodes alone.
    sup.deploy([make_spec("b"), make_spec("c", mode="never_ready")], keep_unchanged=True)
    third = await wait_for(sup, lambda n: n["c"].pid not in (None, second["c"].pid))
    assert third["b"].pid == second["b"].pid
    with pytest.raises(ValueError, match="duplicate"):
        sup.deploy([make_spec("x"), make_spec("x")])


# --------------------------------------------------------------------------------------
# Spawn failures


@pytest.mark.asyncio
async def test_missing_executable_is_failed_state(
    sup: SupervisorService, make_spec: Callable[..., NodeSpec], tmp_path: Path
) -> None:
    """A missing executable makes the node FAILED, with the reason in its stderr file."""
    good = make_spec("w1")
    bad = NodeSpec(name="w2", argv=(str(tmp_path / "nope"),), env=good.env, cwd=good.cwd + "2")  # type: ignore[arg-type]
    sup.deploy([good, bad])
    async with asyncio.timeout(TIMEOUT):
        infos = by_name(await sup.wait_settled())
    assert infos["w1"].state is S.RUNNING
    assert infos["w2"].state is S.FAILED
    assert infos["w2"].reason == f"no such executable: {tmp_path / 'nope'}"
    assert sup.outputs("w2") == (
        "",
        f"cannot start node w2: no such executable: {tmp_path / 'nope'}",
    )


@pytest.mark.asyncio
async def test_unusable_directory_and_path_lookup(
    sup: SupervisorService, make_spec: Callable[..., NodeSpec], tmp_path: Path
) -> None:
    """An uncreatable node directory or a name not on PATH is FAILED, not an exception."""
    blocker = tmp_path / "file"
    blocker.write_text("")
    base = make_spec("x")
    specs = [
        NodeSpec(name="d", argv=base.argv, env=base.env, cwd=str(blocker / "d")),  # type: ignore[arg-type]
        NodeSpec(name="p", argv=("no-such-zeek",), env={"PATH": str(tmp_path)}, cwd=base.cwd),  # type: ignore[arg-type]
    ]
    sup.deploy(specs)
    async with asyncio.timeout(TIMEOUT):
        infos = by_name(await sup.wait_settled())
    assert infos["d"].state is S.FAILED
    assert infos["d"].reason is not None and infos["d"].reason.startswith("cannot create directory")
    assert infos["p"].state is S.FAILED
    assert infos["p"].reason == "executable not found on PATH: no-such-zeek"


@pytest.mark.asyncio
async def test_executable_found_on_path(
    sup: SupervisorService, make_spec: Callable[..., NodeSpec], node_exe: Path
) -> None:
    """argv[0] without a slash is looked up on the spec's PATH."""
    base = make_spec("w")
    env = {**base.env, "PATH": str(node_exe.parent)}
    sup.deploy([NodeSpec(name="w", argv=(node_exe.name,), env=env, cwd=base.cwd)])  # type: ignore[arg-type]
    info = (await wait_for(sup, lambda n: n["w"].state is S.RUNNING))["w"]
    assert info.pid is not None and psutil.Process(info.pid).name() == "zeek.w"


# --------------------------------------------------------------------------------------
# Adoption


async def left_running(state_dir: Path, spec: NodeSpec) -> NodeInfo:
    """Deploy ``spec`` with a supervisor that then closes with keep_nodes=True: the node
    runs on (for a new supervisor to adopt); its info."""
    async with SupervisorService(state_dir, policy=FAST, poll_interval=POLL) as sup:
        sup.deploy([spec])
        info = (await wait_for(sup, lambda n: n[spec.name].state is S.RUNNING))[spec.name]
        await sup.close(keep_nodes=True)
    return info  # type: ignore[no-any-return]


@pytest.mark.asyncio
async def test_adoption_by_a_new_supervisor(
    state_dir: Path, make_spec: Callable[..., NodeSpec]
) -> None:
    """close(keep_nodes=True) leaves nodes running; a new supervisor adopts and stops them."""
    info = await left_running(state_dir, make_spec("manager"))
    assert info.pid is not None and alive(info.pid)

    b = SupervisorService(state_dir, policy=FAST, poll_interval=POLL)
    (adopted,) = await b.start()
    try:
        assert (adopted.state, adopted.pid, adopted.adopted) == (S.RUNNING, info.pid, True)
        assert adopted.spec == make_spec("manager")
        b.stop(["manager"])
        async with asyncio.timeout(TIMEOUT):
            (stopped,) = await b.wait_settled()
        assert stopped.state is S.STOPPED
        assert not alive(info.pid)
    finally:
        await b.close()


@pytest.mark.asyncio
async def test_adopted_node_crash_is_detected(
    state_dir: Path, make_spec: Callable[..., NodeSpec]
) -> None:
    """An adopted node that dies is noticed and revived by the new supervisor."""
    old = (await left_running(state_dir, make_spec("logger"))).pid
    async with SupervisorService(state_dir, policy=FAST, poll_interval=POLL) as b:
        assert b.status()[0].pid == old
        assert old is not None
        os.kill(old, signal.SIGKILL)
        infos = await wait_for(
            b, lambda n: n["logger"].state is S.RUNNING and n["logger"].pid != old
        )
        assert infos["logger"].restarts == 1
        assert not infos["logger"].adopted


@pytest.mark.asyncio
async def test_reused_pid_is_not_adopted(
    state_dir: Path, make_spec: Callable[..., NodeSpec], leftover_pids: list[int]
) -> None:
    """A stored pid whose start time differs is neither adopted nor signalled."""
    old = (await left_running(state_dir, make_spec("manager"))).pid
    assert old is not None
    leftover_pids.append(old)
    table = state_dir / "supervisor-nodes.toml"
    text = table.read_text()
    ct = psutil.Process(old).create_time()
    assert repr(ct) in text
    table.write_text(text.replace(repr(ct), repr(ct - 1000.0)))

    async with SupervisorService(state_dir, policy=FAST, poll_interval=POLL) as b:
        infos = await wait_for(b, lambda n: n["manager"].state is S.RUNNING)
        assert infos["manager"].pid != old
        assert not infos["manager"].adopted
        assert alive(old)  # the "other" process was left alone
    assert alive(old)


@pytest.mark.asyncio
async def test_adoption_of_a_non_child(
    state_dir: Path, make_spec: Callable[..., NodeSpec], leftover_pids: list[int]
) -> None:
    """Nodes left by a supervisor in another (exited) process are adopted and stopped."""
    spec = make_spec("worker-01")
    code = textwrap.dedent(
        f"""
        import asyncio
        from pathlib import Path
        from mgmt.supervisor.policy import NodeSpec, PolicySettings
        from mgmt.supervisor.service import SupervisorService

        async def main():
            sup = SupervisorService(
                Path({str(state_dir)!r}), policy=PolicySettings(stop_grace=26.0), poll_interval=0.02
            )
            await sup.start()
            sup.deploy([NodeSpec(name="worker-01", argv={spec.argv!r}, env={dict(spec.env)!r},
                                 cwd={spec.cwd!r})])
            (info,) = await asyncio.wait_for(sup.wait_settled(), 10)
            print(info.state.name, info.pid)
            await sup.close(keep_nodes=True)

        asyncio.run(main())
        """
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        code,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(30_000 * MS):
        stdout, stderr = await proc.communicate()
    assert proc.returncode == 0, stderr.decode()
    state, pid_text = stdout.decode().split()
    pid = int(pid_text)
    leftover_pids.append(pid)
    assert state == "RUNNING"
    assert psutil.Process(pid).ppid() != os.getpid()

    async with SupervisorService(state_dir, policy=FAST, poll_interval=POLL) as b:
        (info,) = b.status()
        assert (info.state, info.pid, info.adopted) == (S.RUNNING, pid, True)
        b.stop()
        async with asyncio.timeout(TIMEOUT):
            (stopped,) = await b.wait_settled()
        assert stopped.state is S.STOPPED
        assert stopped.exit_status == ExitStatus()  # not our child: status unknown
        assert not alive(pid)


@pytest.mark.asyncio
async def test_clean_close_stops_nodes_and_table_says_so(
    state_dir: Path, make_spec: Callable[..., NodeSpec]
) -> None:
    """close() stops every node; the next supervisor adopts nothing and starts nothing."""
    async with SupervisorService(
        state_dir, policy=dataclasses.replace(FAST, stop_grace=0.3), poll_interval=POLL
    ) as a:
        infos = await deployed(a, make_spec("m"), make_spec("w", mode="ignore_term"))
    for info in infos.values():
        assert info.pid is not None and not alive(info.pid)
    stored = NodeTableStore(state_dir / "supervisor-nodes.toml").load()
    assert {(row.spec.name, row.intent, row.pid) for row in stored} == {
        ("m", Intent.STOP, None),
        ("w", Intent.STOP, None),
    }
    async with SupervisorService(state_dir, policy=FAST, poll_interval=POLL) as b:
        assert {(i.name, i.state, i.pid) for i in b.status()} == {
            ("m", S.STOPPED, None),
            ("w", S.STOPPED, None),
        }


@pytest.mark.asyncio
async def test_corrupt_table_refuses_to_start(state_dir: Path) -> None:
    """A corrupt node table raises StateStoreError naming it, and is left untouched."""
    table = state_dir / "supervisor-nodes.toml"
    table.write_text("schema_version = 1\n[nodes.x\n")
    sup = SupervisorService(state_dir, policy=FAST, poll_interval=POLL)
    with pytest.raises(StateStoreError) as info:
        await sup.start()
    assert str(table) in str(info.value)
    await sup.close()
    assert table.read_text() == "schema_version = 1\n[nodes.x\n"


# --------------------------------------------------------------------------------------
# The deploy barrier, with a fake backend


class FakeBackend:
    """A recording Backend: processes live until the test ends them."""

    def __init__(self) -> None:
        self.next_pid = 1000
        self.exits: dict[int, ExitStatus] = {}
        self.ready: set[int] = set()
        self.signals: list[tuple[int, int]] = []
        self.spawned: list[str] = []
        self.polls: list[tuple[int, ExitStatus | None]] = []
        self._polled = asyncio.Event()

    def spawn(self, spec: NodeSpec) -> Handle:
        if spec.argv[0] == "broken":
            raise SpawnError(spec.name, "broken executable")
        if spec.argv[0] == "explodes":
            raise ValueError("a bug in the backend")
        self.next_pid += 1
        self.spawned.append(spec.name)
        return Handle(self.next_pid, 0.0, spec.cwd, adopted=False, native=None)

    def adopt(self, pid: int, create_time: float, cwd: str) -> Handle | None:
        return None

    def signal(self, handle: Handle, sig: int) -> None:
        self.signals.append((handle.pid, sig))

    def poll(self, handle: Handle) -> ExitStatus | None:
        status = self.exits.get(handle.pid)
        self.polls.append((handle.pid, status))
        self._polled.set()
        return status

    async def polled_after_exit(self, exited: int, pid: int, count: int) -> None:
        """Wait until the driver saw ``exited`` end and then polled ``pid`` ``count`` times
        (one step each)."""

        def seen() -> bool:
            ends = [i for i, (p, status) in enumerate(self.polls) if p == exited and status]
            return bool(ends) and sum(1 for p, _ in self.polls[ends[0] :] if p == pid) >= count

        async with asyncio.timeout(TIMEOUT):
            while not seen():
                self._polled.clear()
                await self._polled.wait()

    def is_ready(self, handle: Handle) -> bool:
        return handle.pid in self.ready

    def release(self, handle: Handle) -> None:
        pass

    def describe(self, handle: Handle) -> str:
        return f"fake pid {handle.pid}"


@pytest.mark.asyncio
async def test_deploy_waits_for_old_processes(state_dir: Path) -> None:
    """New nodes are spawned only once every old process of the deployment has exited."""
    fake = FakeBackend()
    sup = SupervisorService(state_dir, backend=fake, policy=FAST, poll_interval=POLL)
    await sup.start()
    sup.deploy([NodeSpec(name="a", argv=("zeek",)), NodeSpec(name="b", argv=("zeek",))])  # type: ignore[arg-type]
    assert fake.spawned == ["a", "b"]
    pid_a, pid_b = (i.pid for i in sup.status())
    fake.ready |= {pid_a, pid_b}
    await wait_for(sup, lambda n: all(i.state is S.RUNNING for i in n.values()))

    sup.deploy([NodeSpec(name="b", argv=("zeek", "-C")), NodeSpec(name="c", argv=("zeek",))])  # type: ignore[arg-type]
    assert sorted(fake.signals) == [(pid_a, 15), (pid_b, 15)]
    assert {(i.name, i.state) for i in sup.status()} == {("b", S.PENDING), ("c", S.PENDING)}
    fake.exits[pid_b] = ExitStatus(code=0)
    await fake.polled_after_exit(pid_b, pid_a, 2)  # steps that saw b gone, a still there
    assert fake.spawned == ["a", "b"]  # a is still stopping: nothing new yet
    fake.exits[pid_a] = ExitStatus(code=0)
    infos = await wait_for(sup, lambda n: all(i.pid is not None for i in n.values()))
    assert fake.spawned == ["a", "b", "b", "c"]
    assert infos["b"].spec.argv == ("zeek", "-C")
    # A spawn failure is a state, not an exception from the driver.
    sup.deploy([NodeSpec(name="x", argv=("broken",))], keep_unchanged=False)  # type: ignore[arg-type]
    for info in infos.values():
        assert info.pid is not None
        fake.exits[info.pid] = ExitStatus(code=0)
    infos = await wait_for(sup, lambda n: n["x"].state is S.FAILED)
    assert infos["x"].reason == "broken executable"
    await sup.close()


@pytest.mark.asyncio
async def test_unexpected_spawn_exception_fails_that_node_only(state_dir: Path) -> None:
    """A backend raising something other than SpawnError for one node makes that node
    FAILED with the reason; the driver and the other nodes carry on."""
    fake = FakeBackend()
    sup = SupervisorService(state_dir, backend=fake, policy=FAST, poll_interval=POLL)
    await sup.start()
    specs = [NodeSpec(name=n, argv=(a,)) for n, a in (("a", "zeek"), ("b", "explodes"))]  # type: ignore[arg-type]
    sup.deploy([*specs, NodeSpec(name="c", argv=("zeek",))])  # type: ignore[arg-type]
    infos = by_name(sup.status())
    assert infos["b"].state is S.FAILED
    assert infos["b"].reason == "cannot start node: ValueError: a bug in the backend"
    fake.ready |= {infos["a"].pid, infos["c"].pid}  # type: ignore[arg-type]
    infos = await wait_for(sup, lambda n: n["a"].state is S.RUNNING and n["c"].state is S.RUNNING)
    assert sup._task is not None and not sup._task.done()
    # The driver still takes commands, and b fails again on restart without harm.
    sup.restart(["a", "b"])
    assert by_name(sup.status())["b"].state is S.FAILED
    fake.exits[infos["a"].pid] = ExitStatus(code=0)  # type: ignore[index]
    await wait_for(sup, lambda n: n["a"].pid not in (None, infos["a"].pid))
    assert by_name(sup.status())["c"].pid == infos["c"].pid
    for info in sup.status():
        if info.pid is not None:
            fake.exits[info.pid] = ExitStatus(code=0)
    await sup.close()


@pytest.mark.asyncio
async def test_values_execve_refuses_fail_their_node_with_the_reason(
    sup: SupervisorService, make_spec: Callable[..., NodeSpec]
) -> None:
    """Real spawns of a NUL byte in the environment or an argument, or '=' in a variable
    name, fail those nodes with the reason in their stderr; a good node runs."""
    good = make_spec("good")
    nul_env = make_spec("nul-env")
    nul_env = NodeSpec(nul_env.name, nul_env.argv, {**nul_env.env, "A": "x\x00y"}, nul_env.cwd)
    eq_key = make_spec("eq-key")
    eq_key = NodeSpec(eq_key.name, eq_key.argv, {**eq_key.env, "A=B": "x"}, eq_key.cwd)
    nul_arg = make_spec("nul-arg")
    nul_arg = NodeSpec(nul_arg.name, (*nul_arg.argv, "-i", "l\x00o"), nul_arg.env, nul_arg.cwd)
    sup.deploy([good, nul_env, eq_key, nul_arg])
    infos = by_name(await sup.wait_settled())
    assert infos["good"].state is S.RUNNING
    reasons = {
        "nul-env": "embedded null byte",
        "eq-key": "illegal environment variable name",
        "nul-arg": "embedded null byte",
    }
    for name, reason in reasons.items():
        assert infos[name].state is S.FAILED, name
        assert infos[name].reason is not None and reason in infos[name].reason
        assert reason in sup.outputs(name)[1]
    assert sup._task is not None and not sup._task.done()


# --------------------------------------------------------------------------------------
# Output tails and the table file


def test_tail_lines_reads_backwards(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """tail_lines returns the last N non-empty lines of a large file without reading it all."""
    path = tmp_path / "stdout"
    lines = [f"line {i}" for i in range(100_000)]
    path.write_text("\n\n".join(lines) + "\n")
    reads: list[int] = []
    real_open = open

    class CountingFile:
        def __init__(self, f):  # type: ignore[no-untyped-def]
            self.f = f

        def __enter__(self):  # type: ignore[no-untyped-def]
            return self

        def __exit__(self, *exc):  # type: ignore[no-untyped-def]
            self.f.close()

        def seek(self, *args):  # type: ignore[no-untyped-def]
            return self.f.seek(*args)

        def read(self, size):  # type: ignore[no-untyped-def]
            reads.append(size)
            return self.f.read(size)

    monkeypatch.setattr(
        nodefiles, "open", lambda p, m: CountingFile(real_open(p, m)), raising=False
    )
    assert tail_lines(path) == lines[-100:]
    assert sum(reads) < 20_000
    assert tail_lines(path, limit=3) == lines[-3:]


def test_tail_lines_small_and_odd_files(tmp_path: Path) -> None:
    """Short files, no trailing newline, empty lines, bad UTF-8, and missing files."""
    path = tmp_path / "stderr"
    path.write_bytes(b"a\n\nb\xff\nc")
    assert tail_lines(path) == ["a", "b\ufffd", "c"]
    assert tail_lines(tmp_path / "missing") == []
    path.write_bytes(b"")
    assert tail_lines(path) == []
    (tmp_path / "stdout").write_text("\n".join(str(i) for i in range(150)) + "\n")
    out, err = read_outputs(tmp_path)
    assert out.split("\n") == [str(i) for i in range(50, 150)]
    assert err == ""


def test_store_roundtrip_and_atomic_write(tmp_path: Path) -> None:
    """The table round-trips, is written 0600 with a schema version, leaves no temp file."""
    store = NodeTableStore(tmp_path / "t.toml")
    assert store.load() == []
    rows = [
        StoredNode(
            spec=NodeSpec(
                name="w-1", argv=("zeek", "-i", "eth0"), env={"A": 'b"c'}, cwd="/x", cpu_affinity=2
            ),  # type: ignore[arg-type]
            intent=Intent.RUN,
            pid=123,
            create_time=1718000000.25,
        ),
        StoredNode(spec=NodeSpec(name="m", argv=("zeek",)), intent=Intent.STOP, current=False),  # type: ignore[arg-type]
    ]
    store.save(rows)
    assert (tmp_path / "t.toml").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "t.toml").read_text().startswith("schema_version = 1\n")
    assert os.listdir(tmp_path) == ["t.toml"]
    assert NodeTableStore(tmp_path / "t.toml").load() == rows
    # The base row of the corrupt cases below is valid once completed.
    (tmp_path / "ok.toml").write_bytes(ROW + b"intent = 'run'\nargv = ['z']\nenv = {}\n")
    (row,) = NodeTableStore(tmp_path / "ok.toml").load()
    assert (row.spec.name, row.spec.argv, row.intent, row.pid) == ("w", ("z",), Intent.RUN, None)


ROW = b"schema_version = 1\n[nodes.w]\ncwd = '/'\ncurrent = true\n"


@pytest.mark.parametrize(
    "content",
    [
        b"not toml [",
        b"schema_version = 2\n",
        ROW + b"intent = 'run'\nargv = []\nenv = {}\n",  # empty argv
        ROW + b"intent = 'zap'\nargv = ['z']\nenv = {}\n",  # unknown intent
        ROW + b"intent = 'run'\nargv = ['z']\nenv = {}\npid = true\n",  # bool pid
        ROW + b"intent = 'run'\nargv = ['z']\nenv = {a = 1}\n",  # non-string env
        ROW + b"argv = ['z']\nenv = {}\n",  # missing intent
        ROW + b"intent = 'run'\nargv = ['z']\nenv = {}\ncpu_affinity = 1.5\n",
        b"\xff\xfe",
    ],
)
def test_store_rejects_corrupt_files(tmp_path: Path, content: bytes) -> None:
    """Corrupt tables raise StateStoreError and are never overwritten by this store."""
    path = tmp_path / "t.toml"
    path.write_bytes(content)
    store = NodeTableStore(path)
    with pytest.raises(StateStoreError) as info:
        store.load()
    assert info.value.path == str(path)
    with pytest.raises(StateStoreError):
        store.save([])
    assert path.read_bytes() == content


@pytest.mark.asyncio
async def test_table_rows_of_impossible_nodes_are_dropped_not_fatal(
    state_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A well-formed row for a node no supervisor can run (a name starting with '.') is
    dropped with a warning; the supervisor starts with the other rows."""
    table = state_dir / "supervisor-nodes.toml"
    table.write_bytes(
        b"schema_version = 1\n"
        b"[nodes.'.hidden']\nintent = 'stop'\nargv = ['z']\ncwd = '/'\ncurrent = true\n"
        b"pid = 999999\nenv = {}\n"
        b"[nodes.w]\nintent = 'stop'\nargv = ['z']\ncwd = '/'\ncurrent = true\nenv = {}\n"
    )
    with caplog.at_level("WARNING", "mgmt.supervisor"):
        async with SupervisorService(state_dir, policy=FAST, poll_interval=POLL) as sup:
            assert [(i.name, i.state) for i in sup.status()] == [("w", S.STOPPED)]
    assert "dropping node '.hidden'" in caplog.text
    assert "pid 999999, is left alone" in caplog.text
    assert "hidden" not in table.read_text()
