"""Bad input on both controller ports: Zeek's Broker errors, nothing changes, it keeps serving."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import pytest
import websockets
from websockets.asyncio.client import ClientConnection

from mgmt.broker import events as ev
from mgmt.broker import messages as bm
from mgmt.broker.events import raw_event_to_json
from mgmt.core.topics import CONTROLLER_TOPIC
from tests.support.cli import run_zeek_client
from tests.support.controller_harness import (
    ApiClient,
    agent_uri,
    client_port,
    cluster_config,
    reqid,
    running_controller,
)
from tests.support.fake_agent import FakeAgent, fake_agents
from tests.support.waiting import wait_until_async

BAD_JSON = "failed to decode JSON object"
BAD_EVENT = "failed to create Zeek event"
NO_TOPIC = "no topic in top-level JSON object"


def s(v: str) -> dict[str, Any]:
    return {"@data-type": "string", "data": v}


def frame(name: str, *args: dict[str, Any], topic: str = CONTROLLER_TOPIC) -> str:
    """A data message carrying event ``name`` with already-encoded arguments."""
    return bm.data_message_text(topic, raw_event_to_json(name, args))


def good_config_json(role: str = "Supervisor::MANAGER") -> dict[str, Any]:
    cfg = cluster_config("agent-a").to_json()
    cfg["data"][2]["data"][0]["data"][2]["data"] = role
    return cfg


CTL = "Management::Controller::API::"
AGENT = "Management::Agent::API::"


def hello_frame(api_version: int, topic: str = CONTROLLER_TOPIC) -> str:
    """A raw ``notify_agent_hello`` of agent-x (connecting) speaking ``api_version``."""
    return frame(
        AGENT + "notify_agent_hello",
        s("agent-x"),
        s("id"),
        {"@data-type": "boolean", "data": True},
        {"@data-type": "count", "data": api_version},
        topic=topic,
    )


#: (what, frame, expected context) for the client port, after the handshake.
CLIENT_PORT_CASES = [
    ("not JSON", "{nope", BAD_JSON),
    ("JSON but not an object", "[1, 2]", BAD_JSON),
    ("no topic", json.dumps({"type": "data-message", "@data-type": "count", "data": 1}), NO_TOPIC),
    (
        "unknown @data-type",
        json.dumps({"topic": CONTROLLER_TOPIC, "@data-type": "frob", "data": 1}),
        BAD_JSON,
    ),
    (
        "vector whose data is a number",
        json.dumps({"topic": CONTROLLER_TOPIC, "@data-type": "vector", "data": 5}),
        BAD_JSON,
    ),
    (
        "not an event",
        json.dumps({"topic": CONTROLLER_TOPIC, "@data-type": "count", "data": 1}),
        BAD_EVENT,
    ),
    ("unknown event", frame("Management::Controller::API::frobnicate_request", s("r")), BAD_EVENT),
    ("test_noop_request (zeek-client only)", frame(CTL + "test_noop_request", s("r")), BAD_EVENT),
    ("wrong argument type", frame(CTL + "get_configuration_request", s("r"), s("yes")), BAD_EVENT),
    ("wrong arity", frame(CTL + "get_instances_request", s("r"), s("extra")), BAD_EVENT),
    (
        "enum value that does not exist",
        frame(CTL + "stage_configuration_request", s("r"), good_config_json("Supervisor::FROB")),
        BAD_EVENT,
    ),
    (
        "enum of the wrong type",
        frame(CTL + "stage_configuration_request", s("r"), good_config_json("Management::RUNNING")),
        BAD_EVENT,
    ),
    (
        "agent event on the client port",
        hello_frame(1),
        BAD_EVENT,
    ),
    (
        "agent response on the client port",
        frame(AGENT + "deploy_response", s("r"), {"@data-type": "vector", "data": []}),
        BAD_EVENT,
    ),
    (
        "internal event",
        frame(CTL + "notify_agents_ready", {"@data-type": "set", "data": []}),
        BAD_EVENT,
    ),
    (
        "a response event",
        frame(CTL + "deploy_response", s("r"), {"@data-type": "vector", "data": []}),
        BAD_EVENT,
    ),
    ("an error message", json.dumps({"type": "error", "code": "x", "context": "y"}), BAD_JSON),
]

#: (what, frame, expected context) for the agent port, after the handshake.
AGENT_PORT_CASES = [
    ("not JSON", "]]", BAD_JSON),
    ("client request on the agent port", frame(CTL + "deploy_request", s("r")), BAD_EVENT),
    (
        "stage request on the agent port",
        frame(CTL + "stage_configuration_request", s("r"), good_config_json()),
        BAD_EVENT,
    ),
    (
        "hello with a string api_version",
        frame(
            AGENT + "notify_agent_hello",
            s("agent-x"),
            s("id"),
            {"@data-type": "boolean", "data": True},
            s("1"),
        ),
        BAD_EVENT,
    ),
    (
        "controller->agent request sent back",
        frame(
            AGENT + "deploy_request",
            s("r"),
            good_config_json(),
            {"@data-type": "boolean", "data": False},
        ),
        BAD_EVENT,
    ),
]


async def ws_open(port: int, topics: list[str] | None = None) -> ClientConnection:
    """A raw Broker WebSocket client after the handshake."""
    ws = await websockets.connect(f"ws://127.0.0.1:{port}/v1/messages/json", max_size=None)
    await ws.send(json.dumps(topics if topics is not None else [CONTROLLER_TOPIC]))
    ack = json.loads(await ws.recv())
    assert ack["type"] == "ack" and {"endpoint", "version"} <= set(ack)
    return ws


async def expect_errors(ws: ClientConnection, cases: list[tuple[str, str, str]]) -> None:
    """Send each case's text on ``ws``; each gets Broker's error with the case's context."""
    for what, text, context in cases:
        await ws.send(text)
        msg = json.loads(await asyncio.wait_for(ws.recv(), 5))
        expected = {"type": "error", "code": "deserialization_failed", "context": context}
        assert msg == expected, what


