"""Management records and enums (``policy/frameworks/management/types.zeek``).

A Zeek record travels as a Broker ``vector`` with one element per field, in declaration
order; an unset ``&optional`` field is ``none`` (wire spec §3.3, §4). Each record here is a
frozen dataclass whose fields are in wire order, with:

* ``to_json()`` -- the Broker JSON object, built directly (no intermediate values: this is
  the hot path of every response);
* ``from_json(obj, path)`` -- decoding straight from JSON, raising only
  :class:`~mgmt.exceptions.DecodeError` with the element's path;
* ``from_value(value)`` -- the same from an already-decoded generic Broker value (e.g. the
  ``any``-typed ``Result.data``).

Decoding follows Zeek's leniency: extra trailing elements are ignored, ``none`` stands for
an unset field, and fields with ``&default`` take their default when ``none``. Trailing
optional fields that older peers omit (``Node.metrics_port``, ``NodeStatus.metrics_port``)
may be missing.
"""

from __future__ import annotations

import enum
import ipaddress
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from mgmt.broker import data as bd
from mgmt.broker.data import BrokerValue, IPAddress, JsonObj, JsonValue, Port
from mgmt.core.frozen import frozen
from mgmt.core.peertext import peer_text
from mgmt.exceptions import DecodeError

_NONE = bd.NONE_JSON

# --------------------------------------------------------------------------------------
# Enums

E = TypeVar("E", bound="ZeekEnum")

# Wire names are looked up on every record field that is an enum, so they are computed once
# per enum class: class -> {wire name: member} and class -> {member name: wire name}.
_BY_WIRE_NAME: dict[type, dict[str, Any]] = {}
_WIRE_NAMES: dict[type, dict[str, str]] = {}
#: The Zeek module of each enum class (``Supervisor``, ``Management``).
_MODULES: dict[type, str] = {}


def _wire_table(cls: type[ZeekEnum]) -> dict[str, Any]:
    table = _BY_WIRE_NAME.get(cls)
    if table is None:
        module = cls.module()
        table = {f"{module}::{name}": member for name, member in cls.__members__.items()}
        _BY_WIRE_NAME[cls] = table
        _WIRE_NAMES[cls] = {member.name: wire for wire, member in table.items()}
    return table


def by_wire_name(cls: type[E]) -> dict[str, E]:
    """Each member of a Zeek enum by its qualified wire name (shared: do not modify)."""
    return _wire_table(cls)


