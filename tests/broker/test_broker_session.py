"""Sans-I/O sessions (mgmt.broker.session) and messages (mgmt.broker.messages).

No event loop here: a :class:`SessionPair` joins a client and a server session with a fake
wire, like h11's ConnectionPair.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mgmt.broker import events as be
from mgmt.broker import messages as bm
from mgmt.broker import session as bs
from mgmt.exceptions import HandshakeError, InvalidMessage, InvalidState
from tests.support import strategies as S

TOPIC = "zeek/management/controller"


class SessionPair:
    """A client and a server session joined by a fake wire."""

    def __init__(self, topics: tuple[str, ...] = (TOPIC,), **server_kw: Any) -> None:
        self.server = bs.ServerSession(endpoint="ep-1", version="8.2.2", **server_kw)
        self.client = bs.ClientSession(topics)

    def pump(self) -> tuple[list[bs.SessionEvent], list[bs.SessionEvent]]:
        """Deliver everything in flight both ways; return (server events, client events)."""
        server_events: list[bs.SessionEvent] = []
        client_events: list[bs.SessionEvent] = []
        while True:
            to_server = self.client.messages_to_send()
            to_client = self.server.messages_to_send()
            if not to_server and not to_client:
                return server_events, client_events
            for text in to_server:
                self.server.receive_text(text)
            for text in to_client:
                self.client.receive_text(text)
            server_events += self.server.events_received()
            client_events += self.client.events_received()


def opened_server(**kw: Any) -> bs.ServerSession:
    server = bs.ServerSession(endpoint="ep-1", version="8.2.2", **kw)
    server.receive_text(json.dumps([TOPIC]))
    server.messages_to_send()
    server.events_received()
    return server


def broker_error(context: str) -> dict[str, str]:
    """Zeek's error message for input it cannot deserialize, as JSON."""
    return {"type": "error", "code": "deserialization_failed", "context": context}


def data_text(payload: Any, topic: str | None = TOPIC) -> str:
    msg: dict[str, Any] = {"type": "data-message", **payload}
    if topic is not None:
        msg["topic"] = topic
    return json.dumps(msg)


def test_handshake_and_exchange() -> None:
    """Handshake -> ack -> events both ways; the ack is the server's first frame."""
    pair = SessionPair()
    assert pair.client.state is bs.SessionState.AWAIT_ACK
    assert pair.server.state is bs.SessionState.AWAIT_HANDSHAKE
    server_events, client_events = pair.pump()
    assert server_events == [bs.Subscribed((TOPIC,))]
    assert client_events == [bs.Acked("ep-1", "8.2.2")]
    assert pair.client.state is pair.server.state is bs.SessionState.OPEN
    assert pair.server.subscriptions == (TOPIC,)

    pair.client.send_event(TOPIC, be.GetNodesRequest("r1"))
    server_events, _ = pair.pump()
    (received,) = server_events
    assert isinstance(received, bs.EventReceived)
    assert received.event == be.GetNodesRequest("r1") and received.topic == TOPIC
    assert json.loads(received.text)["topic"] == TOPIC

    pair.server.send_event(TOPIC, be.GetNodesResponse("r1", ()))
    _, client_events = pair.pump()
    assert [e.event for e in client_events if isinstance(e, bs.EventReceived)] == [
        be.GetNodesResponse("r1", ())
    ]


def test_ack_shape() -> None:
    """The ack has exactly the keys type, endpoint, version."""
    server = bs.ServerSession(endpoint="node-websocket-0", version="8.2.2")
    server.receive_text("[]")
    (ack,) = server.messages_to_send()
    assert json.loads(ack) == {"type": "ack", "endpoint": "node-websocket-0", "version": "8.2.2"}


def test_prefix_matching() -> None:
    """Subscriptions are plain string prefixes (wire spec §1.3)."""
    server = bs.ServerSession(endpoint="e", version="v")
    server.receive_text(json.dumps(["zeek/management/controller", "a/b"]))
    assert server.matches("zeek/management/controller")
    assert server.matches("zeek/management/controllerX")
    assert server.matches("a/b/c")
    assert not server.matches("zeek/management/agent")
    assert not server.matches("a/")


