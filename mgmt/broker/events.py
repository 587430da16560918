"""Zeek events as Broker data, and the Management framework's event catalogue.

Layout (wire spec §3.1)::

    vector[ count 1 (format), count 1 (type: event),
            vector[ string <qualified name>, vector[<args...>], (vector <metadata>)? ] ]

Each event of the controller, agent, node and supervisor APIs is a frozen dataclass whose
fields are the event's parameters in declaration order, declared with ``@_event(<qualified
name>)``; the registry maps the name to the class and to one codec per argument, chosen
by the field's type. Argument lists many events share (``(reqid, results)`` and the like)
are one base class each (:class:`Reqid`, :class:`ReqidResults`, ...), so most events are
one line: their name and their argument list. Zeek requires the exact number of
arguments, with the declared types (wire spec §3.4); so do we. Extra trailing elements
inside *records* are tolerated (records.py), extra *arguments* are not.

zeek-mgmt's own events (``ZeekMgmt::...``) are declared in :mod:`mgmt.broker.extevents`
and registered in the same catalogue (importing this module imports that one too);
:mod:`mgmt.broker.directions` says which events travel which way.

This module is pure: no I/O, no asyncio.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import field, fields
from typing import Any, TypeVar, dataclass_transform

from mgmt.broker import data as bd
from mgmt.broker.data import BrokerSet, JsonObj, JsonValue
from mgmt.broker.records import (
    Configuration,
    Node,
    NodeOutputs,
    Result,
    State,
    results_from_json,
    results_json,
)
from mgmt.core.frozen import frozen
from mgmt.core.peertext import peer_text
from mgmt.exceptions import DecodeError

CONTROLLER_API = "Management::Controller::API::"
AGENT_API = "Management::Agent::API::"
NODE_API = "Management::Node::API::"
SUPERVISOR_API = "Management::Supervisor::API::"


class UnknownEventError(DecodeError):
    """The payload is a well-formed event whose name is not in the catalogue.

    Attributes:
        name: the event's qualified name.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__("data[2].data[0]", f"unknown event {peer_text(name, always_quote=True)}")


@frozen
class ArgCodec:
    """How one event argument travels: a Broker type name plus encoder and decoder."""

    type_name: str
    encode: Callable[[Any], JsonObj]
    decode: Callable[[JsonValue, str], Any]


def _str_json(v: str) -> JsonObj:
    return {"@data-type": "string", "data": v}


def _count_json(v: int) -> JsonObj:
    return {"@data-type": "count", "data": int(v)}


def _bool_json(v: bool) -> JsonObj:
    return {"@data-type": "boolean", "data": bool(v)}


STRING = ArgCodec("string", _str_json, bd.get_string)
BOOL = ArgCodec("bool", _bool_json, bd.get_bool)
COUNT = ArgCodec("count", _count_json, bd.get_count)
STRING_SET = ArgCodec("set[string]", bd.string_set_json, bd.get_string_set)
STRING_VECTOR = ArgCodec("vector of string", bd.string_vector_json, bd.get_string_vector)
RESULT = ArgCodec("Management::Result", Result.to_json, Result.from_json)
RESULTS = ArgCodec("Management::ResultVec", results_json, results_from_json)
CONFIGURATION = ArgCodec(
    "Management::Configuration", Configuration.to_json, Configuration.from_json
)
NODE = ArgCodec("Management::Node", Node.to_json, Node.from_json)
STATE = ArgCodec("Management::State", State.to_json, State.from_json)
NODE_OUTPUTS = ArgCodec("Management::NodeOutputs", NodeOutputs.to_json, NodeOutputs.from_json)


#: The codec of each type an event argument may have, by the type as an event field's
#: annotation spells it (the event modules postpone annotations: they stay text).
_CODECS: dict[str, ArgCodec] = {
    "str": STRING,
    "bool": BOOL,
    "int": COUNT,
    "BrokerSet": STRING_SET,
    "tuple[str, ...]": STRING_VECTOR,
    "Result": RESULT,
    "tuple[Result, ...]": RESULTS,
    "Configuration": CONFIGURATION,
    "Node": NODE,
    "State": STATE,
    "NodeOutputs": NODE_OUTPUTS,
}


@frozen
class EventSpec:
    """A catalogue entry: qualified name, Python class, and one codec per parameter."""

    name: str
    cls: type
    args: tuple[ArgCodec, ...]
    field_names: tuple[str, ...]


_BY_NAME: dict[str, EventSpec] = {}
_BY_CLASS: dict[type, EventSpec] = {}

T = TypeVar("T")


