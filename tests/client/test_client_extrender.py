"""zeek-mgmt's own outputs (client.extrender): status, df, extension JSON, deploy --wait."""

from __future__ import annotations

import pytest

from client import extrender
from mgmt.broker import extevents as xev
from mgmt.broker.data import Port
from mgmt.broker.extevents import ExtensionResult
from mgmt.broker.records import ClusterRole, NodeStatus, Result, Role, State
from mgmt.core.logaction import Level, Log
from tests.support.results import decoded, loads

GIB = 1024**3


def fs(mount: str, size: int, used: int, avail: int) -> dict[str, object]:
    return {"fs": mount, "dirs": {"state_dir": mount}, "size": size, "used": used, "avail": avail}


def test_df_table_as_zeekctl() -> None:
    """Header and rows in zeekctl's columns and units (capacity = percent used); an agent
    that failed is an error line and exit 1, the others are still shown."""
    results = (
        ExtensionResult("agent-a", None, True, None, {"v": 1, "filesystems": [
            fs("/", 252 * GIB, 56 * GIB, 79 * GIB),
            fs("/srv", 10 * 1024**2, 512, 0),
        ]}),
        ExtensionResult("agent-b", None, False, "request timed out", None),
    )  # fmt: skip
    out = extrender.render_df(results)
    assert out.text == (
        f"{'':46}total  avail  capacity\n"
        f"{'agent-a':>28}  {'/':>15}  252G    79G   41.5 %\n"
        f"{'agent-a':>28}  {'/srv':>15}   10M      0   100.0%\n"
    )
    assert out.exit_code == 1
    assert [d.message for d in out.diagnostics] == ["df failed on agent-b: request timed out"]


def test_status_table() -> None:
    """status: one row per process, '-' for unknown values, exit 1 unless all RUNNING."""
    statuses = (
        NodeStatus("agent-1", State.RUNNING, Role.AGENT, ClusterRole.NONE, 7),
        NodeStatus("w1", State.CRASHED, Role.NONE, ClusterRole.WORKER, None, None, Port(9001)),
    )
    out = extrender.render_status([decoded(Result("r", True, instance="agent-1", data=statuses))])
    assert out.exit_code == 1
    assert out.text == (
        "INSTANCE  NODE     ROLE    STATE    PID  PORT  METRICS  RESTARTS  UPTIME  LAST EXIT\n"
        "agent-1   agent-1  agent   RUNNING  7    -     -        -         -       -\n"
        "agent-1   w1       worker  CRASHED  -    -     9001     -         -       -\n"
    )
    ok = extrender.render_status([decoded(Result("r", True, instance="a", data=statuses[:1]))])
    assert ok.exit_code == 0
    failed = extrender.render_status([Result("r", False, error="no instances connected")])
    assert failed.exit_code == 1
    assert failed.diagnostics == (Log(Level.ERROR, "controller: no instances connected"),)


@pytest.mark.parametrize(
    ("seconds", "text"), [(0, "0s"), (59.9, "59s"), (61, "1m01s"), (3725, "1h02m"), (90000, "1d1h")]
)
def test_format_duration(seconds: float, text: str) -> None:
    """Durations are short and exact to the coarsest two units."""
    assert extrender.format_duration(seconds) == text


def test_wait_progress() -> None:
    """Progress lines only for changes; done when all RUNNING; FAILED/CRASHED stop."""
    wanted = {"m": "a", "w": "a"}

    def res(*rows: tuple[str, State]) -> list[Result]:
        data = tuple(NodeStatus(n, s, Role.NONE, ClusterRole.WORKER) for n, s in rows)
        return [decoded(Result("r", True, instance="a", data=data))]

    first = extrender.wait_progress(wanted, {}, res(("m", State.PENDING)))
    assert first.lines == ("m on a: PENDING", "w on a: UNKNOWN")
    assert not first.done and not first.failed
    second = extrender.wait_progress(
        wanted, first.states, res(("m", State.RUNNING), ("w", State.PENDING))
    )
    assert second.lines == ("m on a: PENDING -> RUNNING", "w on a: UNKNOWN -> PENDING")
    third = extrender.wait_progress(
        wanted, second.states, res(("m", State.RUNNING), ("w", State.RUNNING))
    )
    assert third.done and third.lines == ("w on a: PENDING -> RUNNING",)
    crashed = extrender.wait_progress(
        wanted, third.states, res(("m", State.RUNNING), ("w", State.CRASHED))
    )
    assert crashed.failed == ("w",) and not crashed.done
    # A node reported by another instance is not ours.
    other = [decoded(Result("r", True, instance="b", data=(NodeStatus("m", State.RUNNING),)))]
    assert extrender.wait_progress({"m": "a"}, {}, other).states == {"m": "UNKNOWN"}


def test_extension_rules() -> None:
    """Extension answers: payloads by instance (instance/node for node results); failed
    Results and payloads that are not JSON objects go to errors, with exit 1."""
    ok = [
        xev.payload_result("r", {"role": "controller"}, instance="ctl"),
        xev.payload_result("r", {"role": "agent"}, instance="a"),
        xev.payload_result("r", {"rss": 1}, instance="a", node="worker-1"),
    ]
    rendered = extrender.render_extension(
        [ExtensionResult.from_result(decoded(r)) for r in ok], pretty=False
    )
    assert rendered.exit_code == 0
    assert loads(rendered) == {
        "errors": [],
        "results": {
            "ctl": {"v": 1, "role": "controller"},
            "a": {"v": 1, "role": "agent"},
            "a/worker-1": {"v": 1, "rss": 1},
        },
    }
    bad = [
        Result("r", False, instance="b", error="request timed out"),
        Result("r", True, instance="c", data="[1]"),
        Result("r", True, instance="d", data=7),
    ]
    rendered = extrender.render_extension(
        [ExtensionResult.from_result(r) for r in bad], pretty=True
    )
    assert rendered.exit_code == 1
    assert loads(rendered) == {
        "errors": [
            {"source": "b", "error": "request timed out"},
            {"source": "c", "error": "invalid payload: data: expected a JSON object"},
            {
                "source": "d",
                "error": "invalid payload: data: expected a string holding a JSON object",
            },
        ],
        "results": {},
    }
