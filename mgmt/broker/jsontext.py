"""JSON text of wire messages: orjson's speed, :mod:`json`'s exact output and behaviour.

Every message we write must stay byte-identical to what ``json`` (compact separators,
non-ASCII kept) writes, and every message we read must be accepted or refused exactly as
``json.loads`` does, error texts included. orjson (C) encodes a large get-nodes response
about ten times and parses about twice as fast; where it would differ, we use ``json``:

Writing (:func:`dumps`), orjson's output is used only when it is certainly ``json``'s:

* orjson refuses (``TypeError``): integers beyond 64 bits, lone surrogates, non-string
  keys, nesting deeper than 254, dataclasses and datetimes (passed through, so that
  ``json`` raises its own ``TypeError`` for them as before);
* the output may hold a float: orjson spells some floats differently (``1e-7`` for
  ``1e-07``, ``0.00001`` for ``1e-05``) and NaN and infinities as ``null``. A float is
  a number token with ``.`` or an exponent (always signed), so only documents with a
  ``.``, ``e-`` or ``e+`` after digits that follow ``:``, ``,`` or ``[`` (or with a
  ``null``) are written again by ``json``. Strings that merely look so take the slow
  path too, which is correct, only slower.

Strings (escapes, non-ASCII), integers, booleans and ``null`` come out byte for byte the
same (checked over every code point and the golden wire tests).

A :class:`Verbatim` inside the document is JSON text that is written as it is (orjson's
``Fragment``; ``json`` parses it and writes the value, which gives the same text because
a ``Verbatim`` only ever holds what ``json`` itself would write). That is how a hub relays
a value it received without building it: the controller's get-nodes answer is mostly its
agents' NodeStatus rows, copied from their messages.

Reading (:func:`loads`), orjson accepts only valid JSON, which ``json`` accepts too, with
the same value -- except integers beyond 64 bits, which orjson reads as floats; every
integer field of the Management API is 64 bits or less, so such a value is refused
either way (with a different detail). Whatever orjson refuses (NaN, lone surrogates,
deep nesting, broken text) goes to ``json.loads``, whose value or error is the result.

This module is pure: no I/O.
"""

from __future__ import annotations

import json
from typing import Any

import orjson


class Verbatim:
    """JSON text that :func:`dumps` writes as it is, wherever it sits in a document.

    Only for text exactly as :func:`dumps` would write its value (compact, no float, the
    members' order kept), e.g. a value copied out of a message after it was checked to be
    in that form (:mod:`mgmt.broker.fastdecode`).
    """

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return f"Verbatim({self.text!r})"


def _orjson_default(obj: Any) -> Any:
    if type(obj) is Verbatim:
        return orjson.Fragment(obj.text)
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


def _json_default(obj: Any) -> Any:
    if type(obj) is Verbatim:
        return json.loads(obj.text)
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


_json_dumps = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), default=_json_default
).encode
_OPTIONS = orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_DATETIME
_DIGITS = frozenset(b"0123456789")
_BEFORE_NUMBER = frozenset(b":,[")
_MINUS = ord("-")
_E = ord("e")
#: What stands for a Verbatim while the rest of a document is checked (not a float).
_PLACEHOLDER = orjson.Fragment(b"0")


def dumps(obj: Any) -> str:
    """``obj`` as compact JSON text, exactly as ``json`` writes it.

    The text of each :class:`Verbatim` is json's already: only the rest of the document
    is searched for what orjson would write differently.

    Raises:
        TypeError: ``obj`` holds something JSON cannot carry.
        ValueError: ``obj`` is circular.
    """
    verbatim = False

    def skeleton(value: Any) -> Any:
        nonlocal verbatim
        if type(value) is Verbatim:
            verbatim = True
            return _PLACEHOLDER
        raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")

    try:
        out = orjson.dumps(obj, default=skeleton, option=_OPTIONS)
    except TypeError:
        return _json_dumps(obj)
    if b"null" in out or _may_hold_float(out):
        return _json_dumps(obj)
    if verbatim:
        out = orjson.dumps(obj, default=_orjson_default, option=_OPTIONS)
    return out.decode()


def _may_hold_float(out: bytes) -> bool:
    """Whether ``out`` has a ``.`` or a signed exponent right after the digits of what
    may be a number token (digits, optionally ``-``, after ``:``, ``,``, ``[`` or at the
    start). Substring searches only: about 2 ms for a 1.5 MB document, a few microseconds
    for a small one."""
    if b"." not in out and b"e+" not in out and b"e-" not in out:
        return False
    i = out.find(b".")
    while i != -1:
        if _ends_number_start(out, i):
            return True
        i = out.find(b".", i + 1)
    i = out.find(b"+")
    while i != -1:
        if i and out[i - 1] == _E and _ends_number_start(out, i - 1):
            return True
        i = out.find(b"+", i + 1)
    # e-<digit> is common in names ("node-0001"): look at the byte before the "e" here
    # rather than in a call per match.
    i = out.find(b"e-")
    while i != -1:
        if (
            i
            and out[i - 1] in _DIGITS
            and out[i + 2 : i + 3].isdigit()
            and _ends_number_start(out, i)
        ):
            return True
        i = out.find(b"e-", i + 2)
    return False


def _ends_number_start(out: bytes, i: int) -> bool:
    """Whether digits end at ``i`` that follow ``:``, ``,``, ``[`` or ``-`` after one."""
    j = i
    while j and out[j - 1] in _DIGITS:
        j -= 1
    if j == i:
        return False
    if j and out[j - 1] == _MINUS:
        j -= 1
    return j == 0 or out[j - 1] in _BEFORE_NUMBER


def loads(text: str | bytes) -> Any:
    """Parse one JSON document as ``json.loads`` does.

    Raises:
        ValueError: not JSON (``json.JSONDecodeError``, ``json``'s own message).
        UnicodeDecodeError, RecursionError: as ``json.loads``.
    """
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)
