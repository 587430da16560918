"""Broker's data model and its JSON form (WebSocket API "JSON v1").

Theory of operation
-------------------
Every Broker value travels as a JSON object ``{"@data-type": T, "data": D}`` (wire spec
§2.1). In Python we use the closest native type and small frozen wrappers only where a
native type would lose information:

=============  ==========================================  =========================
``@data-type``  Python value                                 JSON ``data``
=============  ==========================================  =========================
none           ``None``                                     ``{}``
boolean        ``bool``                                     ``true``/``false``
count          :class:`Count` (an ``int`` subclass, >= 0)   integer
integer        ``int``                                      integer
real           ``float``                                    number
timespan       :class:`Timespan` (value + unit, kept)       ``"1500ms"``
timestamp      ``datetime.datetime`` (naive, UTC)           ``"2022-04-10T07:00:00.000"``
string         ``str``                                      string
enum-value     :class:`EnumValue` (a ``str`` subclass)      ``"Management::RUNNING"``
address        ``IPv4Address``/``IPv6Address``              ``"127.0.0.1"``
subnet         ``IPv4Network``/``IPv6Network``              ``"10.0.0.0/8"``
port           :class:`Port`                                ``"2149/tcp"``
vector         ``tuple`` (``list`` accepted when encoding)  array of values
set            :class:`BrokerSet` (ordered, compares as a   array of values
               set)
table          :class:`Table` (ordered mapping)             array of ``{key, value}``
=============  ==========================================  =========================

Objects that know their own Broker encoding (Management records, Zeek enums) implement
:class:`BrokerEncodable` and may appear anywhere inside a value; :func:`to_json` calls
their ``to_json()``.

Decoding never raises anything but :class:`~mgmt.exceptions.DecodeError`, whose ``path``
names the offending element (``data[2].data[0]``) and whose ``reason`` says what was
wrong. Decoding follows Broker's decoder, which is stricter than zeek-client's parser in
places (a ``boolean`` must be a JSON boolean, a ``count`` a non-negative integer).

This module is pure: no I/O, no asyncio.
"""

from __future__ import annotations

import datetime
import enum
import ipaddress
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeAlias, TypeVar, runtime_checkable

from mgmt.broker import jsontext
from mgmt.core.frozen import frozen
from mgmt.core.peertext import peer_text
from mgmt.exceptions import DecodeError

#: A decoded JSON document (what ``json.loads`` returns).
JsonValue: TypeAlias = Any
#: The JSON object form of one Broker value: ``{"@data-type": ..., "data": ...}``.
JsonObj: TypeAlias = dict[str, Any]

T = TypeVar("T")


class DataType(enum.Enum):
    """The 15 ``@data-type`` tags of Broker's JSON encoding."""

    NONE = "none"
    BOOLEAN = "boolean"
    COUNT = "count"
    INTEGER = "integer"
    REAL = "real"
    TIMESPAN = "timespan"
    TIMESTAMP = "timestamp"
    STRING = "string"
    ENUM_VALUE = "enum-value"
    ADDRESS = "address"
    SUBNET = "subnet"
    PORT = "port"
    VECTOR = "vector"
    SET = "set"
    TABLE = "table"


_TAGS = frozenset(t.value for t in DataType)

# --------------------------------------------------------------------------------------
# Value types


class Count(int):
    """A Broker ``count``: an unsigned 64-bit integer (``int`` keeps ``integer``)."""

    __slots__ = ()

    def __new__(cls, value: int = 0) -> Count:
        if not 0 <= int(value) < 2**64:
            raise ValueError(f"count out of range: {value}")
        return super().__new__(cls, value)

    def __repr__(self) -> str:
        return f"Count({int(self)})"


class EnumValue(str):
    """A Broker ``enum-value``: a fully qualified Zeek enum name, e.g. ``Management::RUNNING``."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"EnumValue({str.__repr__(self)})"


class Proto(enum.Enum):
    """Transport protocol of a :class:`Port`. Zeek's ``0/unknown`` is written ``0/?``."""

    TCP = "tcp"
    UDP = "udp"
    ICMP = "icmp"
    UNKNOWN = "?"