@dataclass_transform(frozen_default=True, field_specifiers=(field,))
def _event(name: str) -> Callable[[type[T]], type[T]]:
    """Declare the event ``name``: the class becomes a frozen dataclass (:func:`frozen`),
    documented as that event unless it has a docstring of its own, whose fields are
    the event's arguments, in order, each travelling with the codec of its type
    (:data:`_CODECS`), and joins the catalogue.

    Raises:
        AssertionError: a field's type has no codec (at import: a catalogue bug).
    """

    def register(cls: type[T]) -> type[T]:
        if not cls.__dict__.get("__doc__"):
            cls.__doc__ = f"The event ``{name}``."
        cls = frozen(cls)
        params = fields(cls)  # type: ignore[arg-type]
        types = [str(f.type) for f in params]
        unknown = [t for t in types if t not in _CODECS]
        if unknown:
            raise AssertionError(f"{cls.__name__}: no Broker codec for {unknown}")
        codecs = tuple(_CODECS[t] for t in types)
        spec = EventSpec(name, cls, codecs, tuple(f.name for f in params))
        _BY_NAME[name] = spec
        _BY_CLASS[cls] = spec
        return cls

    return register


# The argument lists many events share, as Zeek declares them (``reqid: string, ...``).


@frozen
class Reqid:
    """``(reqid: string)``."""

    reqid: str


@frozen
class ReqidResult(Reqid):
    """``(reqid: string, result: Management::Result)``."""

    result: Result


@frozen
class ReqidResults(Reqid):
    """``(reqid: string, results: Management::ResultVec)``."""

    results: tuple[Result, ...]


@frozen
class ReqidNodes(Reqid):
    """``(reqid: string, nodes: set[string])``."""

    nodes: BrokerSet


@frozen
class ReqidConfig(Reqid):
    """``(reqid: string, config: Management::Configuration)``."""

    config: Configuration


def spec_for(event: object) -> EventSpec:
    """The catalogue entry of an event object. Raises ``KeyError`` for non-events."""
    return _BY_CLASS[type(event)]


def spec_by_name(name: str) -> EventSpec | None:
    """The catalogue entry for a qualified event name, if known."""
    return _BY_NAME.get(name)


def event_name(event: object) -> str:
    """The qualified Zeek name of an event object."""
    return _BY_CLASS[type(event)].name


# --------------------------------------------------------------------------------------
# Management::Controller::API (clients <-> controller)


@_event(CONTROLLER_API + "get_instances_request")
class GetInstancesRequest(Reqid): ...


@_event(CONTROLLER_API + "get_instances_response")
class GetInstancesResponse(ReqidResult): ...


@_event(CONTROLLER_API + "stage_configuration_request")
class StageConfigurationRequest(ReqidConfig): ...


@_event(CONTROLLER_API + "stage_configuration_response")
class StageConfigurationResponse(ReqidResults): ...


@_event(CONTROLLER_API + "get_configuration_request")
class GetConfigurationRequest:
    reqid: str
    deployed: bool


@_event(CONTROLLER_API + "get_configuration_response")
class GetConfigurationResponse(ReqidResult): ...


@_event(CONTROLLER_API + "deploy_request")
class DeployRequest(Reqid): ...


@_event(CONTROLLER_API + "deploy_response")
class DeployResponse(ReqidResults): ...


@_event(CONTROLLER_API + "get_nodes_request")
class GetNodesRequest(Reqid): ...


@_event(CONTROLLER_API + "get_nodes_response")
class GetNodesResponse(ReqidResults): ...


@_event(CONTROLLER_API + "get_id_value_request")
class GetIdValueRequest:
    reqid: str
    id: str
    nodes: BrokerSet


@_event(CONTROLLER_API + "get_id_value_response")
class GetIdValueResponse(ReqidResults): ...


@_event(CONTROLLER_API + "restart_request")
class RestartRequest(ReqidNodes): ...


@_event(CONTROLLER_API + "restart_response")
class RestartResponse(ReqidResults): ...


@_event(CONTROLLER_API + "test_timeout_request")
class TestTimeoutRequest:
    __test__ = False  # not a pytest test class
    reqid: str
    with_state: bool


@_event(CONTROLLER_API + "test_timeout_response")
class TestTimeoutResponse:
    __test__ = False
    reqid: str
    result: Result


@_event(CONTROLLER_API + "notify_agents_ready")
class NotifyAgentsReady:
    instances: BrokerSet


# --------------------------------------------------------------------------------------
# Management::Agent::API (controller <-> agents)


@_event(AGENT_API + "deploy_request")
class AgentDeployRequest:
    reqid: str
    config: Configuration
    force: bool = False


@_event(AGENT_API + "deploy_response")
class AgentDeployResponse(ReqidResults): ...


@_event(AGENT_API + "get_nodes_request")
class AgentGetNodesRequest(Reqid): ...


@_event(AGENT_API + "get_nodes_response")
class AgentGetNodesResponse(ReqidResult): ...


@_event(AGENT_API + "node_dispatch_request")
class AgentNodeDispatchRequest:
    reqid: str
    action: tuple[str, ...]
    nodes: BrokerSet


@_event(AGENT_API + "node_dispatch_response")
class AgentNodeDispatchResponse(ReqidResults): ...


@_event(AGENT_API + "agent_welcome_request")
class AgentWelcomeRequest(Reqid): ...


@_event(AGENT_API + "agent_welcome_response")
class AgentWelcomeResponse(ReqidResult): ...


@_event(AGENT_API + "agent_standby_request")
class AgentStandbyRequest(Reqid): ...


