"""Result messages decoded from their text (mgmt.broker.fastdecode) agree with the general
decoder, and the sessions deliver and refuse them as before."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mgmt.broker import data as bd
from mgmt.broker import events as be
from mgmt.broker import fastdecode, jsontext
from mgmt.broker import messages as bm
from mgmt.broker import records as br
from mgmt.broker import session as bs
from mgmt.broker.data import Port
from mgmt.broker.fastdecode import decode_result_event
from mgmt.exceptions import DecodeError, InvalidMessage
from tests.support import strategies as S

TOPIC = "zeek/management/agent/agent-1"

RESULT_SPECS = [
    spec
    for spec in S.event_specs()
    if len(spec.args) == 2
    and spec.args[0] is be.STRING
    and (spec.args[1] is be.RESULT or spec.args[1] is be.RESULTS)
]


def general(text: str) -> tuple[str, Any]:
    """What the general decoder makes of a data message."""
    msg = bm.parse_message(text)
    assert isinstance(msg, bm.DataMessage)
    return msg.topic, be.event_from_json(msg.payload)


def text_of(topic: str, event: Any) -> str:
    return bm.data_message_text(topic, be.event_to_json(event))


def statuses(count: int) -> tuple[br.NodeStatus, ...]:
    rows = [br.NodeStatus("agent-1", br.State.RUNNING, br.Role.AGENT, br.ClusterRole.NONE, 7)]
    rows += [
        br.NodeStatus(
            f"w-{i}",
            br.State.RUNNING,
            br.Role.NONE,
            br.ClusterRole.WORKER,
            100 + i,
            None,
            Port(9000),
        )
        for i in range(count)
    ]
    return tuple(rows)


GET_NODES = be.AgentGetNodesResponse("c-1", br.Result("c-1", True, "agent-1", statuses(3)))


def test_get_nodes_response_is_kept_as_text() -> None:
    """An agent's get-nodes answer decodes without parsing: its data is the received text,
    relayed verbatim, and still reads as the rows."""
    text = text_of(TOPIC, GET_NODES)
    fast = decode_result_event(text)
    assert fast is not None and fast[0] == TOPIC
    assert fast == general(text)
    raw = fast[1].result.__dict__["_data"]
    assert isinstance(raw, bd.RawValue) and isinstance(raw.to_json(), jsontext.Verbatim)
    assert raw.to_json().text in text
    assert br.node_statuses_from_value(fast[1].result.data) == statuses(3)
    assert text_of(TOPIC, fast[1]) == text


def test_result_vectors_are_decoded_fast() -> None:
    """An event carrying a ResultVec (a deploy answer) decodes fast too, empty or not."""
    results = tuple(br.Result("d", True, "agent-1", node=f"n{i}") for i in range(3))
    for event in (be.AgentDeployResponse("d", results), be.AgentDeployResponse("d", ())):
        text = text_of(TOPIC, event)
        assert decode_result_event(text) == (TOPIC, event) == general(text)


@settings(max_examples=300)
@given(st.sampled_from(RESULT_SPECS).flatmap(S.events_of), S.TEXT)
def test_fast_decode_agrees_with_the_general_decoder(event: Any, topic: str) -> None:
    """Any result event as we encode it is either left to the general decoder or decoded
    to the same event, which re-encodes to the same text."""
    text = text_of(topic, event)
    fast = decode_result_event(text)
    if fast is not None:
        assert fast == general(text)
        assert text_of(*fast) == text


_EDIT_CHARS = st.sampled_from(list('{}[]",:\\0123456789-.e /\x00\ud800é ') + ["true", "null"])


@settings(max_examples=500)
@given(st.sampled_from([GET_NODES, be.AgentDeployResponse("d", (GET_NODES.result,))]), st.data())
def test_edited_messages_are_decoded_fast_only_when_valid(event: Any, data: st.DataObject) -> None:
    """A result message with a character replaced, inserted or removed is decoded fast only
    when the general decoder accepts it too, as the same event with the same encoding."""
    text = text_of(TOPIC, event)
    where = data.draw(st.integers(0, len(text) - 1))
    edit = data.draw(st.sampled_from(["replace", "insert", "delete"]))
    char = data.draw(_EDIT_CHARS)
    keep = where + (0 if edit == "insert" else 1)
    edited = text[:where] + ("" if edit == "delete" else char) + text[keep:]
    fast = decode_result_event(edited)
    if fast is None:
        return
    try:
        expected = general(edited)
    except (InvalidMessage, DecodeError) as exc:
        pytest.fail(f"fast path accepted what the general decoder refuses: {exc}")
    assert fast == expected
    assert text_of(*fast) == text_of(*expected)


def _with_data(data_json: str) -> str:
    """The get-nodes message with ``data_json`` as its Result.data."""
    text = text_of(TOPIC, be.AgentGetNodesResponse("c", br.Result("c", True, "a", "DATA")))
    return text.replace('{"@data-type":"string","data":"DATA"}', data_json)


@pytest.mark.parametrize(
    "data_json",
    [
        '{"@data-type":"port","data":"65536/tcp"}',
        '{"@data-type":"port","data":"080/tcp"}',
        '{"@data-type":"count","data":18446744073709551616}',
        '{"@data-type":"integer","data":9223372036854775808}',
        '{"@data-type":"integer","data":-0}',
        '{"@data-type":"enum-value","data":""}',
        '{"@data-type":"string","data":"a\\"b"}',
        '{"@data-type":"string","data":"\\u00e9"}',
        '{"@data-type":"string", "data":"x"}',
        '{"data":"x","@data-type":"string"}',
        '{"@data-type":"real","data":1.5}',
        '{"@data-type":"none","data":[]}',
        '{"@data-type":"string","data":"x","extra":1}',
        '{"@data-type":"address","data":"10.0.0.1"}',
        '{"@data-type":"vector","data":[{"@data-type":"vector","data":[{"@data-type":"vector",'
        '"data":[{"@data-type":"vector","data":[]}]}]}]}',
    ],
)
def test_what_the_fast_path_leaves_to_the_general_decoder(data_json: str) -> None:
    """Out-of-range numbers, escapes, other spellings, other types and deep nesting are
    not decoded fast; the general decoder decides (accepting or refusing as before)."""
    assert decode_result_event(_with_data(data_json)) is None


@pytest.mark.parametrize(
    "change",
    [
        lambda t: t.replace('"type":"data-message",', ""),
        lambda t: t.replace('"count","data":1}', '"count","data":2}', 1),
        lambda t: t[: -len("]}]}]}")] + ',{"@data-type":"vector","data":[]}]}]}]}',
        lambda t: t.replace("get_nodes_response", "get_nodes_request"),
        lambda t: t.replace("get_nodes_response", "no_such_event"),
        lambda t: t.replace(',{"@data-type":"none","data":{}}]}]}]}]}', "]}]}]}]}"),
        lambda t: t + " ",
        lambda t: t.replace('"agent-1"', '"agent-\ud800"'),
    ],
)
def test_other_layouts_are_left_to_the_general_decoder(change: Any) -> None:
    """No type field, another format count, metadata, an event with other arguments, an
    unknown event, a short Result, trailing text or a lone surrogate: not decoded fast."""
    text = text_of(TOPIC, GET_NODES)
    changed = change(text)
    assert changed != text
    assert decode_result_event(changed) is None


def test_sessions_deliver_fast_decoded_events_as_before() -> None:
    """A fast-decoded event is delivered with its text, refused by the accept filter with
    Zeek's error, and ignored on a topic not handled, as a parsed one is."""
    text = text_of(TOPIC, GET_NODES)
    server = bs.ServerSession(endpoint="e", version="8.2.2")
    server.receive_text(json.dumps([TOPIC]))
    server.messages_to_send()
    server.events_received()
    server.receive_text(text)
    assert server.events_received() == [bs.EventReceived(TOPIC, general(text)[1], text)]

    strict = bs.ServerSession(
        endpoint="e", version="8.2.2", accept=lambda e: isinstance(e, be.DeployRequest)
    )
    strict.receive_text(json.dumps([TOPIC]))
    strict.messages_to_send()
    strict.events_received()
    strict.receive_text(text)
    (error,) = strict.messages_to_send()
    assert json.loads(error)["context"] == bm.CTX_BAD_EVENT
    (rejected,) = strict.events_received()
    assert isinstance(rejected, bs.Rejected) and strict.rejected == 1

    client = bs.ClientSession(("zeek/management/controller",))
    client.receive_text(bm.Ack("e", "8.2.2").to_text())
    client.events_received()
    client.receive_text(text)
    (ignored,) = client.events_received()
    assert isinstance(ignored, bs.Ignored) and client.ignored == 1


