"""zeekctl's worker keys in zeek-mgmt's configuration parser: lb_procs expansion,
pin_cpus, lb_method, af_packet_* redefs, and unknown keys as errors."""

from __future__ import annotations

import pytest

from client.clusterconfig import ParsedConfig, parse_cluster_config
from mgmt.broker.records import Configuration, Node
from mgmt.core.launchable import problems
from mgmt.core.noderedefs import redef_code

MANAGER = "[manager]\nrole = manager\n\n"


def parse(text: str, *, unknown_keys_ok: bool = False) -> ParsedConfig:
    return parse_cluster_config(
        text,
        hostname="h",
        config_id="c",
        zeekctl_keys=True,
        unknown_keys_ok=unknown_keys_ok,
    )


def config(text: str) -> Configuration:
    parsed = parse(text)
    assert parsed.config is not None, parsed.diagnostics
    return parsed.config


def workers(cfg: Configuration) -> dict[str, Node]:
    return {n.name: n for n in cfg.nodes if n.name != "manager"}


def test_lb_procs_af_packet_expands_to_numbered_pinned_workers() -> None:
    """lb_procs = 4 with af_packet on lo: worker-01-1..4, af_packet::lo, CPUs from pin_cpus."""
    cfg = config(
        MANAGER + "[worker-01]\nrole = worker\ninterface = lo\nlb_procs = 4\n"
        "lb_method = af_packet\npin_cpus = 0,1\n"
    )
    nodes = workers(cfg)
    assert list(nodes) == [f"worker-01-{i}" for i in range(1, 5)]
    assert {n.interface for n in nodes.values()} == {"af_packet::lo"}
    assert [n.cpu_affinity for n in nodes.values()] == [0, 1, 0, 1]
    assert [n.name for n in cfg.nodes][0] == "manager"


def test_af_packet_keys_become_node_redefs() -> None:
    """af_packet_* keys reach every expanded node as redefs the agent passes to zeek -e."""
    cfg = config(
        MANAGER + "[w]\nrole = worker\ninterface = eth0\nlb_procs = 2\nlb_method = custom\n"
        "af_packet_fanout_id = 42\naf_packet_fanout_mode = AF_Packet::FANOUT_HASH\n"
        "env = A=1\n"
    )
    for node in workers(cfg).values():
        assert node.interface == "eth0"
        assert node.env["A"] == "1"
        assert redef_code(node.env) == (
            "redef AF_Packet::fanout_id = 42; "
            "redef AF_Packet::fanout_mode = AF_Packet::FANOUT_HASH;"
        )
    assert problems(cfg) == []


def test_lb_method_interfaces_assigns_one_interface_per_process() -> None:
    """lb_method = interfaces: process i gets the i-th interface of lb_interfaces."""
    cfg = config(
        MANAGER + "[w]\nrole = worker\nlb_procs = 2\nlb_method = interfaces\n"
        "lb_interfaces = eth1, eth2\n"
    )
    assert {n: w.interface for n, w in workers(cfg).items()} == {"w-1": "eth1", "w-2": "eth2"}


def test_worker_without_lb_procs_is_kept_with_first_pinned_cpu() -> None:
    """A worker without lb_procs stays one node; pin_cpus gives it the first CPU."""
    cfg = config(MANAGER + "[w]\nrole = worker\ninterface = lo\npin_cpus = 3,4\n")
    assert workers(cfg)["w"].cpu_affinity == 3


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ("role = proxy\nlb_procs = 2\nlb_method = custom\n",
         "load balancing node config options are only for worker nodes"),
        ("role = worker\nlb_procs = x\nlb_method = custom\n",
         "number of load-balanced processes must be an integer"),
        ("role = worker\nlb_procs = 0\nlb_method = custom\n",
         "number of load-balanced processes must be greater than zero"),
        ("role = worker\nlb_procs = 2\n", "no load balancing method given"),
        ("role = worker\nlb_method = custom\n",
         "number of load-balanced processes not specified"),
        ("role = worker\nlb_procs = 2\nlb_method = pf_ring\n",
         "unknown load balancing method 'pf_ring' (zeek-mgmt knows: af_packet, custom, "
         "interfaces)"),
        ("role = worker\nlb_procs = 2\nlb_method = interfaces\nlb_interfaces = a\n",
         "number of load-balanced interfaces is not same as number of load-balanced processes"),
        ("role = worker\nlb_procs = 2\nlb_method = af_packet\n",
         "lb_method af_packet needs an interface"),
        ("role = worker\nlb_procs = 2\nlb_method = custom\npin_cpus = 1,-2\n",
         "pin cpus list must contain only non-negative integers"),
        ("role = worker\nlb_procs = 2\nlb_method = custom\nport = 3000\n",
         "port cannot be set with lb_procs (each process would need it)"),
        ("role = worker\nlb_prcs = 2\n", "unknown key lb_prcs (--allow-unknown-keys ignores them)"),
        ("role = worker\nhost = a\nfoo = 1\n",
         "unknown keys foo, host (--allow-unknown-keys ignores them)"),
    ],
)  # fmt: skip
def test_bad_worker_keys_are_errors_naming_the_section(section: str, message: str) -> None:
    """Bad zeekctl keys and unknown keys fail the configuration, naming section and key."""
    parsed = parse(MANAGER + "[w]\n" + section)
    assert parsed.config is None
    assert parsed.errors == (f'invalid node "w" configuration: {message}',)


def test_expanded_name_clashing_with_a_section_is_an_error() -> None:
    """lb_procs may not produce a node name another section already has."""
    parsed = parse(
        MANAGER + "[w]\nrole = worker\nlb_procs = 2\nlb_method = custom\n[w-2]\nrole = worker\n"
    )
    assert parsed.errors == (
        'invalid node "w" configuration: expanded node name "w-2" is already a section',
    )


def test_allow_unknown_keys_keeps_zeek_clients_warning() -> None:
    """With unknown keys allowed, they are ignored with zeek-client's warning."""
    parsed = parse(MANAGER + "[w]\nrole = worker\nhost = a\n", unknown_keys_ok=True)
    assert parsed.config is not None
    assert parsed.errors == ()
    assert [d.message for d in parsed.diagnostics] == ["ignoring unexpected keys: host"]


def test_default_section_values_reach_expanded_nodes() -> None:
    """[DEFAULT] keys, interpolated per section, are inherited by the expanded nodes."""
    cfg = config(
        "[DEFAULT]\nenv = SITE=%(role)s\n\n"
        + MANAGER
        + "[w]\nrole = worker\ninterface = lo\nlb_procs = 2\nlb_method = custom\n"
    )
    assert {n.env["SITE"] for n in workers(cfg).values()} == {"worker"}
    assert {n.name: n.env for n in cfg.nodes}["manager"] == {"SITE": "manager"}