HANDSHAKE_ERRORS = [
    ("{}", bm.CTX_NOT_AN_ARRAY),
    ("not json", bm.CTX_NOT_AN_ARRAY),
    ('"topic"', bm.CTX_NOT_AN_ARRAY),
    ('["a", 1]', bm.CTX_SUB_NOT_A_STRING),
    ("[null]", bm.CTX_SUB_NOT_A_STRING),
    ("[" * 100_000, bm.CTX_NOT_AN_ARRAY),
]


@pytest.mark.parametrize(("text", "context"), HANDSHAKE_ERRORS, ids=lambda x: str(x)[:20])
def test_bad_handshake(text: str, context: str) -> None:
    """A bad handshake gets Zeek's error (no ack) and a 1008 close request."""
    server = bs.ServerSession(endpoint="e", version="v")
    server.receive_text(text)
    (out,) = server.messages_to_send()
    assert json.loads(out) == broker_error(context)
    assert server.close_requested == (1008, context)
    assert server.state is bs.SessionState.CLOSED
    (event,) = server.events_received()
    assert isinstance(event, bs.Rejected) and event.context == context
    server.receive_text("[]")  # late frames are ignored
    assert server.messages_to_send() == [] and server.events_received() == []


GET_NODES = be.event_to_json(be.GetNodesRequest("r1"))

OPEN_ERRORS: list[tuple[str, str]] = [
    ("{not json", bm.CTX_BAD_JSON),
    ("[1, 2]", bm.CTX_BAD_JSON),
    ('"x"', bm.CTX_BAD_JSON),
    (json.dumps({"type": "data-message", "topic": TOPIC}), bm.CTX_BAD_JSON),
    (json.dumps({"type": "ack", "endpoint": "e", "version": "v"}), bm.CTX_BAD_JSON),
    (json.dumps({"type": "error", "code": "c", "context": "x"}), bm.CTX_BAD_JSON),
    (data_text(GET_NODES, topic=None), bm.CTX_NO_TOPIC),
    (data_text({"@data-type": "bogus", "data": 1}), bm.CTX_BAD_JSON),
    (data_text({"@data-type": {}, "data": 1}), bm.CTX_BAD_JSON),
    (data_text({"@data-type": "vector", "data": 5}), bm.CTX_BAD_JSON),
    (data_text({"@data-type": "count", "data": 1}), bm.CTX_BAD_EVENT),
    (data_text(be.raw_event_to_json("No::such", [])), bm.CTX_BAD_EVENT),
    (
        data_text(be.raw_event_to_json(be.event_name(be.GetNodesRequest("r")), [])),
        bm.CTX_BAD_EVENT,
    ),
    (
        data_text(
            be.raw_event_to_json(
                be.event_name(be.GetNodesRequest("r")), [{"@data-type": "count", "data": 1}]
            )
        ),
        bm.CTX_BAD_EVENT,
    ),
    ("[" * 100_000 + "]" * 100_000, bm.CTX_BAD_JSON),
]


@pytest.mark.parametrize(("text", "context"), OPEN_ERRORS, ids=lambda x: str(x)[:30])
def test_errors_after_ack(text: str, context: str) -> None:
    """Malformed messages after the ack get Zeek's error; the session stays open."""
    server = opened_server()
    server.receive_text(text)
    (out,) = server.messages_to_send()
    assert json.loads(out) == broker_error(context)
    assert server.state is bs.SessionState.OPEN
    assert server.close_requested is None
    (event,) = server.events_received()
    assert isinstance(event, bs.Rejected) and event.context == context
    # ... and a good message right after still works.
    server.receive_text(data_text(GET_NODES))
    (good,) = server.events_received()
    assert isinstance(good, bs.EventReceived)


def test_type_field_not_required() -> None:
    """Like Zeek, a data message without "type" is accepted."""
    server = opened_server()
    server.receive_text(json.dumps({"topic": TOPIC, **GET_NODES}))
    (event,) = server.events_received()
    assert isinstance(event, bs.EventReceived)


