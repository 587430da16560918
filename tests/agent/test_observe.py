"""The agent's observation payloads: node info and diag from the supervisor's snapshot and
the crash directories on disk (which outlive an agent restart)."""

from __future__ import annotations

import time
from pathlib import Path

from mgmt.agent import observe
from mgmt.supervisor import crashdirs
from mgmt.supervisor.node import NodeInfo
from mgmt.supervisor.policy import ExitStatus, NodeSpec, ProcessState


def info(node_dir: Path, **changes: object) -> NodeInfo:
    spec = NodeSpec(name="w1", argv=("zeek", "-i", "eth0"), env={}, cwd=str(node_dir))  # type: ignore[arg-type]
    fields: dict[str, object] = {
        "name": "w1",
        "state": ProcessState.RUNNING,
        "pid": 77,
        "exit_status": None,
        "exit_time": None,
        "restarts": 0,
        "started_at": 1000.0,
        "reason": None,
        "adopted": True,
        "spec": spec,
        **changes,
    }
    return NodeInfo(**fields)  # type: ignore[arg-type]


def test_last_exit_survives_an_agent_restart(tmp_path: Path) -> None:
    """Without a crash seen by this supervisor, last_exit is the newest crash directory's;
    diag adds that directory's evidence and the current output's end, marked when cut."""
    node_dir = tmp_path / "w1"
    node_dir.mkdir()
    (node_dir / "stderr").write_text("x" * 10 + "fatal: out of memory\n")
    spec = info(node_dir).spec
    crash = crashdirs.LastCrash(ExitStatus(signal=6), 900.0, 5, 800.0, 2, spec)
    snap = crashdirs.take_snapshot(crash, gave_up=False)
    crashdirs.write_crash_dir(snap)
    (node_dir / "stderr").write_text("listening on eth0\n")
    payload = observe.node_info(info(node_dir), now=1060.0)
    assert payload == {
        "state": "RUNNING",
        "pid": 77,
        "restarts": 0,
        "started": 1000.0,
        "now": 1060.0,
        "last_exit": {
            "code": None,
            "signal": 6,
            "signal_name": "SIGABRT",
            "text": "killed by SIGABRT",
            "time": 900.0,
        },
        "crashes": 1,
    }
    report = observe.diag(info(node_dir), now=1060.0, tail=12)
    assert report["crash"]["stderr"] == "...t of memory\n"
    assert report["crash"]["info"]["restarts"] == 2
    assert report["stderr"] == "...ing on eth0\n"
    assert report["dir"] == str(node_dir)
    assert observe.interface(info(node_dir)) == "eth0"


def test_stopped_node_has_no_uptime_and_no_crash(tmp_path: Path) -> None:
    """A STOPPED node: no start time, no last exit, no crash directory."""
    payload = observe.node_info(
        info(tmp_path, state=ProcessState.STOPPED, pid=None), now=time.time()
    )
    assert (payload["state"], payload["started"], payload["last_exit"], payload["crashes"]) == (
        "STOPPED",
        None,
        None,
        0,
    )
