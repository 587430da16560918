"""The Broker data codec (mgmt.broker.data): table-driven cases, errors, properties."""

from __future__ import annotations

import datetime
import ipaddress
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mgmt.broker import data as bd
from mgmt.broker.data import BrokerSet, Count, EnumValue, Port, Proto, Table, Timespan
from mgmt.exceptions import DecodeError
from tests.support import strategies as S


def canon(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def wire(value: Any) -> Any:
    """Encode, through real JSON text, as a peer would see it."""
    return json.loads(json.dumps(bd.to_json(value)))


def V(tag: str, data: Any) -> dict[str, Any]:
    return {"@data-type": tag, "data": data}


NONE = V("none", {})

# One table, both directions: value <-> JSON (wire spec §2.1 examples included).
CODEC_CASES: list[tuple[Any, dict[str, Any]]] = [
    (None, NONE),
    (True, V("boolean", True)),
    (False, V("boolean", False)),
    (Count(1), V("count", 1)),
    (Count(2**64 - 1), V("count", 2**64 - 1)),
    (-7, V("integer", -7)),
    (-(2**63), V("integer", -(2**63))),
    (-7.5, V("real", -7.5)),
    (Timespan(1500, "ms"), V("timespan", "1500ms")),
    (Timespan(-3, "s"), V("timespan", "-3s")),
    (Timespan(2, "min"), V("timespan", "2min")),
    (datetime.datetime(2022, 4, 10, 7, 0), V("timestamp", "2022-04-10T07:00:00.000")),
    (datetime.datetime(2022, 4, 10, 7, 0, 1, 234000), V("timestamp", "2022-04-10T07:00:01.234")),
    ("Hello World!", V("string", "Hello World!")),
    ("", V("string", "")),
    (EnumValue("Management::RUNNING"), V("enum-value", "Management::RUNNING")),
    (ipaddress.ip_address("2001:db8::"), V("address", "2001:db8::")),
    (ipaddress.ip_address("127.0.0.1"), V("address", "127.0.0.1")),
    (ipaddress.ip_network("10.0.0.0/8"), V("subnet", "10.0.0.0/8")),
    (ipaddress.ip_network("2001:db8::/32"), V("subnet", "2001:db8::/32")),
    (Port(2149, Proto.TCP), V("port", "2149/tcp")),
    (Port(0, Proto.UNKNOWN), V("port", "0/?")),
    (Port(53, Proto.UDP), V("port", "53/udp")),
    (Port(8, Proto.ICMP), V("port", "8/icmp")),
    ((Count(42), 23), V("vector", [V("count", 42), V("integer", 23)])),
    ((), V("vector", [])),
    (BrokerSet(["foo", "bar"]), V("set", [V("string", "foo"), V("string", "bar")])),
    (
        Table({"first-name": "John", "last-name": "Doe"}),
        V(
            "table",
            [
                {"key": V("string", "first-name"), "value": V("string", "John")},
                {"key": V("string", "last-name"), "value": V("string", "Doe")},
            ],
        ),
    ),
    (
        Table({(1, "a"): BrokerSet()}),
        V(
            "table",
            [{"key": V("vector", [V("integer", 1), V("string", "a")]), "value": V("set", [])}],
        ),
    ),
    (((None,),), V("vector", [V("vector", [NONE])])),
]


@pytest.mark.parametrize(("value", "obj"), CODEC_CASES, ids=lambda x: repr(x)[:40])
def test_encode(value: Any, obj: dict[str, Any]) -> None:
    """Each value encodes to exactly its documented JSON form."""
    assert bd.to_json(value) == obj


@pytest.mark.parametrize(("value", "obj"), CODEC_CASES, ids=lambda x: repr(x)[:40])
def test_decode(value: Any, obj: dict[str, Any]) -> None:
    """Each documented JSON form decodes to the value, with the right Python type."""
    decoded = bd.from_json(obj)
    assert decoded == value
    assert type(decoded) is type(value)


def test_encoder_accepts_native_containers_and_aware_datetimes() -> None:
    """Lists encode as vectors, sets/frozensets as sets, dicts as tables, aware datetimes
    as UTC."""
    assert bd.to_json([1]) == V("vector", [V("integer", 1)])
    assert bd.to_json({1}) == V("set", [V("integer", 1)])
    assert bd.to_json(frozenset({"a"})) == V("set", [V("string", "a")])
    assert bd.to_json({"k": 1.5}) == V(
        "table", [{"key": V("string", "k"), "value": V("real", 1.5)}]
    )
    tz = datetime.timezone(datetime.timedelta(hours=2))
    aware = datetime.datetime(2022, 4, 10, 9, 0, tzinfo=tz)
    assert bd.to_json(aware) == V("timestamp", "2022-04-10T07:00:00.000")


def test_encoder_rejects_unknown_types() -> None:
    """A value with no Broker form is a caller bug: TypeError naming the type."""
    with pytest.raises(TypeError, match="object"):
        bd.to_json(object())


def test_decoder_leniencies() -> None:
    """Broker-compatible inputs we accept: timestamps without fraction or with a zone
    (normalised to naive UTC), a real given as an integer, host bits in a subnet."""
    assert bd.from_json(V("timestamp", "2022-04-10T07:00:00")) == datetime.datetime(2022, 4, 10, 7)
    assert bd.from_json(V("timestamp", "2022-04-10T09:00:00.000+02:00")) == datetime.datetime(
        2022, 4, 10, 7
    )
    assert bd.from_json(V("real", 2)) == 2.0
    assert type(bd.from_json(V("real", 2))) is float
    assert bd.from_json(V("subnet", "10.1.2.3/8")) == ipaddress.ip_network("10.0.0.0/8")
    assert bd.from_json(V("none", None)) is None


def test_timespan_semantics() -> None:
    """Timespans compare by duration, keep their unit, and from_ns picks Broker's unit."""
    assert Timespan(1000, "ms") == Timespan(1, "s")
    assert hash(Timespan(1000, "ms")) == hash(Timespan(1, "s"))
    assert str(Timespan(1000, "ms")) == "1000ms"
    assert Timespan.from_ns(0) == Timespan(0, "s") and str(Timespan.from_ns(0)) == "0s"
    assert str(Timespan.from_ns(1_500_000)) == "1500us"
    assert str(Timespan.from_ns(1_500_000_000)) == "1500ms"
    assert str(Timespan.from_ns(7)) == "7ns"
    with pytest.raises(ValueError):
        Timespan(1, "weeks")


def test_set_and_table_semantics() -> None:
    """BrokerSet keeps order but compares as a set; Table is an ordered immutable mapping."""
    assert BrokerSet(["b", "a", "b"]) == BrokerSet(["a", "b"])
    assert list(BrokerSet(["b", "a", "b"])) == ["b", "a"]
    assert BrokerSet(["a"]) == {"a"}
    assert BrokerSet(["a"]) != BrokerSet(["a", "b"])
    assert Table({"a": 1}) == {"a": 1}
    assert hash(Table({"a": 1})) == hash(Table([("a", 1)]))
    assert Count(3) == 3 and repr(Count(3)) == "Count(3)"
    with pytest.raises(ValueError):
        Count(-1)
    with pytest.raises(ValueError):
        Port(65536)


# Malformed input -> DecodeError naming where and what.
ERROR_CASES: list[tuple[Any, str]] = [
    (
        V("vector", [NONE, NONE, V("vector", [V("count", "abc")])]),
        'data[2].data[0]: expected count, got "abc"',
    ),
    ([], "expected a Broker value object, got []"),
    ({"data": 1}, "missing '@data-type'"),
    ({"@data-type": "count"}, "missing 'data'"),
    (V("bogus", 1), 'unknown @data-type "bogus"'),
    (V([], 1), "unknown @data-type []"),
    (V({"a": 1}, 1), 'unknown @data-type {"a": 1}'),
    (V("boolean", "false"), 'expected boolean, got "false"'),
    (V("boolean", 1), "expected boolean, got 1"),
    (V("count", -1), "expected count, got -1"),
    (V("count", 2**64), f"expected count, got {2**64}"),
    (V("count", 1.0), "expected count, got 1.0"),
    (V("count", True), "expected count, got true"),
    (V("integer", 2**63), f"expected integer, got {2**63}"),
    (V("real", "1.5"), 'expected real, got "1.5"'),
    (V("real", False), "expected real, got false"),
    (V("timespan", "15"), 'expected timespan, got "15"'),
    (V("timespan", "1.5s"), 'expected timespan, got "1.5s"'),
    (V("timestamp", "2022-04-10"), 'expected timestamp, got "2022-04-10"'),
    (V("timestamp", "2022-04-10 07:00:00"), 'expected timestamp, got "2022-04-10 07:00:00"'),
    (
        V("timestamp", "9999-12-31T23:59:59-05:00"),
        'expected timestamp, got "9999-12-31T23:59:59-05:00"',
    ),
    (V("string", 5), "expected string, got 5"),
    (V("enum-value", ""), 'expected enum-value, got ""'),
    (V("address", "10.0.0.256"), 'expected address, got "10.0.0.256"'),
    (V("subnet", "10.0.0.0"), 'expected subnet, got "10.0.0.0"'),
    (V("subnet", "10.0.0.0/33"), 'expected subnet, got "10.0.0.0/33"'),
    (V("port", "2149"), 'expected port, got "2149"'),
    (V("port", "2149/sctp"), 'expected port, got "2149/sctp"'),
    (V("port", "70000/tcp"), 'expected port, got "70000/tcp"'),
    (V("port", "-1/tcp"), 'expected port, got "-1/tcp"'),
    (V("vector", 3), "expected vector, got 3"),
    (V("set", {}), "expected set, got {}"),
    (
        V("table", [V("string", "x")]),
        'data[0]: expected {key, value} entry, got {"@data-type": "string", "data": "x"}',
    ),
    (
        V("table", [{"key": V("string", "k"), "value": V("count", -2)}]),
        "data[0].value: expected count, got -2",
    ),
    (V("set", [NONE, V("set", [V("port", "x")])]), 'data[1].data[0]: expected port, got "x"'),
    (V("string", ["x" * 100]), 'expected string, got ["' + "x" * 55 + "..."),
]


@pytest.mark.parametrize(("obj", "message"), ERROR_CASES, ids=lambda x: repr(x)[:50])
def test_decode_errors(obj: Any, message: str) -> None:
    """Malformed values raise DecodeError whose text names the path and the problem
    (offending values abbreviated to 60 characters)."""
    with pytest.raises(DecodeError) as info:
        bd.from_json(obj)
    assert str(info.value) == message
    path = message.split(": ", 1)[0] if message.startswith("data") else ""
    assert info.value.path == path


def test_decode_error_path_prefix() -> None:
    """A caller-supplied path prefixes the element path."""
    with pytest.raises(DecodeError) as info:
        bd.from_json(V("vector", [V("count", "x")]), "data[2].data[1]")
    assert info.value.path == "data[2].data[1].data[0]"
    assert info.value.reason == 'expected count, got "x"'


def test_deeply_nested_input_is_a_decode_error() -> None:
    """Vectors nested deeper than the stack allows raise DecodeError, not RecursionError."""
    depth = 5000
    obj: Any = NONE
    for _ in range(depth):
        obj = V("vector", [obj])
    with pytest.raises(DecodeError, match="nested too deeply"):
        bd.from_json(obj)


def test_typed_accessors() -> None:
    """The typed accessors decode one field type and reject the others with a path."""
    assert bd.get_string(V("string", "a"), "p") == "a"
    assert bd.get_count(V("count", 3), "p") == 3
    assert bd.get_string_set(V("set", [V("string", "a")]), "p") == {"a"}
    assert bd.get_string_vector(V("vector", [V("string", "a")]), "p") == ("a",)
    assert bd.get_collection(V("vector", []), "p") == []
    assert bd.opt(NONE, "p", bd.get_string) is None
    with pytest.raises(DecodeError, match="^p: expected string, got count$"):
        bd.get_string(V("count", 1), "p")
    with pytest.raises(DecodeError, match=r"^p\.data\[1\]: expected string, got integer$"):
        bd.get_string_set(V("set", [V("string", "a"), V("integer", 1)]), "p")
    with pytest.raises(DecodeError, match="^p: expected set or vector, got table$"):
        bd.get_collection(V("table", []), "p")


# --------------------------------------------------------------------------------------
# Properties


@given(S.values())
def test_round_trip(value: Any) -> None:
    """Any nested Broker value survives encode -> JSON text -> decode, and re-encodes to
    the same JSON (so the types, not only Python equality, are preserved)."""
    obj = wire(value)
    decoded = bd.from_json(obj)
    assert decoded == value
    assert canon(bd.to_json(decoded)) == canon(obj)


@given(S.subnets())
def test_subnets_normalised(net: Any) -> None:
    """Subnets travel normalised (host bits zero) and come back equal."""
    text = bd.to_json(net)["data"]
    assert ipaddress.ip_network(text, strict=True) == net
    assert bd.from_json(V("subnet", text)) == net


@given(st.datetimes(timezones=st.timezones()))
def test_aware_timestamps_become_naive_utc_ms(when: datetime.datetime) -> None:
    """Aware datetimes are sent as UTC with millisecond precision and decode as naive UTC."""
    try:
        utc = when.astimezone(datetime.UTC).replace(tzinfo=None)
    except OverflowError:
        return
    decoded = bd.from_json(wire(when))
    assert decoded.tzinfo is None
    assert decoded == utc.replace(microsecond=utc.microsecond // 1000 * 1000)


@given(S.brokerish_json())
def test_arbitrary_json_raises_only_decode_error(obj: Any) -> None:
    """Arbitrary JSON either decodes or raises DecodeError, never anything else."""
    try:
        bd.from_json(obj)
    except DecodeError as exc:
        assert str(exc)