_PROTOS = {p.value: p for p in Proto}


@dataclass(frozen=True, slots=True, order=True)
class Port:
    """A Broker ``port``: a number and a protocol, written ``2149/tcp``."""

    number: int
    proto: Proto = Proto.TCP

    def __post_init__(self) -> None:
        if not 0 <= self.number <= 65535:
            raise ValueError(f"port number out of range: {self.number}")

    def __str__(self) -> str:
        return f"{self.number}/{self.proto.value}"

    @classmethod
    def parse(cls, text: str) -> Port:
        """Parse ``<number>/<proto>``. Raises ``ValueError`` when malformed."""
        num, sep, proto = text.partition("/")
        if not sep or proto not in _PROTOS or not num.isdigit() or not num.isascii():
            raise ValueError(f"not a port: {peer_text(text, always_quote=True)}")
        return cls(int(num), _PROTOS[proto])


_TIMESPAN_RE = re.compile(r"(-?)([0-9]+)(ns|us|ms|s|min|h|d)")
_UNIT_NS = {
    "ns": 1,
    "us": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "min": 60_000_000_000,
    "h": 3_600_000_000_000,
    "d": 86_400_000_000_000,
}


@frozen
class Timespan:
    """A Broker ``timespan``: an integer count of a unit (``ns``, ``us``, ``ms``, ``s``,
    ``min``, ``h``, ``d``).

    The unit is kept so that ``2min`` re-encodes as ``2min``; equality compares durations
    (``1000ms == 1s``). :meth:`from_ns` picks the coarsest exact unit of ``ns``/``us``/
    ``ms``/``s``, as Broker's encoder does (``0s`` for zero).

    Note: zeek-client 1.5.0 cannot parse ``us`` or negative timespans (wire spec §2.2);
    nothing in the Management API sends timespans.
    """

    value: int
    unit: str = "ns"

    def __post_init__(self) -> None:
        if self.unit not in _UNIT_NS:
            raise ValueError(f"unknown timespan unit: {self.unit!r}")

    @property
    def ns(self) -> int:
        """The duration in nanoseconds."""
        return self.value * _UNIT_NS[self.unit]

    @classmethod
    def from_ns(cls, ns: int) -> Timespan:
        """The Broker-canonical spelling of a duration in nanoseconds."""
        for unit in ("s", "ms", "us"):
            if ns % _UNIT_NS[unit] == 0:
                return cls(ns // _UNIT_NS[unit], unit)
        return cls(ns, "ns")

    def __str__(self) -> str:
        return f"{self.value}{self.unit}"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Timespan):
            return NotImplemented
        return self.ns == other.ns

    def __hash__(self) -> int:
        return hash(self.ns)


class BrokerSet(tuple[Any, ...]):
    """A Broker ``set``: keeps the order it was built or received in (so that a decoded
    message re-encodes byte for byte) but compares and hashes like a set."""

    __slots__ = ()

    def __new__(cls, items: Iterable[Any] = ()) -> BrokerSet:
        seen: list[Any] = []
        uniq: set[Any] = set()
        for item in items:
            if item not in uniq:
                uniq.add(item)
                seen.append(item)
        return super().__new__(cls, seen)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, BrokerSet):
            return len(self) == len(other) and frozenset(self) == frozenset(other)
        if isinstance(other, (set, frozenset)):
            return frozenset(self) == other
        return NotImplemented

    def __ne__(self, other: object) -> bool:
        eq = self.__eq__(other)
        return eq if eq is NotImplemented else not eq

    def __hash__(self) -> int:
        return hash(frozenset(self))

    def __repr__(self) -> str:
        return f"BrokerSet({list(self)!r})"


class Table(Mapping[Any, Any]):
    """A Broker ``table``: an immutable, insertion-ordered mapping (keys may be any
    hashable Broker value, e.g. tuples for multi-index tables)."""

    __slots__ = ("_items",)

    def __init__(self, items: Mapping[Any, Any] | Iterable[tuple[Any, Any]] = ()) -> None:
        self._items: dict[Any, Any] = dict(items)

    def __getitem__(self, key: Any) -> Any:
        return self._items[key]

    def __iter__(self) -> Iterator[Any]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Table):
            return self._items == other._items
        if isinstance(other, dict):
            return self._items == other
        return NotImplemented

    def __hash__(self) -> int:
        return hash(frozenset(self._items.items()))

    def __repr__(self) -> str:
        return f"Table({self._items!r})"


