"""Rendering rules of wire spec §7 on hand-made results (no sockets)."""

from __future__ import annotations

import ipaddress
import itertools

import pytest

from client import render
from mgmt.broker import events as ev
from mgmt.broker.data import BrokerSet, Port
from mgmt.broker.records import (
    ClusterRole,
    Configuration,
    Instance,
    Node,
    NodeOutputs,
    NodeStatus,
    Result,
    Role,
    State,
)
from mgmt.core.logaction import Level, Log
from tests.support.results import decoded, loads


def test_deploy_rules() -> None:
    """Deploy: id from the controller result, per-node entries with outputs, errors."""
    results = [
        Result("a1", True, instance="agent-1", node="manager"),
        Result("a1", False, instance="agent-1", node="w1", data=NodeOutputs("", "boom")),
        Result("a1", True, instance="agent-2"),  # an agent without nodes: skipped
        Result("a1", False, instance="agent-2", error="request timed out"),
        Result("r", True, data="cfg-id"),
        Result("r", True, node="stray"),  # no instance: warned about and skipped
    ]
    out = render.render_deploy([decoded(r) for r in results], pretty=True)
    assert out.exit_code == 1
    assert loads(out) == {
        "errors": ["request timed out"],
        "results": {
            "id": "cfg-id",
            "nodes": {
                "manager": {"instance": "agent-1", "success": True},
                "w1": {"instance": "agent-1", "success": False, "stdout": "", "stderr": "boom"},
            },
        },
    }
    assert [d.level for d in out.diagnostics] == [Level.WARNING]


def test_deploy_empty_string_id_counts() -> None:
    """zeek-client treats any Broker string, even "", as present data."""
    out = render.render_deploy([Result("r", True, data="")], pretty=False)
    assert out.text == '{"errors": [], "results": {"id": ""}}\n' and out.exit_code == 0


def test_stage_rules() -> None:
    """Stage: errors in arrival order ('no reason given' when empty), exit 1."""
    ok = render.render_stage([Result("r", True, data="cfg")], pretty=True)
    assert ok.exit_code == 0 and loads(ok) == {"errors": [], "results": {"id": "cfg"}}
    bad = render.render_stage([Result("r", False, error="b"), Result("r", False)], pretty=True)
    assert bad.exit_code == 1 and loads(bad) == {"errors": ["b", "no reason given"], "results": {}}
    assert render.render_stage([], pretty=True).text == '{\n  "errors": [],\n  "results": {}\n}\n'


def _zc_less(a: Result, b: Result) -> bool:
    zc_types = pytest.importorskip("zeekclient.types")
    za = zc_types.Result(a.reqid, a.success, a.instance, None, a.error, a.node)
    zb = zc_types.Result(b.reqid, b.success, b.instance, None, b.error, b.node)
    return bool(za < zb)


def test_result_order_is_zeek_clients() -> None:
    """Sorting uses zeek-client's partial 'less than' and so gives its exact order."""
    pool = [
        Result("1", instance="b", node="n2"),
        Result("2", instance="b"),
        Result("3", instance="a", node="n9"),
        Result("4", node="x"),
        Result("5"),
        Result("6", instance="a", node="n1"),
    ]
    zc_types = pytest.importorskip("zeekclient.types")
    for perm in itertools.islice(itertools.permutations(pool), 200):
        ours = [r.reqid for r in render.sorted_results(perm)]
        zcs = sorted(
            zc_types.Result(r.reqid, r.success, r.instance, None, r.error, r.node) for r in perm
        )
        assert ours == [r.reqid for r in zcs]
    for a, b in itertools.product(pool, repeat=2):
        assert render._result_less(a, b) == _zc_less(a, b)


