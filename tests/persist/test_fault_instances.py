"""Fault tests: one daemon per state directory, ports before nodes, no restart loops
(issue 10, "One instance per state directory").

Real daemons with the zeek double, the real ``zeek-client``, ``kill -9``: a second
agent, controller or ``zeek-mgmt run`` on a state directory in use exits at once with
``another zeek-mgmt <role> (pid N) is using <dir>`` and touches nothing; an agent whose
port is taken exits before it adopts a node; ``zeek-mgmt run`` does not restart a child
that failed that way.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil

from mgmt.daemon.exitstatus import EXIT_FATAL
from mgmt.persist.lock import InstanceLock
from tests.paths import REPO_ROOT
from tests.support.daemons import Daemon
from tests.support.reference import LOCAL_AGENT
from tests.support.sites import CONTROLLER_NAME, QUICKSTART_CFG, TIMEOUT, Site, deploy, pids, site
from tests.support.waiting import MS

NODES = ["logger", "manager", "worker-01", "worker-02"]


def try_lock(state_dir: Path, role: str) -> subprocess.CompletedProcess[str]:
    """Try :class:`InstanceLock` in another process; prints ``locked`` or the error."""
    code = textwrap.dedent(
        f"""
        from pathlib import Path
        from mgmt.persist.lock import InstanceLock
        from mgmt.exceptions import InstanceLocked
        try:
            InstanceLock(Path({str(state_dir)!r}), {role!r}).acquire()
        except InstanceLocked as exc:
            print(exc)
        else:
            print("locked")
        """
    )
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=30_000 * MS
    )


def test_lock_is_exclusive_per_role_and_names_the_holder(tmp_path: Path) -> None:
    """While one process holds the agent lock, another gets an error naming the holder's
    pid and the directory; the controller lock is separate; after release it is free."""
    lock = InstanceLock(tmp_path, "agent")
    lock.acquire()
    try:
        other = try_lock(tmp_path, "agent")
        assert other.stdout.strip() == (
            f"another zeek-mgmt agent (pid {os.getpid()}) is using {tmp_path}"
        ), other.stderr
        assert try_lock(tmp_path, "controller").stdout.strip() == "locked"
    finally:
        lock.release()
    assert try_lock(tmp_path, "agent").stdout.strip() == "locked"


def test_lock_is_not_inherited_by_child_processes(tmp_path: Path) -> None:
    """Processes started while the lock is held (nodes) do not keep it: once the holder
    lets go, a new agent gets it although the child still runs."""
    lock = InstanceLock(tmp_path, "agent")
    lock.acquire()
    child = subprocess.Popen(["sleep", "60"], close_fds=False)
    try:
        lock.release()
        assert try_lock(tmp_path, "agent").stdout.strip() == "locked"
    finally:
        child.kill()
        child.wait()


@contextmanager
def deployed_site(tmp_path: Path, *, run: bool = False) -> Iterator[tuple[Site, dict[str, int]]]:
    """A site with controller and agent (or ``zeek-mgmt run``) and the Quickstart cluster
    RUNNING; yields it and the node pids."""
    with site(tmp_path) as s:
        if run:
            s.start("run")
        else:
            s.start("controller")
            s.start("agent")
        s.wait_agents(LOCAL_AGENT)
        out = deploy(s, QUICKSTART_CFG)
        assert out["errors"] == [], out
        rows = s.wait_states(LOCAL_AGENT, dict.fromkeys(NODES, "RUNNING"))
        yield s, {n: p for n, p in pids(rows).items() if p is not None}


def alive(node_pids: dict[str, int]) -> dict[str, bool]:
    """Whether each pid still runs (and is not a zombie)."""
    out = {}
    for name, pid in node_pids.items():
        try:
            out[name] = psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            out[name] = False
    return out


def start_second(s: Site, role: str) -> tuple[Daemon, Daemon, int]:
    """Start a second ``role`` daemon on the site's state dir and wait for it to exit:
    ``(the first, the second, its exit status)``."""
    first = next(d for d in s.daemons if d.role == role)
    second = s.start(role, name=f"{role}-2")
    return first, second, second.proc.wait(TIMEOUT)


def test_second_agent_on_the_state_dir_exits_and_touches_nothing(tmp_path: Path) -> None:
    """A second agent on a state dir in use exits at once (78) naming the first one's
    pid; the nodes, their node table and agent.toml are untouched."""
    with deployed_site(tmp_path) as (s, node_pids):
        work = s.node_dir(LOCAL_AGENT)
        before = {f: (work / f).read_bytes() for f in ("nodes.toml", "agent.toml")}
        first, second, status = start_second(s, "agent")
        assert alive(node_pids) == dict.fromkeys(NODES, True)
        assert {f: (work / f).read_bytes() for f in before} == before
        assert status == EXIT_FATAL
        assert (
            f"zeek-mgmt agent: error: another zeek-mgmt agent (pid {first.pid}) is using "
            f"{s.state_dir}"
        ) in second.log()
        assert "adopted" not in second.log() and "Traceback" not in second.log()
        assert pids(s.nodes_of(LOCAL_AGENT)) == node_pids


def test_second_controller_on_the_state_dir_exits_and_touches_nothing(tmp_path: Path) -> None:
    """A second controller on a state dir in use exits at once (78) naming the first
    one; controller.toml and the pid file stay, and the first keeps serving."""
    with deployed_site(tmp_path) as (s, _):
        work = s.node_dir(CONTROLLER_NAME)
        before = {f: (work / f).read_bytes() for f in ("controller.toml", ".pid")}
        first, second, status = start_second(s, "controller")
        assert {f: (work / f).read_bytes() for f in before} == before
        assert status == EXIT_FATAL
        assert (
            f"another zeek-mgmt controller (pid {first.pid}) is using {s.state_dir}"
        ) in second.log()
        assert s.client("get-config", "--deployed").code == 0


def test_second_run_on_the_state_dir_exits_and_leaves_the_cluster_alone(
    tmp_path: Path,
) -> None:
    """A second ``zeek-mgmt run`` on the same state dir exits (78) without restarting
    its children; the first cluster's nodes keep their pids."""
    with deployed_site(tmp_path, run=True) as (s, node_pids):
        _, second, status = start_second(s, "run")
        assert status == EXIT_FATAL
        log = second.log()
        # The child that gets there first reports; run then stops the other one.
        assert f") is using {s.state_dir}" in log
        assert "not restarting" in log and "restarting in" not in log
        assert alive(node_pids) == dict.fromkeys(NODES, True)
        assert pids(s.nodes_of(LOCAL_AGENT)) == node_pids