@runtime_checkable
class BrokerEncodable(Protocol):
    """Anything that can render itself as one Broker JSON value (records, Zeek enums)."""

    def to_json(self) -> JsonObj:
        """Return the ``{"@data-type": ..., "data": ...}`` form of this object."""
        ...


IPAddress: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network
#: Any decoded Broker value (see the table in the module docstring).
BrokerValue: TypeAlias = Any

# --------------------------------------------------------------------------------------
# Encoding

NONE_JSON: JsonObj = {"@data-type": "none", "data": {}}


def _ts_text(value: datetime.datetime) -> str:
    if value.tzinfo is not None:
        value = value.astimezone(datetime.UTC).replace(tzinfo=None)
    return value.isoformat(sep="T", timespec="milliseconds")


def to_json(value: BrokerValue) -> JsonObj:
    """Encode a Python value (see the module table) as a Broker JSON object.

    Raises:
        TypeError: the value has no Broker representation (a bug in the caller).
    """
    enc = _ENCODERS.get(type(value))
    if enc is not None:
        result: JsonObj = enc(value)
        return result
    # Subclasses and protocol implementers take the slow path. (A plain attribute lookup
    # rather than isinstance(value, BrokerEncodable): the runtime Protocol check costs
    # microseconds per call, and this runs for every record in a vector.)
    method = getattr(value, "to_json", None)
    if method is not None:
        encoded: JsonObj = method()
        return encoded
    for typ, enc in _ENCODERS.items():
        if isinstance(value, typ):
            result = enc(value)
            return result
    raise TypeError(f"no Broker encoding for {type(value).__name__}: {value!r}")


def _enc_vector(value: Iterable[Any]) -> JsonObj:
    return {"@data-type": "vector", "data": [to_json(v) for v in value]}


def _enc_set(value: Iterable[Any]) -> JsonObj:
    return {"@data-type": "set", "data": [to_json(v) for v in value]}


def _enc_table(value: Mapping[Any, Any]) -> JsonObj:
    return {
        "@data-type": "table",
        "data": [{"key": to_json(k), "value": to_json(v)} for k, v in value.items()],
    }


def _enc_str(value: str) -> JsonObj:
    return {"@data-type": "string", "data": value}


_ENCODERS: dict[type, Any] = {
    type(None): lambda v: {"@data-type": "none", "data": {}},
    bool: lambda v: {"@data-type": "boolean", "data": v},
    Count: lambda v: {"@data-type": "count", "data": int(v)},
    int: lambda v: {"@data-type": "integer", "data": v},
    float: lambda v: {"@data-type": "real", "data": v},
    Timespan: lambda v: {"@data-type": "timespan", "data": str(v)},
    datetime.datetime: lambda v: {"@data-type": "timestamp", "data": _ts_text(v)},
    str: _enc_str,
    EnumValue: lambda v: {"@data-type": "enum-value", "data": str(v)},
    ipaddress.IPv4Address: lambda v: {"@data-type": "address", "data": str(v)},
    ipaddress.IPv6Address: lambda v: {"@data-type": "address", "data": str(v)},
    ipaddress.IPv4Network: lambda v: {"@data-type": "subnet", "data": str(v)},
    ipaddress.IPv6Network: lambda v: {"@data-type": "subnet", "data": str(v)},
    Port: lambda v: {"@data-type": "port", "data": str(v)},
    tuple: _enc_vector,
    list: _enc_vector,
    BrokerSet: _enc_set,
    frozenset: _enc_set,
    set: _enc_set,
    Table: _enc_table,
    dict: _enc_table,
}

# --------------------------------------------------------------------------------------
# Decoding