def test_get_nodes_rules() -> None:
    """get-nodes: rows sorted by node, NONE roles as null, optional numbers only if set."""
    statuses = (
        NodeStatus("w1", State.PENDING, Role.NONE, ClusterRole.WORKER, None, None, Port(9001)),
        NodeStatus("agent-1", State.RUNNING, Role.AGENT, ClusterRole.NONE, 7),
        NodeStatus("m", State.RUNNING, Role.NONE, ClusterRole.MANAGER, 8, Port(2200)),
    )
    results = [
        Result("r", True, instance="agent-1", data=statuses),
        Result("r", False, error="request timed out"),
        Result("r", True, instance="agent-2"),
    ]
    out = render.render_get_nodes([decoded(r) for r in results], pretty=True)
    assert out.exit_code == 1
    data = loads(out)
    assert data == {
        "errors": [
            {"source": "agent-2", "error": "result does not contain node status data"},
            {"source": None, "error": "request timed out"},
        ],
        "results": {
            "agent-1": {
                "agent-1": {
                    "state": "RUNNING",
                    "mgmt_role": "AGENT",
                    "cluster_role": None,
                    "pid": 7,
                },
                "m": {
                    "state": "RUNNING",
                    "mgmt_role": None,
                    "cluster_role": "MANAGER",
                    "pid": 8,
                    "port": 2200,
                },
                "w1": {
                    "state": "PENDING",
                    "mgmt_role": None,
                    "cluster_role": "WORKER",
                    "metrics_port": 9001,
                },
            }
        },
    }


def test_get_nodes_bad_row_drops_instance_rows() -> None:
    """One undecodable NodeStatus logs an error and leaves that instance empty."""
    bad = ("m", "not an enum")
    out = render.render_get_nodes([Result("r", True, instance="a", data=(bad,))], pretty=True)
    assert out.exit_code == 0
    assert loads(out) == {"errors": [], "results": {"a": {}}}
    assert out.diagnostics[0].level is Level.ERROR
    assert out.diagnostics[0].message.startswith("NodeStatus data invalid: ")


def test_get_id_value_rules() -> None:
    """get-id-value: JSON values, decode errors, wrong data types, results without node."""
    results = [
        Result("r", True, instance="a", node="m", data='{"x": [1, 2]}'),
        Result("r", True, instance="a", node="w", data="not json"),
        Result("r", True, instance="a", node="p", data=5),
        Result("r", True, instance="a", node="q"),
        Result("r", False, node="zz", error="unknown cluster node"),
        Result("r", True, instance="a", data="orphan"),
    ]
    out = render.render_get_id_value([decoded(r) for r in results], pretty=True)
    # zeek-client's order: by instance, then node where both have one; none last.
    assert out.exit_code == 1
    data = loads(out)
    assert data["results"] == {"m": {"x": [1, 2]}}
    assert data["errors"] == [
        {"source": "p", "error": 'invalid result data type {"@data-type": "integer", "data": 5}'},
        {"source": "q", "error": "invalid result data type None"},
        {"source": "w", "error": "JSON decode error: Expecting value: line 1 column 1 (char 0)"},
        {"error": 'result lacking node: {\n    "@data-type": "string",\n    "data": "orphan"\n}'},
        {"source": "zz", "error": "unknown cluster node"},
    ]


def test_restart_rules() -> None:
    """restart: agent failures are false entries; controller errors and node-less results
    are errors."""
    results = [
        Result("r", True, instance="a", node="m"),
        Result("r", False, instance="a", node="w", error="could not restart node w"),
        Result("r", False, node="zz", error="unknown cluster node"),
        Result("r", False, instance="a", error="request timed out"),
    ]
    out = render.render_restart([decoded(r) for r in results], pretty=True)
    data = loads(out)
    assert out.exit_code == 1
    assert data["results"] == {"m": True, "w": False}
    assert data["errors"][0]["error"].startswith("result lacking node: Result(")
    assert data["errors"][1] == {"source": "zz", "error": "unknown cluster node"}


