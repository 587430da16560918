"""A bounded, seeded fuzz of the three daemon ports with mutated real frames.

Seeds: the frames the real zeek-client 1.5.0 sent to Zeek 8.2.2's controller
(``tests/data/zeek_client_frames.jsonl``: its handshake and one request of each command),
and for the agent-facing ports the agent API events our codec writes (Zeek's agents talk
Broker, not WebSocket, so there is no recording of those). Each input is one seed with
one to three mutations, at three levels:

* JSON: a value replaced by another type or a huge or odd string, keys dropped or added,
  Broker type tags swapped, list elements dropped or repeated, the event renamed, the
  topic changed, deep nesting;
* text: truncated, bytes flipped (invalid UTF-8 included), junk inserted;
* frame: binary opcode, fragments (proper and broken), reserved bits, unmasked frames,
  a declared length over the limit, pings, close frames, a mutated handshake.

Afterwards every daemon must still run and answer a real request, its memory must have
stayed within a bound, and its log must have stayed small (a peer cannot flood it).
"""

from __future__ import annotations

import json
import random
import struct
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mgmt.broker import events as ev
from mgmt.broker.data import BrokerSet
from mgmt.broker.records import Configuration, Result
from mgmt.core.topics import CONTROLLER_TOPIC
from tests.paths import DATA
from tests.support.cli import run_zeek_client_sync
from tests.support.peerfaults import (
    AGENT_NAME,
    AGENT_TOPIC,
    agent,
    controller,
    log_size,
    request_text,
    rss_mb,
)
from tests.support.rawws import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONT,
    OP_PING,
    OP_TEXT,
    RawPeer,
    UpgradeRefused,
    encode_frame,
)
from tests.support.waiting import MS

SEED = 10_2026
#: Inputs per port (three ports).
INPUTS = 2000
FRAMES = DATA / "zeek_client_frames.jsonl"
RSS_BOUND_MB = 150
LOG_BOUND = 1_000_000

_TAGS = [
    "none", "boolean", "count", "integer", "real", "string", "address", "subnet", "port",
    "timestamp", "timespan", "enum-value", "set", "table", "vector", "frob",
]  # fmt: skip
#: Event names to swap in besides those of the seeds: a response, an internal event, an
#: unknown one, an empty and a long one.
_MORE_EVENT_NAMES = [
    ev.CONTROLLER_API + "get_nodes_response",
    ev.CONTROLLER_API + "notify_agents_ready",
    ev.CONTROLLER_API + "frobnicate_request",
    ev.NODE_API + "node_dispatch_request",
    "",
    "x" * 300,
]


def event_names(frames: list[str]) -> list[str]:
    """The event names the frames carry, plus :data:`_MORE_EVENT_NAMES`."""
    names = [json.loads(f)["data"][2]["data"][0]["data"] for f in frames]
    return sorted(set(names)) + _MORE_EVENT_NAMES


def recorded_frames() -> tuple[str, list[str]]:
    """zeek-client's handshake and its request frames, as recorded."""
    texts = [json.loads(line)["text"] for line in FRAMES.read_text().splitlines()]
    return texts[0], texts[1:]


def agent_port_seeds() -> list[str]:
    """What an agent sends to the controller's agent port."""
    t = "zeek/management/agent/agent-fuzz"
    ok = Result("r1", True, instance="agent-fuzz")
    return [
        request_text(ev.NotifyAgentHello("agent-fuzz", "id-1", True, 1), t),
        request_text(ev.AgentWelcomeResponse("r1", ok), t),
        request_text(ev.AgentDeployResponse("r2", (ok,)), t),
        request_text(ev.AgentGetNodesResponse("r3", ok), t),
        request_text(ev.AgentRestartResponse("r4", (ok,)), t),
        request_text(ev.NotifyError("agent-fuzz", "boom", "worker-01"), t),
        request_text(ev.NotifyLog("agent-fuzz", "hello", ""), t),
    ]


def agent_seeds(config: Configuration) -> list[str]:
    """What a controller sends to an agent's port."""
    t = AGENT_TOPIC
    return [
        request_text(ev.AgentWelcomeRequest("r1"), t),
        request_text(ev.AgentDeployRequest("r2", config, False), t),
        request_text(ev.AgentGetNodesRequest("r3"), t),
        request_text(
            ev.AgentNodeDispatchRequest("r4", ("get_id_value", "x"), BrokerSet(["manager"])), t
        ),
        request_text(ev.AgentRestartRequest("r5", BrokerSet(["manager"])), t),
        request_text(ev.AgentStandbyRequest("r6"), t),
    ]


