"""get-id-value end to end: the real ``zeek-client`` 1.5.0 against ``python -m mgmt run``
(controller + agent as child processes), cluster nodes played by the test-double ``zeek``
on ``PATH``, each answering over its own node channel.

Outputs and exit codes are compared with the captures of real Zeek 8.2.2
(``tests/data/zeek-8.2.2/zeek-client_get-id-value_*.txt``, wire-protocol.md §5.7, §7.6).
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from mgmt.agent.layout import MANAGEMENT_SCRIPTS, SETTINGS_FILE
from tests.support.reference import reference_output
from tests.support.sites import QUICKSTART_CFG, Site, mgmt_run, on_instance
from tests.support.waiting import MS, wait_until

AGENT = "agent-test"

#: The reference cluster (tests/data/zeek-8.2.2/configs/cluster.cfg) on our agent.
CLUSTER = on_instance(QUICKSTART_CFG, AGENT)


def reference(name: str) -> tuple[int, str]:
    """``(exit code, stdout)`` of the capture of ``zeek-client get-id-value <name>``."""
    ref = reference_output(f"get-id-value_{name}")
    return ref.code, ref.stdout


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """The reference cluster deployed once for the module's tests."""
    with mgmt_run(tmp_path_factory.mktemp("e2e-id"), agent=AGENT) as run:
        res = run.deploy_config(CLUSTER)
        assert res.code == 0, (res.stdout, res.stderr, run.daemon_logs())
        yield run


@pytest.mark.parametrize(
    ("args", "capture"),
    [
        (("LogAscii::use_json",), "LogAscii__use_json"),
        (("Cluster::node", "manager", "logger"), "Cluster__node_manager_logger"),
        (("No::such_id",), "No__such_id"),
    ],
)
def test_output_matches_zeek(cluster: Site, args: tuple[str, ...], capture: str) -> None:
    """Exit code and stdout are byte-for-byte those of Zeek 8.2.2 for the same cluster."""
    res = cluster.client("get-id-value", *args)
    expected = reference(capture)
    assert (res.code, res.stdout) == expected, res.stderr
    assert res.stderr == ""


def test_record_table_value_is_a_json_object(cluster: Site) -> None:
    """Log::all_streams of one node renders as an object keyed by stream, like Zeek's."""
    res = cluster.client("get-id-value", "Log::all_streams", "worker-01")
    assert res.code == 0, res.stderr
    out = res.json()
    assert out["errors"] == []
    assert list(out["results"]) == ["worker-01"]
    streams = out["results"]["worker-01"]
    assert isinstance(streams, dict) and "Conn::LOG" in streams
    expected = reference("Log__all_streams_worker-01")
    # Every stream we show has exactly the fields and values Zeek showed for it.
    zeek_streams = json.loads(expected[1])["results"]["worker-01"]
    for name, info in streams.items():
        assert info == zeek_streams[name], name


def test_unknown_node(cluster: Site) -> None:
    """A node not in the deployment is 'unknown cluster node'; the others still answer."""
    res = cluster.client("get-id-value", "LogAscii::use_json", "worker-99", "worker-01")
    assert res.code == 1
    assert res.json() == {
        "errors": [{"error": "unknown cluster node", "source": "worker-99"}],
        "results": {"worker-01": False},
    }


def test_only_unknown_nodes(cluster: Site) -> None:
    """Naming only unknown nodes gives only their errors (wire spec §5.7)."""
    res = cluster.client("get-id-value", "LogAscii::use_json", "worker-99")
    assert res.code == 1
    assert res.json() == {
        "errors": [{"error": "unknown cluster node", "source": "worker-99"}],
        "results": {},
    }


def test_interval_value(cluster: Site) -> None:
    """Intervals render as Zeek describes them (per node role here)."""
    res = cluster.client("get-id-value", "Log::default_rotation_interval")
    assert res.code == 0, res.stderr
    assert res.json()["results"] == {
        "logger": "1.0 hr",
        "manager": "1.0 day",
        "worker-01": "1.0 day",
        "worker-02": "1.0 day",
    }


def test_restarted_node_answers_through_a_new_channel(cluster: Site) -> None:
    """After a node restarts (new process), get-id-value reaches the new process."""
    before = cluster.nodes_of(AGENT)["worker-02"]["pid"]
    res = cluster.client("restart", "worker-02")
    assert res.code == 0, res.stdout
    wait_until(
        lambda: (
            (row := cluster.nodes_of(AGENT)["worker-02"])["pid"] != before
            and row["state"] == "RUNNING"
        ),
        "worker-02 running again",
    )
    res = cluster.client("get-id-value", "Cluster::node", "worker-02")
    assert (res.code, res.json()) == (0, {"errors": [], "results": {"worker-02": "worker-02"}})


def test_killed_node_is_answered_again_after_revival(cluster: Site) -> None:
    """A node killed with SIGKILL is revived by the agent and answers again."""
    before = cluster.nodes_of(AGENT)["worker-01"]["pid"]
    os.kill(before, signal.SIGKILL)
    wait_until(
        lambda: (
            (row := cluster.nodes_of(AGENT)["worker-01"])["pid"] != before
            and row["state"] == "RUNNING"
        ),
        "worker-01 revived",
        timeout=15_000 * MS,
    )
    res = cluster.client("get-id-value", "Cluster::node", "worker-01")
    assert (res.code, res.json()) == (0, {"errors": [], "results": {"worker-01": "worker-01"}})


