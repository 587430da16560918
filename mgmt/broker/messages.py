"""Broker WebSocket messages: handshake, ack, error and data messages (wire spec §1).

Every WebSocket text frame carries one JSON document:

* client → server, first frame: the **handshake**, a JSON array of topic prefixes;
* server → client, first frame: the **ack** ``{"type": "ack", "endpoint", "version"}``;
* then, both ways, **data messages** ``{"type": "data-message", "topic", "@data-type",
  "data"}`` (the payload's two keys hoisted into the message), and server → client
  **error** messages ``{"type": "error", "code", "context"}``.

Parsing raises :class:`~mgmt.exceptions.InvalidMessage` carrying the Broker error code and
the context string Zeek 8 would answer with (wire spec §1.6), so a server can reply with
exactly Zeek's error message.
"""

from __future__ import annotations

from typing import Any

from mgmt.broker import jsontext
from mgmt.broker.data import JsonObj
from mgmt.core.frozen import frozen
from mgmt.core.peertext import peer_text
from mgmt.exceptions import InvalidMessage

# Broker error codes and Zeek 8's context strings (src/cluster/websocket/WebSocket.cc).
DESERIALIZATION_FAILED = "deserialization_failed"
INVALID_URI = "invalid_uri"
INVALID_APPLICATION_NAME = "invalid_application_name"

CTX_NOT_AN_ARRAY = "subscriptions not an array"
CTX_SUB_NOT_A_STRING = "individual subscription not a string"
CTX_BAD_JSON = "failed to decode JSON object"
CTX_NO_TOPIC = "no topic in top-level JSON object"
CTX_BAD_EVENT = "failed to create Zeek event"
CTX_INVALID_URI = "Invalid URI - use /v1/messages/json"
CTX_INVALID_APP_NAME = "Invalid X-Application-Name"

#: The one WebSocket path the API is served on.
API_PATH = "/v1/messages/json"

#: The JSON form of every message: compact, non-ASCII characters kept (UTF-8 on the wire).
dumps = jsontext.dumps


@frozen
class Handshake:
    """The client's first message: the topic prefixes it subscribes to."""

    topics: tuple[str, ...]

    def to_text(self) -> str:
        return dumps(list(self.topics))


@frozen
class Ack:
    """The server's answer to the handshake."""

    endpoint: str
    version: str

    def to_text(self) -> str:
        return dumps({"type": "ack", "endpoint": self.endpoint, "version": self.version})


@frozen
class ErrorMessage:
    """A Broker error message (server → client)."""

    code: str
    context: str

    def to_text(self) -> str:
        return dumps({"type": "error", "code": self.code, "context": self.context})


@frozen
class DataMessage:
    """A data message: a topic plus one Broker value (for the Management API, an event).

    ``payload`` is the Broker JSON object ``{"@data-type": ..., "data": ...}``.
    """

    topic: str
    payload: JsonObj

    def to_text(self) -> str:
        return data_message_text(self.topic, self.payload)


Message = Ack | ErrorMessage | DataMessage


def data_message_text(topic: str, payload: JsonObj) -> str:
    """Serialize a data message (the payload's keys are hoisted into the message)."""
    return dumps(
        {
            "type": "data-message",
            "topic": topic,
            "@data-type": payload["@data-type"],
            "data": payload["data"],
        }
    )


def _may_hold_surrogates(text: str | bytes) -> bool:
    """Whether ``text`` has a ``\\uD800``-``\\uDFFF`` escape (the only way JSON can
    carry a lone surrogate; raw bytes are checked UTF-8 already). Cheap: a substring test."""
    if isinstance(text, bytes):
        return b"\\ud" in text or b"\\uD" in text
    return "\\ud" in text or "\\uD" in text


def _lone_surrogate(obj: Any) -> bool:
    """Whether a decoded document holds a string (value or key) that is not valid Unicode:
    a lone surrogate cannot be encoded as UTF-8, so echoing it back (a request id, a node
    name) would fail to send and drop the connection."""
    stack = [obj]
    while stack:
        item = stack.pop()
        if type(item) is str:
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif type(item) is list:
            stack.extend(item)
        elif type(item) is dict:
            stack.extend(item.keys())
            stack.extend(item.values())
    return False


