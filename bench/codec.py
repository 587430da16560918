"""Codec benchmark: zeek-mgmt's Broker JSON codec vs zeek-client 1.5.0's.

Run from the repository root with the environment that has zeek-client installed::

    /tmp/zc/bin/python bench/codec.py [--runs N]

Two cases, each a whole data message as it travels on the wire:

* ``configuration-1000``: a ``stage_configuration_request`` carrying a Configuration of
  1,000 nodes (each with 3 scripts, 3 env entries and 2 options) on 10 instances.
  zeek-client's ``types.Node.to_brokertype()`` does serialize options (its CLI just never
  sets them), so both sides carry the same options.
* ``get-nodes-1000``: a ``get_nodes_response`` with one Result whose data is a vector of
  1,000 NodeStatus records.

Encode = objects -> JSON text; decode = JSON text -> objects (for zeek-client the path its
CLI takes: ``brokertypes.unserialize`` -> ``ZeekEvent.from_vector`` -> ``Registry.make_event``
-> ``types.*.from_brokertype``; for ours the path a session takes: a result message in our
encoding is checked and read from its text by :mod:`mgmt.broker.fastdecode`, any other
message is parsed and decoded, and the NodeStatus rows come from
:func:`mgmt.broker.fastdecode.node_statuses`). ``check_equivalent`` also decodes
zeek-client's spelling of the same messages, which takes the general path. Times are
medians of ``--runs`` runs. The last lines are ``ratio <case> vs zeek-client: <N.N>x`` =
zeek-client (encode + decode) / ours (encode + decode); higher is better for us.
"""

from __future__ import annotations

import argparse
import gc
import ipaddress
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from zeekclient import brokertypes as bt  # noqa: E402
from zeekclient import events as zev  # noqa: E402
from zeekclient import types as zt  # noqa: E402

from mgmt.broker import events as be  # noqa: E402
from mgmt.broker import fastdecode  # noqa: E402
from mgmt.broker import messages as bm  # noqa: E402
from mgmt.broker import records as br  # noqa: E402
from mgmt.broker.data import Port  # noqa: E402

TOPIC = "zeek/management/controller"
REQID = "9dfde65e-e735-11f1-b50f-02fc00000001"
N = 1000
ROLES = [br.ClusterRole.MANAGER, br.ClusterRole.LOGGER, br.ClusterRole.PROXY]


def role_of(i: int) -> br.ClusterRole:
    return ROLES[i] if i < len(ROLES) else br.ClusterRole.WORKER


# --------------------------------------------------------------------------------------
# Inputs, built once per side from the same data.


def our_configuration() -> br.Configuration:
    instances = tuple(
        br.Instance(f"agent-{i:02d}", ipaddress.ip_address(f"10.0.0.{i + 1}"), Port(2151))
        for i in range(10)
    )
    nodes = tuple(
        br.Node(
            name=f"node-{i:04d}",
            instance=f"agent-{i % 10:02d}",
            role=role_of(i),
            p=Port(2200 + i),
            scripts=("site/local.zeek", f"site/node-{i}.zeek", "policy/misc/stats.zeek"),
            options=(br.Option("Site::local_nets", "10.0.0.0/8"), br.Option("Log::x", str(i))),
            interface=f"eth{i % 4}",
            cpu_affinity=i % 32,
            env={"ZEEK_DEBUG": "0", "GREETING": "hello world", "NODE": str(i)},
            metrics_port=Port(9000 + i),
        )
        for i in range(N)
    )
    return br.Configuration("ad9c78f0-e735-11f1-9f42-02fc00000001", instances, nodes)


def zc_configuration(cfg: br.Configuration) -> Any:
    zc = zt.Configuration()
    zc.id = cfg.id
    zc.instances = [
        zt.Instance(i.name, str(i.host), None if i.listen_port is None else i.listen_port.number)
        for i in cfg.instances
    ]
    zc.nodes = [
        zt.Node(
            n.name,
            n.instance,
            zt.ClusterRole[n.role.name],
            zt.State[n.state.name],
            None if n.p is None else n.p.number,
            list(n.scripts or ()),
            [zt.Option(o.name, o.value) for o in n.options or ()],
            n.interface,
            n.cpu_affinity,
            dict(n.env),
            None if n.metrics_port is None else n.metrics_port.number,
        )
        for n in cfg.nodes
    ]
    return zc


def our_statuses() -> tuple[br.NodeStatus, ...]:
    return tuple(
        br.NodeStatus(
            node=f"node-{i:04d}",
            state=br.State.RUNNING,
            mgmt_role=br.Role.NONE,
            cluster_role=role_of(i),
            pid=40000 + i,
            p=Port(2200 + i),
            metrics_port=Port(9000 + i),
        )
        for i in range(N)
    )


def zc_statuses(statuses: tuple[br.NodeStatus, ...]) -> list[Any]:
    return [
        zt.NodeStatus(
            s.node,
            zt.State[s.state.name],
            zt.ManagementRole[s.mgmt_role.name],
            zt.ClusterRole[s.cluster_role.name],
            s.pid,
            None if s.p is None else s.p.number,
            None if s.metrics_port is None else s.metrics_port.number,
        )
        for s in statuses
    ]


# --------------------------------------------------------------------------------------
# The operations


def ours_encode_config(cfg: br.Configuration) -> str:
    return bm.data_message_text(TOPIC, be.event_to_json(be.StageConfigurationRequest(REQID, cfg)))


