"""The wire's JSON text (orjson where safe) is exactly what the json module writes and reads."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mgmt.broker import jsontext

_reference_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode

_leaves = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text()
    | st.sampled_from(["1.5", "10.0.0.1", "x:1e-5", "ab5e-7c", "null", "\ud800", "e+"])
)
_values = st.recursive(
    _leaves,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


def _outcome(fn: Any, arg: Any) -> tuple[str, Any]:
    try:
        return "ok", fn(arg)
    except Exception as exc:  # the type and message are what must agree
        return type(exc).__name__, str(exc)


@settings(max_examples=400)
@given(_values)
def test_dumps_writes_what_json_writes(value: Any) -> None:
    """Any value is written byte for byte as the json module writes it (or refused alike)."""
    assert _outcome(jsontext.dumps, value) == _outcome(_reference_dumps, value)


@pytest.mark.parametrize(
    "value",
    [1e-5, 1e-7, 2.5e-9, -3.0e-5, 1e16, 1e300, 0.1, -0.0, math.nan, math.inf, 2**64, 2**63 - 1],
)
def test_dumps_spells_floats_and_big_integers_as_json_does(value: Any) -> None:
    """Floats orjson spells differently and integers beyond 64 bits come out as json's."""
    assert jsontext.dumps({"data": [value]}) == _reference_dumps({"data": [value]})


def test_dumps_refuses_what_json_refuses() -> None:
    """Objects JSON cannot carry raise json's TypeError, as before."""
    with pytest.raises(TypeError):
        jsontext.dumps({"data": object()})


def _same_value(a: Any, b: Any) -> bool:
    # NaN != NaN: compare the reference's JSON text of both.
    return _reference_dumps(a) == _reference_dumps(b) and type(a) is type(b)


@pytest.mark.parametrize(
    "text",
    [
        '{"a":1,"a":2}',
        "NaN",
        "[1e400]",
        '"\\ud800"',
        '"\\ud83d\\ude00"',
        "\ufeff[]",
        "[1,]",
        '"\t"',
        "[" * 5000 + "]" * 5000,
        '{"x": [1.5, -0, 0.1e1, "\u00e9"]}',
        "",
    ],
)
def test_loads_reads_what_json_reads(text: str) -> None:
    """Edge cases parse to json's value, or fail with json's error type and message."""
    ours, reference = _outcome(jsontext.loads, text), _outcome(json.loads, text)
    assert ours[0] == reference[0]
    if ours[0] == "ok":
        assert _same_value(ours[1], reference[1])
    else:
        assert ours == reference


@settings(max_examples=300)
@given(_values)
def test_loads_round_trips_like_json(value: Any) -> None:
    """What json writes, we read back as json does (integers within 64 bits)."""
    try:
        text = _reference_dumps(value)
    except (TypeError, ValueError):
        return
    ours, reference = _outcome(jsontext.loads, text), _outcome(json.loads, text)
    assert ours[0] == reference[0]
    if ours[0] == "ok" and not _has_big_int(reference[1]):
        assert _same_value(ours[1], reference[1])


def _has_big_int(value: Any) -> bool:
    if type(value) is int:
        return not -(2**63) <= value < 2**64
    if isinstance(value, list):
        return any(_has_big_int(v) for v in value)
    if isinstance(value, dict):
        return any(_has_big_int(v) for v in value.values())
    return False


def test_verbatim_text_is_written_as_is() -> None:
    """A Verbatim is written as it is, also inside a document that takes json's path (it
    holds a float), and refused by nothing."""
    raw = jsontext.Verbatim('{"@data-type":"string","data":"x"}')
    assert jsontext.dumps({"a": [raw, 1]}) == '{"a":[{"@data-type":"string","data":"x"},1]}'
    assert jsontext.dumps({"a": [raw, 1e-7]}) == _reference_dumps(
        {"a": [{"@data-type": "string", "data": "x"}, 1e-7]}
    )
