"""The cluster backend setting and what the agent generates for ZeroMQ (issue 14):
the backend script on the command line, the proxy and connect endpoints as zeekctl's
``cluster_backend_zeromq`` plugin writes them, the node channel ports around them."""

from __future__ import annotations

import dataclasses
import ipaddress
import stat
from pathlib import Path

import pytest

from mgmt.agent.layout import (
    BACKEND_SCRIPTS,
    NODE_SCRIPT,
    ZeroMQProxy,
    backend_text,
    launch_plan,
    zeromq_proxy,
)
from mgmt.agent.nodes import NodeSetup, node_websocket_ports, relayed_nodes
from mgmt.broker.data import Port
from mgmt.broker.records import ClusterRole, Configuration, Instance, Node
from mgmt.core.curve import CurveKeys
from mgmt.exceptions import ConfigError, StateStoreError
from mgmt.persist import curvekeys
from mgmt.settings.sources import load_settings
from tests.support.settings import ENV, HOST, agent_settings

V4 = ipaddress.IPv4Address("192.0.2.10")


def quickstart(host: ipaddress.IPv4Address | ipaddress.IPv6Address = V4) -> Configuration:
    """Manager, logger, proxy, two workers with the controller's ports (2200 up, 9000 up)."""
    i = "agent-a"
    return Configuration(
        "cfg-z",
        (Instance(i, host),),
        (
            Node("manager", i, ClusterRole.MANAGER, p=Port(2200), metrics_port=Port(9000)),
            Node("logger", i, ClusterRole.LOGGER, p=Port(2201), metrics_port=Port(9001)),
            Node("proxy", i, ClusterRole.PROXY, p=Port(2202), metrics_port=Port(9002)),
            Node("worker-01", i, ClusterRole.WORKER, interface="lo", metrics_port=Port(9003)),
            Node("worker-02", i, ClusterRole.WORKER, interface="lo", metrics_port=Port(9004)),
        ),
    )


def test_proxy_takes_the_two_ports_after_the_nodes() -> None:
    """The XPUB/XSUB proxy listens on the manager's host, on the first two ports above
    the highest node port."""
    assert zeromq_proxy(quickstart()) == ZeroMQProxy("192.0.2.10", 2203, 2204, False)


def test_proxy_ports_skip_ports_in_use_and_bracket_ipv6() -> None:
    """Metrics and agent ports above the node ports are skipped; an IPv6 manager host is
    bracketed, with ZeroMQ's ipv6 on."""
    base = quickstart(ipaddress.IPv6Address("2001:db8::1"))
    nodes = (*base.nodes[:-1], Node("w", "agent-a", ClusterRole.WORKER, metrics_port=Port(2203)))
    instances = (Instance("agent-a", base.instances[0].host, Port(2205)),)
    config = Configuration("c", instances, nodes)
    assert zeromq_proxy(config) == ZeroMQProxy("[2001:db8::1]", 2204, 2206, True)


def test_no_proxy_without_a_manager() -> None:
    """Without a manager nobody runs the proxy: no endpoints are written."""
    config = Configuration("c", (), (Node("w", "a", ClusterRole.WORKER),))
    assert zeromq_proxy(config) is None
    assert "redef" not in backend_text(config, "zeromq")


def test_zeromq_backend_file_is_zeekctls() -> None:
    """The node's XPUB connects to the proxy's XSUB and its XSUB to the proxy's XPUB, as
    in zeekctl's zeekctl-config.zeek."""
    lines = backend_text(quickstart(), "zeromq").splitlines()
    assert lines[2:] == [
        "@load policy/frameworks/cluster/backend/zeromq",
        'redef Cluster::Backend::ZeroMQ::listen_xpub_endpoint = "tcp://192.0.2.10:2203";',
        'redef Cluster::Backend::ZeroMQ::listen_xsub_endpoint = "tcp://192.0.2.10:2204";',
        'redef Cluster::Backend::ZeroMQ::connect_xpub_endpoint = "tcp://192.0.2.10:2204";',
        'redef Cluster::Backend::ZeroMQ::connect_xsub_endpoint = "tcp://192.0.2.10:2203";',
        "redef Cluster::Backend::ZeroMQ::ipv6 = F;",
    ]


def test_broker_backend_file_sets_nothing() -> None:
    """On Broker the backend file is comments only."""
    text = backend_text(quickstart(), "broker")
    assert all(line.startswith("#") for line in text.splitlines())


@pytest.mark.parametrize("backend", sorted(BACKEND_SCRIPTS))
def test_nodes_load_their_backend_script(backend: str) -> None:
    """The node's command line loads the backend script of the setting."""
    node = quickstart().node("worker-01")
    assert node is not None
    plan = launch_plan(
        node,
        zeek="/z/bin/zeek",
        layout_dir=Path("/l"),
        nodes_dir=Path("/n"),
        base_env={},
        backend=backend,
    )
    script = BACKEND_SCRIPTS[backend]
    assert plan.argv == ("/z/bin/zeek", "-i", "lo", "-U", ".status", script, NODE_SCRIPT)