def ours_decode_config(text: str) -> br.Configuration:
    msg = bm.parse_message(text)
    assert isinstance(msg, bm.DataMessage)
    event = be.event_from_json(msg.payload)
    assert isinstance(event, be.StageConfigurationRequest)
    return event.config


def zc_encode_config(cfg: Any) -> str:
    event = zev.StageConfigurationRequest(REQID, cfg.to_brokertype())
    return bt.DataMessage(TOPIC, event.to_brokertype()).serialize()


def zc_receive(text: str) -> Any:
    msg = bt.unserialize(text)
    evt = bt.ZeekEvent.from_vector(msg.data)
    return zev.Registry.make_event(evt.name, *evt.args)


def zc_decode_config(text: str) -> Any:
    return zt.Configuration.from_brokertype(zc_receive(text).config)


def ours_encode_nodes(statuses: tuple[br.NodeStatus, ...]) -> str:
    result = br.Result(REQID, True, "agent-00", statuses)
    return bm.data_message_text(TOPIC, be.event_to_json(be.GetNodesResponse(REQID, (result,))))


def ours_decode_nodes(text: str) -> list[tuple[br.NodeStatus, ...]]:
    # As a session decodes it: from the text when it is in our encoding, else parsed.
    fast = fastdecode.decode_result_event(text)
    if fast is None:
        msg = bm.parse_message(text)
        assert isinstance(msg, bm.DataMessage)
        event = be.event_from_json(msg.payload)
    else:
        event = fast[1]
    assert isinstance(event, be.GetNodesResponse)
    return [fastdecode.node_statuses(r) for r in event.results]


def zc_encode_nodes(statuses: list[Any]) -> str:
    data = bt.Vector([s.to_brokertype() for s in statuses])
    result = zt.Result(REQID, True, "agent-00", data)
    event = zev.GetNodesResponse(REQID, bt.Vector([result.to_brokertype()]))
    return bt.DataMessage(TOPIC, event.to_brokertype()).serialize()


def zc_decode_nodes(text: str) -> list[list[Any]]:
    results = [zt.Result.from_brokertype(r) for r in zc_receive(text).results]
    return [[zt.NodeStatus.from_brokertype(d) for d in r.data] for r in results]


# --------------------------------------------------------------------------------------


def time_once(fn: Callable[[Any], Any], arg: Any) -> float:
    """Wall time of ``fn(arg)`` in ms. Like ``timeit``, the cyclic garbage collector is off
    while timing (a full collection runs first), so neither side pays for collections
    triggered by the other's leftover objects."""
    gc.collect()
    gc.disable()
    try:
        start = time.perf_counter()
        fn(arg)
        return (time.perf_counter() - start) * 1000
    finally:
        gc.enable()


def measure(ops: list[tuple[Callable[[Any], Any], Any]], runs: int) -> list[float]:
    """Median time of each op. Runs are interleaved (op 1, op 2, ..., op 1, ...) so that
    load from other processes affects all ops alike."""
    times: list[list[float]] = [[] for _ in ops]
    for _ in range(runs):
        for i, (fn, arg) in enumerate(ops):
            times[i].append(time_once(fn, arg))
    return [statistics.median(t) for t in times]


def check_equivalent() -> None:
    """Both codecs read each other's output (so we time equivalent work)."""
    cfg = our_configuration()
    assert len(zc_decode_config(ours_encode_config(cfg)).nodes) == N
    node = ours_decode_config(zc_encode_config(zc_configuration(cfg))).node("node-0007")
    expected = cfg.node("node-0007")
    assert node is not None and expected is not None
    # zeek-client holds options in a Python set, so their order varies.
    assert set(node.options or ()) == set(expected.options or ())
    assert node.with_changes(options=None) == expected.with_changes(options=None)
    statuses = our_statuses()
    assert len(zc_decode_nodes(ours_encode_nodes(statuses))[0]) == N
    assert ours_decode_nodes(zc_encode_nodes(zc_statuses(statuses))) == [statuses]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15, help="runs per measurement")
    args = parser.parse_args(argv)
    check_equivalent()

    cfg, statuses = our_configuration(), our_statuses()
    cases = [
        (
            "configuration-1000",
            (ours_encode_config, ours_decode_config, cfg),
            (zc_encode_config, zc_decode_config, zc_configuration(cfg)),
        ),
        (
            "get-nodes-1000",
            (ours_encode_nodes, ours_decode_nodes, statuses),
            (zc_encode_nodes, zc_decode_nodes, zc_statuses(statuses)),
        ),
    ]
    print(f"median of {args.runs} runs, milliseconds")
    print(f"{'case':<20} {'codec':<12} {'encode':>9} {'decode':>9} {'total':>9} {'bytes':>9}")
    ratios = []
    for name, (oenc, odec, oobj), (zenc, zdec, zobj) in cases:
        otext, ztext = oenc(oobj), zenc(zobj)
        oe, od, ze, zd = measure(
            [(oenc, oobj), (odec, otext), (zenc, zobj), (zdec, ztext)], args.runs
        )
        for label, enc_ms, dec_ms, size in (
            ("zeek-mgmt", oe, od, len(otext)),
            ("zeek-client", ze, zd, len(ztext)),
        ):
            print(
                f"{name:<20} {label:<12} {enc_ms:9.1f} {dec_ms:9.1f} {enc_ms + dec_ms:9.1f}"
                f" {size:9d}"
            )
        print(f"{name:<20} {'speed-up':<12} {ze / oe:8.1f}x {zd / od:8.1f}x")
        ratios.append((name, (ze + zd) / (oe + od)))
    for name, ratio in ratios:
        print(f"ratio {name} vs zeek-client: {ratio:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