class Mutator:
    """Seeded mutations of JSON frames (see the module docstring)."""

    def __init__(self, rng: random.Random, names: list[str]) -> None:
        self.rng = rng
        self.names = names

    def string(self) -> str:
        r = self.rng
        pick = r.random()
        if pick < 0.02:
            return "z" * (1 << 20)  # megabyte ids and names: must not reach the log whole
        if pick < 0.1:
            return r.choice(["", "\n", "\x00", "'\"", "\u2028", "\ud800x", ".", "a=b", "…"])
        alphabet = "abcdefghijklmnopqrstuvwxyz0123456789-_:/. \t\n\\\"'é€𝄞"
        return "".join(r.choice(alphabet) for _ in range(r.randint(0, 40)))

    def value(self, depth: int = 0) -> Any:
        r = self.rng
        kind = r.randrange(9)
        if kind == 0:
            return r.choice([0, -1, 1, 2**63, 2**64, -(2**63) - 1, 10**30])
        if kind == 1:
            return r.choice([0.5, -1e308, 1e308])
        if kind == 2:
            return self.string()
        if kind == 3:
            return None
        if kind == 4:
            return r.random() < 0.5
        if kind == 5 and depth < 3:
            return [self.value(depth + 1) for _ in range(r.randint(0, 3))]
        if kind == 6 and depth < 3:
            return {self.string()[:10]: self.value(depth + 1) for _ in range(r.randint(0, 3))}
        if kind == 7:
            return {"@data-type": r.choice(_TAGS), "data": self.value(depth + 1)}
        nested: Any = 1
        for _ in range(r.choice([5, 10, 50])):
            nested = [nested]
        return nested

    def _nodes(self, obj: Any, out: list[tuple[Any, Any]], depth: int = 0) -> None:
        """Every (container, key) pair in ``obj`` (down to a depth)."""
        if depth > 60:
            return
        if isinstance(obj, dict):
            for k, v in obj.items():
                out.append((obj, k))
                self._nodes(v, out, depth + 1)
        elif isinstance(obj, list):
            for i, v in enumerate(obj):
                out.append((obj, i))
                self._nodes(v, out, depth + 1)

    def mutate_json(self, obj: Any) -> Any:
        r = self.rng
        nodes: list[tuple[Any, Any]] = []
        self._nodes(obj, nodes)
        if not nodes:
            return self.value()
        container, key = r.choice(nodes)
        op = r.randrange(8)
        if op == 0:
            container[key] = self.value()
        elif op == 1 and isinstance(container[key], str):
            container[key] = self.string()  # same type: often still a valid event
        elif op == 2:
            del container[key]
        elif op == 3 and isinstance(container, list):
            container.insert(key, container[key])
        elif op == 4 and isinstance(container, dict) and "@data-type" in container:
            container["@data-type"] = r.choice(_TAGS)
        elif op == 5 and isinstance(obj, dict) and "topic" in obj:
            obj["topic"] = r.choice(["", "x", CONTROLLER_TOPIC + "/x", self.string()])
        elif op == 6 and isinstance(obj, dict):
            try:
                obj["data"][2]["data"][0]["data"] = r.choice(self.names)
            except (KeyError, IndexError, TypeError):
                container[key] = self.value()
        else:
            container[key] = self.string()
        return obj

    def mutate_text(self, text: str) -> bytes:
        r = self.rng
        data = bytearray(text.encode())
        op = r.randrange(5)
        if op == 4:  # nesting deeper than any parser's stack
            depth = r.choice([1000, 100_000])
            at = r.randrange(len(data) + 1)
            data[at:at] = b"[" * depth + b"1" + b"]" * depth
        elif op == 0 and data:
            del data[r.randrange(len(data)) :]
        elif op == 1 and data:
            for _ in range(r.randint(1, 8)):
                data[r.randrange(len(data))] = r.randrange(256)
        elif op == 2:
            at = r.randrange(len(data) + 1)
            data[at:at] = r.choice([b"{", b"]", b"\x00", b"\xff\xfe", b'","', b"null", b"1e999"])
        else:
            data = data + data[: r.randrange(len(data) + 1)]
        return bytes(data)

    def payload(self, seed: str) -> bytes:
        """A mutated frame payload (JSON-level, then sometimes text-level)."""
        obj = json.loads(seed)
        for _ in range(self.rng.randint(1, 3)):
            obj = self.mutate_json(obj)
        try:
            text = json.dumps(obj)
        except (RecursionError, ValueError):
            text = seed
        if self.rng.random() < 0.25:
            return self.mutate_text(text)
        return text.encode()

    def frames(self, payload: bytes) -> bytes:
        """``payload`` as one or more frames, sometimes broken ones."""
        r = self.rng
        op = r.randrange(14)
        if op == 0:
            return encode_frame(payload, OP_BINARY)
        if op == 1 and len(payload) > 2:
            cut = r.randrange(1, len(payload))
            return encode_frame(payload[:cut], OP_TEXT, fin=False) + encode_frame(
                payload[cut:], OP_CONT
            )
        if op == 2:
            return encode_frame(payload, OP_CONT)  # a continuation without a start
        if op == 3:
            frame = bytearray(encode_frame(payload))
            frame[0] |= 0x40  # RSV1 without an extension
            return bytes(frame)
        if op == 4:
            return encode_frame(payload, mask=False)
        if op == 5:
            return bytes([0x81, 0xFF]) + struct.pack("!Q", 1 << 40) + bytes(4)
        if op == 6:
            return encode_frame(b"ping", OP_PING) + encode_frame(payload)
        if op == 7:
            return encode_frame(struct.pack("!H", 1000) + b"bye", OP_CLOSE)
        return encode_frame(payload)