# --------------------------------------------------------------------------------------
# NodeStatus rows read from the kept text


def _rows_outcome(fn: Any) -> Any:
    try:
        return fn()
    except DecodeError as exc:
        return ("error", str(exc))


def _get_nodes_text(rows: Any) -> str:
    return text_of(TOPIC, be.AgentGetNodesResponse("c", br.Result("c", True, "a", rows)))


@settings(max_examples=200)
@given(st.lists(S.node_statuses(), max_size=5).map(tuple))
def test_node_statuses_read_from_text(rows: tuple[br.NodeStatus, ...]) -> None:
    """Any NodeStatus rows an agent sends are read from the kept text (or, with a pid of
    19 digits, from the parsed message) as the records it sent, the same as decoding the
    generic value gives."""
    text = _get_nodes_text(rows)
    fast = decode_result_event(text)
    if fast is None:
        assert any(r.pid is not None and abs(r.pid) >= 10**18 for r in rows)
        fast = general(text)
    result = fast[1].result
    assert fastdecode.node_statuses(result) == rows
    assert br.node_statuses_from_value(result.data) == rows


@settings(max_examples=500)
@given(st.data())
def test_edited_rows_give_what_the_general_decoder_gives(data: st.DataObject) -> None:
    """Rows with a character replaced, inserted or removed give the general decoder's
    records, or its error, whenever the message is still decoded from its text."""
    text = _get_nodes_text(statuses(2))
    where = data.draw(st.integers(text.index("vector"), len(text) - 1))
    edit = data.draw(st.sampled_from(["replace", "insert", "delete"]))
    char = data.draw(_EDIT_CHARS | st.sampled_from(["Management::", "Supervisor::", "x"]))
    keep = where + (0 if edit == "insert" else 1)
    edited = text[:where] + ("" if edit == "delete" else char) + text[keep:]
    fast = decode_result_event(edited)
    if fast is None:
        return
    result = fast[1].result
    assert _rows_outcome(lambda: fastdecode.node_statuses(result, "data")) == _rows_outcome(
        lambda: br.node_statuses_from_value(result.data, "data")
    )


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ('"Management::RUNNING"', '"Management::BOGUS"'),
        ('"Supervisor::WORKER"', '"Management::WORKER"'),
        ('{"@data-type":"string","data":"w-0"}', '{"@data-type":"enum-value","data":"w-0"}'),
        ('{"@data-type":"integer","data":100}', '{"@data-type":"count","data":100}'),
        ('{"@data-type":"port","data":"9000/tcp"}', '{"@data-type":"string","data":"9000"}'),
    ],
)
def test_rows_not_in_the_usual_form_take_the_general_path(old: str, new: str) -> None:
    """A row with an unknown enum name or a field of another type is left to the general
    decoder, which gives its records or its error as before."""
    edited = _get_nodes_text(statuses(2)).replace(old, new, 1)
    fast = decode_result_event(edited)
    assert fast is not None
    result = fast[1].result
    assert fastdecode._node_statuses_from_text(result.__dict__["_data"].text) is None
    assert _rows_outcome(lambda: fastdecode.node_statuses(result, "data")) == _rows_outcome(
        lambda: br.node_statuses_from_value(result.data, "data")
    )


