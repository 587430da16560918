"""Observation with real Zeek (issue 12): a worker killed with SIGKILL leaves a crash
directory, status counts the restart, diag shows the evidence, notify_cmd hears of it;
netstats counts loopback packets; top lists every process.

One cluster for the module (manager and two workers on ``lo``), killed once.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mgmt.supervisor import crashdirs
from tests.support.cli import STATUS_HEADER, Run, ours, run_cmd_sync
from tests.support.real_zeek import TIMEOUT, RealZeek, own_ports, real_site, real_zeek
from tests.support.reference import LOCAL_AGENT
from tests.support.sites import Site, pids
from tests.support.waiting import wait_until

pytestmark = pytest.mark.zeek

NODES = ["manager", "worker-01", "worker-02"]
CLUSTER = (
    "[manager]\nrole = manager\n\n"
    "[worker-01]\nrole = worker\ninterface = lo\n\n"
    "[worker-02]\nrole = worker\ninterface = lo\n"
)
#: The notification hook: appends its ZEEK_MGMT_* environment to a file, a JSON line.
HOOK = """\
import json, os, sys
with open(sys.argv[1], "a") as f:
    env = {k: v for k, v in os.environ.items() if k.startswith("ZEEK_MGMT_")}
    f.write(json.dumps(env) + "\\n")
"""


def mgmt(s: Site, *args: str) -> Run:
    """``zeek-mgmt <args>`` against the site's controller."""
    argv = ours(*args, "--controller", f"127.0.0.1:{s.ws_port}")
    return run_cmd_sync(argv, env=s.client_env(), timeout=TIMEOUT)


def hook_calls(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def observed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Site, Path]]:
    """The module's cluster, all RUNNING, with a notify_cmd hook; and the hook's file."""
    zeek: RealZeek = real_zeek()
    root = tmp_path_factory.mktemp("observe")
    (root / "hook.py").write_text(HOOK)
    calls = root / "hook-calls"
    agent = {"notify_cmd": [sys.executable, str(root / "hook.py"), str(calls)], "crash_keep": 3}
    with real_site(root, zeek, agent=agent, controller=own_ports()) as s:
        s.write_cfg(CLUSTER)
        res = s.client("deploy-config", "cluster.cfg", timeout=TIMEOUT)
        assert res.code == 0, f"{res}\n{s.daemon_logs()}"
        s.wait_states(LOCAL_AGENT, dict.fromkeys(NODES, "RUNNING"), timeout=TIMEOUT)
        yield s, calls


@pytest.fixture(scope="module")
def killed(observed: tuple[Site, Path]) -> dict[str, Any]:
    """worker-02 killed with SIGKILL once, revived and RUNNING again; its old pid and the
    restarts status showed before."""
    s, calls = observed
    before = status_rows(s)["worker-02"]
    victim = pids(s.nodes_of(LOCAL_AGENT))["worker-02"]
    assert victim is not None
    os.kill(victim, signal.SIGKILL)

    def recovered() -> list[dict[str, str]] | None:
        got = [c for c in hook_calls(calls) if c["ZEEK_MGMT_NODE"] == "worker-02"]
        return got if [c["ZEEK_MGMT_EVENT"] for c in got][-1:] == ["recovered"] else None

    hooks = wait_until(recovered, "the hook hears worker-02 recovered", timeout=TIMEOUT)
    s.wait_states(LOCAL_AGENT, dict.fromkeys(NODES, "RUNNING"), timeout=TIMEOUT)
    return {"pid": victim, "restarts_before": int(before[7]), "hooks": hooks}


def status_rows(s: Site) -> dict[str, list[str]]:
    """``zeek-mgmt status``'s rows by node, split in columns (LAST EXIT joined)."""
    res = mgmt(s, "status")
    assert res.code == 0, res
    lines = res.stdout.splitlines()
    assert lines[0].split() == STATUS_HEADER.split()
    rows = {}
    for line in lines[1:]:
        cells = line.split()
        rows[cells[1]] = [*cells[:9], " ".join(cells[9:])]
    return rows