def describe(data: JsonValue) -> str:
    """A short rendering of a JSON value for error messages."""
    try:
        text = json.dumps(data)
    except (TypeError, ValueError):
        text = repr(data)
    except RecursionError:
        text = f"<deeply nested {type(data).__name__}>"
    return text if len(text) <= 60 else text[:57] + "..."


def sub(path: str, key: str) -> str:
    """Path of ``key`` below ``path`` (``data``, ``data[2].data``, ...)."""
    return f"{path}.{key}" if path else key


def check_value(obj: JsonValue, path: str) -> tuple[str, JsonValue]:
    """Check that ``obj`` is a Broker value object; return its tag and data."""
    if type(obj) is not dict:
        raise DecodeError(path, f"expected a Broker value object, got {describe(obj)}")
    try:
        tag = obj["@data-type"]
    except KeyError:
        raise DecodeError(path, "missing '@data-type'") from None
    if "data" not in obj:
        raise DecodeError(path, "missing 'data'")
    if type(tag) is not str or tag not in _TAGS:  # an unhashable tag must not TypeError
        raise DecodeError(path, f"unknown @data-type {describe(tag)}")
    return tag, obj["data"]


def expect(obj: JsonValue, tag: str, path: str) -> JsonValue:
    """Return the ``data`` of ``obj`` after checking that it is a value of type ``tag``."""
    if type(obj) is dict and obj.get("@data-type") == tag and "data" in obj:
        return obj["data"]
    got, _ = check_value(obj, path)
    raise DecodeError(path, f"expected {tag}, got {got}")


def from_json(obj: JsonValue, path: str = "") -> BrokerValue:
    """Decode one Broker JSON value into its Python form (see the module table).

    Args:
        obj: the value object as returned by ``json.loads``.
        path: where ``obj`` sits in the enclosing document, for error messages.

    Raises:
        DecodeError: ``obj`` is not a valid Broker value.
    """
    try:
        # Fast path for well-formed values; check_value below reports what is wrong.
        if type(obj) is dict:
            tag = obj.get("@data-type")
            if type(tag) is str and "data" in obj:
                decoder = _DECODERS.get(tag)
                if decoder is not None:
                    return decoder(obj["data"], path)
        tag, data = check_value(obj, path)
        return _DECODERS[tag](data, path)
    except RecursionError:
        # A peer can nest vectors deeper than Python's stack (json.loads allows about
        # as deep as we can recurse). The innermost frame with room left reports it.
        raise DecodeError(path, "value nested too deeply") from None


def _bad(path: str, tag: str, data: JsonValue) -> DecodeError:
    return DecodeError(path, f"expected {tag}, got {describe(data)}")


def _dec_none(data: JsonValue, path: str) -> None:
    return None


def _exactly(tag: str, kind: type[T]) -> Callable[[JsonValue, str], T]:
    """The decoder of a type whose JSON ``data`` is exactly a ``kind`` (no ``int`` for a
    ``bool``, no subclasses)."""

    def decode(data: JsonValue, path: str) -> T:
        if type(data) is not kind:
            raise _bad(path, tag, data)
        value: T = data
        return value

    return decode


_dec_boolean = _exactly("boolean", bool)
_dec_string = _exactly("string", str)


def _dec_count(data: JsonValue, path: str) -> Count:
    if type(data) is not int or not 0 <= data < 2**64:
        raise _bad(path, "count", data)
    return Count(data)


def _dec_integer(data: JsonValue, path: str) -> int:
    if type(data) is not int or not -(2**63) <= data < 2**63:
        raise _bad(path, "integer", data)
    return data


def _dec_real(data: JsonValue, path: str) -> float:
    if type(data) not in (int, float) or type(data) is bool:
        raise _bad(path, "real", data)
    return float(data)


def _dec_timespan(data: JsonValue, path: str) -> Timespan:
    if type(data) is not str:
        raise _bad(path, "timespan", data)
    m = _TIMESPAN_RE.fullmatch(data)
    if m is None:
        raise _bad(path, "timespan", data)
    value = int(m.group(2))
    return Timespan(-value if m.group(1) else value, m.group(3))