class ZeekEnum(enum.Enum):
    """A Zeek enum; on the wire it is fully qualified (``Supervisor::WORKER``).

    Each enum names the Zeek module that qualifies it:
    ``class Role(ZeekEnum, zeek_module="Management")``.
    """

    def __init_subclass__(cls, zeek_module: str = "", **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _MODULES[cls] = zeek_module

    @classmethod
    def module(cls) -> str:
        """The Zeek module that qualifies the names."""
        return _MODULES[cls]

    @property
    def qualified(self) -> str:
        """The wire name, e.g. ``Management::RUNNING``."""
        names = _WIRE_NAMES.get(type(self))
        if names is None:
            _wire_table(type(self))
            names = _WIRE_NAMES[type(self)]
        return names[self._name_]

    def to_json(self) -> JsonObj:
        """The ``enum-value`` Broker JSON object."""
        return {"@data-type": "enum-value", "data": self.qualified}

    @classmethod
    def parse(cls: type[E], text: str) -> E:
        """Look up a qualified wire name. Raises ``ValueError`` for an unknown name."""
        member = _wire_table(cls).get(text)
        if member is None:
            shown = peer_text(str(text), always_quote=True)
            raise ValueError(f"{shown} is not a {cls.module()}::{cls.__name__} value")
        result: E = member
        return result

    @classmethod
    def from_json(cls: type[E], obj: JsonValue, path: str = "") -> E:
        """Decode an ``enum-value`` of this enum."""
        text = bd.get_enum(obj, path)
        try:
            return cls.parse(text)
        except ValueError as exc:
            raise DecodeError(path, str(exc)) from None


class ClusterRole(ZeekEnum, zeek_module="Supervisor"):
    """``Supervisor::ClusterRole``."""

    NONE = 0
    LOGGER = 1
    MANAGER = 2
    PROXY = 3
    WORKER = 4


class Role(ZeekEnum, zeek_module="Management"):
    """``Management::Role``: what kind of management process a NodeStatus row is."""

    NONE = 0
    AGENT = 1
    CONTROLLER = 2
    NODE = 3


class State(ZeekEnum, zeek_module="Management"):
    """``Management::State``. Zeek only uses PENDING and RUNNING; zeek-mgmt uses them all."""

    PENDING = 0
    RUNNING = 1
    STOPPED = 2
    FAILED = 3
    CRASHED = 4
    UNKNOWN = 5


# --------------------------------------------------------------------------------------
# Helpers


def _fields(obj: JsonValue, path: str, name: str, required: int) -> list[Any]:
    items = bd.get_list(obj, "vector", path)
    if len(items) < required:
        raise DecodeError(path, f"{name} needs {required} fields, got {len(items)}")
    return items


def _p(path: str, i: int) -> str:
    return f"{bd.sub(path, 'data')}[{i}]"


def _opt_port(p: Port | None) -> JsonObj:
    return _NONE if p is None else {"@data-type": "port", "data": str(p)}


def _opt_str(s: str | None) -> JsonObj:
    return _NONE if s is None else {"@data-type": "string", "data": s}


def _required(obj: JsonValue, path: str, getter: Any) -> Any:
    if bd.is_none(obj):
        raise DecodeError(path, "required field is none")
    return getter(obj, path)


R = TypeVar("R")


def _from_value(cls: Any, value: BrokerValue, path: str) -> Any:
    """Decode a record from a generic value by way of its JSON form."""
    try:
        obj = bd.to_json(value)
    except TypeError as exc:
        raise DecodeError(path, str(exc)) from None
    return cls.from_json(obj, path)


# --------------------------------------------------------------------------------------
# Records


@frozen
class Option:
    """``Management::Option``: a Zeek option name and its value, both as strings."""

    name: str
    value: str

    def to_json(self) -> JsonObj:
        return {"@data-type": "vector", "data": [bd._enc_str(self.name), bd._enc_str(self.value)]}

    @classmethod
    def from_json(cls, obj: JsonValue, path: str = "") -> Option:
        f = _fields(obj, path, "Option", 2)
        return cls(bd.get_string(f[0], _p(path, 0)), bd.get_string(f[1], _p(path, 1)))


@frozen
class Instance:
    """``Management::Instance``: an agent. ``host`` 0.0.0.0 means unknown / the agent dials
    the controller; ``listen_port`` set means the controller dials the agent."""

    name: str
    host: IPAddress = ipaddress.IPv4Address("0.0.0.0")
    listen_port: Port | None = None

    def to_json(self) -> JsonObj:
        return {
            "@data-type": "vector",
            "data": [
                {"@data-type": "string", "data": self.name},
                {"@data-type": "address", "data": str(self.host)},
                _opt_port(self.listen_port),
            ],
        }

    @classmethod
    def from_json(cls, obj: JsonValue, path: str = "") -> Instance:
        f = _fields(obj, path, "Instance", 2)
        port = bd.opt(f[2], _p(path, 2), bd.get_port) if len(f) > 2 else None
        return cls(
            _required(f[0], _p(path, 0), bd.get_string),
            _required(f[1], _p(path, 1), bd.get_address),
            port,
        )

    @classmethod
    def from_value(cls, value: BrokerValue, path: str = "") -> Instance:
        return _from_value(cls, value, path)  # type: ignore[no-any-return]


@frozen
class Node:
    """``Management::Node``: one cluster node of a configuration (11 fields, wire order)."""

    name: str
    instance: str
    role: ClusterRole
    state: State = State.RUNNING
    p: Port | None = None
    scripts: tuple[str, ...] | None = None
    options: tuple[Option, ...] | None = None
    interface: str | None = None
    cpu_affinity: int | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    metrics_port: Port | None = None

    def to_json(self) -> JsonObj:
        return {
            "@data-type": "vector",
            "data": [
                {"@data-type": "string", "data": self.name},
                {"@data-type": "string", "data": self.instance},
                {"@data-type": "enum-value", "data": self.role.qualified},
                {"@data-type": "enum-value", "data": self.state.qualified},
                _opt_port(self.p),
                _NONE if self.scripts is None else bd.string_vector_json(self.scripts),
                _NONE
                if self.options is None
                else {"@data-type": "set", "data": [o.to_json() for o in self.options]},
                _opt_str(self.interface),
                _NONE
                if self.cpu_affinity is None
                else {"@data-type": "integer", "data": self.cpu_affinity},
                {
                    "@data-type": "table",
                    "data": [
                        {
                            "key": {"@data-type": "string", "data": k},
                            "value": {"@data-type": "string", "data": v},
                        }
                        for k, v in self.env.items()
                    ],
                },
                _opt_port(self.metrics_port),
            ],
        }

    @classmethod
    def from_json(cls, obj: JsonValue, path: str = "") -> Node:
        # Well-formed input (the common case) decodes without building error paths; on
        # any doubt the checked decoder below decides, and names the offending element.
        try:
            return _node_fast(obj)
        except Exception:
            return cls._from_json_checked(obj, path)

    @classmethod
    def _from_json_checked(cls, obj: JsonValue, path: str) -> Node:
        f = _fields(obj, path, "Node", 10)
        options = None
        if not bd.is_none(f[6]):
            opath = _p(path, 6)
            items = bd.get_list(f[6], "set", opath)
            options = tuple(Option.from_json(o, _p(opath, i)) for i, o in enumerate(items))
        env: dict[str, str] = {}
        if not bd.is_none(f[9]):
            epath = _p(path, 9)
            for i, entry in enumerate(bd.get_list(f[9], "table", epath)):
                ipath = _p(epath, i)
                if type(entry) is not dict or "key" not in entry or "value" not in entry:
                    raise DecodeError(ipath, "expected {key, value} entry")
                env[bd.get_string(entry["key"], ipath + ".key")] = bd.get_string(
                    entry["value"], ipath + ".value"
                )
        state = State.RUNNING if bd.is_none(f[3]) else State.from_json(f[3], _p(path, 3))
        return cls(
            name=_required(f[0], _p(path, 0), bd.get_string),
            instance=_required(f[1], _p(path, 1), bd.get_string),
            role=_required(f[2], _p(path, 2), ClusterRole.from_json),
            state=state,
            p=bd.opt(f[4], _p(path, 4), bd.get_port),
            scripts=bd.opt(f[5], _p(path, 5), bd.get_string_vector),
            options=options,
            interface=bd.opt(f[7], _p(path, 7), bd.get_string),
            cpu_affinity=bd.opt(f[8], _p(path, 8), bd.get_integer),
            env=env,
            metrics_port=bd.opt(f[10], _p(path, 10), bd.get_port) if len(f) > 10 else None,
        )

    def with_changes(self, **changes: Any) -> Node:
        """A copy with some fields replaced (``dataclasses.replace``)."""
        return replace(self, **changes)


class _NotFast(Exception):
    """The fast decoder is unsure: let the checked decoder decide."""


def _fast_str(x: Any) -> str:
    if x.__class__ is dict and x.get("@data-type") == "string":
        data = x["data"]
        if data.__class__ is str:
            return data
    raise _NotFast


def _fast_opt_str(x: Any) -> str | None:
    if x.__class__ is dict and x.get("@data-type") == "none":
        return None
    return _fast_str(x)


def _fast_opt_port(x: Any) -> Port | None:
    if x.__class__ is dict:
        tag = x.get("@data-type")
        if tag == "none":
            return None
        if tag == "port" and x["data"].__class__ is str:
            return Port.parse(x["data"])
    raise _NotFast


def _fast_enum(x: Any, table: dict[str, Any]) -> Any:
    if x.__class__ is dict and x.get("@data-type") == "enum-value":
        return table[x["data"]]
    raise _NotFast


def _node_fast(obj: Any) -> Node:
    """Decode a well-formed Node without error paths; raises on anything unusual."""
    if obj.__class__ is not dict or obj.get("@data-type") != "vector":
        raise _NotFast
    f = obj["data"]
    if f.__class__ is not list or len(f) < 10:
        raise _NotFast
    none = "none"
    state_json = f[3]
    scripts_json = f[5]
    scripts: tuple[str, ...] | None = None
    if scripts_json.get("@data-type") != none:
        if scripts_json["@data-type"] != "vector" or scripts_json["data"].__class__ is not list:
            raise _NotFast
        scripts = tuple([_fast_str(item) for item in scripts_json["data"]])
    options: tuple[Option, ...] | None = None
    options_json = f[6]
    if options_json.get("@data-type") != none:
        if options_json["@data-type"] != "set" or options_json["data"].__class__ is not list:
            raise _NotFast
        opts = []
        for item in options_json["data"]:
            if item.__class__ is not dict or item.get("@data-type") != "vector":
                raise _NotFast
            pair = item["data"]
            if pair.__class__ is not list or len(pair) < 2:
                raise _NotFast
            opts.append(Option(_fast_str(pair[0]), _fast_str(pair[1])))
        options = tuple(opts)
    cpu_json = f[8]
    cpu: int | None = None
    if cpu_json.get("@data-type") != none:
        cpu = cpu_json["data"]
        if cpu_json["@data-type"] != "integer" or cpu.__class__ is not int:
            raise _NotFast
        if not -(2**63) <= cpu < 2**63:
            raise _NotFast
    env: dict[str, str] = {}
    env_json = f[9]
    if env_json.get("@data-type") != none:
        if env_json["@data-type"] != "table" or env_json["data"].__class__ is not list:
            raise _NotFast
        for entry in env_json["data"]:
            if entry.__class__ is not dict:
                raise _NotFast
            env[_fast_str(entry["key"])] = _fast_str(entry["value"])
    return Node(
        name=_fast_str(f[0]),
        instance=_fast_str(f[1]),
        role=_fast_enum(f[2], _wire_table(ClusterRole)),
        state=State.RUNNING
        if state_json.get("@data-type") == none
        else _fast_enum(state_json, _wire_table(State)),
        p=_fast_opt_port(f[4]),
        scripts=scripts,
        options=options,
        interface=_fast_opt_str(f[7]),
        cpu_affinity=cpu,
        env=env,
        metrics_port=_fast_opt_port(f[10]) if len(f) > 10 else None,
    )


def new_config_id() -> str:
    """A fresh configuration id (Zeek uses ``unique_id("")``; zeek-client ``uuid1()``)."""
    return str(uuid.uuid4())


@frozen
class Configuration:
    """``Management::Configuration``: an id plus sets of instances and nodes."""

    id: str = field(default_factory=new_config_id)
    instances: tuple[Instance, ...] = ()
    nodes: tuple[Node, ...] = ()

    def to_json(self) -> JsonObj:
        return {
            "@data-type": "vector",
            "data": [
                {"@data-type": "string", "data": self.id},
                {"@data-type": "set", "data": [i.to_json() for i in self.instances]},
                {"@data-type": "set", "data": [n.to_json() for n in self.nodes]},
            ],
        }

    @classmethod
    def from_json(cls, obj: JsonValue, path: str = "") -> Configuration:
        f = _fields(obj, path, "Configuration", 3)
        ipath, npath = _p(path, 1), _p(path, 2)
        instances: tuple[Instance, ...] = ()
        nodes: tuple[Node, ...] = ()
        if not bd.is_none(f[1]):
            instances = tuple(
                Instance.from_json(x, _p(ipath, i))
                for i, x in enumerate(bd.get_collection(f[1], ipath))
            )
        if not bd.is_none(f[2]):
            nodes = tuple(
                Node.from_json(x, _p(npath, i))
                for i, x in enumerate(bd.get_collection(f[2], npath))
            )
        cid = new_config_id() if bd.is_none(f[0]) else bd.get_string(f[0], _p(path, 0))
        return cls(cid, instances, nodes)

    @classmethod
    def from_value(cls, value: BrokerValue, path: str = "") -> Configuration:
        return _from_value(cls, value, path)  # type: ignore[no-any-return]

    def nodes_of(self, instance: str) -> list[Node]:
        """The nodes that run on ``instance``, in configuration order."""
        return [n for n in self.nodes if n.instance == instance]

    def node(self, name: str) -> Node | None:
        """The node called ``name``, if any."""
        for n in self.nodes:
            if n.name == name:
                return n
        return None


@frozen
class NodeStatus:
    """``Management::NodeStatus``: one row of a get-nodes answer (7 fields)."""

    node: str
    state: State
    mgmt_role: Role = Role.NONE
    cluster_role: ClusterRole = ClusterRole.NONE
    pid: int | None = None
    p: Port | None = None
    metrics_port: Port | None = None

    def to_json(self) -> JsonObj:
        return {
            "@data-type": "vector",
            "data": [
                {"@data-type": "string", "data": self.node},
                {"@data-type": "enum-value", "data": self.state.qualified},
                {"@data-type": "enum-value", "data": self.mgmt_role.qualified},
                {"@data-type": "enum-value", "data": self.cluster_role.qualified},
                _NONE if self.pid is None else {"@data-type": "integer", "data": self.pid},
                _opt_port(self.p),
                _opt_port(self.metrics_port),
            ],
        }

    @classmethod
    def from_json(cls, obj: JsonValue, path: str = "") -> NodeStatus:
        f = _fields(obj, path, "NodeStatus", 6)
        return cls(
            node=_required(f[0], _p(path, 0), bd.get_string),
            state=_required(f[1], _p(path, 1), State.from_json),
            mgmt_role=Role.NONE if bd.is_none(f[2]) else Role.from_json(f[2], _p(path, 2)),
            cluster_role=ClusterRole.NONE
            if bd.is_none(f[3])
            else ClusterRole.from_json(f[3], _p(path, 3)),
            pid=bd.opt(f[4], _p(path, 4), bd.get_integer),
            p=bd.opt(f[5], _p(path, 5), bd.get_port),
            metrics_port=bd.opt(f[6], _p(path, 6), bd.get_port) if len(f) > 6 else None,
        )

    @classmethod
    def from_value(cls, value: BrokerValue, path: str = "") -> NodeStatus:
        # get-nodes answers carry hundreds of these inside the generic Result.data: build
        # them straight from the decoded tuple when every field has its exact type, and
        # take the JSON route (which reports errors with paths) for anything else.
        if type(value) is tuple and 6 <= len(value):
            fast = _node_status_from_tuple(value)
            if fast is not None:
                return fast
        return _from_value(cls, value, path)  # type: ignore[no-any-return]


def _enum_or(cls: type[E], value: Any, default: E | None) -> E | None:
    """The member for a decoded enum-value (``default`` for none); None if invalid."""
    if value is None:
        return default
    if type(value) is not bd.EnumValue:
        return None
    member: E | None = _wire_table(cls).get(value)
    return member


def _opt_exact(value: Any, typ: type) -> tuple[bool, Any]:
    """(ok, value) for an optional field that must be exactly ``typ`` when set."""
    return (value is None or type(value) is typ), value


def _node_status_from_tuple(v: tuple[Any, ...]) -> NodeStatus | None:
    """NodeStatus from a generic decoded vector, or None if it needs the careful path."""
    node = v[0]
    state = _enum_or(State, v[1], None)
    mgmt_role = _enum_or(Role, v[2], Role.NONE)
    cluster_role = _enum_or(ClusterRole, v[3], ClusterRole.NONE)
    ok_pid, pid = _opt_exact(v[4], int)
    ok_p, p = _opt_exact(v[5], Port)
    ok_m, metrics = _opt_exact(v[6] if len(v) > 6 else None, Port)
    if (
        type(node) is not str
        or state is None
        or mgmt_role is None
        or cluster_role is None
        or not (ok_pid and ok_p and ok_m)
    ):
        return None
    return NodeStatus(node, state, mgmt_role, cluster_role, pid, p, metrics)


@frozen
class NodeOutputs:
    """``Management::NodeOutputs``: the tails of a node's stdout and stderr."""

    stdout: str = ""
    stderr: str = ""

    def to_json(self) -> JsonObj:
        return {
            "@data-type": "vector",
            "data": [bd._enc_str(self.stdout), bd._enc_str(self.stderr)],
        }

    @classmethod
    def from_json(cls, obj: JsonValue, path: str = "") -> NodeOutputs:
        f = _fields(obj, path, "NodeOutputs", 2)
        return cls(bd.get_string(f[0], _p(path, 0)), bd.get_string(f[1], _p(path, 1)))

    @classmethod
    def from_value(cls, value: BrokerValue, path: str = "") -> NodeOutputs:
        return _from_value(cls, value, path)  # type: ignore[no-any-return]


class _AnyField:
    """The descriptor behind ``Result.data``: stores what it is given, which may be a
    :class:`~mgmt.broker.data.RawValue`, and always reads as the decoded value."""

    def __get__(self, obj: object, objtype: type | None = None) -> BrokerValue:
        if obj is None:
            return None  # the dataclass field's default
        value = obj.__dict__["_data"]
        if type(value) is bd.RawValue:
            return value.value
        return value

    def __set__(self, obj: object, value: BrokerValue) -> None:
        obj.__dict__["_data"] = value


@dataclass(frozen=True)
class Result:
    """``Management::Result`` (6 fields, always all present on the wire).

    ``data`` is Zeek's ``any``: a generic Broker value (see :mod:`mgmt.broker.data`) or an
    object with ``to_json()`` such as a record, a tuple of records, ... Whether
    ``instance`` and ``node`` are set changes how zeek-client renders a result (wire spec
    §7), so producers set them exactly as Zeek does.

    :meth:`from_json` validates ``data`` but, when it is in canonical form, keeps it as
    received (a :class:`~mgmt.broker.data.RawValue`): reading ``data`` decodes it on first
    use, while :meth:`to_json` re-emits the received JSON without building anything. That
    is what lets the controller relay thousands of agents' NodeStatus rows cheaply.
    """

    reqid: str
    success: bool = True
    instance: str | None = None
    data: _AnyField = _AnyField()
    error: str | None = None
    node: str | None = None

    def to_json(self) -> JsonObj:
        return {
            "@data-type": "vector",
            "data": [
                {"@data-type": "string", "data": self.reqid},
                {"@data-type": "boolean", "data": self.success},
                _opt_str(self.instance),
                bd.to_json(self.__dict__["_data"]),
                _opt_str(self.error),
                _opt_str(self.node),
            ],
        }

    @classmethod
    def from_json(cls, obj: JsonValue, path: str = "") -> Result:
        f = _fields(obj, path, "Result", 6)
        return cls(
            reqid=_required(f[0], _p(path, 0), bd.get_string),
            success=True if bd.is_none(f[1]) else bd.get_bool(f[1], _p(path, 1)),
            instance=bd.opt(f[2], _p(path, 2), bd.get_string),
            data=bd.decode_lazily(f[3], _p(path, 3)),
            error=bd.opt(f[4], _p(path, 4), bd.get_string),
            node=bd.opt(f[5], _p(path, 5), bd.get_string),
        )

    def with_changes(self, **changes: Any) -> Result:
        """A copy with some fields replaced (``dataclasses.replace``); a received
        ``data`` stays undecoded."""
        changes.setdefault("data", self.__dict__["_data"])
        return replace(self, **changes)


def results_json(results: Iterable[Result]) -> JsonObj:
    """Encode a ``Management::ResultVec`` (always a ``vector``)."""
    return {"@data-type": "vector", "data": [r.to_json() for r in results]}


def results_from_json(obj: JsonValue, path: str = "") -> tuple[Result, ...]:
    """Decode a ``Management::ResultVec``."""
    dpath = bd.sub(path, "data")
    return tuple(
        Result.from_json(x, f"{dpath}[{i}]") for i, x in enumerate(bd.get_list(obj, "vector", path))
    )


def node_statuses_from_value(value: BrokerValue, path: str = "") -> tuple[NodeStatus, ...]:
    """Decode a ``NodeStatusVec`` from the generic ``Result.data``."""
    if not isinstance(value, tuple):
        raise DecodeError(path, "expected vector of NodeStatus")
    return tuple(NodeStatus.from_value(v, f"{path}[{i}]") for i, v in enumerate(value))
