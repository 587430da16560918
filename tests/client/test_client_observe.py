"""Rendering of status's extra columns, diag, top and netstats from their payloads."""

from __future__ import annotations

from client import observe
from client.extrender import StatusRow
from mgmt.broker.extevents import ExtensionResult
from mgmt.broker.records import State
from mgmt.core.logaction import Level, Log

NOW = 1767225600.0


def res(instance: str, node: str | None, payload: dict[str, object] | None) -> ExtensionResult:
    if payload is None:
        return ExtensionResult(instance, node, False, "request timed out", None)
    return ExtensionResult(instance, node, True, None, {"v": 1, **payload})


KILLED = {"code": None, "signal": 9, "signal_name": "SIGKILL", "text": "killed by SIGKILL"}


def test_status_rows_get_restarts_uptime_and_last_exit() -> None:
    """RESTARTS, UPTIME and LAST EXIT come from the agent's payload and clock."""
    rows = [
        StatusRow("a", "w1", "worker", State.RUNNING, 5),
        StatusRow("a", "a", "agent", State.RUNNING),
    ]
    info = {
        "state": "RUNNING",
        "pid": 5,
        "restarts": 1,
        "started": NOW - 125,
        "now": NOW,
        "last_exit": {**KILLED, "time": NOW - 190},
    }
    filled = observe.with_node_info(rows, [res("a", "w1", info)])
    assert filled[0].cells()[-3:] == ("1", "2m05s", "killed by SIGKILL 3 min ago")
    assert filled[1].cells()[-3:] == ("-", "-", "-")


def test_diag_report() -> None:
    """diag shows state, restarts, last exit, the newest crash's evidence and stderr."""
    crash = {
        "dir": "/s/nodes/w1/crash/2026-01-01T00-00-00.000Z",
        "info": {"pid": 4, "time": NOW - 60, "restarts": 0, "exit": KILLED, "core_hint": "hint"},
        "stdout": "out\n",
        "stderr": "fatal\n",
        "cmdline": "zeek -i lo\n",
        "env": "CLUSTER_NODE=w1\n",
        "status": "RUNNING [run_loop]\n",
        "core_files": [],
    }
    payload = {
        "state": "RUNNING",
        "pid": 5,
        "restarts": 1,
        "started": NOW - 59,
        "now": NOW,
        "last_exit": {**KILLED, "time": NOW - 60},
        "crashes": 1,
        "dir": "/s/nodes/w1",
        "crash": crash,
        "stderr": "",
    }
    out = observe.render_diag([res("a", "w1", payload), res("b", None, None)])
    assert out.exit_code == 1
    assert out.diagnostics == (Log(Level.ERROR, "b: request timed out"),)
    assert out.text is not None
    lines = out.text.splitlines()
    assert lines[:5] == [
        "[w1] on a",
        "state:      RUNNING (pid 5, up 59s)",
        "restarts:   1",
        "last exit:  killed by SIGKILL 1 min ago",
        "directory:  /s/nodes/w1",
    ]
    assert "  exit:     killed by SIGKILL at 2025-12-31 23:59:00 UTC (pid 4, restart 0)" in lines
    assert "  command:  zeek -i lo" in lines
    assert lines[lines.index("==== stderr of the crashed run (end) ====") + 1] == "fatal"
    assert lines[-2:] == ["==== current stderr (end) ====", "(empty)"]


def test_top_and_netstats_tables() -> None:
    """top: a line per process; netstats: a line per capturing node."""
    top = observe.render_top(
        [
            res(
                "c",
                None,
                {
                    "processes": [
                        {
                            "node": None,
                            "role": "controller",
                            "pid": 1,
                            "cpu": 0.5,
                            "rss": 50 << 20,
                            "threads": 3,
                            "state": "RUNNING",
                        }
                    ]
                },
            ),
            res(
                "a",
                None,
                {
                    "processes": [
                        {
                            "node": "w1",
                            "role": "node",
                            "pid": 9,
                            "cpu": None,
                            "rss": 2048,
                            "threads": None,
                            "state": "RUNNING",
                        }
                    ]
                },
            ),
        ]
    )
    assert top.text == (
        "INSTANCE  NODE  ROLE        PID  CPU%  RSS    THREADS  STATE\n"
        "c         -     controller  1    0.5   50.0M  3        RUNNING\n"
        "a         w1    node        9    -     2K     -        RUNNING\n"
    )
    stats = {
        "interface": "lo",
        "started": NOW - 61,
        "now": NOW,
        "pkts_recvd": 10,
        "pkts_dropped": 0,
        "pkts_link": 12,
    }
    net = observe.render_netstats([res("a", "w1", stats)])
    assert net.exit_code == 0
    assert net.text == (
        "INSTANCE  NODE  INTERFACE  RECEIVED  DROPPED  LINK  SINCE\n"
        "a         w1    lo         10        0        12    2025-12-31 23:58:59 UTC (1m01s)\n"
    )
