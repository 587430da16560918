"""Golden tests: every example of the wire spec decodes and re-encodes to the same JSON.

The table is ``tests/data/wire_examples.json``, extracted from the spec by
``tests/data/extract_wire_examples.py`` (which records why a block is skipped; its
``--check`` says whether the table still matches a given spec). One table
drives both directions: each example is decoded, the result re-encoded and compared with
the example after canonical formatting (``json.dumps(sort_keys=True)``), and the re-encoded
form decodes back to an equal object.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from mgmt.broker import data as bd
from mgmt.broker import events as be
from mgmt.broker import messages as bm
from mgmt.broker import records as br
from mgmt.exceptions import DecodeError
from tests.paths import DATA

EXAMPLES: list[dict[str, Any]] = json.loads(
    (DATA / "wire_examples.json").read_text(encoding="utf-8")
)
RECORDS: dict[str, Any] = {
    "Option": br.Option,
    "Instance": br.Instance,
    "Node": br.Node,
    "NodeStatus": br.NodeStatus,
    "Result": br.Result,
    "NodeOutputs": br.NodeOutputs,
}


def canon(value: Any) -> str:
    """Canonical JSON text: what "byte-for-byte equal" compares."""
    return json.dumps(value, sort_keys=True)


def canon_text(text: str) -> str:
    return canon(json.loads(text))


def _cases(kind: str) -> list[Any]:
    return [
        pytest.param(e, id=f"L{e['line']}-{e['section'].split(' ')[0]}")
        for e in EXAMPLES
        if e["kind"] == kind
    ]


def _wrap(name: str, args: list[Any]) -> dict[str, Any]:
    return be.raw_event_to_json(name, args)


def test_table_covers_the_spec() -> None:
    """The extracted table has every kind of example, and each skip says why."""
    kinds = {e["kind"] for e in EXAMPLES}
    assert {"message", "value", "args", "handshake", "skip"} <= kinds
    assert len([e for e in EXAMPLES if e["kind"] != "skip"]) >= 40
    for e in EXAMPLES:
        if e["kind"] == "skip":
            assert e["reason"]


@pytest.mark.parametrize("example", _cases("handshake"))
def test_handshake_round_trip(example: dict[str, Any]) -> None:
    """A handshake example parses and re-serializes to the same JSON."""
    hs = bm.parse_handshake(example["text"])
    assert canon_text(hs.to_text()) == canon_text(example["text"])
    assert bm.parse_handshake(hs.to_text()) == hs


@pytest.mark.parametrize("example", _cases("message"))
def test_message_round_trip(example: dict[str, Any]) -> None:
    """A message example parses (ack, error or data message, its event decoded when it is
    in the catalogue) and re-serializes to the same JSON."""
    text = example["text"]
    obj = json.loads(text)
    if obj["type"] == "ack":
        ack = bm.parse_ack(text)
        assert canon_text(ack.to_text()) == canon_text(text)
        return
    msg = bm.parse_message(text)
    if isinstance(msg, bm.ErrorMessage):
        assert canon_text(msg.to_text()) == canon_text(text)
        return
    assert isinstance(msg, bm.DataMessage)
    try:
        event = be.event_from_json(msg.payload)
    except DecodeError:
        # Not a catalogue event (e.g. the bare count of §1.5): generic value round trip.
        value = bd.from_json(msg.payload)
        again = bm.DataMessage(msg.topic, bd.to_json(value))
        assert bd.from_json(again.payload) == value
    else:
        again = bm.DataMessage(msg.topic, be.event_to_json(event))
        reparsed = bm.parse_message(again.to_text())
        assert isinstance(reparsed, bm.DataMessage)
        assert be.event_from_json(reparsed.payload) == event
    assert canon_text(again.to_text()) == canon_text(text)


@pytest.mark.parametrize("example", _cases("value"))
def test_value_round_trip(example: dict[str, Any]) -> None:
    """A Broker value example decodes generically (and as its record type when the section
    documents one) and re-encodes to the same JSON."""
    obj = json.loads(example["text"])
    value = bd.from_json(obj)
    assert canon(bd.to_json(value)) == canon(obj)
    assert bd.from_json(bd.to_json(value)) == value
    record = example.get("record")
    if record is not None:
        rec = RECORDS[record].from_json(obj)
        assert canon(rec.to_json()) == canon(obj)
        assert RECORDS[record].from_json(rec.to_json()) == rec


@pytest.mark.parametrize("example", _cases("args"))
def test_args_round_trip(example: dict[str, Any]) -> None:
    """An args-only example: each argument round-trips generically, and the whole argument
    list decodes as one of the events the spec names for it and re-encodes unchanged."""
    args = json.loads(example["text"])
    for arg in args:
        assert canon(bd.to_json(bd.from_json(arg))) == canon(arg)
    names = example.get("events", [])
    assert names, "the extractor found no event name for this example"
    matched = []
    for name in names:
        payload = _wrap(name, args)
        try:
            event = be.event_from_json(payload)
        except DecodeError:
            continue
        assert canon(be.event_to_json(event)) == canon(payload)
        assert be.event_from_json(be.event_to_json(event)) == event
        matched.append(name)
    assert matched, f"decodes as none of {names}"
