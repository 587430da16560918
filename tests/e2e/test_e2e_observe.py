"""End to end with the zeek double (``zeek-mgmt run``): a killed node's crash shows in
status, diag and the notification hook; top and netstats answer for every node."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from client.extcommands import CLEAR_SCREEN
from tests.support.cli import Run, cli_env, ours, run_cmd_sync
from tests.support.programs import killed_at_exit
from tests.support.reference import LOCAL_AGENT
from tests.support.sites import TIMEOUT, Site, pids, site
from tests.support.waiting import wait_until

CLUSTER = "[manager]\nrole = manager\n\n[worker-01]\nrole = worker\ninterface = lo\n"
HOOK = """\
import json, os, sys
with open(sys.argv[1], "a") as f:
    f.write(json.dumps({k: v for k, v in os.environ.items() if k.startswith("ZEEK_MGMT_")}) + "\\n")
"""


def mgmt(s: Site, *args: str) -> Run:
    return run_cmd_sync(
        ours(*args, "--controller", f"127.0.0.1:{s.ws_port}"), env=s.client_env(), timeout=TIMEOUT
    )


def watch(s: Site, out: Path) -> None:
    """top --watch redraws in place (clear screen, title, table) until Ctrl-C: exit 0."""
    argv = ours("top", "--watch", "-d", "0.1", "--controller", f"127.0.0.1:{s.ws_port}")
    with open(out, "w") as f:
        proc = subprocess.Popen(argv, env=cli_env(s.client_env()), stdout=f, stderr=f)
    with killed_at_exit(proc):
        frames = wait_until(
            lambda: (n := out.read_text().count(CLEAR_SCREEN)) >= 2 and n, "two frames"
        )
        assert frames >= 2
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=TIMEOUT) == 0
    frame = out.read_text().split(CLEAR_SCREEN)[1]
    assert frame.startswith("zeek-mgmt top - ") and "\nINSTANCE  " in frame
    assert "Traceback" not in out.read_text()


def test_kill_shows_in_status_diag_hook_top_and_netstats(tmp_path: Path) -> None:
    """kill -9 of a worker: status RESTARTS 1 and its last exit, diag its evidence, the
    hook crashed then recovered; top (also --watch) and netstats list the nodes."""
    (tmp_path / "hook.py").write_text(HOOK)
    calls = tmp_path / "calls"
    settings = tmp_path / "settings.toml"
    settings.write_text(
        f"[agent]\nnotify_cmd = [{json.dumps(sys.executable)}, "
        f"{json.dumps(str(tmp_path / 'hook.py'))}, {json.dumps(str(calls))}]\n"
    )
    with site(tmp_path, ZEEK_MGMT_CONFIG=str(settings)) as s:
        s.start("run")
        s.wait_agents(LOCAL_AGENT)
        assert s.deploy_config(CLUSTER).code == 0
        s.wait_states(LOCAL_AGENT, {"manager": "RUNNING", "worker-01": "RUNNING"})
        victim = pids(s.nodes_of(LOCAL_AGENT))["worker-01"]
        assert victim is not None
        os.kill(victim, signal.SIGKILL)

        def heard() -> list[str] | None:
            lines = calls.read_text().splitlines() if calls.exists() else []
            kinds = [json.loads(line)["ZEEK_MGMT_EVENT"] for line in lines]
            return kinds if kinds[-1:] == ["recovered"] else None

        assert wait_until(heard, "the hook hears the recovery") == ["crashed", "recovered"]
        s.wait_states(LOCAL_AGENT, {"manager": "RUNNING", "worker-01": "RUNNING"})

        status = mgmt(s, "status")
        assert status.code == 0, status
        row = next(line for line in status.stdout.splitlines() if " worker-01 " in line)
        assert row.split()[7] == "1" and "killed by SIGKILL" in row
        diag = mgmt(s, "diag", "worker-01")
        assert diag.code == 0, diag
        assert "restarts:   1\nlast exit:  killed by SIGKILL" in diag.stdout
        assert f"(pid {victim}, restart 0)" in diag.stdout
        unknown = mgmt(s, "diag", "no-such-node")
        assert unknown.code == 1 and "unknown cluster node" in unknown.stderr

        top = mgmt(s, "top")
        assert top.code == 0, top
        roles = sorted(line.split()[2] for line in top.stdout.splitlines()[1:])
        assert roles == ["agent", "controller", "node", "node"]
        watch(s, tmp_path / "top.out")
        net = mgmt(s, "netstats")
        assert net.code == 0, net
        assert [line.split()[1:4] for line in net.stdout.splitlines()[1:]] == [
            ["worker-01", "lo", "0"]
        ]
