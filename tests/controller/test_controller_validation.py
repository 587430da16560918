"""Configuration validation and port auto-assignment (behaviour §4.5), table-driven."""

from __future__ import annotations

import ipaddress

import pytest

from mgmt.broker.data import Port
from mgmt.broker.records import ClusterRole, Configuration, Instance, Node
from mgmt.controller import validation

M, L, P, W, N = (
    ClusterRole.MANAGER,
    ClusterRole.LOGGER,
    ClusterRole.PROXY,
    ClusterRole.WORKER,
    ClusterRole.NONE,
)


def inst(name: str, host: str = "0.0.0.0", port: int | None = None) -> Instance:
    return Instance(name, ipaddress.ip_address(host), None if port is None else Port(port))


def node(
    name: str,
    instance: str = "a",
    role: ClusterRole = W,
    p: int | None = None,
    mp: int | None = None,
) -> Node:
    return Node(
        name,
        instance,
        role,
        p=None if p is None else Port(p),
        metrics_port=None if mp is None else Port(mp),
    )


def config(instances: list[Instance], nodes: list[Node]) -> Configuration:
    return Configuration("cfg", tuple(instances), tuple(nodes))


CASES = [
    ("valid cluster", [inst("a")], [node("m", role=M), node("l", role=L), node("w")], []),
    ("empty config", [], [], []),
    ("instances without nodes", [inst("a"), inst("b")], [], []),
    (
        "duplicate instance reported once",
        [inst("a"), inst("a", "10.0.0.1"), inst("a", port=2151)],
        [],
        ["multiple instances named 'a'"],
    ),
    (
        "duplicate node reported once per name",
        [inst("a")],
        [node("w"), node("w"), node("w"), node("x"), node("x")],
        ["multiple nodes named 'w'", "multiple nodes named 'x'"],
    ),
    (
        "names collide, sorted",
        [inst("a"), inst("b"), inst("z")],
        [node("z", "a"), node("b", "a")],
        ["node and instance names collide: b, z"],
    ),
    (
        "undeclared instance, one per node",
        [inst("a")],
        [node("m", "a", M), node("w1", "x"), node("w2", "y")],
        [
            "node 'w1' has undeclared instance name 'x'",
            "node 'w2' has undeclared instance name 'y'",
        ],
    ),
    (
        "agent port conflict",
        [inst("a", "10.0.0.1", 2151)],
        [node("m", "a", M, p=2151)],
        ["node 'm' port 2151/tcp conflicts with agent port on instance 'a'"],
    ),
    (
        "agent port of another instance is fine",
        [inst("a", "10.0.0.1", 2151), inst("b")],
        [node("m", "b", M, p=2151)],
        [],
    ),
    (
        "controller port conflict",
        [inst("a")],
        [node("m", "a", M, p=2150)],
        ["node 'm' port 2150/tcp conflicts with controller port"],
    ),
    (
        "duplicate port once per (instance, port)",
        [inst("a"), inst("b")],
        [
            node("m", "a", M, p=2300),
            node("l", "a", L, p=2300),
            node("p", "a", P, p=2300),
            node("p2", "b", P, p=2300),
        ],
        ["multiple nodes on instance 'a' using port 2300/tcp"],
    ),
    (
        "metrics ports are not validated",
        [inst("a")],
        [node("m", "a", M, mp=9000), node("w", "a", W, mp=9000)],
        [],
    ),
    (
        "errors are sorted by text",
        [inst("a")],
        [node("w", "zz"), node("m", "a", M, p=2150), node("w2", "a", W, p=2150)],
        [
            "multiple nodes on instance 'a' using port 2150/tcp",
            "node 'm' port 2150/tcp conflicts with controller port",
            "node 'w' has undeclared instance name 'zz'",
            "node 'w2' port 2150/tcp conflicts with controller port",
        ],
    ),
    (
        "beyond Zeek: unsafe names",
        [inst("a/b")],
        [node("..", "a/b"), node("x y", "a/b")],
        [
            "instance name 'a/b' is invalid: it contains a path separator",
            "node name '..' is invalid: it starts with '.'",
            "node name 'x y' is invalid: it contains whitespace",
        ],
    ),
    (
        "beyond Zeek: a duplicate name is reported once (Zeek's text)",
        [inst("a")],
        [node("w"), node("w")],
        ["multiple nodes named 'w'"],
    ),
    (
        "beyond Zeek: hostile names are shown escaped, also in Zeek's texts",
        [inst("a")],
        [node("\x00"), node("\x00"), node("w", "\n")],
        [
            "multiple nodes named '\\x00'",
            "node 'w' has undeclared instance name '\\n'",
            "node name '\\x00' is invalid: it contains a NUL byte",
        ],
    ),
    (
        "beyond Zeek: role NONE and two managers",
        [inst("a")],
        [node("n", "a", N), node("m1", "a", M), node("m2", "a", M)],
        [
            "multiple manager nodes: m1, m2",
            "node 'n' has no cluster role (need LOGGER, MANAGER, PROXY or WORKER)",
        ],
    ),
]


@pytest.mark.parametrize(("what", "instances", "nodes", "errors"), CASES, ids=[c[0] for c in CASES])
def test_validate(
    what: str, instances: list[Instance], nodes: list[Node], errors: list[str]
) -> None:
    """validate() returns Zeek's error texts, deduplicated and sorted."""
    got = validation.validate(
        config(instances, nodes), controller_port=Port(2150), auto_assign_broker_ports=True
    )
    assert got == errors


