"""Sans-I/O state machines for one Broker WebSocket connection, server and client side.

Rules / theory of operation
---------------------------
A session is fed complete text frames with ``receive_text()`` and never touches a socket.
What it wants done comes out of two drained lists, websockets-style:

* ``messages_to_send()`` -- text frames to write, in order (a message the application
  gave as UTF-8 fragments stays one item: :data:`Fragments`);
* ``events_received()`` -- what happened, for the application: the protocol messages the
  peer sent as they arrived (:data:`Subscribed`, :data:`Acked`, :data:`ErrorReceived`:
  the handshake, ack and error of :mod:`mgmt.broker.messages`), and what the session made
  of each data message (:class:`EventReceived`, :class:`Ignored`, :class:`Rejected`).

``close_requested`` says when the session wants the connection closed (code, reason).

Server side (:class:`ServerSession`), mirroring Zeek 8's WebSocket server (wire spec §1.3,
§1.6)::

    AWAIT_HANDSHAKE --valid array of strings--> OPEN       (ack queued first)
    AWAIT_HANDSHAKE --anything else----------> CLOSED     (error queued, close 1008)
    OPEN --data message, known allowed event-> OPEN       (EventReceived)
    OPEN --malformed / unknown / not allowed-> OPEN       (error queued, Rejected)
    OPEN --valid event on a topic not handled-> OPEN       (Ignored, no answer)
    OPEN --unknown ZeekMgmt:: event----------> OPEN       (Ignored, no answer)

Zeek leaves a connection with a bad handshake open but useless; we close it with 1008 after
the error (the spec allows either), so such connections cost nothing.

Client side (:class:`ClientSession`)::

    AWAIT_ACK --ack--> OPEN ; AWAIT_ACK --anything else--> CLOSED (HandshakeError recorded)
    OPEN --data message--> EventReceived, or Rejected when undecodable/unknown (dropped),
                           or Ignored on a topic not handled or when an unknown
                           ZeekMgmt:: event
    OPEN --error message--> ErrorReceived

Peer faults never raise out of ``receive_text()``: they are recorded as events and, on the
server side, answered with Broker error messages. Their details quote what the peer sent
only shortened (:func:`mgmt.core.peertext.peer_text`).

Topics: a Zeek endpoint only sees the events published on topics it subscribed to, so a
session takes a ``topics`` filter (which topics this endpoint handles). A decodable event on
any other topic is :class:`Ignored`: counted, never delivered, and not answered (Zeek
publishes it to nobody and says nothing). A client session without a filter handles the
topics it subscribed to (Broker's string-prefix match).

Extensions: an event in zeek-mgmt's own namespace (``ZeekMgmt::``, see
:mod:`mgmt.broker.extevents`) that this version does not know comes from a newer peer. It
is :class:`Ignored` too (counted apart), never answered with a Broker error: a peer must
be able to ask what an older one cannot answer without losing its connection.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Any

from mgmt.broker import data as bd
from mgmt.broker import messages as bm
from mgmt.broker.events import UnknownEventError, event_from_json, event_name, event_to_json
from mgmt.broker.extevents import is_extension_event
from mgmt.broker.fastdecode import ResultDecoder
from mgmt.core.frozen import frozen
from mgmt.exceptions import DecodeError, HandshakeError, InvalidMessage, InvalidState


class SessionState(enum.Enum):
    """Where a session is in its life."""

    AWAIT_HANDSHAKE = "await-handshake"
    AWAIT_ACK = "await-ack"
    OPEN = "open"
    CLOSED = "closed"


#: Server side: the client's handshake arrived; its ``topics`` are the prefixes it
#: subscribes to.
Subscribed = bm.Handshake
#: Client side: the server acknowledged the handshake (``endpoint``, ``version``).
Acked = bm.Ack
#: Client side: the server sent a Broker error message (``code``, ``context``).
ErrorReceived = bm.ErrorMessage


@frozen
class EventReceived:
    """A data message carrying a known event arrived.

    ``text`` is the frame as received, so a hub can relay it without re-encoding.
    """

    topic: str
    event: Any
    text: str


@frozen
class Ignored:
    """An event was dropped without an answer: a known event on a topic this endpoint
    does not handle, or an extension event (``ZeekMgmt::``) this version does not know.

    ``name`` is the event's qualified name; ``reason`` says which of the two it was.
    """

    topic: str
    name: str
    reason: str


@frozen
class Rejected:
    """We rejected something the peer sent (and, server side, told it so)."""

    code: str
    context: str
    detail: str


SessionEvent = Subscribed | Acked | EventReceived | Ignored | ErrorReceived | Rejected

#: One text message given as UTF-8 fragments, each to be sent in a frame of its own.
Fragments = tuple[bytes | memoryview, ...]
#: What a session wants written: a text frame, or one message as fragments.
Outgoing = str | Fragments

#: Decides whether an event object is acceptable on this connection.
EventFilter = Callable[[Any], bool]
#: Decides whether this endpoint handles events published on a topic.
TopicFilter = Callable[[str], bool]


def prefix_filter(*prefixes: str) -> TopicFilter:
    """Handle the topics a Broker subscription to ``prefixes`` receives (string prefixes)."""
    return lambda topic: topic.startswith(prefixes)


CLOSE_POLICY_VIOLATION = 1008


def classify_payload_error(payload: Any, exc: DecodeError) -> tuple[str, str]:
    """Map a payload decoding failure to Zeek's (code, context) pair.

    A payload that is not even a valid Broker value gets ``failed to decode JSON object``;
    a valid value that is not a known event with the right arguments gets
    ``failed to create Zeek event`` (wire spec §1.6).
    """
    if isinstance(exc, UnknownEventError):
        return bm.DESERIALIZATION_FAILED, bm.CTX_BAD_EVENT
    try:
        bd.from_json(payload)
    except DecodeError:
        return bm.DESERIALIZATION_FAILED, bm.CTX_BAD_JSON
    return bm.DESERIALIZATION_FAILED, bm.CTX_BAD_EVENT


class _Session:
    """What server and client sessions share: output queues, state, event decoding."""

    def __init__(self, accept: EventFilter | None, topics: TopicFilter | None) -> None:
        self._accept = accept
        self._topics = topics
        #: How many events arrived on topics this endpoint does not handle.
        self.ignored = 0
        #: How many unknown extension events (``ZeekMgmt::``) arrived.
        self.unknown_extensions = 0
        #: How many messages were rejected (malformed, unknown or not allowed).
        self.rejected = 0
        self._out: list[Outgoing] = []
        self._events: list[SessionEvent] = []
        self._state = SessionState.CLOSED
        self.close_requested: tuple[int, str] | None = None
        #: The last peer fault, for the I/O layer to chain into a close exception.
        self.fault: Exception | None = None
        #: Decodes the peer's result messages from their text (mgmt.broker.fastdecode).
        self._results = ResultDecoder()

    @property
    def state(self) -> SessionState:
        """The current :class:`SessionState`."""
        return self._state

    def _set_state(self, state: SessionState) -> None:
        self._state = state

    def messages_to_send(self) -> list[Outgoing]:
        """Drain and return the frames to write, in order."""
        out, self._out = self._out, []
        return out

    def events_received(self) -> list[SessionEvent]:
        """Drain and return what happened since the last call."""
        events, self._events = self._events, []
        return events

    def send_event(self, topic: str, event: object) -> None:
        """Queue an event (a catalogue dataclass) as a data message on ``topic``.

        Raises:
            InvalidState: the session is not open.
        """
        self.send_text(bm.data_message_text(topic, event_to_json(event)))

    def send_text(self, text: str) -> None:
        """Queue an already-serialized data message.

        Raises:
            InvalidState: the session is not open.
        """
        self._check_open()
        self._out.append(text)

    def send_fragments(self, fragments: Fragments) -> None:
        """Queue an already-serialized data message given as UTF-8 fragments.

        Raises:
            InvalidState: the session is not open.
        """
        self._check_open()
        self._out.append(fragments)

    def _check_open(self) -> None:
        if self._state is not SessionState.OPEN:
            raise InvalidState(f"cannot send in state {self._state.value}")

    def _receive_message(self, text: str) -> None:
        """A frame of an open session: a data message, or an error message."""
        fast = self._results.decode(text)
        if fast is not None:  # a result message in our own encoding: no JSON parsing
            self._deliver(text, *fast)
            return
        try:
            msg = bm.parse_message(text)
        except InvalidMessage as exc:
            self._invalid(exc)
            return
        if isinstance(msg, bm.ErrorMessage):
            self._receive_error(msg)
        else:
            self._receive_data(text, msg)

    def _receive_error(self, msg: bm.ErrorMessage) -> None:
        """The peer sent a Broker error message."""
        raise NotImplementedError

    def _receive_data(self, text: str, msg: bm.DataMessage) -> None:
        """Decode a data message's event: received, ignored or rejected."""
        try:
            event = event_from_json(msg.payload)
        except UnknownEventError as exc:
            if not is_extension_event(exc.name):
                self._decode_failed(msg, exc)
                return
            # A newer peer's extension: nothing to do with it, nothing to answer.
            self.unknown_extensions += 1
            self._events.append(Ignored(msg.topic, exc.name, "unknown extension event"))
            return
        except DecodeError as exc:
            self._decode_failed(msg, exc)
            return
        self._deliver(text, msg.topic, event)

    def _deliver(self, text: str, topic: str, event: Any) -> None:
        """A decoded event: received, ignored (not a topic handled here) or rejected (not
        accepted on this port)."""
        if self._accept is not None and not self._accept(event):
            self._reject(
                bm.DESERIALIZATION_FAILED, bm.CTX_BAD_EVENT, "event not accepted on this port"
            )
            return
        if self._topics is not None and not self._topics(topic):
            self.ignored += 1
            self._events.append(Ignored(topic, event_name(event), "not a topic handled here"))
            return
        self._events.append(EventReceived(topic, event, text))

    def _decode_failed(self, msg: bm.DataMessage, exc: DecodeError) -> None:
        self.fault = exc
        code, context = classify_payload_error(msg.payload, exc)
        self._reject(code, context, str(exc))

    def _invalid(self, exc: InvalidMessage) -> None:
        """The peer sent a message that is not a valid Broker message: reject it."""
        self.fault = exc
        self._reject(exc.code, exc.context, exc.detail)

    def _reject(self, code: str, context: str, detail: str) -> None:
        """Count and report a message we rejected (the server also answers it)."""
        self.rejected += 1
        self._events.append(Rejected(code, context, detail))