def _dec_timestamp(data: JsonValue, path: str) -> datetime.datetime:
    if type(data) is not str or len(data) < 19 or data[10] != "T":
        raise _bad(path, "timestamp", data)
    try:
        value = datetime.datetime.fromisoformat(data)
    except ValueError:
        raise _bad(path, "timestamp", data) from None
    if value.tzinfo is not None:
        try:
            value = value.astimezone(datetime.UTC).replace(tzinfo=None)
        except OverflowError:  # e.g. 9999-12-31T23:59:59-05:00 is past year 9999 in UTC
            raise _bad(path, "timestamp", data) from None
    return value


def _parsed(
    tag: str, parse: Callable[[str], T], plausible: Callable[[str], bool] = bool
) -> Callable[[JsonValue, str], T]:
    """The decoder of a type whose JSON ``data`` is a string that ``parse`` turns into the
    value (raising ``ValueError`` for a bad one); ``plausible`` rejects early."""

    def decode(data: JsonValue, path: str) -> T:
        if type(data) is not str or not plausible(data):
            raise _bad(path, tag, data)
        try:
            return parse(data)
        except ValueError:
            raise _bad(path, tag, data) from None

    return decode


def _network(text: str) -> IPNetwork:
    return ipaddress.ip_network(text, strict=False)


_dec_enum = _parsed("enum-value", EnumValue)
_dec_address: Callable[[JsonValue, str], IPAddress] = _parsed("address", ipaddress.ip_address)
_dec_subnet = _parsed("subnet", _network, lambda text: "/" in text)
_dec_port = _parsed("port", Port.parse)


def _elements(data: JsonValue, tag: str, path: str) -> list[Any]:
    if type(data) is not list:
        raise _bad(path, tag, data)
    return data


def _dec_vector(data: JsonValue, path: str) -> tuple[Any, ...]:
    dpath = sub(path, "data")
    return tuple(
        [from_json(item, f"{dpath}[{i}]") for i, item in enumerate(_elements(data, "vector", path))]
    )


def _dec_set(data: JsonValue, path: str) -> BrokerSet:
    dpath = sub(path, "data")
    items = [
        from_json(item, f"{dpath}[{i}]") for i, item in enumerate(_elements(data, "set", path))
    ]
    try:
        return BrokerSet(items)
    except TypeError:
        raise DecodeError(path, "set element is not hashable") from None


def _dec_table(data: JsonValue, path: str) -> Table:
    dpath = sub(path, "data")
    pairs = []
    for i, item in enumerate(_elements(data, "table", path)):
        ipath = f"{dpath}[{i}]"
        if type(item) is not dict or "key" not in item or "value" not in item:
            raise DecodeError(ipath, f"expected {{key, value}} entry, got {describe(item)}")
        pairs.append(
            (from_json(item["key"], f"{ipath}.key"), from_json(item["value"], f"{ipath}.value"))
        )
    try:
        return Table(pairs)
    except TypeError:
        raise DecodeError(path, "table key is not hashable") from None


_DECODERS: dict[str, Any] = {
    "none": _dec_none,
    "boolean": _dec_boolean,
    "count": _dec_count,
    "integer": _dec_integer,
    "real": _dec_real,
    "timespan": _dec_timespan,
    "timestamp": _dec_timestamp,
    "string": _dec_string,
    "enum-value": _dec_enum,
    "address": _dec_address,
    "subnet": _dec_subnet,
    "port": _dec_port,
    "vector": _dec_vector,
    "set": _dec_set,
    "table": _dec_table,
}

# --------------------------------------------------------------------------------------
# Validated raw values: relaying an ``any`` without building it