def test_validate_without_controller_port() -> None:
    """With no controller port there is nothing to conflict with."""
    cfg = config([inst("a")], [node("m", "a", M, p=2150)])
    assert validation.validate(cfg, controller_port=None, auto_assign_broker_ports=True) == []


def test_validate_auto_assign_disabled() -> None:
    """Without auto-assignment managers, loggers and proxies need ports; workers do not."""
    cfg = config(
        [inst("a")],
        [node("p", "a", P), node("m", "a", M), node("l", "a", L, p=2300), node("w", "a", W)],
    )
    assert validation.validate(cfg, controller_port=Port(2150), auto_assign_broker_ports=False) == [
        "Broker port auto-assignment disabled but nodes m, p lack ports"
    ]


def ports(cfg: Configuration) -> dict[str, tuple[int | None, int | None]]:
    return {
        n.name: (
            None if n.p is None else n.p.number,
            None if n.metrics_port is None else n.metrics_port.number,
        )
        for n in cfg.nodes
    }


def assign(cfg: Configuration, broker: int = 2200, metrics: int = 9000) -> Configuration:
    cfg = validation.assign_broker_ports(cfg, Port(broker))
    return validation.assign_metrics_ports(cfg, Port(metrics))


ASSIGN_CASES = [
    (
        "reference cluster.cfg",
        [inst("a")],
        [node("manager", "a", M), node("logger", "a", L), node("worker-01"), node("worker-02")],
        {
            "manager": (2200, 9000),
            "logger": (2201, 9001),
            "worker-01": (None, 9002),
            "worker-02": (None, 9003),
        },
    ),
    (
        "explicit and listen ports are skipped",
        [inst("a", "10.0.0.1", 2201)],
        [node("m", "a", M), node("l", "a", L, p=2200), node("p", "a", P), node("w", mp=9000)],
        {"m": (2202, 9001), "l": (2200, 9002), "p": (2203, 9003), "w": (None, 9000)},
    ),
    (
        "one broker counter across instances, ordered by instance, role, name",
        [inst("b"), inst("a", "10.0.0.2")],
        [
            node("pb", "b", P),
            node("mb", "b", M),
            node("pa", "a", P),
            node("lb2", "b", L),
            node("lb1", "b", L),
        ],
        {
            "pa": (2200, 9000),
            "mb": (2201, 9000),
            "lb1": (2202, 9001),
            "lb2": (2203, 9002),
            "pb": (2204, 9003),
        },
    ),
    (
        "metrics counter shared by instances on the same host",
        [inst("a", "10.0.0.1"), inst("b", "10.0.0.1"), inst("c", "10.0.0.2")],
        [node("wa", "a"), node("wb", "b"), node("wc", "c")],
        {"wa": (None, 9000), "wb": (None, 9001), "wc": (None, 9000)},
    ),
    (
        "every node's explicit metrics port is seeded (Q14 fixed)",
        [inst("a")],
        [node("w1", "a", mp=9001), node("w2", "a"), node("w3", "a"), node("w4", "a", mp=9003)],
        {"w1": (None, 9001), "w2": (None, 9000), "w3": (None, 9002), "w4": (None, 9003)},
    ),
]


@pytest.mark.parametrize(
    ("what", "instances", "nodes", "expected"), ASSIGN_CASES, ids=[c[0] for c in ASSIGN_CASES]
)
def test_port_assignment(
    what: str, instances: list[Instance], nodes: list[Node], expected: dict[str, tuple[int, int]]
) -> None:
    """Broker then metrics ports are assigned as Zeek 8.2.2 does (§4.5.2, §4.5.3)."""
    assert ports(assign(config(instances, nodes))) == expected


def test_metrics_skip_broker_ports_on_same_host() -> None:
    """Metrics assignment skips the host's Broker ports, including just-assigned ones."""
    cfg = config([inst("a")], [node("m", "a", M), node("w", "a")])
    assert ports(assign(cfg, broker=2200, metrics=2200)) == {"m": (2200, 2201), "w": (None, 2202)}


def test_assignment_keeps_everything_else() -> None:
    """Assignment only fills p/metrics_port; order and other fields are unchanged."""
    nodes = [node("w", "a"), node("m", "a", M, p=3000, mp=4000)]
    cfg = config([inst("a")], nodes)
    out = assign(cfg)
    assert [n.name for n in out.nodes] == ["w", "m"]
    assert out.nodes[1] == nodes[1]
    assert out.instances == cfg.instances and out.id == cfg.id


def test_fill_instance_hosts() -> None:
    """Unspecified hosts take the address the agent connected from; explicit ones stay."""
    cfg = config([inst("a"), inst("b", "10.0.0.9"), inst("c"), inst("d")], [])
    known = {
        "a": inst("a", "192.168.1.5"),
        "b": inst("b", "192.168.1.6"),
        "d": inst("d", "0.0.0.0"),
    }
    out = validation.fill_instance_hosts(cfg, known)
    assert [str(i.host) for i in out.instances] == ["192.168.1.5", "10.0.0.9", "0.0.0.0", "0.0.0.0"]