def test_accept_filter() -> None:
    """Events the port does not accept get 'failed to create Zeek event'."""
    server = opened_server(accept=lambda ev: isinstance(ev, be.DeployRequest))
    server.receive_text(data_text(GET_NODES))
    (out,) = server.messages_to_send()
    assert json.loads(out)["context"] == bm.CTX_BAD_EVENT
    (event,) = server.events_received()
    assert isinstance(event, bs.Rejected) and "not accepted" in event.detail
    server.receive_text(data_text(be.event_to_json(be.DeployRequest("r"))))
    (good,) = server.events_received()
    assert isinstance(good, bs.EventReceived)


def test_unknown_extension_events_are_ignored_without_an_answer() -> None:
    """An unknown ZeekMgmt:: event (from a newer peer) is ignored and counted, with no
    Broker error, on both sides; an unknown event of another namespace is still refused."""
    reqid = {"@data-type": "string", "data": "r"}
    newer = data_text(be.raw_event_to_json("ZeekMgmt::Controller::API::frob_request", [reqid]))
    server = opened_server()
    server.receive_text(newer)
    assert server.messages_to_send() == []
    assert server.events_received() == [
        bs.Ignored(TOPIC, "ZeekMgmt::Controller::API::frob_request", "unknown extension event")
    ]
    assert (server.unknown_extensions, server.rejected) == (1, 0)
    server.receive_text(data_text(be.raw_event_to_json("Management::frob_request", [reqid])))
    assert json.loads(server.messages_to_send()[0])["context"] == bm.CTX_BAD_EVENT

    pair = SessionPair()
    pair.pump()
    pair.client.receive_text(newer)
    (event,) = pair.client.events_received()
    assert isinstance(event, bs.Ignored) and pair.client.unknown_extensions == 1
    assert pair.client.messages_to_send() == []


def test_reject_path() -> None:
    """A wrong URL path yields Zeek's invalid_uri error and a 1008 close."""
    server = bs.ServerSession(endpoint="e", version="v")
    server.reject_path()
    (out,) = server.messages_to_send()
    assert json.loads(out) == {
        "type": "error",
        "code": "invalid_uri",
        "context": "Invalid URI - use /v1/messages/json",
    }
    assert server.close_requested == (1008, "invalid URI")


def test_send_before_open_is_misuse() -> None:
    """Sending before the handshake completed raises InvalidState (an AssertionError)."""
    server = bs.ServerSession(endpoint="e", version="v")
    with pytest.raises(InvalidState):
        server.send_event(TOPIC, be.GetNodesRequest("r"))
    client = bs.ClientSession((TOPIC,))
    with pytest.raises(AssertionError):
        client.send_text("{}")


def test_client_handshake_frame() -> None:
    """The client's first frame is its subscription array."""
    client = bs.ClientSession(("a", "b"))
    assert client.messages_to_send() == ['["a","b"]']


@pytest.mark.parametrize(
    "text",
    [
        json.dumps({"type": "error", "code": "deserialization_failed", "context": "x"}),
        json.dumps({"type": "ack", "endpoint": "e"}),
        "garbage",
        "[]",
    ],
)
def test_client_without_ack(text: str) -> None:
    """Anything but an ack first closes the client session with a HandshakeError fault."""
    client = bs.ClientSession((TOPIC,))
    client.messages_to_send()
    client.receive_text(text)
    assert client.state is bs.SessionState.CLOSED
    assert isinstance(client.fault, HandshakeError)
    assert client.close_requested is not None


def test_client_receives_errors_and_junk() -> None:
    """After the ack the client reports errors and undecodable frames without raising."""
    client = bs.ClientSession((TOPIC,))
    client.messages_to_send()
    client.receive_text(json.dumps({"type": "ack", "endpoint": "e", "version": "v"}))
    client.events_received()
    client.receive_text(json.dumps({"type": "error", "code": "c", "context": "ctx"}))
    client.receive_text("junk")
    client.receive_text(data_text(be.raw_event_to_json("Unknown::event", [])))
    events = client.events_received()
    assert events[0] == bs.ErrorReceived("c", "ctx")
    assert isinstance(events[1], bs.Rejected) and events[1].context == bm.CTX_BAD_JSON
    assert isinstance(events[2], bs.Rejected) and events[2].context == bm.CTX_BAD_EVENT
    assert client.messages_to_send() == []  # clients never answer with errors


