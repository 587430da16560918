"""The cluster configuration parser: errors, warnings and results as zeek-client's.

Each case is checked against fixed expectations and, where zeek-client 1.5.0 is
importable, against zeek-client's own parser run on the same text.
"""

from __future__ import annotations

import configparser
import ipaddress
import json
import logging
import socket

import pytest

from client.clusterconfig import parse_cluster_config
from mgmt.broker.data import Port
from mgmt.broker.records import ClusterRole, Configuration, Instance, Node
from mgmt.core.logaction import Level, Log
from tests.support.reference import CONFIGS, config_files

HOST = socket.gethostname() or "localhost"
AGENT = f"agent-{HOST}"


def parse(text: str):
    return parse_cluster_config(text, hostname=HOST, config_id="cfg-1", source="t.cfg")


def err(message: str) -> tuple[Log, ...]:
    return (Log(Level.ERROR, message),)


# (case id, config text, expected diagnostics, whether a configuration results)
CASES: list[tuple[str, str, tuple[Log, ...], bool]] = [
    ("empty", "", (), True),
    ("one node", "[manager]\nrole = manager\n", (), True),
    (
        "type alias",
        "[p]\ntype = proxy\n",
        (Log(Level.WARNING, "ignoring unexpected keys: type"),),
        True,
    ),
    (
        "qualified roles",
        "[a]\nrole = Supervisor::logger\n[b]\nrole = ClusterRole.WORKER\n[c]\nrole = none\n",
        (),
        True,
    ),
    (
        "no role",
        "[m]\ninterface = lo\n",
        err('invalid node "m" configuration: node requires a role'),
        False,
    ),
    (
        "empty role",
        "[m]\nrole =\n",
        err('invalid node "m" configuration: node requires a role'),
        False,
    ),
    (
        "bad role",
        "[m]\nrole = frob\n",
        err('invalid node "m" configuration: role "frob" is invalid'),
        False,
    ),
    (
        "inline comment",
        "[m]\nrole = worker # x\n",
        err('invalid node "m" configuration: role "worker # x" is invalid'),
        False,
    ),
    (
        "bad port",
        "[m]\nrole = manager\nport = 20x\n",
        err('invalid node "m" configuration: cannot convert "m.port" value "20x" to int'),
        False,
    ),
    (
        "port range",
        "[m]\nrole = manager\nport = 70000\n",
        err('invalid node "m" configuration: port 70000 outside valid range'),
        False,
    ),
    (
        "metrics range",
        "[m]\nrole = manager\nmetrics_port = 0\n",
        err('invalid node "m" configuration: metrics port None outside valid range'),
        False,
    ),
    (
        "bad cpu",
        "[m]\nrole = worker\ncpu_affinity = two\n",
        err('invalid node "m" configuration: cannot convert "m.cpu_affinity" value "two" to int'),
        False,
    ),
    (
        "bad env",
        "[m]\nrole = worker\nenv = A=1 B\n",
        err('invalid node "m" configuration: env value "A=1 B" is invalid'),
        False,
    ),
    (
        "env and scripts",
        '[m]\nrole = worker\nenv = A="x y" B==2 C=\nscripts = z.zeek "a b.zeek" m.zeek\n',
        (),
        True,
    ),
    (
        "state and unknown keys",
        "[m]\nrole = worker\nstate = STOPPED\nfoo = 1\nBar = 2\n",
        (
            Log(Level.WARNING, 'ignoring node "m" state "STOPPED" in configuration'),
            Log(Level.WARNING, "ignoring unexpected keys: bar, foo, state"),
        ),
        True,
    ),
    # configparser's items() turns a missing value into "", so zeek-client's "needs a
    # value" check never fires (wire spec §8.2 says otherwise; the source wins).
    ("key without value", "[m]\nrole = worker\ninterface\n", (), True),
    (
        "mixed instances",
        "[a]\nrole = manager\ninstance = i1\n[b]\nrole = worker\n",
        err("either all or no nodes must state instances"),
        False,
    ),
    (
        "instances but no node instance",
        "[instances]\ni1\n[a]\nrole = manager\n",
        err("omit instances section when skipping instances in node definitions"),
        False,
    ),
    (
        "implied instances",
        "[a]\nrole = manager\ninstance = i2\n[b]\nrole = worker\ninstance = i1\n",
        (),
        True,
    ),
    (
        "listening instances",
        "[instances]\ni1 = 127.0.0.1:2151\ni2 = [::1]:2152\ni3 = ::2:2153\ni4 =\ni5\n"
        "[a]\nrole = manager\ninstance = i1\n",
        (),
        True,
    ),
    (
        "bad instance spec",
        "[instances]\ni1 = :2151\n",
        err('invalid spec for instance "i1": ":2151" should be <host>:<port>'),
        False,
    ),
    (
        "instance no port",
        "[instances]\ni1 = 10.0.0.1:\n",
        err('invalid spec for instance "i1": "10.0.0.1:" should be <host>:<port>'),
        False,
    ),
    ("default section", "[DEFAULT]\ninterface = lo\n[w]\nrole = worker\n", (), True),
    ("percent interpolation", "[w]\nrole = worker\nenv = A=%(role)s\n", (), True),
]


