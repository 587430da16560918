"""Result messages decoded straight from their text, without parsing the JSON.

Theory of operation
-------------------
Most of what a controller receives are its agents' answers: events whose arguments are a
request id and a ``Management::Result`` or a ``Management::ResultVec``. Their bulk is
``Result.data``, which the controller relays unread (get-nodes: 200 agents' NodeStatus
rows). Parsing that JSON, walking it to check it and encoding it again is most of what a
get-nodes costs, so :func:`decode_result_event` checks the whole message's text with
regular expressions instead (C speed, no objects built) and keeps each ``data`` as its
text, a :class:`~mgmt.broker.data.RawValue` that the encoder writes verbatim.

The expressions accept only a strict subset of what the general decoder
(:func:`mgmt.broker.messages.parse_message`, :func:`mgmt.broker.events.event_from_json`)
accepts, in exactly the form our encoder writes it (compact, members in our order), and
for that subset give the same event. Anything else -- another layout, another member
order, whitespace, an escape in a string, a float, nesting deeper than two vectors in
``data``, a value out of range -- gives ``None`` and the caller takes the general path,
which decides and reports errors as before. So the fast path changes speed only.

What is checked, by construction of the expressions:

* strings hold no ``"``, ``\\`` or control character, and the message no surrogate (so a
  string's text is its value, and :func:`~mgmt.broker.jsontext.dumps` writes it back the
  same);
* ``count`` is 0 or up to 19 digits without a leading zero (< 2**64), ``integer`` up to
  18 digits (< 2**63), ``port`` 0-65535 without a leading zero and a known protocol,
  ``enum-value`` a non-empty string, ``none`` is ``{}``, ``boolean`` is ``true``/``false``;
* ``data`` is one such value, a vector of them or a vector of such values and vectors,
  which covers the records the agents answer with (a vector of NodeStatus, a
  NodeOutputs, ...);
* every value object has exactly ``@data-type`` and ``data``, in that order.

The rows of a get-nodes answer can be read the same way (:func:`node_statuses`): one
expression per NodeStatus row over the kept text, straight into the records, instead of
parsing the JSON, building generic values and then the records from them.

This module is pure: no I/O.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from mgmt.broker import events as ev
from mgmt.broker import records as br
from mgmt.broker.data import Port, Proto, RawValue
from mgmt.broker.records import ClusterRole, NodeStatus, Result, Role, State

# A string's characters: nothing that JSON escapes. (Surrogates, which a strict UTF-8
# decoder refuses, are looked for once per message: in every character class they would
# make the expressions several times slower to compile, i.e. to import.)
_CHARS = r'[^"\\\x00-\x1f]'
_SURROGATE = re.compile("[\ud800-\udfff]")
_PORT = (
    r"(?:0|[1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
    r"/(?:tcp|udp|icmp|\?)"
)
_LEAF = (
    r'\{"@data-type":(?:'
    rf'"string","data":"{_CHARS}*"'
    rf'|"enum-value","data":"{_CHARS}+"'
    r'|"integer","data":(?:0|-?[1-9][0-9]{0,17})'
    r'|"count","data":(?:0|[1-9][0-9]{0,18})'
    rf'|"port","data":"{_PORT}"'
    r'|"none","data":\{\}'
    r'|"boolean","data":(?:true|false)'
    r")\}"
)


def _vector(element: str) -> str:
    return rf'\{{"@data-type":"vector","data":\[(?:{element}(?:,{element})*)?\]\}}'


_V1 = _vector(_LEAF)
_V2 = _vector(f"(?:{_LEAF}|{_V1})")
_OPT_STRING = rf'\{{"@data-type":(?:"none","data":\{{\}}|"string","data":"({_CHARS}*)")\}}'

#: The start of a Result, up to and with its reqid (group 1).
_RESULT_START = (
    r'\{"@data-type":"vector","data":\['
    rf'\{{"@data-type":"string","data":"({_CHARS}*)"\}},'
)
#: The rest of a Result: success, instance, data, error, node.
_RESULT_REST = (
    r'\{"@data-type":"boolean","data":(true|false)\},'
    rf"{_OPT_STRING},"
    rf"((?:{_LEAF}|{_V2})),"
    rf"{_OPT_STRING},"
    rf"{_OPT_STRING}"
    r"\]\}"
)
_RESULT_START_RE = re.compile(_RESULT_START)


@functools.cache
def _result_rest_re() -> re.Pattern[str]:
    """:data:`_RESULT_REST` compiled, at first use: with :func:`_node_status_re`, ~6 ms
    of compiling that every process importing this module paid at start-up."""
    return re.compile(_RESULT_REST)


#: A data message carrying an event, up to its second argument: topic, name, reqid.
_HEAD = re.compile(
    rf'\{{"type":"data-message","topic":"({_CHARS}*)","@data-type":"vector","data":\['
    r'\{"@data-type":"count","data":1\},\{"@data-type":"count","data":1\},'
    r'\{"@data-type":"vector","data":\['
    rf'\{{"@data-type":"string","data":"({_CHARS}*)"\}},'
    r'\{"@data-type":"vector","data":\['
    rf'\{{"@data-type":"string","data":"({_CHARS}*)"\}},'
)
_VECTOR_START = '{"@data-type":"vector","data":['
#: What closes the arguments, the event and the message.
_TAIL = "]}]}]}"


#: A Result's fields after its reqid, decoded: success, instance, data, error, node.
_ResultRest = tuple[bool, str | None, RawValue, str | None, str | None]


class ResultDecoder:
    """:func:`decode_result_event` for the messages of one peer, remembering the text
    after the reqid of the last ``(reqid, Result)`` event it decoded (from the Result's
    ``success`` to the message's end) and what it gave: a peer answering the same again
    (an agent's get-nodes rows seldom change) costs a comparison, not a check. One entry,
    so bounded by the largest message the peer may send.
    """

    __slots__ = ("_rest", "_fields")

    def __init__(self) -> None:
        self._rest = ""
        self._fields: _ResultRest | None = None

    def decode(self, text: str) -> tuple[str, Any] | None:
        """As :func:`decode_result_event`."""
        return _decode(text, self)


def decode_result_event(text: str) -> tuple[str, Any] | None:
    """Decode a data message whose event takes ``(reqid, Result)`` or ``(reqid,
    ResultVec)``, straight from its text.

    Returns:
        ``(topic, event)`` as the general decoder would give them, with each
        ``Result.data`` kept as its text; ``None`` when the message is not in the form
        this decoder knows (it may still be valid: use the general decoder).
    """
    return _decode(text, None)


def _decode(text: str, memo: ResultDecoder | None) -> tuple[str, Any] | None:
    if type(text) is not str:
        return None
    if not text.isascii() and _SURROGATE.search(text) is not None:
        return None
    head = _HEAD.match(text)
    if head is None:
        return None
    spec = ev.spec_by_name(head.group(2))
    if spec is None or len(spec.args) != 2 or spec.args[0] is not ev.STRING:
        return None
    pos = head.end()
    if spec.args[1] is ev.RESULT:
        arg: Any = _single_result(text, pos, memo)
        if arg is None:
            return None
    elif spec.args[1] is ev.RESULTS:
        vector = _results(text, pos)
        if vector is None:
            return None
        arg, pos = vector
        if len(text) - pos != len(_TAIL) or not text.endswith(_TAIL):
            return None
    else:
        return None
    return head.group(1), spec.cls(head.group(3), arg)


def _single_result(text: str, pos: int, memo: ResultDecoder | None) -> Result | None:
    """The Result starting at ``pos`` when the message ends right after it."""
    start = _RESULT_START_RE.match(text, pos)
    if start is None:
        return None
    reqid = start.group(1)
    pos = start.end()
    rest = text[pos:] if memo is not None else ""
    if memo is not None and memo._fields is not None and rest == memo._rest:
        return Result(reqid, *memo._fields)
    match = _result_rest_re().match(text, pos)
    if match is None or len(text) - match.end() != len(_TAIL) or not text.endswith(_TAIL):
        return None
    fields = _fields(match)
    if memo is not None:
        memo._rest, memo._fields = rest, fields
    return Result(reqid, *fields)


def _results(text: str, pos: int) -> tuple[tuple[Result, ...], int] | None:
    """The Results of a ResultVec starting at ``pos``, and where it ends."""
    if not text.startswith(_VECTOR_START, pos):
        return None
    pos += len(_VECTOR_START)
    results: list[Result] = []
    if text.startswith("]}", pos):
        return (), pos + 2
    rest_re = _result_rest_re()
    while True:
        start = _RESULT_START_RE.match(text, pos)
        match = None if start is None else rest_re.match(text, start.end())
        if start is None or match is None:
            return None
        results.append(Result(start.group(1), *_fields(match)))
        pos = match.end()
        if text.startswith(",", pos):
            pos += 1
        elif text.startswith("]}", pos):
            return tuple(results), pos + 2
        else:
            return None


def _fields(match: re.Match[str]) -> _ResultRest:
    """A Result's fields after its reqid, from a match of the rest of a Result."""
    success, instance, data, error, node = match.groups()
    return success == "true", instance, RawValue.from_text(data), error, node


# --------------------------------------------------------------------------------------
# NodeStatus rows straight from a kept Result.data text

_NONE = r'\{"@data-type":"none","data":\{\}\}'
_OPT_ENUM = rf'(?:\{{"@data-type":"enum-value","data":"({_CHARS}+)"\}}|{_NONE})'
_OPT_PORT = rf'(?:\{{"@data-type":"port","data":"({_PORT})"\}}|{_NONE})'
#: One NodeStatus row of 7 fields: node, state, mgmt_role, cluster_role, pid, p,
#: metrics_port (groups 1-7; None for an unset field).
_NODE_STATUS = (
    r'\{"@data-type":"vector","data":\['
    rf'\{{"@data-type":"string","data":"({_CHARS}*)"\}},'
    rf'\{{"@data-type":"enum-value","data":"({_CHARS}+)"\}},'
    rf"{_OPT_ENUM},{_OPT_ENUM},"
    rf'(?:\{{"@data-type":"integer","data":(0|-?[1-9][0-9]{{0,17}})\}}|{_NONE}),'
    rf"{_OPT_PORT},{_OPT_PORT}"
    r"\]\}"
)


@functools.cache
def _node_status_re() -> re.Pattern[str]:
    """:data:`_NODE_STATUS` compiled, at first use."""
    return re.compile(_NODE_STATUS)


def node_statuses(result: Result, path: str = "") -> tuple[NodeStatus, ...]:
    """The NodeStatus rows of a get-nodes Result: what
    ``records.node_statuses_from_value(result.data, path)`` gives, read straight from the
    received text when ``data`` was kept as text and every row is in the usual form.

    Raises:
        DecodeError: ``data`` is not a vector of NodeStatus records (as
            :func:`~mgmt.broker.records.node_statuses_from_value` raises it).
    """
    raw = result.__dict__["_data"]
    if type(raw) is RawValue and raw.text is not None:
        rows = _node_statuses_from_text(raw.text)
        if rows is not None:
            return rows
    return br.node_statuses_from_value(result.data, path)


def _node_statuses_from_text(text: str) -> tuple[NodeStatus, ...] | None:
    """The rows of a vector of NodeStatus in our encoding; None when unsure."""
    if not text.startswith(_VECTOR_START):
        return None
    states = br.by_wire_name(State)
    roles = br.by_wire_name(Role)
    cluster_roles = br.by_wire_name(ClusterRole)
    rows: list[NodeStatus] = []
    pos = len(_VECTOR_START)
    if text.startswith("]}", pos):
        return () if pos + 2 == len(text) else None
    row_re = _node_status_re()
    while True:
        match = row_re.match(text, pos)
        if match is None:
            return None
        node, state_name, role_name, cluster_role_name, pid, p, metrics = match.groups()
        state = states.get(state_name)
        role = Role.NONE if role_name is None else roles.get(role_name)
        cluster_role = (
            ClusterRole.NONE if cluster_role_name is None else cluster_roles.get(cluster_role_name)
        )
        if state is None or role is None or cluster_role is None:
            return None  # not a member of its enum: the general path says which
        rows.append(
            NodeStatus(
                node,
                state,
                role,
                cluster_role,
                None if pid is None else int(pid),
                None if p is None else _port(p),
                None if metrics is None else _port(metrics),
            )
        )
        pos = match.end()
        if text.startswith(",", pos):
            pos += 1
        elif pos + 2 == len(text) and text.endswith("]}"):
            return tuple(rows)
        else:
            return None


_PROTOS = {p.value: p for p in Proto}


def _port(text: str) -> Port:
    number, _, proto = text.partition("/")
    return Port(int(number), _PROTOS[proto])