def test_parse_ack_and_message_errors() -> None:
    """parse_ack/parse_message raise InvalidMessage carrying Zeek's code and context."""
    with pytest.raises(InvalidMessage, match='"endpoint" missing'):
        bm.parse_ack('{"type": "ack", "version": "1"}')
    with pytest.raises(InvalidMessage) as info:
        bm.parse_message('{"topic": 5, "@data-type": "count", "data": 1}')
    assert info.value.code == bm.DESERIALIZATION_FAILED
    assert info.value.context == bm.CTX_BAD_JSON
    assert bm.parse_message(b'{"type":"error","code":"c","context":"x"}') == bm.ErrorMessage(
        "c", "x"
    )


# --------------------------------------------------------------------------------------
# Properties: sessions never raise on peer input.


FRAMES = st.one_of(
    st.text(max_size=30),
    S.brokerish_json().map(json.dumps),
    st.builds(
        lambda topic, payload: json.dumps({"type": "data-message", "topic": topic, **payload}),
        st.sampled_from([TOPIC, "x"]),
        S.brokerish_events(),
    ),
    S.events().map(lambda ev: bm.data_message_text(TOPIC, be.event_to_json(ev))),
)


@given(st.lists(FRAMES, max_size=6))
def test_server_session_never_raises(frames: list[str]) -> None:
    """Any sequence of frames into a fresh or an open server session never raises; every
    rejection after the ack is answered with exactly one error frame."""
    for server in (bs.ServerSession(endpoint="e", version="v"), opened_server()):
        for text in frames:
            was_open = server.state is bs.SessionState.OPEN
            server.receive_text(text)
            out = server.messages_to_send()
            events = server.events_received()
            if was_open:
                rejected = [e for e in events if isinstance(e, bs.Rejected)]
                assert len(out) == len(rejected) <= 1
                for frame in out:
                    assert json.loads(frame)["type"] == "error"


@given(st.lists(FRAMES, max_size=6))
def test_client_session_never_raises(frames: list[str]) -> None:
    """Any sequence of frames into a client session (before or after its ack) never
    raises."""
    acked = bs.ClientSession((TOPIC,))
    acked.receive_text(json.dumps({"type": "ack", "endpoint": "e", "version": "v"}))
    for client in (bs.ClientSession((TOPIC,)), acked):
        for text in frames:
            client.receive_text(text)
            client.events_received()


@given(st.one_of(st.text(max_size=40), S.brokerish_json().map(json.dumps)))
def test_parse_message_raises_only_invalid_message(text: str) -> None:
    """parse_message either returns a message or raises InvalidMessage."""
    try:
        msg = bm.parse_message(text)
    except InvalidMessage as exc:
        assert exc.code == bm.DESERIALIZATION_FAILED
    else:
        assert isinstance(msg, bm.DataMessage | bm.ErrorMessage)


def test_lone_surrogates_are_refused_and_pairs_accepted() -> None:
    """A JSON string escape that is a lone surrogate (not valid Unicode: it could never be
    sent back as UTF-8) fails decoding, in a value or a key; a surrogate pair is one
    character and fine."""
    for text in (
        '{"topic":"t","@data-type":"string","data":"\\ud800"}',
        '{"topic":"t","@data-type":"string","data":"x","\\uDFFF":1}',
    ):
        with pytest.raises(InvalidMessage) as info:
            bm.parse_message(text)
        assert info.value.context == bm.CTX_BAD_JSON
    with pytest.raises(InvalidMessage):
        bm.parse_handshake('["\\ud800"]')
    msg = bm.parse_message('{"topic":"t","@data-type":"string","data":"\\ud83d\\ude00"}')
    assert isinstance(msg, bm.DataMessage) and msg.payload["data"] == "\U0001f600"
