"""peer_text: how a peer-supplied value appears in a log line or an error message."""

from __future__ import annotations

import json

import pytest

from mgmt.broker import events as be
from mgmt.broker import messages as bm
from mgmt.broker.session import Rejected, ServerSession
from mgmt.core.peertext import LIMIT, peer_text


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("0e083b28-e73d-11f1-b14f-02fc00000001", "0e083b28-e73d-11f1-b14f-02fc00000001"),
        ("worker-01", "worker-01"),
        ("", "''"),
        ("two words", "'two words'"),
        ("forged\n2026-01-01 ERROR x", "'forged\\n2026-01-01 ERROR x'"),
        ("abcdef" * 1_048_576, f"'{('abcdef' * 7)[:LIMIT]}…' (6291456 chars)"),
        (["w2", "w1"], "['w2', 'w1']"),
        ({"b", "a"}, "['a', 'b']"),
        ([f"w{i}" for i in range(1000)], "['w0', 'w1', 'w2', 'w3', 'w4', …] (1000 items)"),
        (42, "42"),
    ],
)
def test_peer_text(value: object, shown: str) -> None:
    """Plain short strings as they are; anything else quoted, escaped and cut."""
    assert peer_text(value) == shown


def test_always_quote() -> None:
    """Error messages that always quoted keep doing so."""
    assert peer_text("Foo::bar", always_quote=True) == "'Foo::bar'"


def test_rejection_details_never_echo_a_whole_peer_string() -> None:
    """Whatever a peer stuffs into a message, the error detail stays short."""
    big = "q" * 1_000_000
    frames = [
        json.dumps({"type": big, "topic": "t", "@data-type": "count", "data": 1}),
        bm.data_message_text("t", be.raw_event_to_json(big, ())),
        bm.data_message_text(
            "t",
            {
                "@data-type": "vector",
                "data": [
                    {"@data-type": "count", "data": 1},
                    {"@data-type": "count", "data": 1},
                    {
                        "@data-type": "vector",
                        "data": [
                            {"@data-type": "string", "data": "Management::Controller::API::x"},
                            {"@data-type": "vector", "data": [{"@data-type": big, "data": 1}]},
                        ],
                    },
                ],
            },
        ),
    ]
    session = ServerSession(endpoint="e", version="v")
    session.receive_text("[]")
    session.events_received()
    for frame in frames:
        session.receive_text(frame)
    rejected = [e for e in session.events_received() if isinstance(e, Rejected)]
    assert len(rejected) == len(frames)
    assert all(len(e.detail) < 200 for e in rejected), [e.detail[:300] for e in rejected]
    assert all(len(m) < 200 for m in session.messages_to_send())