@pytest.mark.slow
def test_down_node_is_not_in_running_state(tmp_path: Path) -> None:
    """A node that cannot run gets Zeek's agent error; running nodes still answer."""
    # worker-02 (the last node) fails at every start: its interface does not exist.
    config = CLUSTER.rsplit("interface = lo", 1)[0] + "interface = nosuchif0\n"
    # A short agent timeout: the deployment waits that long for worker-02.
    with mgmt_run(tmp_path, agent=AGENT, settings=["agent.request_timeout=2"]) as run:
        deployed = run.deploy_config(config)
        assert deployed.code == 1  # worker-02 failed
        res = run.client("get-id-value", "Cluster::node")
        assert res.code == 1
        assert res.json() == {
            "errors": [
                {"error": "cluster node worker-02 not in running state", "source": "worker-02"}
            ],
            "results": {"logger": "logger", "manager": "manager", "worker-01": "worker-01"},
        }
        res = run.client("get-id-value", "Cluster::node", "worker-02")
        assert res.code == 1
        assert res.json()["results"] == {}


def test_nothing_deployed(tmp_path: Path) -> None:
    """Before any deployment the controller answers 'no cluster deployed'."""
    with mgmt_run(tmp_path, agent=AGENT) as run:
        res = run.client("get-id-value", "LogAscii::use_json")
    assert res.code == 1
    assert res.json() == {
        "errors": [{"error": "no cluster deployed", "source": None}],
        "results": {},
    }


def test_restarted_agent_reaches_adopted_nodes(cluster: Site) -> None:
    """After the agent is killed and restarted, it adopts the nodes and reaches them."""
    rows = cluster.nodes_of(AGENT)
    agent_pid = rows[AGENT]["pid"]
    node_pids = {n: rows[n]["pid"] for n in ("manager", "logger", "worker-01", "worker-02")}
    os.kill(agent_pid, signal.SIGKILL)

    def readopted() -> bool:
        res = cluster.client("get-nodes")
        if res.code != 0:
            return False
        now = res.json()["results"].get(AGENT, {})
        return (
            AGENT in now
            and now[AGENT]["pid"] != agent_pid
            and all(now.get(n, {}).get("state") == "RUNNING" for n in node_pids)
        )

    wait_until(readopted, "a new agent", timeout=20_000 * MS)
    res = cluster.client("get-id-value", "Cluster::node")
    assert (res.code, res.json()) == (
        0,
        {"errors": [], "results": {n: n for n in node_pids}},
    )
    after = cluster.nodes_of(AGENT)
    assert {n: after[n]["pid"] for n in node_pids} == node_pids  # adopted, not restarted


def fake_management_scripts(prefix: Path) -> None:
    """Give the double's installation Zeek's Management config scripts (empty files: the
    agent only looks whether they exist; the double plays their declarations)."""
    for script in MANAGEMENT_SCRIPTS:
        path = prefix / "share" / "zeek" / f"{script}.zeek"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("")


def test_management_settings_answer_with_the_values_in_effect(tmp_path: Path) -> None:
    """Where Zeek has the Management scripts, nodes answer Management:: ids with the
    daemons' settings: the controller's (here from run's --set) and the agent's."""
    fake_management_scripts(tmp_path / "zeek-prefix")
    settings = ["controller.auto_assign_metrics_start_port=9300", "agent.archive_interval=1800"]
    with mgmt_run(tmp_path, agent=AGENT, settings=settings) as run:
        res = run.deploy_config(CLUSTER)
        assert res.code == 0, (res.stdout, res.stderr, run.daemon_logs())
        metrics = {n: row.get("metrics_port") for n, row in run.nodes_of(AGENT).items()}

        def value(ident: str, node: str = "manager") -> object:
            out = run.client("get-id-value", ident, node)
            assert out.code == 0, (out.stdout, out.stderr)
            return out.json()["results"][node]

        res = run.client("get-id-value", "Management::Controller::auto_assign_metrics_start_port")
        assert res.code == 0, res.stdout
        assert res.json()["results"] == dict.fromkeys(
            ["logger", "manager", "worker-01", "worker-02"], {"port": 9300, "proto": "tcp"}
        )
        assert metrics["manager"] == 9300  # the value the controller used
        assert value("Management::Controller::name") == "controller-test"
        assert value("Management::Agent::name") == AGENT
        assert value("Management::Agent::archive_interval") == "30.0 mins"
        assert value("Management::spool_dir") == str(run.spool_dir)
        assert value("Management::Agent::controller") == {
            "address": "127.0.0.1",
            "bound_port": {"port": run.controller_port, "proto": "tcp"},
        }
        assert value("Management::Controller::topic") == "zeek/management/controller"


def test_management_settings_unknown_without_the_scripts(tmp_path: Path) -> None:
    """A Zeek without the Management scripts: nothing is loaded, the ids are unknown."""
    with mgmt_run(tmp_path, agent=AGENT) as run:
        res = run.deploy_config(CLUSTER)
        assert res.code == 0, (res.stdout, res.stderr)
        settings = (run.node_dir(AGENT) / "layout" / SETTINGS_FILE).read_text()
        assert "@load" not in settings and "redef" not in settings
        res = run.client("get-id-value", "Management::Agent::name", "manager")
    assert (res.code, res.json()["errors"]) == (1, [{"error": "unknown id", "source": "manager"}])
