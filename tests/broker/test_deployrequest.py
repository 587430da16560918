"""The encode-once deploy_request (mgmt.broker.deployrequest): the same bytes as the
generic encoder, sharing one configuration buffer between agents."""

from __future__ import annotations

from mgmt.broker import events as ev
from mgmt.broker import messages as bm
from mgmt.broker.deployrequest import DeployRequestEncoder
from mgmt.broker.records import ClusterRole, Configuration, Instance, Node
from tests.support.controller_harness import cluster_config


def test_deploy_request_encoder_is_byte_identical() -> None:
    """The encode-once deploy_request text equals the generic encoder's, for every agent."""
    enc = DeployRequestEncoder()
    first, second = cluster_config("agent-a"), cluster_config("agent-a", workers=5)
    for config in (first, first, second, first):
        for rid, topic, force in (("c1", "zeek/management/agent/a", False), ('q"\\', "t/ü", True)):
            event = ev.AgentDeployRequest(rid, config, force)
            assert enc.text(topic, event) == bm.data_message_text(topic, ev.event_to_json(event))


def test_deploy_request_fragments_reassemble_to_the_text() -> None:
    """Deploy fragments join to the generic text, share the config, and are valid UTF-8."""
    enc = DeployRequestEncoder()
    enc.FRAGMENT_SIZE = 5  # small enough to land inside multi-byte characters
    config = Configuration(
        "c", (Instance("agent-ü"),), (Node("wörker-€-𝄞", "agent-ü", ClusterRole.WORKER),)
    )
    for rid in ("r1", "r2"):
        event = ev.AgentDeployRequest(rid, config, False)
        parts = enc.fragments("t/ü", event)
        assert len(parts) > 10
        for part in parts:
            bytes(part).decode()  # each fragment is whole characters
        joined = b"".join(bytes(p) for p in parts).decode()
        assert joined == bm.data_message_text("t/ü", ev.event_to_json(event))
        assert joined == enc.text("t/ü", event)
    first, second = enc.fragments("a", ev.AgentDeployRequest("x", config, False)), parts
    assert isinstance(first[1], memoryview) and isinstance(second[1], memoryview)
    assert first[1].obj is second[1].obj