class RawValue:
    """A Broker JSON value kept as received, already validated, decoded only on demand.

    A hub that relays a peer's ``any``-typed data (the controller relaying its agents'
    ``Result.data``) needs to check the value, not to build it. Two ways in:

    * :func:`decode_lazily` walks parsed JSON once without allocating and wraps it;
    * :mod:`mgmt.broker.fastdecode` checks a message's text and keeps the value's text
      (:meth:`from_text`), so that it is neither parsed nor built.

    :func:`to_json` gives what was received: the JSON object, or for text a
    :class:`~mgmt.broker.jsontext.Verbatim` that the encoder writes as it is.
    :attr:`value` decodes it (once) for code that does look inside. Equality and hashing
    are those of the decoded value.

    Only values whose JSON is exactly what :func:`to_json` would write back for their
    decoded form are kept raw, so relaying a ``RawValue`` sends the same bytes as decoding
    and re-encoding it would.

    Do not construct directly: the JSON must have passed one of those checks.
    """

    __slots__ = ("_decoded", "_json", "_text", "_value")

    def __init__(self, obj: JsonObj | None, text: str | None = None) -> None:
        self._json = obj
        self._text = text
        self._value: BrokerValue = None
        self._decoded = False

    @classmethod
    def from_text(cls, text: str) -> RawValue:
        """A value given as compact JSON text that passed :mod:`mgmt.broker.fastdecode`'s
        check (so that :func:`_canonical` holds for its parsed form)."""
        return cls(None, text)

    @property
    def text(self) -> str | None:
        """The value's JSON text when it was kept as text (:meth:`from_text`), else None."""
        return self._text

    @property
    def json(self) -> JsonObj:
        """The JSON object (parsed from the text on first use; shared: do not modify)."""
        if self._json is None:
            assert self._text is not None
            self._json = jsontext.loads(self._text)
        return self._json

    @property
    def value(self) -> BrokerValue:
        """The decoded Python value (see the module table); computed on first use."""
        if not self._decoded:
            self._value = _build_canonical(self.json)
            self._decoded = True
        return self._value

    def to_json(self) -> Any:
        """The JSON as received: the object, or the text as a ``Verbatim`` (shared:
        callers must not modify it)."""
        if self._text is not None:
            return jsontext.Verbatim(self._text)
        return self._json

    def __eq__(self, other: object) -> bool:
        if isinstance(other, RawValue):
            other = other.value
        result: bool = self.value == other
        return result

    def __hash__(self) -> int:
        return hash(self.value)

    def __repr__(self) -> str:
        return f"RawValue({self.value!r})"


_ENCODERS[RawValue] = RawValue.to_json


# A port exactly as Port.__str__ writes it (no leading zeros); the range is checked apart.
_CANONICAL_PORT = re.compile(r"(?:0|[1-9][0-9]{0,4})/(?:tcp|udp|icmp|\?)")


def _canonical(obj: JsonValue) -> bool:
    """Whether ``obj`` is a valid Broker value that re-encodes to itself.

    Covers the types the Management API relays (strings, enums, booleans, counts,
    integers, reals, ports, none and vectors of them) without building anything; False
    means "not sure" -- the value may still be valid, the caller takes the slow path.
    "Re-encodes to itself" is meant as JSON: the same members with the same values (an
    object with extra members is not canonical), the members' order aside.
    """
    if type(obj) is not dict:
        return False
    return _canonical_items([obj])


def _canonical_items(items: list[Any]) -> bool:
    # The hot loop of get-nodes relaying: one call per vector, leaves checked inline.
    for item in items:
        if type(item) is not dict or len(item) != 2:
            return False
        tag = item.get("@data-type")
        data = item.get("data")
        if tag == "string":
            if type(data) is not str:
                return False
        elif tag == "enum-value":
            if type(data) is not str or not data:
                return False
        elif tag == "vector":
            if type(data) is not list or not _canonical_items(data):
                return False
        elif tag == "integer":
            if type(data) is not int or not -(2**63) <= data < 2**63:
                return False
        elif tag == "port":
            if type(data) is not str or _CANONICAL_PORT.fullmatch(data) is None:
                return False
            if data.index("/") == 5 and int(data[:5]) > 65535:
                return False
        elif tag == "none":
            if type(data) is not dict or data:
                return False
        elif tag == "boolean":
            if type(data) is not bool:
                return False
        elif tag == "count":
            if type(data) is not int or not 0 <= data < 2**64:
                return False
        elif tag == "real":
            if type(data) is not float:
                return False
        else:
            return False
    return True