class PortFuzzer:
    """Feeds mutated frames to one port, reconnecting whenever the daemon closes."""

    def __init__(
        self, port: int, handshake: str, seeds: list[str], rng: random.Random, names: list[str]
    ) -> None:
        self.port = port
        self.handshake = handshake
        self.seeds = seeds
        self.rng = rng
        self.mutate = Mutator(rng, names)
        self.peer: RawPeer | None = None
        self.connections = 0

    def _connect(self, first: bytes | None = None) -> RawPeer | None:
        peer = RawPeer(self.port, timeout=5000 * MS)
        self.connections += 1
        try:
            peer.upgrade()
            if first is None:
                peer.send_text(self.handshake)
            else:
                peer.send_raw(first)
        except (UpgradeRefused, OSError):
            peer.close()
            return None
        return peer

    def feed(self) -> None:
        """Send one mutated input."""
        r = self.rng
        if r.random() < 0.05:  # a fresh connection whose first frame is a bad handshake
            if self.peer is not None:
                self.peer.close()
            bad = self.mutate.payload(self.handshake) if r.random() < 0.8 else b"[1]"
            self.peer = self._connect(self.mutate.frames(bad))
            return
        if self.peer is None:
            self.peer = self._connect()
            if self.peer is None:
                return
        data = self.mutate.frames(self.mutate.payload(r.choice(self.seeds)))
        try:
            self.peer.send_raw(data)
        except OSError:
            self.close()
            return
        if not self.peer.drain():
            self.close()

    def close(self) -> None:
        if self.peer is not None:
            self.peer.close()
            self.peer = None


def agent_answers(port: int) -> bool:
    """The agent answers agent_welcome_request on its topic."""
    with RawPeer(port) as peer:
        peer.upgrade()
        peer.subscribe(AGENT_TOPIC)
        peer.send_text(request_text(ev.AgentWelcomeRequest("after-fuzz"), AGENT_TOPIC))
        while True:
            frame = peer.read_text()
            if "agent_welcome_response" in frame:
                return '"after-fuzz"' in frame


def test_fuzz_the_three_ports(tmp_path: Path) -> None:
    """Thousands of seeded mutated frames on the controller's two ports and the agent's:
    both daemons keep running, answer real requests, and stay small in memory and log."""
    rng = random.Random(SEED)
    handshake, requests = recorded_frames()
    stage = json.loads(requests[2])
    config = Configuration.from_json(stage["data"][2]["data"][1]["data"][1])
    assert AGENT_NAME not in requests[2]  # no node of the fuzzed agent: nothing to launch
    with controller(tmp_path) as ctl, agent(tmp_path) as ag:
        seeds = {
            ctl.port: (handshake, requests),
            ctl.agent_port: ('["zeek/management/agent"]', agent_port_seeds()),
            ag.port: (json.dumps([AGENT_TOPIC]), agent_seeds(config)),
        }
        names = event_names([f for _, frames in seeds.values() for f in frames])
        fuzzers = [PortFuzzer(port, hs, frames, rng, names) for port, (hs, frames) in seeds.items()]
        baseline = {run.pid: rss_mb(run.pid) for run in (ctl, ag)}
        peak = dict(baseline)
        start = time.monotonic()
        for i in range(INPUTS):
            for fuzzer in fuzzers:
                fuzzer.feed()
            if i % 50 == 0:
                for run in (ctl, ag):
                    assert run.alive(), run.daemon.log()[-3000:]
                    peak[run.pid] = max(peak[run.pid], rss_mb(run.pid))
        for fuzzer in fuzzers:
            fuzzer.close()
        elapsed = time.monotonic() - start
        connections = sum(f.connections for f in fuzzers)
        print(
            f"fuzz: {3 * INPUTS} inputs, {connections} connections, {elapsed:.1f} s; "
            + ", ".join(f"RSS {baseline[p]:.0f} -> {peak[p]:.0f} MB" for p in peak)
        )
        check: dict[str, Callable[[], bool]] = {
            "controller": lambda: run_zeek_client_sync(ctl.port, "get-instances").code == 0,
            "agent": lambda: agent_answers(ag.port),
        }
        for (name, answers), run in zip(check.items(), (ctl, ag), strict=True):
            assert run.alive(), f"{name} died: {run.daemon.log()[-3000:]}"
            assert answers(), f"{name} does not answer: {run.daemon.log()[-3000:]}"
            grown = peak[run.pid] - baseline[run.pid]
            assert grown < RSS_BOUND_MB, f"{name} grew by {grown:.0f} MB"
            assert log_size(run) < LOG_BOUND, f"{name} logged {log_size(run)} bytes"
            assert "Traceback" not in run.daemon.log(), run.daemon.log()[-5000:]