# --------------------------------------------------------------------------------------
# One peer's decoder remembers its last Result


def test_a_repeated_answer_is_compared_not_checked_again() -> None:
    """The same answer to another request decodes to the same event with the new reqids,
    sharing the checked data; a different answer is checked afresh."""
    decoder = fastdecode.ResultDecoder()
    first = decoder.decode(text_of(TOPIC, GET_NODES))
    again = be.AgentGetNodesResponse("c-2", GET_NODES.result.with_changes(reqid="c-2"))
    second = decoder.decode(text_of(TOPIC, again))
    assert first is not None and second is not None
    assert second == general(text_of(TOPIC, again))
    assert second[1].result.__dict__["_data"] is first[1].result.__dict__["_data"]
    other = be.AgentGetNodesResponse("c-3", br.Result("c-3", True, "agent-1", statuses(1)))
    third = decoder.decode(text_of(TOPIC, other))
    assert third == general(text_of(TOPIC, other))


@settings(max_examples=300)
@given(st.lists(st.tuples(st.integers(0, 10**6), _EDIT_CHARS, st.booleans()), max_size=6))
def test_a_peers_decoder_agrees_with_the_stateless_one(edits: list[Any]) -> None:
    """Whatever sequence of answers (some edited, some repeated) a peer sends, its decoder
    gives what decoding each message alone gives."""
    decoder = fastdecode.ResultDecoder()
    base = text_of(TOPIC, GET_NODES)
    for where, char, edit in edits:
        i = where % len(base)
        text = base[:i] + char + base[i + 1 :] if edit else base
        assert decoder.decode(text) == decode_result_event(text)
