"""Zeek events and the Management event catalogue (mgmt.broker.events)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings

from mgmt.broker import directions as dirs
from mgmt.broker import events as be
from mgmt.broker import records as br
from mgmt.broker.data import BrokerSet
from mgmt.exceptions import DecodeError
from tests.support import strategies as S


def V(tag: str, data: Any) -> dict[str, Any]:
    return {"@data-type": tag, "data": data}


def s(text: str) -> dict[str, Any]:
    return V("string", text)


def envelope(name: Any, args: Any, *extra: Any) -> dict[str, Any]:
    return V("vector", [V("count", 1), V("count", 1), V("vector", [name, args, *extra])])


def wire(obj: Any) -> Any:
    return json.loads(json.dumps(obj))


def canon(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


GET_NODES = be.CONTROLLER_API + "get_nodes_request"


def test_layout_of_an_encoded_event() -> None:
    """An event is vector[count 1, count 1, vector[name, vector[args]]] (wire spec §3.1)."""
    assert be.event_to_json(be.GetNodesRequest("r1")) == envelope(
        s(GET_NODES), V("vector", [s("r1")])
    )
    assert be.event_name(be.GetNodesRequest("r1")) == GET_NODES
    assert be.spec_by_name(GET_NODES) is be.spec_for(be.GetNodesRequest("r1"))
    assert be.spec_by_name("nope") is None


def test_metadata_is_accepted() -> None:
    """A third inner element (metadata, as Zeek may send it) is accepted and ignored."""
    meta = V("vector", [V("vector", [V("count", 1), V("timestamp", "2025-11-04T16:22:53.000")])])
    payload = envelope(s(GET_NODES), V("vector", [s("r1")]), meta)
    assert be.event_from_json(payload) == be.GetNodesRequest("r1")
    assert be.raw_event_to_json(GET_NODES, [s("r1")], [meta["data"][0]]) == payload


def test_typed_arguments() -> None:
    """Arguments decode to their declared types (sets, vectors, records, enums)."""
    event = be.event_from_json(
        envelope(
            s(be.CONTROLLER_API + "get_id_value_request"),
            V("vector", [s("r"), s("LogAscii::use_json"), V("set", [s("worker-01")])]),
        )
    )
    assert event == be.GetIdValueRequest("r", "LogAscii::use_json", BrokerSet(["worker-01"]))
    change = be.NotifyChange(
        "agent", br.Node("n", "agent", br.ClusterRole.WORKER), br.State.PENDING, br.State.RUNNING
    )
    assert be.event_from_json(wire(be.event_to_json(change))) == change


EVENT_ERRORS: list[tuple[Any, str]] = [
    (V("count", 1), "expected vector, got count"),
    (V("vector", [V("count", 1), V("count", 1)]), "an event needs 3 elements, got 2"),
    (
        V("vector", [V("count", 1), V("integer", 1), V("vector", [])]),
        "data[1]: expected count, got integer",
    ),
    (
        V("vector", [V("count", 1), V("count", 1), V("vector", [s("x")])]),
        "data[2]: an event body needs name and args, got 1 elements",
    ),
    (envelope(V("count", 3), V("vector", [])), "data[2].data[0]: expected string, got count"),
    (envelope(s(GET_NODES), V("set", [])), "data[2].data[1]: expected vector, got set"),
    (envelope(s("Foo::bar"), V("vector", [])), "data[2].data[0]: unknown event 'Foo::bar'"),
    (
        envelope(s(GET_NODES), V("vector", [s("a"), s("b")])),
        f"data[2].data[1]: {GET_NODES} takes 1 arguments, got 2",
    ),
    (
        envelope(s(GET_NODES), V("vector", [])),
        f"data[2].data[1]: {GET_NODES} takes 1 arguments, got 0",
    ),
    (
        envelope(s(GET_NODES), V("vector", [V("count", 5)])),
        "data[2].data[1].data[0]: expected string, got count",
    ),
    (
        envelope(s(be.CONTROLLER_API + "restart_request"), V("vector", [s("r"), V("vector", [])])),
        "data[2].data[1].data[1]: expected set, got vector",
    ),
    (
        envelope(
            s(be.CONTROLLER_API + "stage_configuration_request"),
            V("vector", [s("r"), V("vector", [s("id"), V("set", []), V("set", [s("x")])])]),
        ),
        "data[2].data[1].data[1].data[2].data[0]: expected vector, got string",
    ),
]


@pytest.mark.parametrize(("payload", "message"), EVENT_ERRORS, ids=lambda x: str(x)[:40])
def test_event_decode_errors(payload: Any, message: str) -> None:
    """Malformed events raise DecodeError naming the path: layout, unknown name (its own
    subclass), wrong arity, wrong argument type."""
    with pytest.raises(DecodeError) as info:
        be.event_from_json(payload)
    assert str(info.value) == message
    assert isinstance(info.value, be.UnknownEventError) == ("unknown event" in message)


def test_catalogue_is_consistent() -> None:
    """Every catalogue event has one codec per field and a Management or ZeekMgmt name;
    the directions list catalogue events only, each in one direction, and every API
    request and response has its direction."""
    for spec in S.event_specs():
        assert len(spec.args) == len(spec.field_names)
        assert spec.name.startswith(("Management::", "ZeekMgmt::"))
    directions = (
        dirs.CLIENT_TO_CONTROLLER,
        dirs.CONTROLLER_TO_CLIENT,
        dirs.CONTROLLER_TO_AGENT,
        dirs.AGENT_TO_CONTROLLER,
    )
    listed = [cls for direction in directions for cls in direction]
    assert len(listed) == len(set(listed))
    for cls in listed:
        assert be._BY_CLASS[cls].cls is cls
    api = {
        spec.cls
        for spec in S.event_specs()
        if "::Controller::API::" in spec.name or "::Agent::API::" in spec.name
    }
    assert api - set(listed) == {be.NotifyAgentsReady}  # Zeek's controller-internal event
    v1_requests = [c for c in dirs.CLIENT_TO_CONTROLLER if c.__module__ == be.__name__]
    assert len(v1_requests) == 8


def test_an_event_whose_field_broker_cannot_carry_fails_at_declaration() -> None:
    """Declaring an event with a field type that has no Broker codec fails at once,
    naming the type, and adds nothing to the catalogue."""
    before = dict(be._BY_NAME)
    with pytest.raises(AssertionError, match=r"Frob: no Broker codec for \['float'\]"):

        @be._event("Test::API::frob_request")
        class Frob(be.Reqid):
            weight: float

    assert be._BY_NAME == before


@pytest.mark.parametrize("spec", S.event_specs(), ids=lambda sp: sp.name.split("API::")[-1])
def test_every_event_round_trips(spec: be.EventSpec) -> None:
    """Each catalogue event, with arbitrary arguments, survives encode -> JSON -> decode and
    re-encodes identically."""

    @settings(max_examples=30)
    @given(S.events_of(spec))
    def check(event: Any) -> None:
        obj = wire(be.event_to_json(event))
        decoded = be.event_from_json(obj)
        assert decoded == event
        assert canon(be.event_to_json(decoded)) == canon(obj)

    check()


@given(S.brokerish_events())
def test_arbitrary_arguments_raise_only_decode_error(payload: Any) -> None:
    """Catalogue names with arbitrary arguments decode or raise DecodeError, nothing else."""
    try:
        be.event_from_json(payload)
    except DecodeError as exc:
        assert exc.path.startswith("data[2]")


@given(S.brokerish_json())
def test_arbitrary_json_raises_only_decode_error(payload: Any) -> None:
    """Arbitrary JSON into event_from_json decodes or raises DecodeError, nothing else."""
    try:
        be.event_from_json(payload)
    except DecodeError:
        pass