@_event(AGENT_API + "agent_standby_response")
class AgentStandbyResponse(ReqidResult): ...


@_event(AGENT_API + "restart_request")
class AgentRestartRequest(ReqidNodes): ...


@_event(AGENT_API + "restart_response")
class AgentRestartResponse(ReqidResults): ...


@_event(AGENT_API + "notify_agent_hello")
class NotifyAgentHello:
    instance: str
    id: str
    connecting: bool
    api_version: int


@_event(AGENT_API + "notify_change")
class NotifyChange:
    instance: str
    n: Node
    old: State
    new: State


@_event(AGENT_API + "notify_error")
class NotifyError:
    instance: str
    msg: str
    node: str = ""


@_event(AGENT_API + "notify_log")
class NotifyLog:
    instance: str
    msg: str
    node: str = ""


# --------------------------------------------------------------------------------------
# Management::Node::API (agent <-> nodes) and Management::Supervisor::API


@_event(NODE_API + "node_dispatch_request")
class NodeDispatchRequest:
    reqid: str
    action: tuple[str, ...]
    nodes: BrokerSet


@_event(NODE_API + "node_dispatch_response")
class NodeDispatchResponse(ReqidResult): ...


@_event(NODE_API + "notify_node_hello")
class NotifyNodeHello:
    node: str


@_event(SUPERVISOR_API + "notify_node_exit")
class NotifyNodeExit:
    node: str
    outputs: NodeOutputs


# --------------------------------------------------------------------------------------
# Encoding and decoding

_FORMAT = {"@data-type": "count", "data": 1}
_TYPE_EVENT = {"@data-type": "count", "data": 1}


def event_to_json(event: object) -> JsonObj:
    """Encode an event object as its Broker ``vector`` (without metadata)."""
    spec = _BY_CLASS[type(event)]
    args = [
        codec.encode(getattr(event, fname))
        for codec, fname in zip(spec.args, spec.field_names, strict=True)
    ]
    return {
        "@data-type": "vector",
        "data": [
            _FORMAT,
            _TYPE_EVENT,
            {
                "@data-type": "vector",
                "data": [
                    {"@data-type": "string", "data": spec.name},
                    {"@data-type": "vector", "data": args},
                ],
            },
        ],
    }


def raw_event_to_json(
    name: str, args: Iterable[JsonObj], metadata: list[JsonObj] | None = None
) -> JsonObj:
    """Encode an event from a name and already-encoded arguments (any name, any args)."""
    inner: list[JsonObj] = [
        {"@data-type": "string", "data": name},
        {"@data-type": "vector", "data": list(args)},
    ]
    if metadata is not None:
        inner.append({"@data-type": "vector", "data": metadata})
    return {
        "@data-type": "vector",
        "data": [_FORMAT, _TYPE_EVENT, {"@data-type": "vector", "data": inner}],
    }


def event_layout(payload: JsonValue, path: str = "") -> tuple[str, list[Any]]:
    """Check the event layout of a payload; return the name and the raw argument list.

    Raises:
        DecodeError: the payload is not a Zeek event.
    """
    outer = bd.get_list(payload, "vector", path)
    dpath = bd.sub(path, "data")
    if len(outer) < 3:
        raise DecodeError(path, f"an event needs 3 elements, got {len(outer)}")
    bd.get_count(outer[0], f"{dpath}[0]")
    bd.get_count(outer[1], f"{dpath}[1]")
    ipath = f"{dpath}[2]"
    inner = bd.get_list(outer[2], "vector", ipath)
    if len(inner) < 2:
        raise DecodeError(ipath, f"an event body needs name and args, got {len(inner)} elements")
    idpath = bd.sub(ipath, "data")
    name = bd.get_string(inner[0], f"{idpath}[0]")
    args = bd.get_list(inner[1], "vector", f"{idpath}[1]")
    return name, args


def event_from_json(payload: JsonValue, path: str = "") -> Any:
    """Decode a Broker event payload into its event object.

    Args:
        payload: the data message's value (``{"@data-type": "vector", "data": [...]}``).
        path: where the payload sits, for error messages (``""`` for the message itself).

    Raises:
        UnknownEventError: a well-formed event with a name not in the catalogue.
        DecodeError: not an event, wrong argument count, or an argument of the wrong type.
    """
    name, args = event_layout(payload, path)
    spec = _BY_NAME.get(name)
    if spec is None:
        raise UnknownEventError(name)
    apath = bd.sub(bd.sub(path, "data[2]"), "data[1]")
    if len(args) != len(spec.args):
        raise DecodeError(apath, f"{name} takes {len(spec.args)} arguments, got {len(args)}")
    dpath = bd.sub(apath, "data")
    values = [
        codec.decode(arg, f"{dpath}[{i}]")
        for i, (codec, arg) in enumerate(zip(spec.args, args, strict=True))
    ]
    return spec.cls(*values)


# The extension events register themselves in the catalogue above: import them with it, so
# that every decoder knows them (extevents imports this module; by now it is complete).
from mgmt.broker import extevents as _extevents  # noqa: E402, F401
