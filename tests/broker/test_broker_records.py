"""Management records and enums (mgmt.broker.records)."""

from __future__ import annotations

import ipaddress
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mgmt.broker import data as bd
from mgmt.broker import records as br
from mgmt.broker.data import Port, Proto
from mgmt.exceptions import DecodeError
from tests.support import strategies as S


def V(tag: str, data: Any) -> dict[str, Any]:
    return {"@data-type": tag, "data": data}


NONE = V("none", {})


def s(text: str) -> dict[str, Any]:
    return V("string", text)


def wire(obj: Any) -> Any:
    return json.loads(json.dumps(obj))


def canon(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def node_fields(**over: Any) -> list[Any]:
    f = [
        s("worker-01"),
        s("agent-testbox"),
        V("enum-value", "Supervisor::WORKER"),
        V("enum-value", "Management::RUNNING"),
        NONE,
        NONE,
        NONE,
        NONE,
        NONE,
        V("table", []),
        NONE,
    ]
    for k, v in over.items():
        f[int(k[1:])] = v
    return f


# --------------------------------------------------------------------------------------
# Enums


@pytest.mark.parametrize(
    ("enum", "wire_name"),
    [
        (br.ClusterRole.WORKER, "Supervisor::WORKER"),
        (br.ClusterRole.NONE, "Supervisor::NONE"),
        (br.Role.CONTROLLER, "Management::CONTROLLER"),
        (br.State.CRASHED, "Management::CRASHED"),
        (br.State.PENDING, "Management::PENDING"),
    ],
)
def test_enum_wire_names(enum: br.ZeekEnum, wire_name: str) -> None:
    """Enums travel fully qualified with their Zeek module, both ways."""
    assert enum.to_json() == V("enum-value", wire_name)
    assert type(enum).from_json(V("enum-value", wire_name)) is enum


@pytest.mark.parametrize(
    ("cls", "text"),
    [
        (br.ClusterRole, "WORKER"),
        (br.ClusterRole, "Management::WORKER"),
        (br.State, "Management::running"),
        (br.State, "Management::NOPE"),
        (br.Role, "Supervisor::NODE"),
    ],
)
def test_enum_rejects_wrong_names(cls: type[br.ZeekEnum], text: str) -> None:
    """Unqualified, wrongly-qualified or unknown enum names are DecodeErrors with a path."""
    with pytest.raises(DecodeError) as info:
        cls.from_json(V("enum-value", text), "data[2]")
    assert info.value.path == "data[2]"
    assert text in info.value.reason


# --------------------------------------------------------------------------------------
# Table: record <-> JSON, one table for both directions (wire spec §4 examples).

RECORD_CASES: list[tuple[Any, dict[str, Any]]] = [
    (
        br.Option("Site::local_nets", "10.0.0.0/8"),
        V("vector", [s("Site::local_nets"), s("10.0.0.0/8")]),
    ),
    (
        br.Instance("agent-testbox", ipaddress.ip_address("127.0.0.1")),
        V("vector", [s("agent-testbox"), V("address", "127.0.0.1"), NONE]),
    ),
    (
        br.Instance("a", ipaddress.ip_address("::1"), Port(2151)),
        V("vector", [s("a"), V("address", "::1"), V("port", "2151/tcp")]),
    ),
    (
        br.Node(
            "worker-01",
            "agent-testbox",
            br.ClusterRole.WORKER,
            scripts=("site/a.zeek", "site/b.zeek"),
            interface="eth0",
            cpu_affinity=2,
            env={"GREETING": "hello world", "ZEEK_DEBUG": "1"},
        ),
        V(
            "vector",
            node_fields(
                f5=V("vector", [s("site/a.zeek"), s("site/b.zeek")]),
                f7=s("eth0"),
                f8=V("integer", 2),
                f9=V(
                    "table",
                    [
                        {"key": s("GREETING"), "value": s("hello world")},
                        {"key": s("ZEEK_DEBUG"), "value": s("1")},
                    ],
                ),
            ),
        ),
    ),
    (
        br.Node(
            "m",
            "i",
            br.ClusterRole.MANAGER,
            br.State.PENDING,
            p=Port(2200),
            options=(br.Option("a", "b"),),
            metrics_port=Port(9000),
        ),
        V(
            "vector",
            [
                s("m"),
                s("i"),
                V("enum-value", "Supervisor::MANAGER"),
                V("enum-value", "Management::PENDING"),
                V("port", "2200/tcp"),
                NONE,
                V("set", [V("vector", [s("a"), s("b")])]),
                NONE,
                NONE,
                V("table", []),
                V("port", "9000/tcp"),
            ],
        ),
    ),
    (
        br.NodeStatus(
            "manager",
            br.State.RUNNING,
            br.Role.NONE,
            br.ClusterRole.MANAGER,
            54073,
            Port(2200),
            Port(9000),
        ),
        V(
            "vector",
            [
                s("manager"),
                V("enum-value", "Management::RUNNING"),
                V("enum-value", "Management::NONE"),
                V("enum-value", "Supervisor::MANAGER"),
                V("integer", 54073),
                V("port", "2200/tcp"),
                V("port", "9000/tcp"),
            ],
        ),
    ),
    (
        br.Result("r1", False, error="request timed out"),
        V("vector", [s("r1"), V("boolean", False), NONE, NONE, s("request timed out"), NONE]),
    ),
    (
        br.Result("r1", True, "agent-testbox", "false", None, "worker-01"),
        V(
            "vector",
            [s("r1"), V("boolean", True), s("agent-testbox"), s("false"), NONE, s("worker-01")],
        ),
    ),
    (br.NodeOutputs("", "fatal"), V("vector", [s(""), s("fatal")])),
    (
        br.Configuration("cfg", (br.Instance("i"),), ()),
        V(
            "vector",
            [
                s("cfg"),
                V("set", [V("vector", [s("i"), V("address", "0.0.0.0"), NONE])]),
                V("set", []),
            ],
        ),
    ),
]


@pytest.mark.parametrize(("record", "obj"), RECORD_CASES, ids=lambda x: type(x).__name__)
def test_record_encode(record: Any, obj: dict[str, Any]) -> None:
    """Each record encodes to its documented vector, field by field in wire order."""
    assert record.to_json() == obj


@pytest.mark.parametrize(("record", "obj"), RECORD_CASES, ids=lambda x: type(x).__name__)
def test_record_decode(record: Any, obj: dict[str, Any]) -> None:
    """Each documented vector decodes to the record (and from the generic value too)."""
    assert type(record).from_json(wire(obj)) == record
    if hasattr(type(record), "from_value"):
        assert type(record).from_value(bd.from_json(obj)) == record


def test_decoding_leniency() -> None:
    """Zeek's leniency: extra trailing fields ignored, missing trailing optional fields
    (metrics_port) allowed, none for &default fields gives the default."""
    node = br.Node.from_json(V("vector", node_fields() + [s("extra")]))
    assert node.name == "worker-01"
    node10 = br.Node.from_json(V("vector", node_fields()[:10]))
    assert node10.metrics_port is None
    node_none = br.Node.from_json(V("vector", node_fields(f3=NONE, f9=NONE)))
    assert node_none.state is br.State.RUNNING and node_none.env == {}
    status = br.NodeStatus.from_json(
        V(
            "vector",
            [s("n"), V("enum-value", "Management::RUNNING"), NONE, NONE, NONE, NONE],
        )
    )
    assert status == br.NodeStatus("n", br.State.RUNNING)
    result = br.Result.from_json(V("vector", [s("r"), NONE, NONE, NONE, NONE, NONE]))
    assert result.success is True
    cfg = br.Configuration.from_json(V("vector", [s("c"), V("vector", []), NONE]))
    assert cfg == br.Configuration("c")
    fresh = br.Configuration.from_json(V("vector", [NONE, NONE, NONE]))
    assert fresh.id and fresh.id != br.Configuration.from_json(V("vector", [NONE] * 3)).id


RECORD_ERRORS: list[tuple[type, Any, str]] = [
    (br.Node, V("vector", node_fields()[:9]), "Node needs 10 fields, got 9"),
    (br.Node, V("set", node_fields()), "expected vector, got set"),
    (br.Node, V("vector", node_fields(f0=NONE)), "data[0]: required field is none"),
    (
        br.Node,
        V("vector", node_fields(f2=V("enum-value", "Management::WORKER"))),
        "data[2]: 'Management::WORKER' is not a Supervisor::ClusterRole value",
    ),
    (
        br.Node,
        V("vector", node_fields(f4=V("count", 2))),
        "data[4]: expected port, got count",
    ),
    (
        br.Node,
        V("vector", node_fields(f6=V("set", [V("vector", [s("a")])]))),
        "data[6].data[0]: Option needs 2 fields, got 1",
    ),
    (
        br.Node,
        V("vector", node_fields(f9=V("table", [{"key": s("A"), "value": V("integer", 1)}]))),
        "data[9].data[0].value: expected string, got integer",
    ),
    (
        br.Node,
        V("vector", node_fields(f9=V("table", [s("A")]))),
        "data[9].data[0]: expected {key, value} entry",
    ),
    (br.Result, V("vector", [s("r")] * 5), "Result needs 6 fields, got 5"),
    (
        br.Result,
        V("vector", [s("r"), s("yes"), NONE, NONE, NONE, NONE]),
        "data[1]: expected boolean, got string",
    ),
    (
        br.Result,
        V("vector", [s("r"), NONE, NONE, V("count", -1), NONE, NONE]),
        "data[3]: expected count, got -1",
    ),
    (
        br.Configuration,
        V("vector", [s("c"), V("table", []), NONE]),
        "data[1]: expected set or vector, got table",
    ),
    (
        br.Configuration,
        V("vector", [s("c"), V("set", []), V("set", [V("vector", node_fields(f1=NONE))])]),
        "data[2].data[0].data[1]: required field is none",
    ),
    (
        br.Instance,
        V("vector", [s("i"), V("address", "nope"), NONE]),
        'data[1]: expected address, got "nope"',
    ),
    (
        br.NodeStatus,
        V("vector", [s("n"), NONE, NONE, NONE, NONE, NONE]),
        "data[1]: required field is none",
    ),
    (br.NodeOutputs, V("vector", [s("a"), NONE]), "data[1]: expected string, got none"),
]


@pytest.mark.parametrize(("cls", "obj", "message"), RECORD_ERRORS, ids=lambda x: str(x)[:30])
def test_record_decode_errors(cls: Any, obj: Any, message: str) -> None:
    """Malformed records raise DecodeError whose text names the field's path."""
    with pytest.raises(DecodeError) as info:
        cls.from_json(obj)
    assert str(info.value) == message


def test_from_value_rejects_non_records() -> None:
    """from_value on a generic value of the wrong shape is a DecodeError, not a crash."""
    with pytest.raises(DecodeError):
        br.NodeStatus.from_value("not a record", "data[3]")
    with pytest.raises(DecodeError, match="NodeStatus"):
        br.node_statuses_from_value("x", "data[3]")
    with pytest.raises(DecodeError):
        br.Instance.from_value(object())


def test_helpers() -> None:
    """Configuration lookups and with_changes copies."""
    a = br.Node("a", "i1", br.ClusterRole.MANAGER)
    b = br.Node("b", "i2", br.ClusterRole.WORKER)
    cfg = br.Configuration("c", (), (a, b))
    assert cfg.nodes_of("i2") == [b]
    assert cfg.node("a") is a and cfg.node("zz") is None
    assert a.with_changes(state=br.State.STOPPED).state is br.State.STOPPED
    assert br.Result("r").with_changes(success=False).success is False
    assert br.Port(1, Proto.UDP) < br.Port(2, Proto.UDP)


# --------------------------------------------------------------------------------------
# Properties


RECORD_STRATEGIES = {
    "Option": S.options(),
    "Instance": S.instances(),
    "Node": S.nodes(),
    "Configuration": S.configurations(),
    "NodeStatus": S.node_statuses(),
    "NodeOutputs": S.node_outputs(),
    "Result": S.results(),
}


@pytest.mark.parametrize("name", list(RECORD_STRATEGIES))
def test_record_round_trip(name: str) -> None:
    """Arbitrary records survive encode -> JSON text -> decode, re-encoding identically."""

    @settings(max_examples=30)
    @given(RECORD_STRATEGIES[name])
    def check(record: Any) -> None:
        obj = wire(record.to_json())
        decoded = type(record).from_json(obj)
        assert decoded == record
        assert canon(decoded.to_json()) == canon(obj)
        assert canon(bd.to_json(record)) == canon(obj)  # records are BrokerEncodable

    check()


@given(
    st.one_of(
        st.lists(S.node_statuses(), max_size=4).map(tuple),
        S.node_outputs(),
        S.configurations(),
        st.lists(S.instances(), max_size=3).map(tuple),
    )
)
def test_result_data_records(data: Any) -> None:
    """Records inside Result.data (Zeek's any) come back via from_value from the generic
    decoded value."""
    result = br.Result("r", True, "agent", data)
    decoded = br.Result.from_json(wire(result.to_json()))
    if isinstance(data, tuple) and data and isinstance(data[0], br.NodeStatus):
        assert br.node_statuses_from_value(decoded.data) == data
    elif isinstance(data, tuple):
        assert tuple(br.Instance.from_value(v) for v in decoded.data) == data
    else:
        assert type(data).from_value(decoded.data) == data


@given(st.lists(S.results(), max_size=4).map(tuple))
def test_result_vectors(results: tuple[br.Result, ...]) -> None:
    """ResultVecs travel as vectors and decode back."""
    obj = wire(br.results_json(results))
    assert obj["@data-type"] == "vector"
    assert br.results_from_json(obj) == results


@given(S.brokerish_json())
def test_arbitrary_json_into_records(obj: Any) -> None:
    """Arbitrary JSON into any record decoder raises only DecodeError."""
    for cls in (
        br.Node,
        br.Configuration,
        br.NodeStatus,
        br.Result,
        br.Instance,
        br.Option,
        br.NodeOutputs,
    ):
        try:
            cls.from_json(obj)
        except DecodeError:
            pass


NODE_STATUS_FIELDS = st.tuples(
    st.one_of(S.NAMES, st.none(), st.just(bd.EnumValue("x"))),
    st.sampled_from(
        [bd.EnumValue("Management::RUNNING"), bd.EnumValue("Supervisor::WORKER"), None, "s"]
    ),
    st.sampled_from([bd.EnumValue("Management::AGENT"), bd.EnumValue("Management::X"), None]),
    st.sampled_from([bd.EnumValue("Supervisor::WORKER"), bd.EnumValue("WORKER"), None]),
    st.one_of(st.none(), S.INT64, S.UINT64.map(bd.Count), st.booleans()),
    st.one_of(st.none(), S.ports(), st.just("2200/tcp")),
    st.lists(st.one_of(st.none(), S.ports(), st.integers()), max_size=2).map(tuple),
)


@given(NODE_STATUS_FIELDS)
def test_node_status_from_value_fast_path_agrees(fields: tuple[Any, ...]) -> None:
    """NodeStatus.from_value's fast path gives exactly what the JSON route gives (value or
    DecodeError) for well- and ill-typed generic vectors."""
    value = fields[:6] + fields[6]

    def outcome(fn: Any) -> Any:
        try:
            return fn(value, "data[3]")
        except DecodeError as exc:
            return ("error", str(exc))

    assert outcome(br.NodeStatus.from_value) == outcome(
        lambda v, p: br._from_value(br.NodeStatus, v, p)
    )


# --------------------------------------------------------------------------------------
# Result.data kept raw for relaying (RawValue)

_DUMPS = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def _statuses_json() -> Any:
    rows = (
        br.NodeStatus("a", br.State.RUNNING, br.Role.AGENT, br.ClusterRole.NONE, 7),
        br.NodeStatus("w", br.State.RUNNING, br.Role.NONE, br.ClusterRole.WORKER, 9, Port(65535)),
    )
    return json.loads(json.dumps(br.Result("r", True, "i", rows).to_json()))


def test_result_keeps_canonical_data_raw() -> None:
    """A canonical Result.data is relayed as the received JSON and decodes on access."""
    obj = _statuses_json()
    result = br.Result.from_json(obj)
    assert result.to_json()["data"][3] is obj["data"][3]
    statuses = br.node_statuses_from_value(result.data)
    assert [s.node for s in statuses] == ["a", "w"]
    assert result.data == bd.from_json(obj["data"][3])
    assert result == br.Result.from_json(json.loads(json.dumps(obj)))
    assert result.with_changes(node="n").to_json()["data"][3] is obj["data"][3]


@pytest.mark.parametrize(
    ("data", "path"),
    [
        ({"@data-type": "port", "data": "65536/tcp"}, "data[3].data[1]"),
        ({"@data-type": "integer", "data": 2**63}, "data[3].data[1]"),
        ({"@data-type": "enum-value", "data": ""}, "data[3].data[1]"),
        (
            {"@data-type": "vector", "data": [{"@data-type": "count", "data": -1}]},
            "data[3].data[1].data[0]",
        ),
        ({"@data-type": "string"}, "data[3].data[1]"),
        ({"@data-type": "bogus", "data": 1}, "data[3].data[1]"),
    ],
)
def test_result_raw_data_still_validated(data: Any, path: str) -> None:
    """Malformed data is rejected at decode time with from_json's error and path."""
    obj = br.Result("r", True, data=("ok", "x")).to_json()
    obj["data"][3]["data"][1] = data
    with pytest.raises(DecodeError) as exc:
        br.Result.from_json(obj)
    with pytest.raises(DecodeError) as generic:
        bd.from_json(obj["data"][3], "data[3]")
    assert exc.value.path == generic.value.path == path
    assert str(exc.value) == str(generic.value)


@pytest.mark.parametrize(
    "data",
    [
        {"@data-type": "real", "data": 1},
        {"@data-type": "port", "data": "080/tcp"},
        {"@data-type": "none", "data": []},
        {"@data-type": "string", "data": "x", "extra": 1},
        {"@data-type": "set", "data": [{"@data-type": "count", "data": 1}] * 2},
        {"@data-type": "address", "data": "::FFFF:1.2.3.4"},
    ],
)
def test_result_noncanonical_data_reencoded(data: Any) -> None:
    """Data that would not re-encode to itself is decoded and re-encoded as before."""
    obj = br.Result("r").to_json()
    obj["data"][3] = data
    result = br.Result.from_json(obj)
    sent = _DUMPS(result.to_json()["data"][3])
    assert sent == _DUMPS(bd.to_json(bd.from_json(data)))
    assert sent != _DUMPS(data)


@given(S.values())
@settings(max_examples=200)
def test_result_relay_matches_decode_and_reencode(value: Any) -> None:
    """Relaying any valid data sends what decoding and re-encoding it would."""
    obj = json.loads(json.dumps(br.Result("r", True, data=value).to_json()))
    relayed = br.Result.from_json(obj)
    expected = bd.to_json(bd.from_json(obj["data"][3]))
    assert _DUMPS(relayed.to_json()["data"][3]) == _DUMPS(expected)
    assert relayed.data == bd.from_json(obj["data"][3])


@given(S.brokerish_json())
@settings(max_examples=300)
def test_result_lazy_data_rejects_like_from_json(data: Any) -> None:
    """Any JSON is accepted or rejected as from_json would, with the same error."""
    obj = br.Result("r").to_json()
    obj["data"][3] = data
    try:
        expected = bd.from_json(data, "data[3]")
    except DecodeError as exc:
        with pytest.raises(DecodeError) as got:
            br.Result.from_json(obj)
        assert str(got.value) == str(exc)
        return
    result = br.Result.from_json(obj)
    # As JSON: a canonical value is relayed as received, its members' order included.
    assert result.to_json()["data"][3] == bd.to_json(expected)


def _decode_both(obj: Any) -> tuple[object, object]:
    """Node.from_json (fast path first) and the checked decoder, as value or error text."""
    out = []
    for decode in (br.Node.from_json, lambda o: br.Node._from_json_checked(o, "")):
        try:
            out.append(decode(obj))
        except DecodeError as exc:
            out.append(f"DecodeError: {exc}")
    return out[0], out[1]


@given(S.nodes())
def test_node_fast_path_agrees_with_checked_decoder(node: br.Node) -> None:
    """Well-formed nodes decode the same on the fast path as on the checked one."""
    fast, checked = _decode_both(node.to_json())
    assert fast == checked == node


@given(S.nodes(), st.integers(0, 10), S.brokerish_json())
def test_node_fast_path_never_accepts_what_checked_rejects(
    node: br.Node, index: int, junk: Any
) -> None:
    """Replacing any field by arbitrary JSON: both decoders accept the same value or fail
    with the same error (the fast path never decides on its own)."""
    obj = node.to_json()
    obj["data"][index] = junk
    fast, checked = _decode_both(obj)
    assert fast == checked