def _loads(text: str | bytes) -> Any:
    try:
        obj = jsontext.loads(text)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        # JSONDecodeError is a ValueError; RecursionError: nesting deeper than the stack.
        raise InvalidMessage(DESERIALIZATION_FAILED, CTX_BAD_JSON, str(exc)) from None
    if _may_hold_surrogates(text) and _lone_surrogate(obj):
        raise InvalidMessage(DESERIALIZATION_FAILED, CTX_BAD_JSON, "lone surrogate in a string")
    return obj


def parse_handshake(text: str | bytes) -> Handshake:
    """Parse the client's handshake (a JSON array of strings; empty is legal).

    Raises:
        InvalidMessage: with Zeek's context ``subscriptions not an array`` (also for broken
            JSON) or ``individual subscription not a string``.
    """
    try:
        obj = jsontext.loads(text)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise InvalidMessage(DESERIALIZATION_FAILED, CTX_NOT_AN_ARRAY, "not JSON") from None
    if _may_hold_surrogates(text) and _lone_surrogate(obj):
        raise InvalidMessage(DESERIALIZATION_FAILED, CTX_SUB_NOT_A_STRING, "lone surrogate")
    if type(obj) is not list:
        raise InvalidMessage(DESERIALIZATION_FAILED, CTX_NOT_AN_ARRAY)
    for i, item in enumerate(obj):
        if type(item) is not str:
            raise InvalidMessage(DESERIALIZATION_FAILED, CTX_SUB_NOT_A_STRING, f"element {i}")
    return Handshake(tuple(obj))


def parse_ack(text: str | bytes) -> Ack:
    """Parse the server's ack as zeek-client does: an object with ``type``, ``endpoint``
    and ``version`` (values not checked beyond being present).

    Raises:
        InvalidMessage: anything else (e.g. an error message instead of the ack).
    """
    obj = _loads(text)
    if type(obj) is not dict:
        raise InvalidMessage(DESERIALIZATION_FAILED, "ack is not an object")
    if obj.get("type") == "error":
        raise InvalidMessage(
            peer_text(str(obj.get("code", ""))),
            peer_text(str(obj.get("context", ""))),
            "error instead of ack",
        )
    for key in ("type", "endpoint", "version"):
        if key not in obj:
            raise InvalidMessage(DESERIALIZATION_FAILED, f'ack: required key "{key}" missing')
    return Ack(str(obj["endpoint"]), str(obj["version"]))


def parse_message(text: str | bytes) -> DataMessage | ErrorMessage:
    """Parse a message received after the handshake.

    A data message is returned with its payload unchecked beyond having ``@data-type`` and
    ``data`` keys: decoding the payload is the caller's business (so that errors in it can
    be told apart from errors in the envelope). Like Zeek, the ``type`` field of a data
    message is not required.

    Raises:
        InvalidMessage: not JSON, not an object, no topic, or no payload.
    """
    obj = _loads(text)
    if type(obj) is not dict:
        raise InvalidMessage(DESERIALIZATION_FAILED, CTX_BAD_JSON, "not an object")
    mtype = obj.get("type")
    if mtype == "error":
        if "code" not in obj or "context" not in obj:
            raise InvalidMessage(DESERIALIZATION_FAILED, CTX_BAD_JSON, "error without code")
        return ErrorMessage(str(obj["code"]), str(obj["context"]))
    if mtype not in (None, "data-message"):
        raise InvalidMessage(
            DESERIALIZATION_FAILED,
            CTX_BAD_JSON,
            f"message type {peer_text(mtype, always_quote=True)}",
        )
    if "@data-type" not in obj or "data" not in obj:
        raise InvalidMessage(DESERIALIZATION_FAILED, CTX_BAD_JSON, "no payload")
    topic = obj.get("topic")
    if topic is None:
        raise InvalidMessage(DESERIALIZATION_FAILED, CTX_NO_TOPIC)
    if type(topic) is not str:
        raise InvalidMessage(DESERIALIZATION_FAILED, CTX_BAD_JSON, "topic is not a string")
    return DataMessage(topic, {"@data-type": obj["@data-type"], "data": obj["data"]})