class ServerSession(_Session):
    """The server side of one connection (wire spec §1.2–§1.7).

    Args:
        endpoint: the ``endpoint`` value of our ack (Zeek 8: ``<node id>-websocket-<n>``).
        version: the ``version`` value of our ack (Zeek's version string).
        accept: which decoded events this connection may deliver; others are answered with
            ``failed to create Zeek event``. ``None`` accepts every catalogue event.
        topics: which topics this endpoint handles; events on others are :class:`Ignored`.
            ``None`` handles every topic.
    """

    def __init__(
        self,
        *,
        endpoint: str,
        version: str,
        accept: EventFilter | None = None,
        topics: TopicFilter | None = None,
    ) -> None:
        super().__init__(accept, topics)
        self._ack = bm.Ack(endpoint, version)
        self.subscriptions: tuple[str, ...] = ()
        self._set_state(SessionState.AWAIT_HANDSHAKE)

    def matches(self, topic: str) -> bool:
        """Whether a message on ``topic`` is for this peer (plain string-prefix match)."""
        return any(topic.startswith(prefix) for prefix in self.subscriptions)

    def reject_path(self) -> None:
        """The upgrade request named the wrong path: queue Zeek's error and close (1008)."""
        self._out.append(bm.ErrorMessage(bm.INVALID_URI, bm.CTX_INVALID_URI).to_text())
        self.close_requested = (CLOSE_POLICY_VIOLATION, "invalid URI")
        self._set_state(SessionState.CLOSED)

    def receive_text(self, text: str) -> None:
        """Feed one received text frame."""
        if self._state is SessionState.AWAIT_HANDSHAKE:
            self._receive_handshake(text)
        elif self._state is SessionState.OPEN:
            self._receive_message(text)
        # CLOSED: ignore late frames.

    def _reject(self, code: str, context: str, detail: str) -> None:
        """Answer a message we rejected with Broker's error, and report it."""
        self._out.append(bm.ErrorMessage(code, context).to_text())
        super()._reject(code, context, detail)

    def _receive_handshake(self, text: str) -> None:
        try:
            handshake = bm.parse_handshake(text)
        except InvalidMessage as exc:
            # AWAIT_HANDSHAKE -> CLOSED: error, then close with policy violation.
            self._invalid(exc)
            self.close_requested = (CLOSE_POLICY_VIOLATION, exc.context)
            self._set_state(SessionState.CLOSED)
            return
        # AWAIT_HANDSHAKE -> OPEN: the ack must be the first thing we send.
        self.subscriptions = handshake.topics
        self._out.append(self._ack.to_text())
        self._set_state(SessionState.OPEN)
        self._events.append(handshake)

    def _receive_error(self, msg: bm.ErrorMessage) -> None:
        # Clients have no business sending errors; Zeek cannot decode them as data.
        self._reject(bm.DESERIALIZATION_FAILED, bm.CTX_BAD_JSON, "error message from client")


