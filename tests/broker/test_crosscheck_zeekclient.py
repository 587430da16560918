"""Cross-check against the real client: zeek-client 1.5.0's own parser and serializer.

Both directions, for generated values restricted to what zeek-client can represent (wire
spec §2.2):

* what we encode, ``zeekclient.brokertypes.unserialize`` / ``zeekclient.types.*``
  ``.from_brokertype`` parse to values equal to ours;
* what zeek-client serializes (``.to_brokertype().serialize()``), we decode to values
  equal to the originals.

Records are compared through a plain "key" (tuples of Python values) because zeek-client
keeps only port numbers and holds options in lists built from sets (order varies).
"""

from __future__ import annotations

import datetime
import ipaddress
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mgmt.broker import data as bd
from mgmt.broker import events as be
from mgmt.broker import messages as bm
from mgmt.broker import records as br
from tests.support import strategies as S

bt = pytest.importorskip("zeekclient.brokertypes")
zt = pytest.importorskip("zeekclient.types")
zev = pytest.importorskip("zeekclient.events")

TOPIC = "zeek/management/controller"


def to_zc(value: Any) -> Any:
    """Our Python Broker value as the brokertypes object zeek-client would build."""
    if value is None:
        return bt.NoneType()
    if isinstance(value, bool):
        return bt.Boolean(value)
    if isinstance(value, bd.Count):
        return bt.Count(int(value))
    if isinstance(value, int):
        return bt.Integer(value)
    if isinstance(value, float):
        return bt.Real(value)
    if isinstance(value, bd.Timespan):
        return bt.Timespan(datetime.timedelta(microseconds=value.ns // 1000))
    if isinstance(value, datetime.datetime):
        return bt.Timestamp(value)
    if isinstance(value, bd.EnumValue):
        return bt.Enum(str(value))
    if isinstance(value, str):
        return bt.String(value)
    if isinstance(value, ipaddress.IPv4Address | ipaddress.IPv6Address):
        return bt.Address(value)
    if isinstance(value, ipaddress.IPv4Network | ipaddress.IPv6Network):
        return bt.Subnet(value)
    if isinstance(value, bd.Port):
        return bt.Port(value.number, bt.Port.Proto(value.proto.value))
    if isinstance(value, bd.BrokerSet):
        return bt.Set({to_zc(v) for v in value})
    if isinstance(value, bd.Table):
        return bt.Table({to_zc(k): to_zc(v) for k, v in value.items()})
    if isinstance(value, tuple):
        return bt.Vector([to_zc(v) for v in value])
    raise TypeError(type(value))


def our_text(value: Any) -> str:
    return json.dumps(bd.to_json(value))


# --------------------------------------------------------------------------------------
# Generic values


@given(S.values(zc_safe=True))
def test_values_we_encode_parse_in_zeek_client(value: Any) -> None:
    """zeek-client's brokertypes parse what we encode to the value we meant."""
    assert bt.unserialize(our_text(value)) == to_zc(value)


@given(S.values(zc_safe=True))
def test_values_zeek_client_encodes_decode_here(value: Any) -> None:
    """We decode what zeek-client's brokertypes serialize, exactly (also the type tags:
    mapping back into zeek-client's types gives the same object)."""
    zc_value = to_zc(value)
    decoded = bd.from_json(json.loads(zc_value.serialize()))
    assert decoded == value
    assert to_zc(decoded) == zc_value


# --------------------------------------------------------------------------------------
# Records: compare through plain keys.


def port_no(p: bd.Port | None) -> int | None:
    return None if p is None else p.number


def key_instance(i: br.Instance) -> tuple[Any, ...]:
    return (i.name, str(i.host), port_no(i.listen_port))


def zkey_instance(i: Any) -> tuple[Any, ...]:
    return (i.name, str(i.host), None if i.port is None else int(i.port))


def _node_key(n: Any, port: int | None, metrics_port: int | None) -> tuple[Any, ...]:
    options = frozenset((o.name, o.value) for o in n.options or ()) or None
    return (
        n.name,
        n.instance,
        n.role.name,
        n.state.name,
        port,
        None if n.scripts is None else tuple(n.scripts),
        options,
        n.interface,
        n.cpu_affinity,
        tuple(sorted(n.env.items())),
        metrics_port,
    )


def key_node(n: br.Node) -> tuple[Any, ...]:
    return _node_key(n, port_no(n.p), port_no(n.metrics_port))


def zkey_node(n: Any) -> tuple[Any, ...]:
    return _node_key(n, n.port, n.metrics_port)


def key_config(c: br.Configuration) -> tuple[Any, ...]:
    return (
        c.id,
        sorted(key_instance(i) for i in c.instances),
        sorted(key_node(n) for n in c.nodes),
    )


def zkey_config(c: Any) -> tuple[Any, ...]:
    return (
        c.id,
        sorted(zkey_instance(i) for i in c.instances),
        sorted(zkey_node(n) for n in c.nodes),
    )


def _status_key(s: Any, port: int | None, metrics_port: int | None) -> tuple[Any, ...]:
    return (s.node, s.state.name, s.mgmt_role.name, s.cluster_role.name, s.pid, port, metrics_port)


def key_status(s: br.NodeStatus) -> tuple[Any, ...]:
    return _status_key(s, port_no(s.p), port_no(s.metrics_port))


def zkey_status(s: Any) -> tuple[Any, ...]:
    return _status_key(s, s.port, s.metrics_port)


def key_result(r: br.Result) -> tuple[Any, ...]:
    data = None if r.data is None else to_zc(r.data)
    return (r.reqid, r.success, r.instance, data, r.error, r.node)


def zkey_result(r: Any) -> tuple[Any, ...]:
    return (r.reqid, r.success, r.instance, r.data, r.error, r.node)


def zc_node(n: br.Node) -> Any:
    return zt.Node(
        n.name,
        n.instance,
        zt.ClusterRole[n.role.name],
        zt.State[n.state.name],
        port_no(n.p),
        None if n.scripts is None else list(n.scripts),
        None if n.options is None else [zt.Option(o.name, o.value) for o in n.options],
        n.interface,
        n.cpu_affinity,
        dict(n.env),
        port_no(n.metrics_port),
    )


def zc_config(c: br.Configuration) -> Any:
    cfg = zt.Configuration()
    cfg.id = c.id
    cfg.instances = [zt.Instance(i.name, str(i.host), port_no(i.listen_port)) for i in c.instances]
    cfg.nodes = [zc_node(n) for n in c.nodes]
    return cfg


def zc_status(s: br.NodeStatus) -> Any:
    return zt.NodeStatus(
        s.node,
        zt.State[s.state.name],
        zt.ManagementRole[s.mgmt_role.name],
        zt.ClusterRole[s.cluster_role.name],
        s.pid,
        port_no(s.p),
        port_no(s.metrics_port),
    )


@given(S.configurations(zc_safe=True))
def test_configuration_we_encode_parses_in_zeek_client(config: br.Configuration) -> None:
    """types.Configuration.from_brokertype reads our Configuration field for field."""
    parsed = zt.Configuration.from_brokertype(bt.unserialize(our_text(config)))
    assert zkey_config(parsed) == key_config(config)


@given(S.configurations(zc_safe=True))
def test_configuration_from_zeek_client_decodes_here(config: br.Configuration) -> None:
    """We decode zeek-client's serialized Configuration (options included) to ours."""
    text = zc_config(config).to_brokertype().serialize()
    assert key_config(br.Configuration.from_json(json.loads(text))) == key_config(config)


@given(S.node_statuses(zc_safe=True))
def test_node_status_both_ways(status: br.NodeStatus) -> None:
    """NodeStatus: ours parses in zeek-client, zeek-client's decodes here."""
    parsed = zt.NodeStatus.from_brokertype(bt.unserialize(our_text(status)))
    assert zkey_status(parsed) == key_status(status)
    text = zc_status(status).to_brokertype().serialize()
    assert br.NodeStatus.from_json(json.loads(text)) == status


@given(S.instances(zc_safe=True))
def test_instance_both_ways(inst: br.Instance) -> None:
    """Instance: ours parses in zeek-client, zeek-client's decodes here."""
    assert zkey_instance(zt.Instance.from_brokertype(bt.unserialize(our_text(inst)))) == (
        key_instance(inst)
    )
    zc = zt.Instance(inst.name, str(inst.host), port_no(inst.listen_port))
    assert br.Instance.from_json(json.loads(zc.to_brokertype().serialize())) == inst


@given(S.options(), S.node_outputs())
def test_option_and_node_outputs_both_ways(opt: br.Option, out: br.NodeOutputs) -> None:
    """Option and NodeOutputs: ours parse in zeek-client, zeek-client's decode here."""
    zopt = zt.Option.from_brokertype(bt.unserialize(our_text(opt)))
    assert (zopt.name, zopt.value) == (opt.name, opt.value)
    assert (
        br.Option.from_json(json.loads(zt.Option(opt.name, opt.value).to_brokertype().serialize()))
        == opt
    )
    zout = zt.NodeOutputs.from_brokertype(bt.unserialize(our_text(out)))
    assert (zout.stdout, zout.stderr) == (out.stdout, out.stderr)
    text = zt.NodeOutputs(out.stdout, out.stderr).to_brokertype().serialize()
    assert br.NodeOutputs.from_json(json.loads(text)) == out


@given(S.results(zc_safe=True))
def test_result_both_ways(result: br.Result) -> None:
    """Result with arbitrary data: zeek-client reads every field (data as brokertype),
    and we decode zeek-client's serialized Result."""
    parsed = zt.Result.from_brokertype(bt.unserialize(our_text(result)))
    assert zkey_result(parsed) == key_result(result)
    zc = zt.Result(
        result.reqid,
        result.success,
        result.instance,
        None if result.data is None else to_zc(result.data),
        result.error,
        result.node,
    )
    assert br.Result.from_json(json.loads(zc.to_brokertype().serialize())) == result


@given(st.lists(S.node_statuses(zc_safe=True), max_size=5))
def test_get_nodes_result_data(statuses: list[br.NodeStatus]) -> None:
    """A NodeStatusVec in Result.data reads in zeek-client as its get-nodes renderer does."""
    result = br.Result("r", True, "agent-testbox", tuple(statuses))
    parsed = zt.Result.from_brokertype(bt.unserialize(our_text(result)))
    assert [zkey_status(zt.NodeStatus.from_brokertype(d)) for d in parsed.data] == [
        key_status(s) for s in statuses
    ]


# --------------------------------------------------------------------------------------
# Events: the client's own receive path (controller.py: unserialize -> ZeekEvent.from_vector
# -> Registry.make_event).


def zc_event_from_text(text: str) -> Any:
    msg = bt.unserialize(text)
    assert isinstance(msg, bt.DataMessage)
    evt = bt.ZeekEvent.from_vector(msg.data)
    return zev.Registry.make_event(evt.name, *evt.args)


CLIENT_ONLY = {"Management::Controller::API::test_noop_request"}


def test_catalogue_matches_zeek_client() -> None:
    """Every event zeek-client knows (but test_noop_request, which Zeek lacks, wire spec
    §5.10) is in our catalogue with the same arity."""
    for name, cls in zev.Registry.EVENT_TYPES.items():
        if name in CLIENT_ONLY:
            continue
        spec = be.spec_by_name(name)
        assert spec is not None, name
        assert len(spec.args) == len(cls.ARG_NAMES), name


ZC_EVENT_SPECS = [s for s in S.event_specs() if s.name in zev.Registry.EVENT_TYPES]


@pytest.mark.parametrize("spec", ZC_EVENT_SPECS, ids=lambda sp: sp.name.split("::")[-1])
def test_events_parse_in_zeek_client(spec: be.EventSpec) -> None:
    """Each client-known event we send is accepted by the client's receive path, with
    the argument types it type-checks, and its records read back equal."""

    @settings(max_examples=25)
    @given(S.events_of(spec, zc_safe=True))
    def check(event: Any) -> None:
        text = bm.data_message_text(TOPIC, be.event_to_json(event))
        zc = zc_event_from_text(text)
        assert type(zc).NAME == spec.name
        for fname in spec.field_names:
            ours, theirs = getattr(event, fname), getattr(zc, fname)
            if isinstance(ours, str):
                assert theirs.to_py() == ours
            elif isinstance(ours, br.Configuration):
                assert zkey_config(zt.Configuration.from_brokertype(theirs)) == key_config(ours)
            elif isinstance(ours, br.Result):
                assert zkey_result(zt.Result.from_brokertype(theirs)) == key_result(ours)
            elif isinstance(ours, bd.BrokerSet):
                assert theirs.to_py() == set(ours)
            elif isinstance(ours, tuple):
                assert [zkey_result(zt.Result.from_brokertype(r)) for r in theirs] == [
                    key_result(r) for r in ours
                ]
            else:  # bool
                assert theirs.to_py() is ours

    check()


@given(S.configurations(zc_safe=True))
def test_stage_request_from_zeek_client(config: br.Configuration) -> None:
    """The client's StageConfigurationRequest message decodes as our event."""
    zc = zev.StageConfigurationRequest("req-1", zc_config(config).to_brokertype())
    text = bt.DataMessage(TOPIC, zc.to_brokertype()).serialize()
    msg = bm.parse_message(text)
    assert isinstance(msg, bm.DataMessage)
    event = be.event_from_json(msg.payload)
    assert isinstance(event, be.StageConfigurationRequest)
    assert event.reqid == "req-1"
    assert key_config(event.config) == key_config(config)
