"""Fault tests: nothing is acknowledged that was not persisted (issue 10).

The real controller daemon (a subprocess on real sockets) keeps its state on a small
tmpfs that the test fills up or remounts read-only, or runs out of file descriptors; the
real ``zeek-client`` must then exit 1 and show ``could not persist configuration: ...``,
the previous configuration must stay (in memory and after a restart), and the controller
must keep serving. Also: temporary files that a killed write left are removed at
start-up, and an agent reports its own persistence failures in the deploy result.
"""

from __future__ import annotations

import resource
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mgmt.broker import events as ev
from tests.support.cli import Run, run_zeek_client
from tests.support.controller_harness import ControllerProcess, agent_uri
from tests.support.fake_agent import FakeAgent, fake_agents
from tests.support.faultfs import Tmpfs, mounted_tmpfs
from tests.support.ports import port_open
from tests.support.reference import LOCAL_AGENT
from tests.support.sites import QUICKSTART_CFG, site
from tests.support.waiting import wait_until

NO_SPACE = "No space left on device"


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Tmpfs]:
    """A 2 MB tmpfs at ``tmp_path/fs`` (skips when not root)."""
    with mounted_tmpfs(tmp_path / "fs") as fs:
        yield fs


def controller(root: Path, tmp_path: Path) -> ControllerProcess:
    """A controller daemon with its state under ``root`` and its log in ``tmp_path`` (so
    that no file on a test file system stays open for writing)."""
    return ControllerProcess(root / "state", log=tmp_path / "controller.log")


def cluster_file(path: Path, workers: int, instance: str = "agent-a") -> Path:
    """A zeek-client cluster configuration with a manager and ``workers`` workers."""
    text = f"[instances]\n{instance}\n\n[manager]\ninstance = {instance}\nrole = manager\n"
    for i in range(1, workers + 1):
        text += f"\n[worker-{i:02}]\ninstance = {instance}\nrole = worker\ninterface = lo\n"
    path.write_text(text)
    return path


async def get_config(proc: ControllerProcess, *flags: str) -> Any:
    """``zeek-client get-config --as-json`` (asserting it worked)."""
    run = await run_zeek_client(proc.client_port, "get-config", "--as-json", *flags)
    assert run.code == 0, run
    return run.json()


async def stage(proc: ControllerProcess, config: Path) -> Run:
    """``zeek-client stage-config <config>``."""
    return await run_zeek_client(proc.client_port, "stage-config", str(config))


async def staged_first(proc: ControllerProcess, tmp_path: Path) -> Any:
    """Stage a first configuration (asserting it worked); what get-config shows then."""
    first = await stage(proc, cluster_file(tmp_path / "a.cfg", 1))
    assert first.code == 0, first
    return await get_config(proc)


def persist_error(proc: ControllerProcess, reason: str) -> str:
    """The error a client sees when ``controller.toml`` cannot be written."""
    return f"could not persist configuration: {proc.state_file}: cannot write: {reason}"


@pytest.mark.asyncio
async def test_stage_on_a_full_disk_fails_and_keeps_the_previous(
    tmp_path: Path, tmpfs: Tmpfs
) -> None:
    """Disk full: stage-config exits 1 with the reason, get-config shows the previous
    staged configuration (also after a restart); with space back, staging works again."""
    async with controller(tmpfs.path, tmp_path) as proc:
        before = await staged_first(proc, tmp_path)

        tmpfs.fill()
        second = cluster_file(tmp_path / "b.cfg", 2)
        run = await stage(proc, second)
        assert run.code == 1, run
        assert run.json()["errors"] == [persist_error(proc, NO_SPACE)]
        assert await get_config(proc) == before
        await proc.restart()  # still full: it starts and serves what is on disk
        assert await get_config(proc) == before

        tmpfs.free()
        run = await stage(proc, second)
        assert run.code == 0, run
        after = await get_config(proc)
        assert after["id"] == run.json()["results"]["id"] != before["id"]
        await proc.restart()
        assert await get_config(proc) == after


@pytest.mark.asyncio
async def test_deploy_on_a_full_disk_changes_nothing(tmp_path: Path, tmpfs: Tmpfs) -> None:
    """Disk full: deploy exits 1 with the reason before any agent is told anything; the
    deployed configuration stays the previous one, also after a restart (which redeploys
    that one); with space back, the same deploy works."""
    agent = FakeAgent("agent-a")
    async with controller(tmpfs.path, tmp_path) as proc, fake_agents(agent):
        await agent.dial(agent_uri(proc.agent_port))
        run = await run_zeek_client(
            proc.client_port, "deploy-config", str(cluster_file(tmp_path / "a.cfg", 1))
        )
        assert run.code == 0, run
        deployed = await get_config(proc, "--deployed")
        staged = await stage(proc, cluster_file(tmp_path / "b.cfg", 2))
        assert staged.code == 0, staged
        assert agent.count(ev.AgentDeployRequest) == 1

        tmpfs.fill()
        run = await run_zeek_client(proc.client_port, "deploy")
        assert run.code == 1, run
        assert run.json()["errors"] == [persist_error(proc, NO_SPACE)]
        assert agent.count(ev.AgentDeployRequest) == 1  # the cluster was not touched
        assert await get_config(proc, "--deployed") == deployed

        await proc.restart()
        assert await get_config(proc, "--deployed") == deployed
        last = await agent.wait_received(ev.AgentDeployRequest, 2)  # the redeploy after restart
        assert last.config.id == deployed["id"]

        tmpfs.free()
        run = await run_zeek_client(proc.client_port, "deploy")
        assert (run.code, run.json()["results"]["id"]) == (0, staged.json()["results"]["id"])
        assert (await get_config(proc, "--deployed"))["id"] == staged.json()["results"]["id"]