class ClientSession(_Session):
    """The client side of one connection: handshake queued at construction.

    Args:
        topics: the topic prefixes to subscribe to.
        accept: which decoded events to deliver; others are dropped as :class:`Rejected`.
        handles: which topics this endpoint handles; events on others are
            :class:`Ignored`. Default: the subscribed ``topics`` (prefix match).
    """

    def __init__(
        self,
        topics: tuple[str, ...],
        accept: EventFilter | None = None,
        handles: TopicFilter | None = None,
    ) -> None:
        super().__init__(accept, handles if handles is not None else prefix_filter(*topics))
        self.topics = topics
        self.ack: bm.Ack | None = None
        self._out.append(bm.Handshake(topics).to_text())
        self._set_state(SessionState.AWAIT_ACK)

    def receive_text(self, text: str) -> None:
        """Feed one received text frame."""
        if self._state is SessionState.AWAIT_ACK:
            try:
                self.ack = bm.parse_ack(text)
            except InvalidMessage as exc:
                # AWAIT_ACK -> CLOSED: the server did not acknowledge.
                self.fault = HandshakeError(f"no ack from server: {exc}")
                self.close_requested = (CLOSE_POLICY_VIOLATION, "no ack")
                self._set_state(SessionState.CLOSED)
                return
            # AWAIT_ACK -> OPEN
            self._set_state(SessionState.OPEN)
            self._events.append(self.ack)
        elif self._state is SessionState.OPEN:
            self._receive_message(text)

    def _receive_error(self, msg: bm.ErrorMessage) -> None:
        self._events.append(msg)