def _build_canonical(obj: JsonObj) -> BrokerValue:
    """Decode a value that passed :func:`_canonical` (so without re-checking it)."""
    tag = obj["@data-type"]
    data = obj["data"]
    if tag == "vector":
        return tuple([_build_canonical(x) for x in data])
    if tag == "string" or tag == "integer" or tag == "boolean":
        return data
    if tag == "enum-value":
        return EnumValue(data)
    if tag == "port":
        num, _, proto = data.partition("/")
        return Port(int(num), _PROTOS[proto])
    if tag == "none":
        return None
    if tag == "count":
        return Count(data)
    return float(data)  # real


def decode_lazily(obj: JsonValue, path: str = "") -> BrokerValue:
    """Validate one Broker JSON value like :func:`from_json`, building it only if needed.

    Returns a :class:`RawValue` wrapping ``obj`` when ``obj`` is in canonical form (the
    common case for values our own peers and Zeek write), else the decoded value.

    Raises:
        DecodeError: ``obj`` is not a valid Broker value (the same error as
            :func:`from_json` raises).
    """
    try:
        if _canonical(obj):
            return RawValue(obj)
    except RecursionError:
        pass  # from_json reports it with a path
    return from_json(obj, path)


# --------------------------------------------------------------------------------------
# Typed accessors for record and event codecs: decode one field of a known type directly
# from its JSON form, without building intermediate values.


def _accessor(tag: str, decode: Callable[[JsonValue, str], T]) -> Callable[[JsonValue, str], T]:
    """``get_<type>(obj, path)``: decode a value that must be of Broker type ``tag``."""

    def get(obj: JsonValue, path: str) -> T:
        return decode(expect(obj, tag, path), path)

    get.__doc__ = f"Decode a ``{tag}`` value."
    return get


get_string = _accessor("string", _dec_string)
get_bool = _accessor("boolean", _dec_boolean)
get_count = _accessor("count", _dec_count)
get_integer = _accessor("integer", _dec_integer)
get_port = _accessor("port", _dec_port)
get_address = _accessor("address", _dec_address)
get_enum = _accessor("enum-value", _dec_enum)


def get_list(obj: JsonValue, tag: str, path: str) -> list[Any]:
    """Return the element list of a ``vector``/``set``/``table`` value."""
    return _elements(expect(obj, tag, path), tag, path)


def get_collection(obj: JsonValue, path: str) -> list[Any]:
    """Return the element list of a ``vector`` or a ``set`` (zeek-client accepts both for
    Configuration's instances and nodes)."""
    tag, data = check_value(obj, path)
    if tag not in ("vector", "set"):
        raise DecodeError(path, f"expected set or vector, got {tag}")
    return _elements(data, tag, path)


def is_none(obj: JsonValue) -> bool:
    """True when ``obj`` is a Broker ``none`` value (an unset optional field)."""
    return type(obj) is dict and obj.get("@data-type") == "none"


def opt(obj: JsonValue, path: str, getter: Any) -> Any:
    """Decode an optional field: ``None`` for ``none``, else ``getter(obj, path)``."""
    if type(obj) is dict and obj.get("@data-type") == "none":
        return None
    return getter(obj, path)


def _strings(obj: JsonValue, tag: str, path: str) -> Iterator[str]:
    dpath = sub(path, "data")
    for i, item in enumerate(get_list(obj, tag, path)):
        yield get_string(item, f"{dpath}[{i}]")


def get_string_set(obj: JsonValue, path: str) -> BrokerSet:
    """Decode a ``set`` of strings."""
    return BrokerSet(_strings(obj, "set", path))


def get_string_vector(obj: JsonValue, path: str) -> tuple[str, ...]:
    """Decode a ``vector`` of strings."""
    return tuple(_strings(obj, "vector", path))


def _strings_json(tag: str, items: Iterable[str]) -> JsonObj:
    return {"@data-type": tag, "data": [{"@data-type": "string", "data": s} for s in items]}


def string_set_json(items: Iterable[str]) -> JsonObj:
    """Encode strings as a Broker ``set``."""
    return _strings_json("set", items)


def string_vector_json(items: Iterable[str]) -> JsonObj:
    """Encode strings as a Broker ``vector``."""
    return _strings_json("vector", items)