async def assert_serves(port: int) -> None:
    """Prove the controller still answers a real zeek-client."""
    run = await run_zeek_client(port, "get-instances")
    assert run.code == 0, run.stderr


@pytest.mark.asyncio
async def test_bad_messages_on_client_port(tmp_path: Path) -> None:
    """Every malformed message gets Zeek's Broker error; the connection and the state survive."""
    async with running_controller(tmp_path) as ctl:
        port = client_port(ctl)
        staged = cluster_config("agent-a")
        client = await ApiClient.open(port)
        await client.request(ev.StageConfigurationRequest(reqid(), staged))
        ws = await ws_open(port, [])  # publish-only, so it hears no relayed traffic
        try:
            await expect_errors(ws, CLIENT_PORT_CASES)
            # Same connection, a good request still works.
            rid = reqid()
            await ws.send(
                bm.data_message_text(
                    CONTROLLER_TOPIC, ev.event_to_json(ev.GetInstancesRequest(rid))
                )
            )
            assert ctl._state.known == {}
            resp = await client.request(ev.GetConfigurationRequest(reqid(), False))
            assert resp.result.success
            from mgmt.broker.records import Configuration

            assert Configuration.from_value(resp.result.data) == staged  # nothing changed
        finally:
            await ws.close()
            await client.close()
        assert ctl._state.known == {} and ctl._state.pending_deploy == ""
        await assert_serves(port)