def test_zeromq_logger_has_no_channel_port_and_proxy_ports_are_skipped() -> None:
    """On ZeroMQ the logger is relayed (no WebSocket server of its own) and the node
    channels never take the proxy's ports."""
    config = quickstart()
    assert relayed_nodes(config, "zeromq") == {"logger"}
    assert relayed_nodes(config, "broker") == frozenset()
    assert node_websocket_ports(config, "agent-a", 2203, "zeromq") == {
        "manager": 2205,
        "proxy": 2206,
        "worker-01": 2207,
        "worker-02": 2208,
    }
    assert node_websocket_ports(config, "agent-a", 2203) == {
        "logger": 2203,
        "manager": 2204,
        "proxy": 2205,
        "worker-01": 2206,
        "worker-02": 2207,
    }


def test_manager_that_is_the_logger_is_relayed() -> None:
    """Without a logger the manager binds the log endpoint, so the manager is relayed."""
    config = Configuration(
        "c",
        (Instance("a", V4),),
        (
            Node("manager", "a", ClusterRole.MANAGER, p=Port(2200)),
            Node("w", "a", ClusterRole.WORKER),
        ),
    )
    assert relayed_nodes(config, "zeromq") == {"manager"}


@pytest.mark.parametrize(
    ("raw", "value"), [(None, "broker"), ("zeromq", "zeromq"), ("ZeroMQ", "zeromq")]
)
def test_cluster_backend_setting(raw: str | None, value: str) -> None:
    """[agent] cluster_backend defaults to broker; ZEEK_MGMT_CLUSTER_BACKEND sets it."""
    env = dict(ENV) if raw is None else {**ENV, "ZEEK_MGMT_CLUSTER_BACKEND": raw}
    settings, _ = load_settings("agent", config_path=None, env=env, flags={}, host=HOST)
    assert settings.cluster_backend == value  # type: ignore[union-attr]


def test_unknown_cluster_backend_is_refused(tmp_path: Path) -> None:
    """A backend Zeek does not have is a settings error naming the choices."""
    cfg = tmp_path / "s.toml"
    cfg.write_text('[agent]\ncluster_backend = "nats"\n')
    with pytest.raises(ConfigError, match="cluster_backend: expected one of broker, zeromq"):
        load_settings("agent", config_path=str(cfg), env=ENV, flags={}, host=HOST)


KEYS = CurveKeys.generate(bytes(range(32)), bytes(range(1, 33)))


def two_hosts() -> Configuration:
    """The quickstart cluster with the workers on a second host."""
    base = quickstart()
    b = Instance("agent-b", ipaddress.IPv4Address("192.0.2.11"))
    nodes = tuple(
        dataclasses.replace(n, instance="agent-b") if n.role is ClusterRole.WORKER else n
        for n in base.nodes
    )
    return Configuration("cfg-2", (*base.instances, b), nodes)


def test_curve_keys_on_a_zeromq_cluster_of_several_hosts() -> None:
    """Several hosts on ZeroMQ: the four keys, each only if the node's scripts set none
    and only where this Zeek has CURVE options (zeekctl's form)."""
    lines = backend_text(two_hosts(), "zeromq", KEYS).splitlines()
    start = lines.index("@ifdef ( Cluster::Backend::ZeroMQ::curve_server_publickey )")
    ident = "Cluster::Backend::ZeroMQ::curve_server_secretkey"
    assert lines[start + 4 : start + 7] == [
        f"@if ( |{ident}| == 0 )",
        f'redef {ident} = "{KEYS.server_secretkey}";',
        "@endif",
    ]
    assert lines[-1] == "@endif"
    assert sum(KEYS.client_publickey in line for line in lines) == 1


@pytest.mark.parametrize(("config", "backend"), [(quickstart(), "zeromq"), (two_hosts(), "broker")])
def test_no_curve_keys_on_one_host_or_on_broker(config: Configuration, backend: str) -> None:
    """One host (zeekctl's auto: unencrypted) or Broker: no keys in the file."""
    assert "curve" not in backend_text(config, backend, KEYS)


def test_agent_keeps_the_keys_it_was_sent(tmp_path: Path) -> None:
    """Keys from the controller are kept (0600) and read again by a new agent; bad ones
    change nothing."""
    settings = agent_settings(tmp_path, cluster_backend="zeromq")
    setup = NodeSetup(settings, {})
    setup.receive_curve_keys(KEYS.to_json())
    assert setup.curve_keys == KEYS
    assert stat.S_IMODE(setup.curve_file.stat().st_mode) == 0o600
    setup.receive_curve_keys('{"v": 1, "server_publickey": "x"}')
    assert setup.curve_keys == KEYS
    assert NodeSetup(settings, {}).curve_keys == KEYS


def test_controller_generates_its_keys_once(tmp_path: Path) -> None:
    """The controller's keys are generated on first use, kept 0600, the same afterwards;
    a damaged key file is an error, never silently replaced."""
    path = tmp_path / "ctl" / curvekeys.FILE_NAME
    keys = curvekeys.load_or_create(path)
    assert curvekeys.load_or_create(path) == keys
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert keys.server_publickey != keys.client_publickey
    path.write_text("{}")
    with pytest.raises(StateStoreError, match="not a CURVE key file"):
        curvekeys.load_or_create(path)
