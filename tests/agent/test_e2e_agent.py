"""End to end: the real ``zeek-client`` against separate controller and agent processes
(``python -m mgmt controller`` / ``agent``) with the zeek double on PATH.

Each test gets its own installation (tests.support.sites.Site) and fails if a process is
left behind.
"""

from __future__ import annotations

import os
import shlex
import signal
from pathlib import Path

import psutil

from mgmt.daemon.exitstatus import EXIT_FATAL
from tests.support.reference import LOCAL_AGENT
from tests.support.sites import (
    QUICKSTART_CFG,
    TIMEOUT,
    Site,
    deploy,
    node_rows,
    one_process_per_node,
    pids,
    site,
)
from tests.support.waiting import wait_until

NODES = ["logger", "manager", "worker-01", "worker-02"]


def start_pair(s: Site, *agent_args: str) -> None:
    """Start a controller and an agent, and wait until the agent is listed."""
    s.start("controller")
    s.start("agent", *agent_args)
    s.wait_agents(LOCAL_AGENT)


def agent_daemon(s: Site, index: int = -1):  # type: ignore[no-untyped-def]
    return [d for d in s.daemons if d.role.startswith("agent")][index]


def test_kill9_agent_nodes_survive_and_new_agent_adopts(tmp_path: Path) -> None:
    """kill -9 the agent: nodes live on; a new agent adopts them (same pids, no doubles);
    its clean stop then stops them all."""
    with site(tmp_path) as s:
        start_pair(s)
        deploy(s, QUICKSTART_CFG)
        rows = s.wait_states(LOCAL_AGENT, dict.fromkeys(NODES, "RUNNING"))
        node_pids = pids(rows)
        assert one_process_per_node(s, NODES) == node_pids

        old = agent_daemon(s)
        old.kill()
        for pid in node_pids.values():
            assert pid is not None
            proc = psutil.Process(pid)
            assert proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE

        s.start("agent")
        new = agent_daemon(s)
        rows = wait_until(
            lambda: (r := s.nodes_of(LOCAL_AGENT)).get(LOCAL_AGENT, {}).get("pid") == new.pid and r,
            what="new agent answering",
        )
        rows = s.wait_states(LOCAL_AGENT, dict.fromkeys(NODES, "RUNNING"))
        assert pids(rows) == node_pids
        assert one_process_per_node(s, NODES) == node_pids
        assert all(len(s.launches(n)) == 1 for n in NODES)
        assert "adopted" in new.log()

        # The controller's redeploy of the same configuration restarted nothing, and a
        # restart through the new agent works on adopted processes.
        res = s.client("restart", "worker-01", check=True).json()
        assert res == {"errors": [], "results": {"worker-01": True}}
        rows = s.wait_states(LOCAL_AGENT, dict.fromkeys(NODES, "RUNNING"))
        assert pids(rows)["worker-01"] != node_pids["worker-01"]

        assert new.stop() == 0
        names = {p.name() for p in s.site_processes()}
        assert names.isdisjoint(f"zeek.{n}" for n in NODES), names
        for node in NODES:
            assert s.record(node)["exit_reason"] == "signal"


def test_two_agents_on_one_host_serve_one_config(tmp_path: Path) -> None:
    """Two agents with their own names, ports and state dirs run one configuration."""
    with site(tmp_path) as s:
        s.start("controller")
        dirs = s.start_agents("agent-a", "agent-b")
        cfg = (
            "[instances]\nagent-a\nagent-b\n\n"
            "[manager]\ninstance = agent-a\nrole = manager\n\n"
            "[worker-a]\ninstance = agent-a\nrole = worker\ninterface = lo\n\n"
            "[logger]\ninstance = agent-b\nrole = logger\n\n"
            "[worker-b]\ninstance = agent-b\nrole = worker\ninterface = lo\n"
        )
        out = deploy(s, cfg)
        assert out["errors"] == []
        assert {n: (r["instance"], r["success"]) for n, r in out["results"]["nodes"].items()} == {
            "manager": ("agent-a", True),
            "worker-a": ("agent-a", True),
            "logger": ("agent-b", True),
            "worker-b": ("agent-b", True),
        }
        want = {"agent-a": ["manager", "worker-a"], "agent-b": ["logger", "worker-b"]}
        rows = {}
        for agent, nodes in want.items():
            rows[agent] = s.wait_states(agent, dict.fromkeys(nodes, "RUNNING"))
            assert sorted(node_rows(rows[agent])) == nodes
        for agent, nodes in want.items():
            agent_pid = rows[agent][agent]["pid"]
            layout = dirs[agent] / "nodes" / agent / "layout" / "cluster-layout.zeek"
            text = layout.read_text()
            assert all(f'["{n}"]' in text for n in ("manager", "worker-a", "logger", "worker-b"))
            for node in nodes:
                proc = psutil.Process(rows[agent][node]["pid"])
                assert proc.ppid() == agent_pid
                assert proc.cwd() == str(dirs[agent] / "nodes" / node)
                rec = s.record(node)
                assert rec["zeekpath"].split(":")[0] == str(layout.parent)
                assert sorted(rec["layout"]["nodes"]) == [
                    "logger",
                    "manager",
                    "worker-a",
                    "worker-b",
                ]
        one_process_per_node(s, ["manager", "worker-a", "logger", "worker-b"])