def test_get_instances_rules() -> None:
    """get-instances: host only when not 0.0.0.0 (or with a port), sorted by name."""
    data = (
        Instance("b"),
        Instance("a", ipaddress.ip_address("10.0.0.1")),
        Instance("c", ipaddress.ip_address("::1"), Port(2151)),
    )
    resp = ev.GetInstancesResponse("r", decoded(Result("r", True, data=data)))
    out = render.render_get_instances(resp, pretty=True)
    assert loads(out) == {"a": {"host": "10.0.0.1"}, "b": {}, "c": {"host": "::1", "port": 2151}}
    assert out.text is not None and out.text.index('"a"') < out.text.index('"b"')
    missing = render.render_get_instances(
        ev.GetInstancesResponse("r", Result("r", True)), pretty=True
    )
    assert missing.text is None and missing.exit_code == 1
    assert missing.diagnostics == (
        Log(
            Level.ERROR,
            "received result did not contain instance data: "
            "Management::Controller::API::get_instances_response("
            "reqid: <class 'zeekclient.brokertypes.String'>, "
            "result: <class 'zeekclient.brokertypes.Vector'>)",
        ),
    )


CONFIG = Configuration(
    "cfg",
    (Instance("i2", ipaddress.ip_address("::1"), Port(2151)), Instance("i1")),
    (
        Node(
            "w",
            "i1",
            ClusterRole.WORKER,
            scripts=("b.zeek", "a b.zeek"),
            interface="",
            cpu_affinity=0,
            env={"Z": "1", "A": "two words"},
        ),
        Node("m", "i2", ClusterRole.MANAGER, p=Port(2200), metrics_port=Port(9000)),
    ),
)


def test_get_config_ini() -> None:
    """INI: instances first, nodes by name, keys in zeek-client's order, quoting rules."""
    resp = ev.GetConfigurationResponse("r", decoded(Result("r", True, data=CONFIG)))
    out = render.render_get_config(resp, as_json=False, pretty=True)
    assert out.text == (
        "[instances]\ni1\ni2 = ::1:2151\n\n"
        "[m]\ninstance = i2\nrole = MANAGER\nport = 2200\nmetrics_port = 9000\n\n"
        '[w]\ninstance = i1\nrole = WORKER\nscripts = "a b.zeek" b.zeek\ninterface = \n'
        'cpu_affinity = 0\nenv = A="two words" Z=1\n\n'
    )


def test_get_config_json_and_errors() -> None:
    """JSON form per §7.5; failures give zeek-client's error lines and exit 1."""
    resp = ev.GetConfigurationResponse("r", decoded(Result("r", True, data=CONFIG)))
    data = loads(render.render_get_config(resp, as_json=True, pretty=True))
    assert data["instances"] == [{"name": "i1"}, {"name": "i2", "host": "::1", "port": 2151}]
    assert data["nodes"][0] == {
        "cpu_affinity": None,
        "env": {},
        "instance": "i2",
        "interface": None,
        "metrics_port": 9000,
        "name": "m",
        "options": None,
        "port": 2200,
        "role": "MANAGER",
        "scripts": None,
    }
    assert data["nodes"][1]["scripts"] == ["b.zeek", "a b.zeek"]  # wire order
    failed = ev.GetConfigurationResponse("r", Result("r", False))
    assert render.render_get_config(failed, as_json=False, pretty=True).diagnostics == (
        Log(Level.ERROR, "no reason given"),
    )
    empty = ev.GetConfigurationResponse("r", Result("r", True, data=()))
    out = render.render_get_config(empty, as_json=False, pretty=True)
    assert out.exit_code == 1 and "did not contain configuration data" in out.diagnostics[0].message


def test_test_timeout_and_monitor_lines() -> None:
    """test-timeout shows success and error; monitor lines name zeek-client's classes."""
    out = render.render_test_timeout(Result("r", False, error="request timed out"), pretty=True)
    assert out.exit_code == 0
    assert loads(out) == {"error": "request timed out", "success": False}
    line = render.monitor_line(ev.GetIdValueRequest("r", "x", BrokerSet(["a"])))
    assert line == (
        'received "Management::Controller::API::get_id_value_request('
        "reqid: <class 'zeekclient.brokertypes.String'>, "
        "id: <class 'zeekclient.brokertypes.String'>, "
        "nodes: <class 'zeekclient.brokertypes.Set'>)\""
    )
    assert render.monitor_line(ev.NotifyAgentsReady(BrokerSet())) is None
