"""End to end: the real ``zeek-client`` against ``zeek-mgmt run`` with the zeek double.

Each test gets its own installation (tests.support.sites.Site: free ports, state dir, the
double first on PATH) and fails if any process is left behind after a clean stop.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from mgmt.agent.layout import BACKEND_SCRIPT, NODE_SCRIPT
from tests.support.reference import LOCAL_AGENT
from tests.support.sites import (
    CONTROLLER_NAME,
    MARKER,
    QUICKSTART_CFG,
    Site,
    comm,
    deploy,
    node_rows,
    one_process_per_node,
    pids,
    proc_name,
    site,
)
from tests.support.waiting import MS, TIMEOUT, wait_until

NODES = ["logger", "manager", "worker-01", "worker-02"]
CPUS = sorted(os.sched_getaffinity(0))
#: The Quickstart cluster plus an env var for the manager and CPU pinning for a worker.
CFG = (
    QUICKSTART_CFG.replace("role = manager\n", "role = manager\nenv = MY_VAR=hello OTHER=2\n")
    + f"cpu_affinity = {CPUS[-1]}\n"
)


def start_run(s: Site, *args: str) -> None:
    """Start ``zeek-mgmt run`` and wait until get-instances lists the agent."""
    s.start("run", *args)
    s.wait_agents(LOCAL_AGENT)


@pytest.fixture(scope="module")
def shared_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """One ``zeek-mgmt run`` with the Quickstart cluster (plus env and pinning) deployed,
    shared by the tests of this module that leave it running (they restart and kill
    processes, but each waits for all nodes RUNNING first). Stopping it at the end must
    leave no process behind."""
    with site(tmp_path_factory.mktemp("run")) as s:
        start_run(s)
        out = deploy(s, CFG)
        assert out["errors"] == []
        yield s


@pytest.fixture
def run_site(shared_run: Site) -> Site:
    """The shared ``zeek-mgmt run``, once all its nodes are RUNNING."""
    shared_run.wait_states(LOCAL_AGENT, dict.fromkeys(NODES, "RUNNING"))
    return shared_run


def run_children(s: Site) -> dict[str, psutil.Process]:
    """The ``zeek-mgmt run`` process and its children, by kernel name."""
    (run,) = [d for d in s.daemons if d.role == "run"]
    parent = psutil.Process(run.pid)
    found = {}
    for proc in [parent, *parent.children()]:
        try:
            found[comm(proc.pid)] = proc
        except (FileNotFoundError, ProcessLookupError):  # a child that just exited (killed)
            continue
    return found


def test_quickstart_deploy_runs_four_nodes(run_site: Site) -> None:
    """deploy-config of the Quickstart: 4 nodes RUNNING with real pids, ports, dirs, argv."""
    s = run_site
    rows = s.nodes_of(LOCAL_AGENT)
    nodes = node_rows(rows)
    assert sorted(nodes) == NODES
    assert {n: r["state"] for n, r in nodes.items()} == dict.fromkeys(NODES, "RUNNING")
    # Ports as auto-assigned by the controller (behaviour §4.5.2-4.5.3).
    assert (nodes["manager"]["port"], nodes["manager"]["metrics_port"]) == (2200, 9000)
    assert (nodes["logger"]["port"], nodes["logger"]["metrics_port"]) == (2201, 9001)
    assert "port" not in nodes["worker-01"] and "port" not in nodes["worker-02"]
    assert {nodes["worker-01"]["metrics_port"], nodes["worker-02"]["metrics_port"]} == {9002, 9003}
    assert {n: r["cluster_role"] for n, r in nodes.items()} == {
        "logger": "LOGGER",
        "manager": "MANAGER",
        "worker-01": "WORKER",
        "worker-02": "WORKER",
    }

    agent_proc = run_children(s)[proc_name(f"zeek.{LOCAL_AGENT}")]
    assert rows[LOCAL_AGENT]["mgmt_role"] == "AGENT"
    assert rows[LOCAL_AGENT]["pid"] == agent_proc.pid
    for name, row in nodes.items():
        proc = psutil.Process(row["pid"])
        assert proc.name() == proc_name(f"zeek.{name}")
        assert proc.cwd() == str(s.node_dir(name))
        assert proc.ppid() == agent_proc.pid
        node_dir = s.node_dir(name)
        assert (node_dir / ".status").read_text().startswith("RUNNING")
        assert (node_dir / "stdout").is_file() and (node_dir / "stderr").is_file()
    assert psutil.Process(nodes["worker-02"]["pid"]).cpu_affinity() == [CPUS[-1]]
    assert one_process_per_node(s, NODES) == pids(rows)

    layout_dir = s.node_dir(LOCAL_AGENT) / "layout"
    layout = (layout_dir / "cluster-layout.zeek").read_text()
    assert "redef Cluster::manager_is_logger = F;" in layout
    assert (
        '["manager"] = [$node_type=Cluster::MANAGER, $ip=127.0.0.1, $p=2200/tcp, '
        "$metrics_port=9000/tcp]"
    ) in layout
    assert (
        '["logger"] = [$node_type=Cluster::LOGGER, $ip=127.0.0.1, $p=2201/tcp, '
        '$manager="manager", $metrics_port=9001/tcp]'
    ) in layout
    assert (layout_dir / f"{NODE_SCRIPT}.zeek").is_file()

    for name in NODES:
        rec = s.record(name)
        assert rec["pid"] == nodes[name]["pid"] and rec["phase"] == "running"
        assert rec["cluster_node"] == name and rec["env"]["CLUSTER_NODE"] == name
        assert rec["zeekpath"].split(":")[0] == str(layout_dir)
        assert rec["layout"]["file"] == str(layout_dir / "cluster-layout.zeek")
        assert sorted(rec["layout"]["nodes"]) == NODES
        assert os.path.basename(rec["executable"]) == f"zeek.{name}"
        iface = ["-i", "lo"] if name.startswith("worker") else []
        assert rec["argv"][1:] == [*iface, "-U", ".status", BACKEND_SCRIPT, NODE_SCRIPT]
    manager_env = s.record("manager")["env"]
    assert (manager_env["MY_VAR"], manager_env["OTHER"]) == ("hello", "2")
    # Zeek's management scripts to_port() it: nodes see a bare number in Zeek's form.
    assert manager_env["ZEEK_CONTROLLER_PORT"] == f"{s.controller_port}/tcp"
    assert "MY_VAR" not in s.record("logger")["env"]


def test_process_names(run_site: Site) -> None:
    """ps c shows zeek, zeek.<controller>, zeek.<agent> and zeek.<node> (Zeek's tree)."""
    s = run_site
    rows = s.nodes_of(LOCAL_AGENT)
    names = run_children(s)
    controller = proc_name(f"zeek.{CONTROLLER_NAME}")
    assert sorted(names) == sorted(["zeek", controller, proc_name(f"zeek.{LOCAL_AGENT}")])
    for name, proc in names.items():
        assert comm(proc.pid) == name
    for node, pid in pids(rows).items():
        assert pid is not None and comm(pid) == proc_name(f"zeek.{node}")


def test_command_lines_begin_with_zeek_names(run_site: Site) -> None:
    """/proc/<pid>/cmdline (ps, pgrep -f, psutil) starts with zeek, zeek.<controller>,
    zeek.<agent>, then the real invocation, as an argv; the environment stays readable."""
    s = run_site
    expected = {"zeek": ["zeek", "zeek-mgmt", "run"]} | {
        proc_name(f"zeek.{name}"): [f"zeek.{name}", "zeek-mgmt", role]
        for name, role in ((CONTROLLER_NAME, "controller"), (LOCAL_AGENT, "agent"))
    }
    procs = run_children(s)
    assert sorted(procs) == sorted(expected)
    for name, proc in procs.items():
        raw = Path(f"/proc/{proc.pid}/cmdline").read_bytes()
        assert raw.rstrip(b"\0").split(b"\0") == [w.encode() for w in expected[name]]
        assert [arg for arg in proc.cmdline() if arg] == expected[name]
        assert proc.name() == expected[name][0]  # psutil: the full name, not comm's 15 bytes
        assert comm(proc.pid) == name  # setproctitle must not rename the process
        assert proc.environ()[MARKER] == s.marker
    pgrep = subprocess.run(
        ["pgrep", "-f", r"^zeek(\.\S+)? zeek-mgmt "], capture_output=True, text=True, check=False
    )
    assert {p.pid for p in procs.values()} <= {int(pid) for pid in pgrep.stdout.split()}


def test_forked_daemons_hold_none_of_runs_pipes(run_site: Site) -> None:
    """The controller and the agent are forked from run but keep none of its private
    descriptors (its signal self-pipe): each sets up its own signal handling and loop."""

    def pipes(pid: int) -> set[str]:
        fds = Path(f"/proc/{pid}/fd")
        found = set()
        for fd in fds.iterdir():
            with contextlib.suppress(OSError):
                if (target := os.readlink(fd)).startswith("pipe:"):
                    found.add(target)
        return found

    procs = run_children(run_site)
    run = procs.pop("zeek")
    assert pipes(run.pid)  # its self-pipe (both ends: one inode)
    for proc in procs.values():
        assert not pipes(proc.pid) & pipes(run.pid)


def test_long_names_and_flags_still_fit_the_titles(tmp_path: Path) -> None:
    """Forked children share run's command line; run makes room for their whole titles,
    however long their names and flags (and its own title stays zeek zeek-mgmt run ...)."""
    controller, agent = "controller-" + "c" * 120, "agent-" + "a" * 50
    with site(tmp_path, ZEEK_CONTROLLER_NAME=controller, ZEEK_AGENT_NAME=agent) as s:
        s.start("run", "--log-level", "info")
        s.wait_agents(agent)
        titles = sorted(
            Path(f"/proc/{p.pid}/cmdline").read_bytes().rstrip(b"\0").split(b"\0")
            for p in run_children(s).values()
        )
        flags = [b"--log-level", b"info"]
        assert titles == sorted(
            [
                [f"zeek.{agent}".encode(), b"zeek-mgmt", b"agent", *flags],
                [f"zeek.{controller}".encode(), b"zeek-mgmt", b"controller", *flags],
                [b"zeek", b"zeek-mgmt", b"run", *flags],
            ]
        )


@pytest.mark.slow
def test_clean_stop_leaves_nothing(tmp_path: Path) -> None:
    """SIGTERM to zeek-mgmt run stops agent, nodes and controller; exit status 0."""
    with site(tmp_path) as s:
        start_run(s)
        deploy(s, QUICKSTART_CFG)
        s.wait_states(LOCAL_AGENT, dict.fromkeys(NODES, "RUNNING"))
        (run,) = s.daemons
        assert run.stop() == 0
        assert s.site_processes() == []
        # The nodes were stopped by SIGTERM (the double records how it ended).
        for node in NODES:
            rec = s.record(node)
            assert rec["exit_reason"] == "signal" and "SIGTERM" in str(rec["signals"])


def test_run_killed_hard_takes_its_daemons_along(tmp_path: Path) -> None:
    """kill -9 of zeek-mgmt run: controller and agent get SIGTERM from the kernel and stop
    (the agent stopping its nodes), as Zeek's stem ends with its supervisor."""
    with site(tmp_path) as s:
        start_run(s)
        deploy(s, QUICKSTART_CFG)
        s.wait_states(LOCAL_AGENT, dict.fromkeys(NODES, "RUNNING"))
        (run,) = s.daemons
        children = run_children(s)
        os.kill(run.pid, signal.SIGKILL)
        run.proc.wait()
        # Shutdown writes state files with fsync, which a busy disk can make slow.
        wait_until(lambda: not s.site_processes(), timeout=90_000 * MS, what="every process to end")

        def ended(proc: psutil.Process) -> bool:
            # A process leaves site_processes() when its memory is gone (its environ reads
            # empty), a few milliseconds before it turns zombie: wait for that too.
            with contextlib.suppress(psutil.NoSuchProcess):
                return not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE
            return True

        wait_until(lambda: all(map(ended, children.values())), timeout=TIMEOUT, what="zombies")


def test_bad_interface_fails_deploy_with_stderr(tmp_path: Path) -> None:
    """A worker with a bad interface: success false + its stderr, exit 1, never RUNNING."""
    with site(tmp_path) as s:
        start_run(s, "--set", "agent.request_timeout=2")
        cfg = QUICKSTART_CFG.replace(
            "[worker-02]\nrole = worker\ninterface = lo",
            "[worker-02]\nrole = worker\ninterface = not-a-valid-interface",
        )
        out = deploy(s, cfg, expect_rc=1)
        assert out["errors"] == ["request timed out"]
        results = out["results"]["nodes"]
        assert {n: r["success"] for n, r in results.items()} == {
            "logger": True,
            "manager": True,
            "worker-01": True,
            "worker-02": False,
        }
        assert results["worker-02"]["instance"] == LOCAL_AGENT
        assert (
            "fatal error: problem with interface not-a-valid-interface "
            "(pcap_error: No such device exists (pcap_activate))"
        ) in results["worker-02"]["stderr"]
        seen = set()
        for _ in range(4):
            state = s.nodes_of(LOCAL_AGENT)["worker-02"]["state"]
            assert state != "RUNNING"
            seen.add(state)
        s.wait_states(LOCAL_AGENT, {"worker-02": "CRASHED"})
        assert seen <= {"CRASHED", "PENDING", "FAILED"}
        assert len(s.launches("worker-02")) >= 2  # revived, and failing again


def test_restart_manager_then_all(run_site: Site) -> None:
    """restart manager changes only the manager's pid; restart changes every pid."""
    s = run_site
    before = pids(s.nodes_of(LOCAL_AGENT))
    res = s.client("restart", "manager", check=True).json()
    assert res == {"errors": [], "results": {"manager": True}}
    rows = s.wait_states(LOCAL_AGENT, dict.fromkeys(NODES, "RUNNING"))
    after = pids(rows)
    assert after["manager"] != before["manager"]
    assert not psutil.pid_exists(before["manager"]) or (
        psutil.Process(before["manager"]).status() == psutil.STATUS_ZOMBIE
    )
    assert {n: p for n, p in after.items() if n != "manager"} == {
        n: p for n, p in before.items() if n != "manager"
    }
    assert one_process_per_node(s, NODES) == after

    res = s.client("restart", check=True).json()
    assert res == {"errors": [], "results": dict.fromkeys(NODES, True)}
    rows = s.wait_states(LOCAL_AGENT, dict.fromkeys(NODES, "RUNNING"))
    final = pids(rows)
    assert all(final[n] != after[n] for n in NODES)
    assert one_process_per_node(s, NODES) == final


def test_killed_node_is_revived(run_site: Site) -> None:
    """A node killed with SIGKILL comes back as a new process; the others are untouched."""
    s = run_site
    before = pids(s.nodes_of(LOCAL_AGENT))
    launches = len(s.launches("worker-01"))
    assert before["worker-01"] is not None
    os.kill(before["worker-01"], signal.SIGKILL)

    def revived() -> dict[str, int] | None:
        now = pids(s.nodes_of(LOCAL_AGENT))
        return now if now["worker-01"] not in (None, before["worker-01"]) else None

    after = wait_until(revived, what="worker-01 revived")
    s.wait_states(LOCAL_AGENT, {"worker-01": "RUNNING"})
    assert {n: p for n, p in after.items() if n != "worker-01"} == {
        n: p for n, p in before.items() if n != "worker-01"
    }
    assert len(s.launches("worker-01")) == launches + 1
    assert one_process_per_node(s, NODES)["worker-01"] == after["worker-01"]


def test_crashing_node_shows_crashed_and_backs_off(tmp_path: Path) -> None:
    """A node that keeps crashing is CRASHED between revivals, at least 1 s after each spawn."""
    with site(tmp_path) as s:
        start_run(s, "--set", "agent.request_timeout=1")
        cfg = "[manager]\nrole = manager\nenv = ZEEK_DOUBLE_CRASH_AFTER=0.5\n"
        deploy(s, cfg, expect_rc=0)  # it reaches RUNNING before it crashes
        rows = s.wait_states(LOCAL_AGENT, {"manager": "CRASHED"})
        assert "pid" not in rows["manager"]  # no process while CRASHED (Zeek shows the old)
        first = s.launches("manager")[0]["pid"]
        wait_until(lambda: len(s.launches("manager")) >= 3, what="3 launches")
        starts = [rec["started_at"] for rec in s.launches("manager")]
        gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
        assert all(gap >= 0.8 for gap in gaps), gaps
        rows = s.wait_states(LOCAL_AGENT, {"manager": ("PENDING", "RUNNING")})
        assert rows["manager"]["pid"] != first
        err = (s.node_dir("manager") / "stderr").read_text()
        assert "simulated crash" in err or err == ""  # truncated at each start


@pytest.mark.slow
def test_crash_backoff_doubles_every_three_attempts(tmp_path: Path) -> None:
    """Revivals follow Zeek's back-off: 1 s, 1 s, 1 s, then 2 s (behaviour §6.4)."""
    with site(tmp_path) as s:
        start_run(s, "--set", "agent.request_timeout=1")
        deploy(s, "[manager]\nrole = manager\nenv = ZEEK_DOUBLE_CRASH_AFTER=0.5\n")
        wait_until(lambda: len(s.launches("manager")) >= 5, timeout=30_000 * MS, what="5 launches")
        starts = [rec["started_at"] for rec in s.launches("manager")]
        gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
        # Measured where the double starts, so each gap has some start-up jitter.
        assert all(0.8 <= g < 1.5 for g in gaps[:3]), gaps
        assert gaps[3] >= 1.6, gaps


def test_killed_controller_comes_back_alone(run_site: Site) -> None:
    """kill -9 of the controller: it is restarted; agent, nodes and deployed config stay."""
    s = run_site
    rows = s.nodes_of(LOCAL_AGENT)
    node_pids = pids(rows)
    deployed = s.client("get-config", "--deployed", "--as-json", check=True).json()
    children = run_children(s)
    controller = next(p for n, p in children.items() if n.startswith("zeek.controller"))
    agent = children[proc_name(f"zeek.{LOCAL_AGENT}")]
    controller.kill()

    def new_controller() -> psutil.Process | None:
        for name, proc in run_children(s).items():
            if name.startswith("zeek.controller") and proc.pid != controller.pid:
                return proc
        return None

    replacement = wait_until(new_controller, what="controller restarted")
    s.wait_agents(LOCAL_AGENT)
    rows = s.wait_states(LOCAL_AGENT, dict.fromkeys(NODES, "RUNNING"))
    assert pids(rows) == node_pids
    assert rows[LOCAL_AGENT]["pid"] == agent.pid and agent.is_running()
    assert rows[CONTROLLER_NAME]["pid"] == replacement.pid
    assert s.client("get-config", "--deployed", "--as-json", check=True).json() == deployed
    assert one_process_per_node(s, NODES) == node_pids


def test_killed_agent_comes_back_and_adopts(run_site: Site) -> None:
    """kill -9 of the agent: it is restarted and adopts the nodes (same pids, no doubles)."""
    s = run_site
    node_pids = pids(s.nodes_of(LOCAL_AGENT))
    launches = {n: len(s.launches(n)) for n in NODES}
    children = run_children(s)
    agent = children[proc_name(f"zeek.{LOCAL_AGENT}")]
    controller = next(p for n, p in children.items() if n.startswith("zeek.controller"))
    agent.kill()
    agent.wait(TIMEOUT)
    assert all(p is not None and psutil.pid_exists(p) for p in node_pids.values())

    def new_agent() -> psutil.Process | None:
        proc = run_children(s).get(proc_name(f"zeek.{LOCAL_AGENT}"))
        return proc if proc is not None and proc.pid != agent.pid else None

    replacement = wait_until(new_agent, what="agent restarted")

    def adopted() -> dict[str, dict[str, object]] | None:
        rows = s.nodes_of(LOCAL_AGENT)
        return rows if rows.get(LOCAL_AGENT, {}).get("pid") == replacement.pid else None

    rows = wait_until(adopted, what="new agent answering")
    rows = s.wait_states(LOCAL_AGENT, dict.fromkeys(NODES, "RUNNING"))
    assert pids(rows) == node_pids
    assert one_process_per_node(s, NODES) == node_pids
    assert {n: len(s.launches(n)) for n in NODES} == launches  # nothing was restarted
    assert controller.is_running()


def test_node_output_is_line_buffered(tmp_path: Path) -> None:
    """A node that prints and then blocks in zeek_init shows the line in its stdout file
    at once (line-buffered, as under Zeek's Supervisor), while it still runs."""
    with site(tmp_path) as s:
        start_run(s, "--set", "agent.request_timeout=1", "--set", "agent.stop_grace=1")
        out = deploy(s, "[manager]\nrole = manager\nenv = ZEEK_DOUBLE_BLOCK_IN_INIT=probe-line\n",
                     expect_rc=1)  # fmt: skip
        assert out["errors"] == ["request timed out"]
        stdout = s.node_dir("manager") / "stdout"
        wait_until(lambda: stdout.read_text() == "probe-line\n", what="the line in stdout")
        rows = s.nodes_of(LOCAL_AGENT)
        assert rows["manager"]["state"] == "PENDING"
        assert psutil.Process(rows["manager"]["pid"]).is_running()