@pytest.mark.asyncio
async def test_bad_messages_on_agent_port(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The agent port answers client events and garbage with errors and logs the rejection."""
    caplog.set_level(logging.INFO, logger="mgmt.transport")
    async with running_controller(tmp_path) as ctl:
        client = await ApiClient.open(client_port(ctl))
        await client.request(ev.StageConfigurationRequest(reqid(), cluster_config("agent-x")))
        await client.close()
        assert ctl.agent_server is not None
        ws = await ws_open(ctl.agent_server.port, ["zeek/management/agent/agent-x"])
        try:
            await expect_errors(ws, AGENT_PORT_CASES)
            # Agent events before hello are ignored (not bound to an instance).
            await ws.send(
                frame(
                    AGENT + "deploy_response",
                    s("r"),
                    {"@data-type": "vector", "data": []},
                    topic="zeek/management/agent/agent-x",
                )
            )
            # Hello with an incompatible API version is not accepted.
            await ws.send(hello_frame(2, topic="zeek/management/agent/agent-x"))
            await wait_until_async(lambda: "incompatible API version" in caplog.text, what="log")
        finally:
            await ws.close()
        assert ctl._state.known == {} and ctl._state.deployed is None
        assert ctl._state.pending_deploy == ""
        assert "rejected message: failed to create Zeek event" in caplog.text
        await assert_serves(client_port(ctl))


@pytest.mark.asyncio
async def test_bad_handshakes_and_paths(tmp_path: Path) -> None:
    """Wrong path, non-array or non-string handshakes: Zeek's error and close 1008, no ack."""
    async with running_controller(tmp_path) as ctl:
        port = client_port(ctl)
        ws = await websockets.connect(f"ws://127.0.0.1:{port}/v2/other")
        msg = json.loads(await ws.recv())
        assert msg == {
            "type": "error",
            "code": "invalid_uri",
            "context": "Invalid URI - use /v1/messages/json",
        }
        with pytest.raises(websockets.ConnectionClosed):
            await ws.recv()
        assert ws.close_code == 1008
        for handshake, context in (
            ('{"topics": []}', "subscriptions not an array"),
            ("not json", "subscriptions not an array"),
            ('["ok", 3]', "individual subscription not a string"),
        ):
            ws = await websockets.connect(f"ws://127.0.0.1:{port}/v1/messages/json")
            await ws.send(handshake)
            msg = json.loads(await ws.recv())
            assert msg == {"type": "error", "code": "deserialization_failed", "context": context}
            with pytest.raises(websockets.ConnectionClosed):
                await ws.recv()
            assert ws.close_code == 1008
        await assert_serves(port)


@pytest.mark.asyncio
@pytest.mark.parametrize("which", ["client", "agent"])
async def test_huge_message_is_refused(tmp_path: Path, which: str) -> None:
    """A frame beyond the size limit closes that connection (1009); the daemon keeps serving."""
    async with running_controller(tmp_path, max_message_size=64 * 1024) as ctl:
        assert ctl.agent_server is not None
        port = client_port(ctl) if which == "client" else ctl.agent_server.port
        ws = await ws_open(port)
        big = frame(CTL + "get_instances_request", s("x" * 100_000))
        await ws.send(big)
        with pytest.raises(websockets.ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 5)
        assert ws.close_code == 1009
        # Just under the limit is fine.
        ws = await ws_open(client_port(ctl))
        rid = "y" * 60_000
        await ws.send(frame(CTL + "get_instances_request", s(rid)))
        reply = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert reply["data"][2]["data"][1]["data"][0]["data"] == rid
        await ws.close()
        await assert_serves(client_port(ctl))


@pytest.mark.asyncio
async def test_500_idle_connections(tmp_path: Path) -> None:
    """500 idle connections (with and without handshake, both ports) do not stop service."""
    async with running_controller(tmp_path) as ctl:
        assert ctl.agent_server is not None
        port, aport = client_port(ctl), ctl.agent_server.port
        conns: list[Any] = []
        try:
            for i in range(500):
                target = port if i % 2 else aport
                if i % 5 == 0:
                    ws = await websockets.connect(f"ws://127.0.0.1:{target}/v1/messages/json")
                else:
                    ws = await ws_open(target, [] if i % 3 else [CONTROLLER_TOPIC])
                conns.append(ws)
            await assert_serves(port)
            client = await ApiClient.open(port)
            resp = await client.request(ev.GetNodesRequest(reqid()))
            assert resp.results[0].error == "no instances connected"
            await client.close()
        finally:
            await asyncio.gather(*(c.close() for c in conns), return_exceptions=True)
        await wait_until_async(lambda: not ctl.client_server.connections, what="peers gone")  # type: ignore[union-attr]


@pytest.mark.asyncio
async def test_clients_vanishing_mid_request(tmp_path: Path) -> None:
    """Clients that disappear while their request is pending do not disturb anything."""
    agent = FakeAgent("agent-a", silent={ev.AgentGetNodesRequest})
    async with running_controller(tmp_path) as ctl, fake_agents(agent):
        await agent.dial(agent_uri(ctl))
        port = client_port(ctl)
        config = cluster_config("agent-a")
        client = await ApiClient.open(port)
        await client.request(ev.StageConfigurationRequest(reqid(), config))
        # A deploy whose client vanished still completes and is persisted.
        ws = await ws_open(port)
        await ws.send(
            bm.data_message_text(CONTROLLER_TOPIC, ev.event_to_json(ev.DeployRequest(reqid())))
        )
        ws.transport.abort()
        await wait_until_async(lambda: ctl._state.deployed is not None, what="deployed")
        assert ctl._state.deployed.id == config.id  # type: ignore[union-attr]
        # A get-nodes whose client vanished times out into the void.
        ws = await ws_open(port)
        await ws.send(
            bm.data_message_text(CONTROLLER_TOPIC, ev.event_to_json(ev.GetNodesRequest(reqid())))
        )
        await wait_until_async(lambda: len(ctl._state.requests) >= 1, what="request pending")
        ws.transport.abort()
        await wait_until_async(lambda: not ctl._state.requests, what="request expired")
        # A test-timeout request likewise.
        ws = await ws_open(port)
        await ws.send(
            bm.data_message_text(
                CONTROLLER_TOPIC, ev.event_to_json(ev.TestTimeoutRequest(reqid(), True))
            )
        )
        await ws.close()
        await wait_until_async(lambda: not ctl._state.requests, what="request expired")
        run = await run_zeek_client(port, "get-config", "--deployed", "--as-json")
        assert (run.code, run.json()["id"]) == (0, config.id)
        await client.close()