def test_shell_metacharacters_are_passed_literally(tmp_path: Path) -> None:
    """env values and script names with shell syntax reach zeek as literal strings."""
    with site(tmp_path) as s:
        start_pair(s)
        canary = "pwned"  # relative: would appear in a node's or the agent's cwd
        script = tmp_path / "cfg" / f"odd;$(touch {canary})&`touch {canary}`|x.zeek"
        script.parent.mkdir(exist_ok=True)
        script.write_text("# harmless\n")
        values = {
            "SUB": f"$(touch {canary})",
            "SEMI": f"a;touch {canary};b",
            "TICKS": f"`touch {canary}`",
            "GLOB": "* ? [a-z] ~ > out < in | && ||",
            "QUOTE": 'it\'s "quoted" \\ back',
        }
        env_line = " ".join(f"{k}={shlex.quote(v)}" for k, v in values.items())
        cfg = f"[manager]\nrole = manager\nenv = {env_line}\nscripts = {shlex.quote(str(script))}\n"
        deploy(s, cfg)
        s.wait_states(LOCAL_AGENT, {"manager": "RUNNING"})
        rec = s.record("manager")
        assert {k: rec["env"][k] for k in values} == values
        assert str(script) in rec["argv"]
        assert rec["argv"].index("policy/frameworks/cluster/backend/broker") < rec["argv"].index(
            str(script)
        )
        assert any(r["path"] == str(script) for r in rec["scripts"])
        assert list(tmp_path.rglob(canary)) == []
        assert not (s.node_dir("manager") / "out").exists()


def test_unusable_node_directory_is_a_per_node_error(tmp_path: Path) -> None:
    """A node whose directory cannot be created: success false with the reason, at once;
    FAILED in get-nodes; the other nodes run and the agent lives on."""
    with site(tmp_path) as s:
        start_pair(s)
        blocker = s.node_dir("worker-02")
        blocker.parent.mkdir(parents=True, exist_ok=True)
        blocker.write_text("a regular file where the node directory should be\n")
        out = deploy(s, QUICKSTART_CFG, expect_rc=1)
        assert out["errors"] == []  # answered before the agent's timeout
        nodes = out["results"]["nodes"]
        assert [n for n, r in nodes.items() if not r["success"]] == ["worker-02"]
        err = nodes["worker-02"]["stderr"]
        assert "cannot create directory" in err and str(blocker) in err
        rows = s.wait_states(
            LOCAL_AGENT, {"worker-02": "FAILED", "manager": "RUNNING", "worker-01": "RUNNING"}
        )
        assert "pid" not in rows["worker-02"]
        assert agent_daemon(s).alive()
        assert "Traceback" not in s.daemon_logs()


def test_unwritable_spool_is_a_per_node_error(tmp_path: Path) -> None:
    """A spool dir under a regular file: every node fails with a clear reason, no hang."""
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    with site(tmp_path, ZEEK_MANAGEMENT_SPOOL_DIR=str(blocker / "spool")) as s:
        start_pair(s)
        out = deploy(s, QUICKSTART_CFG, expect_rc=1)
        assert out["errors"] == []
        nodes = out["results"]["nodes"]
        assert sorted(nodes) == NODES
        for result in nodes.values():
            assert result["success"] is False
            assert "cannot prepare node" in result["stderr"]
            assert "Not a directory" in result["stderr"]
        rows = s.nodes_of(LOCAL_AGENT)
        assert {n: r["state"] for n, r in node_rows(rows).items()} == dict.fromkeys(NODES, "FAILED")
        assert agent_daemon(s).alive()


def test_agent_state_dir_under_a_file_exits_with_clear_error(tmp_path: Path) -> None:
    """An agent whose state dir cannot exist says so and exits fatally, 78 (no traceback)."""
    blocker = tmp_path / "file"
    blocker.write_text("")
    with site(tmp_path, ZEEK_MANAGEMENT_STATE_DIR=str(blocker / "state")) as s:
        agent = s.start("agent")
        assert agent.proc.wait(TIMEOUT) == EXIT_FATAL
        text = agent.log()
        assert "zeek-mgmt agent: error:" in text
        assert str(blocker / "state") in text and "Not a directory" in text
        assert "Traceback" not in text


def test_zeek_by_name_gets_zeeks_default_script_path(tmp_path: Path) -> None:
    """`zeek = "zeek"` (a bare name): nodes still find Zeek's own scripts, because the
    agent puts Zeek's default path (from the install prefix of the zeek found on PATH)
    after the layout directory on ZEEKPATH."""
    with site(tmp_path) as s:
        s.start("controller")
        s.start("agent", "--zeek", "zeek", env={"ZEEK_DOUBLE_STRICT_ZEEKPATH": "1"})
        s.wait_agents(LOCAL_AGENT)
        out = deploy(s, QUICKSTART_CFG)
        assert out["errors"] == [], out
        rows = s.wait_states(LOCAL_AGENT, dict.fromkeys(NODES, "RUNNING"))
        assert sorted(node_rows(rows)) == NODES


def test_sigusr1_dumps_stacks_and_the_daemon_lives_on(tmp_path: Path) -> None:
    """kill -USR1 on a daemon prints its threads' stacks to its log; it keeps serving."""
    with site(tmp_path) as s:
        start_pair(s)
        agent = agent_daemon(s)
        os.kill(agent.pid, signal.SIGUSR1)
        wait_until(lambda: "Current thread" in agent.log(), what="a stack dump")
        assert agent.alive()
        s.wait_agents(LOCAL_AGENT)