def test_crash_directory_holds_the_evidence(
    observed: tuple[Site, Path], killed: dict[str, Any]
) -> None:
    """kill -9 of a worker: a crash directory with the signal, the run's output, its
    command line and environment."""
    s, _ = observed
    (crash,) = crashdirs.list_crash_dirs(s.node_dir("worker-02"))
    info = json.loads((crash.path / "crash.json").read_text())
    assert (info["pid"], info["exit"]["signal_name"]) == (killed["pid"], "SIGKILL")
    assert "listening on lo" in (crash.path / "stderr").read_text()
    assert "zeek" in (crash.path / "cmdline").read_text()
    assert "CLUSTER_NODE=worker-02\n" in (crash.path / "env").read_text()
    assert (crash.path / "status").read_text().startswith("RUNNING")


def test_status_shows_restarts_uptime_and_last_exit(
    observed: tuple[Site, Path], killed: dict[str, Any]
) -> None:
    """status: worker-02 restarted once more, with an uptime and 'killed by SIGKILL'."""
    s, _ = observed
    rows = status_rows(s)
    assert int(rows["worker-02"][7]) == killed["restarts_before"] + 1
    assert rows["worker-02"][8] != "-"
    assert rows["worker-02"][9].startswith("killed by SIGKILL ")
    assert rows["worker-01"][7:] == ["0", rows["worker-01"][8], "-"]


def test_diag_prints_the_evidence(observed: tuple[Site, Path], killed: dict[str, Any]) -> None:
    """diag worker-02: state, restarts, last exit, the crash's output and command line."""
    s, _ = observed
    res = mgmt(s, "diag", "worker-02")
    assert res.code == 0, res
    out = res.stdout
    assert out.startswith(f"[worker-02] on {LOCAL_AGENT}\nstate:      RUNNING (pid ")
    assert "last exit:  killed by SIGKILL " in out
    assert "  exit:     killed by SIGKILL at " in out and f"(pid {killed['pid']}," in out
    assert "==== stderr of the crashed run (end) ====\nlistening on lo" in out
    assert "CLUSTER_NODE=worker-02" in out


def test_notify_cmd_hears_the_crash_and_the_recovery(killed: dict[str, Any]) -> None:
    """notify_cmd ran for worker-02: crashed (signal, crash directory), then recovered."""
    crashed, recovered = killed["hooks"][-2:]
    assert crashed["ZEEK_MGMT_EVENT"] == "crashed"
    assert crashed["ZEEK_MGMT_INSTANCE"] == LOCAL_AGENT
    assert crashed["ZEEK_MGMT_EXIT"] == "killed by SIGKILL"
    assert crashed["ZEEK_MGMT_PID"] == str(killed["pid"])
    assert Path(crashed["ZEEK_MGMT_CRASH_DIR"]).is_dir()
    assert recovered["ZEEK_MGMT_EVENT"] == "recovered"


def test_netstats_counts_loopback_packets(observed: tuple[Site, Path]) -> None:
    """netstats: the workers on lo count the UDP packets sent over loopback."""
    s, _ = observed
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:

        def received() -> dict[str, list[str]] | None:
            for _ in range(20):
                sock.sendto(b"zeek-mgmt netstats", ("127.0.0.1", 9))
            res = mgmt(s, "netstats")
            assert res.code == 0, res
            rows = {line.split()[1]: line.split() for line in res.stdout.splitlines()[1:]}
            return rows if rows and int(rows["worker-01"][3]) > 0 else None

        rows = wait_until(received, "worker-01 counts packets", timeout=TIMEOUT, interval=0.5)
    assert sorted(rows) == ["worker-01", "worker-02"]  # the manager has no interface
    assert rows["worker-01"][2] == "lo"


def test_top_lists_every_process(observed: tuple[Site, Path]) -> None:
    """top: the controller, the agent and each node, with pid, RSS and threads."""
    s, _ = observed
    res = mgmt(s, "top")
    assert res.code == 0, res
    lines = res.stdout.splitlines()
    assert lines[0].split() == "INSTANCE NODE ROLE PID CPU% RSS THREADS STATE".split()
    rows = [line.split() for line in lines[1:]]
    assert sorted(r[2] for r in rows) == ["agent", "controller", "node", "node", "node"]
    nodes = {r[1]: r for r in rows if r[2] == "node"}
    assert sorted(nodes) == NODES
    current = pids(s.nodes_of(LOCAL_AGENT))
    assert all(int(nodes[n][3]) == current[n] and nodes[n][5] != "-" for n in NODES)