@pytest.mark.asyncio
async def test_read_only_state_fails_stage_and_deploy(tmp_path: Path, tmpfs: Tmpfs) -> None:
    """Read-only state file system: stage-config and deploy exit 1 naming it, get-config
    still shows the previous one; once writable again, staging works."""
    async with controller(tmpfs.path, tmp_path) as proc:
        before = await staged_first(proc, tmp_path)

        tmpfs.read_only()
        second = cluster_file(tmp_path / "b.cfg", 2)
        for run in (await stage(proc, second), await run_zeek_client(proc.client_port, "deploy")):
            assert (run.code, run.json()["errors"]) == (
                1,
                [persist_error(proc, "Read-only file system")],
            )
        assert await get_config(proc) == before
        nothing = await run_zeek_client(proc.client_port, "get-config", "--deployed")
        assert nothing.code == 1  # still nothing deployed

        tmpfs.writable()
        run = await stage(proc, second)
        assert run.code == 0, run
        assert (await get_config(proc))["id"] != before["id"]


def _lowest_free_fd(pid: int) -> int:
    used = {int(fd.name) for fd in Path(f"/proc/{pid}/fd").iterdir() if fd.name.isdigit()}
    fd = 0
    while fd in used:
        fd += 1
    return fd


@pytest.mark.asyncio
async def test_stage_without_free_file_descriptors_fails_and_keeps_serving(
    tmp_path: Path,
) -> None:
    """Out of file descriptors: stage-config exits 1 with 'Too many open files' and
    changes nothing; with the limit raised again the controller serves as before."""
    async with controller(tmp_path, tmp_path) as proc:
        before = await staged_first(proc, tmp_path)
        pid = proc.proc.pid
        limits = resource.prlimit(pid, resource.RLIMIT_NOFILE)
        # One descriptor left: the client's connection gets it, the state file does not.
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (_lowest_free_fd(pid) + 1, limits[1]))
        try:
            second = cluster_file(tmp_path / "b.cfg", 2)
            run = await stage(proc, second)
        finally:
            resource.prlimit(pid, resource.RLIMIT_NOFILE, limits)
        assert (run.code, run.json()["errors"]) == (1, [persist_error(proc, "Too many open files")])
        assert await get_config(proc) == before
        run = await stage(proc, second)
        assert run.code == 0, run


@pytest.mark.asyncio
async def test_controller_removes_leftover_temporary_files(tmp_path: Path) -> None:
    """Temporary files of writes killed midway (``.controller.toml.*.tmp``) are removed at
    start-up and the removal is logged; other files are left alone."""
    proc = controller(tmp_path, tmp_path)
    work = proc.state_file.parent
    work.mkdir(parents=True)
    leftovers = [work / ".controller.toml.k1ll3d_x.tmp", work / ".controller.toml.4242.tmp"]
    for path in leftovers:
        path.write_text('kind = "zeek-mgmt-controller"\nschema_version = 1\n[staged\n')
    others = [work / ".controller.toml.tmp", work / ".other.toml.x.tmp", work / "notes.tmp"]
    for path in others:
        path.write_text("keep me")
    async with proc:
        assert not any(p.exists() for p in leftovers)
        assert all(p.read_text() == "keep me" for p in others)
        log = proc.log.read_text()
        assert all(f"removed {p}, left over from an interrupted write" in log for p in leftovers)


def test_agent_removes_leftover_temporary_files(tmp_path: Path) -> None:
    """An agent removes the temporary files of killed writes of agent.toml, the node
    table and the layout files at start-up, and nothing else."""
    with site(tmp_path) as s:
        work = s.node_dir(LOCAL_AGENT)
        (work / "layout").mkdir(parents=True)
        leftovers = [
            work / ".agent.toml.abc_123.tmp",
            work / ".nodes.toml.31337.tmp",
            work / "layout" / ".cluster-layout.zeek.q1w2e3.tmp",
            work / "layout" / ".zeek-mgmt-node.zeek.zz.tmp",
        ]
        others = [work / ".agent.toml.tmp", work / "layout" / ".local.zeek.x.tmp"]
        for path in leftovers + others:
            path.write_text("partial")
        agent = s.start("agent")
        wait_until(lambda: port_open(s.agent_port) or not agent.alive(), what="agent port")
        assert agent.alive(), agent.log()
        assert [p for p in leftovers if p.exists()] == []
        assert all(p.read_text() == "partial" for p in others)
        assert agent.log().count("left over from an interrupted write") == len(leftovers)


def test_agent_reports_a_configuration_it_cannot_persist(tmp_path: Path) -> None:
    """When the agent cannot write agent.toml, the deploy still runs the nodes but its
    result carries 'could not persist configuration: ...' and zeek-client exits 1."""
    with site(tmp_path) as s:
        s.start("controller")
        s.start("agent")
        s.wait_agents(LOCAL_AGENT)
        state_file = s.node_dir(LOCAL_AGENT) / "agent.toml"
        state_file.mkdir(parents=True)  # a directory where the file must go
        s.write_cfg(QUICKSTART_CFG)
        run = s.client("deploy-config", "cluster.cfg")
        assert run.code == 1, run
        out = run.json()
        assert out["errors"] == [
            f"could not persist configuration: {state_file}: cannot write: Is a directory"
        ]
        assert {n: r["success"] for n, r in out["results"]["nodes"].items()} == dict.fromkeys(
            ("logger", "manager", "worker-01", "worker-02"), True
        )
        controller_log = s.daemons[0].log()
        # The agent's message is peer text: logged quoted and shortened.
        assert f"instance {LOCAL_AGENT} reports error: 'could not persist configuration" in (
            controller_log
        )
