"""Peer-supplied values in log lines and error messages: shortened, escaped, unforgeable.

Request ids, node names, topics and event names come from peers and may be megabytes
long or hold newlines. Every place that logs one (controller, agent, transport, session
error details) renders it with :func:`peer_text`, so a peer can neither flood the log with
one request nor forge log lines:

* a short string of plain characters (letters, digits, ``_.:/@+-``), such as a UUID or a
  node name, appears as it is: ``rx get_nodes_request 0e083b28-e73d-11f1-b14f-02fc00000001``;
* any other string is quoted as a Python literal (control characters escaped), cut at
  :data:`LIMIT` characters with its full length: ``'abcdef…' (6291456 chars)``, ``'a b'``;
* a collection of strings (node names) shows at most :data:`ITEMS` of them, each quoted
  and cut, with the total count: ``['w1', 'w2', 'w3', 'w4', 'w5', …] (1000 items)``.

A bare value never contains a quote or a space, so the two forms cannot be confused.
``always_quote=True`` quotes short plain strings too (error messages that always quoted).
Pure: no I/O (the pure state machines and sessions use it).
"""

from __future__ import annotations

import re

#: How many characters of a peer's string a log line shows.
LIMIT = 40
#: How many items of a peer's collection (node names, ...) a log line shows.
ITEMS = 5

_PLAIN = re.compile(r"[A-Za-z0-9_.:/@+-]+")


def peer_text(value: object, limit: int = LIMIT, *, always_quote: bool = False) -> str:
    """How to show ``value``, which a peer sent, in a log line or error message."""
    if isinstance(value, str):
        if not always_quote and len(value) <= limit and _PLAIN.fullmatch(value):
            return value
        return _literal(value, limit)
    if isinstance(value, list | tuple | set | frozenset) and all(
        isinstance(item, str) for item in value
    ):
        items = sorted(value) if isinstance(value, set | frozenset) else list(value)
        shown = ", ".join(_literal(item, limit) for item in items[:ITEMS])
        if len(items) <= ITEMS:
            return f"[{shown}]"
        return f"[{shown}, …] ({len(items)} items)"
    text = repr(value)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text)} chars)"


def _literal(text: str, limit: int) -> str:
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit] + '…'!r} ({len(text)} chars)"