@contextmanager
def port_taken(port: int) -> Iterator[None]:
    """Something else listens on 127.0.0.1:``port`` for the block."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen()
        yield


def test_agent_whose_port_is_taken_leaves_the_nodes_alone(tmp_path: Path) -> None:
    """After kill -9 of the agent, a new agent that cannot bind its port exits (78) with
    'cannot listen' before adopting anything: the nodes run on, and the next agent that
    can bind adopts them unchanged."""
    with deployed_site(tmp_path) as (s, node_pids):
        first = next(d for d in s.daemons if d.role == "agent")
        table = s.node_dir(LOCAL_AGENT) / "nodes.toml"
        first.kill()
        before = table.read_bytes()
        with port_taken(s.agent_port):
            blocked = s.start("agent", name="agent-blocked")
            status = blocked.proc.wait(TIMEOUT)
        assert alive(node_pids) == dict.fromkeys(NODES, True)
        assert table.read_bytes() == before
        assert status == EXIT_FATAL
        assert f"cannot listen on 127.0.0.1:{s.agent_port}: " in blocked.log()
        assert "adopted" not in blocked.log()

        s.start("agent", name="agent-3")
        rows = s.wait_states(LOCAL_AGENT, dict.fromkeys(NODES, "RUNNING"))
        assert pids(rows) == node_pids


def test_run_does_not_restart_an_agent_whose_port_is_taken(tmp_path: Path) -> None:
    """``zeek-mgmt run`` whose agent cannot bind its port reports it, does not restart
    the agent, stops the controller and exits 78."""
    with site(tmp_path) as s, port_taken(s.agent_port):
        run = s.start("run")
        assert run.proc.wait(TIMEOUT) == EXIT_FATAL
        log = run.log()
        assert log.count(f"zeek-mgmt agent: error: cannot listen on 127.0.0.1:{s.agent_port}") == 1
        assert log.count("started agent") == 1
        assert "agent failed with a start-up error that a restart cannot fix" in log


def test_run_does_not_restart_a_controller_with_a_corrupt_state_file(tmp_path: Path) -> None:
    """A corrupt controller.toml makes ``zeek-mgmt run`` exit 78 after one attempt; the
    file is left as it was."""
    with site(tmp_path) as s:
        state = s.node_dir(CONTROLLER_NAME) / "controller.toml"
        state.parent.mkdir(parents=True)
        state.write_bytes(b"\x00 not toml")
        run = s.start("run")
        assert run.proc.wait(TIMEOUT) == EXIT_FATAL
        log = run.log()
        assert log.count("started controller") == 1 and "corrupt state file" in log
        assert state.read_bytes() == b"\x00 not toml"