@pytest.mark.parametrize(
    ("text", "expected", "ok"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_cases(text: str, expected: tuple[Log, ...], ok: bool) -> None:
    """Each configuration gives exactly zeek-client's diagnostics and outcome."""
    parsed = parse(text)
    assert parsed.diagnostics == expected
    assert (parsed.config is not None) == ok


def test_instance_free_config_uses_local_agent() -> None:
    """Without any instance names every node runs on agent-<hostname>."""
    config = parse("[manager]\nrole = manager\n[w]\nrole = worker\ninterface = lo\n").config
    assert config is not None
    assert config.id == "cfg-1"
    assert config.instances == (Instance(AGENT),)
    assert {n.instance for n in config.nodes} == {AGENT}
    w = config.node("w")
    assert w is not None and w.interface == "lo" and w.role is ClusterRole.WORKER


def test_values_are_typed_and_sorted() -> None:
    """Ports become Port values, scripts are sorted, env items split at the first '='."""
    config = parse(CASES[13][1]).config
    assert config is not None
    (node,) = config.nodes
    assert node.scripts == ("a b.zeek", "m.zeek", "z.zeek")
    assert dict(node.env) == {"A": "x y", "B": "=2", "C": ""}
    config = parse("[m]\nrole = manager\nport = 2300\nmetrics_port = 9100\n").config
    assert config is not None
    assert config.nodes[0].p == Port(2300) and config.nodes[0].metrics_port == Port(9100)


def test_listening_instances() -> None:
    """host:port instances keep their address and port; brackets are stripped."""
    config = parse(dict((c[0], c[1]) for c in CASES)["listening instances"]).config
    assert config is not None
    by_name = {i.name: i for i in config.instances}
    assert by_name["i1"] == Instance("i1", ipaddress.ip_address("127.0.0.1"), Port(2151))
    assert by_name["i2"].host == ipaddress.ip_address("::1")
    assert by_name["i3"].host == ipaddress.ip_address("::2")
    assert by_name["i4"] == Instance("i4")
    assert by_name["i5"] == Instance("i5")


def test_crash_cases_become_errors() -> None:
    """Where zeek-client crashes (duplicates, host names, bad quotes) we report an error."""
    dup = (CONFIGS / "duplicate-section.cfg").read_text()
    parsed = parse_cluster_config(dup, hostname=HOST, config_id="x", source="duplicate-section.cfg")
    assert parsed.config is None
    assert parsed.errors == (
        "While reading from 'duplicate-section.cfg' [line  4]: section 'manager' already exists",
    )
    parsed = parse("[instances]\ni1 = example.com:2151\n")
    assert parsed.config is None and "should be <host>:<port>" in parsed.errors[0]
    parsed = parse('[w]\nrole = worker\nscripts = "a.zeek\n')
    assert parsed.errors == ('invalid node "w" configuration: scripts value ""a.zeek" is invalid',)
    parsed = parse("[w]\nrole = worker\nenv = A=50%\n")
    assert parsed.config is None and "'%'" in parsed.errors[0]


# --------------------------------------------------------------------------------------
# Cross-check with zeek-client's own parser


def _normalise(config: Configuration) -> Configuration:
    return Configuration(
        "id",
        tuple(sorted(config.instances, key=lambda i: i.name)),
        tuple(sorted(config.nodes, key=lambda n: n.name)),
    )


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.mark.parametrize(
    "text",
    [c[1] for c in CASES] + [p.read_text() for p in config_files() if "duplicate" not in p.name],
    ids=[c[0] for c in CASES] + [p.name for p in config_files() if "duplicate" not in p.name],
)
def test_same_as_zeek_client(text: str) -> None:
    """Our parser and zeek-client's give the same messages and the same wire configuration."""
    zc_types = pytest.importorskip("zeekclient.types")
    zc_log = logging.getLogger("zeekclient.logs")
    handler = _Records()
    zc_log.addHandler(handler)
    old_level = zc_log.level
    zc_log.setLevel(logging.DEBUG)
    try:
        cfp = configparser.ConfigParser(allow_no_value=True)
        cfp.read_string(text)
        theirs = zc_types.Configuration.from_config_parser(cfp)
    finally:
        zc_log.removeHandler(handler)
        zc_log.setLevel(old_level)
    expected = tuple(Log(Level[r.levelname], r.getMessage()) for r in handler.records)
    parsed = parse(text)
    assert parsed.diagnostics == expected
    if theirs is None:
        assert parsed.config is None
        return
    assert parsed.config is not None
    wire = json.loads(theirs.to_brokertype().serialize())
    assert _normalise(Configuration.from_json(wire)) == _normalise(parsed.config)


def test_node_defaults() -> None:
    """Unset optional node fields stay unset; env is an empty mapping."""
    config = parse("[m]\nrole = manager\n").config
    assert config is not None
    assert config.nodes[0] == Node("m", AGENT, ClusterRole.MANAGER)
