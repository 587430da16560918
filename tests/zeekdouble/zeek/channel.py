"""The node channel the management node script opens: Broker's WebSocket JSON v1
protocol (a tiny codec of its own) and the ``node_dispatch_request`` handler."""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from typing import Any

from . import ZEEK_VERSION
from .values import NO_VALUE

NODE_TOPIC_PREFIX = "zeek/management/node/"
DISPATCH_REQUEST = "Management::Node::API::node_dispatch_request"
DISPATCH_RESPONSE = "Management::Node::API::node_dispatch_response"


class BrokerJSONError(Exception):
    """A message the double's tiny Broker JSON decoder cannot use."""


def _bj(value: Any) -> dict[str, Any]:
    """Encode a Python value as Broker JSON (the few types the node channel needs)."""
    if value is None:
        return {"@data-type": "none", "data": {}}
    if isinstance(value, bool):
        return {"@data-type": "boolean", "data": value}
    if isinstance(value, int):
        return {"@data-type": "count", "data": value}
    if isinstance(value, str):
        return {"@data-type": "string", "data": value}
    if isinstance(value, list | tuple):
        return {"@data-type": "vector", "data": [_bj(v) for v in value]}
    raise TypeError(f"cannot encode {type(value).__name__}")


def _unbj(obj: Any, want: str) -> Any:
    if not isinstance(obj, dict) or obj.get("@data-type") != want or "data" not in obj:
        raise BrokerJSONError(f"expected {want}")
    return obj["data"]


def zeek_event_message(topic: str, name: str, args: list[Any], ts: float) -> str:
    """A data message carrying a Zeek event, with network-timestamp metadata as Zeek 8
    sends it (wire-protocol.md §3.1)."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts % 1 * 1000):03d}"
    meta = {
        "@data-type": "vector",
        "data": [
            {
                "@data-type": "vector",
                "data": [
                    {"@data-type": "count", "data": 1},
                    {"@data-type": "timestamp", "data": stamp},
                ],
            }
        ],
    }
    inner = {
        "@data-type": "vector",
        "data": [_bj(name), {"@data-type": "vector", "data": args}, meta],
    }
    event = {"@data-type": "vector", "data": [_bj(1), _bj(1), inner]}
    return json.dumps({"type": "data-message", "topic": topic, **event})


def parse_zeek_event(msg: Any) -> tuple[str, str, list[Any]]:
    """``(topic, event name, Broker JSON args)`` of a data message carrying an event."""
    if not isinstance(msg, dict) or not isinstance(msg.get("topic"), str):
        raise BrokerJSONError("not a data message")
    outer = _unbj(msg, "vector")
    if len(outer) < 3 or _unbj(outer[0], "count") != 1 or _unbj(outer[1], "count") != 1:
        raise BrokerJSONError("not an event")
    inner = _unbj(outer[2], "vector")
    if len(inner) < 2:
        raise BrokerJSONError("malformed event")
    return msg["topic"], _unbj(inner[0], "string"), _unbj(inner[1], "vector")


class NodeChannel:
    """What ``zeek-mgmt-node.zeek`` sets up on Zeek >= 7.2: ``Cluster::listen_websocket``
    on 127.0.0.1:<port> (Zeek's Broker JSON v1 protocol: handshake, ack, data messages),
    a subscription to ``zeek/management/node/<node>``, and the dispatch handler.

    Subscriptions are plain string prefixes, as in Zeek. A response goes to every
    client whose subscriptions match its topic.
    """

    def __init__(self, node: str, port: int, values: dict[str, Any], drop: int = 0) -> None:
        self.node = node
        self.port = port
        self.values = values
        #: Dispatch requests still to be lost (``ZEEK_DOUBLE_DROP_DISPATCHES``).
        self.drop = drop
        self.endpoint = f"{uuid.uuid4()}-websocket"
        self.clients: dict[Any, list[str]] = {}
        self._count = 0

    async def start(self) -> Any:
        from websockets.asyncio.server import serve  # the interpreter's site-packages

        return await serve(
            self._handle, "127.0.0.1", self.port, compression=None, ping_interval=5.0
        )

    async def _handle(self, ws: Any) -> None:
        from websockets.exceptions import ConnectionClosed

        try:
            first = await ws.recv()
            try:
                subs = json.loads(first)
            except ValueError:
                await ws.send(_error("failed to decode JSON object"))
                return
            if not isinstance(subs, list):
                await ws.send(_error("subscriptions not an array"))
                return
            if not all(isinstance(s, str) for s in subs):
                await ws.send(_error("individual subscription not a string"))
                return
            name = f"{self.endpoint}-{self._count}"
            self._count += 1
            await ws.send(json.dumps({"type": "ack", "endpoint": name, "version": ZEEK_VERSION}))
            self.clients[ws] = list(subs)
            async for frame in ws:
                await self._receive(ws, frame)
        except ConnectionClosed:
            pass
        finally:
            self.clients.pop(ws, None)

    async def _receive(self, ws: Any, frame: str | bytes) -> None:
        try:
            msg = json.loads(frame)
        except ValueError:
            await ws.send(_error("failed to decode JSON object"))
            return
        try:
            topic, name, args = parse_zeek_event(msg)
        except BrokerJSONError:
            return  # Zeek logs a reporter warning and drops it
        # The node only sees what it subscribed to (Cluster::subscribe in zeek_init).
        if not topic.startswith(NODE_TOPIC_PREFIX + self.node):
            return
        if name != DISPATCH_REQUEST:
            return  # no handler
        if self.drop > 0:
            self.drop -= 1
            return  # lost on the way, as in ZeroMQ's proxy before the subscription arrived
        try:
            reqid = _unbj(args[0], "string")
            action = [_unbj(a, "string") for a in _unbj(args[1], "vector")]
            nodes = [_unbj(n, "string") for n in _unbj(args[2], "set")] if len(args) > 2 else []
        except (BrokerJSONError, IndexError):
            return  # Zeek: type mismatch, the event is not raised
        result = self.dispatch(reqid, action, nodes)
        if result is None:
            return
        topic = f"{NODE_TOPIC_PREFIX}{self.node}/response"
        text = zeek_event_message(topic, DISPATCH_RESPONSE, [_bj(reqid), _bj(result)], time.time())
        for client, subs in list(self.clients.items()):
            if any(topic.startswith(s) for s in subs):
                with contextlib.suppress(Exception):
                    await client.send(text)

    def dispatch(self, reqid: str, action: list[str], nodes: list[str]) -> list[Any] | None:
        """The node's ``node_dispatch_request`` handler (behaviour.md §7): a
        ``Management::Result`` as a list in field order, or None to stay silent."""
        if nodes and self.node not in nodes:
            return None
        success, data, error = True, None, None
        if not action:
            success, error = False, "no dispatch arguments provided"
        elif action[0] == "get_net_stats":
            # zeek-mgmt-node.zeek's netstats dispatch; the double captures nothing
            stats = {"pkts_recvd": 0, "pkts_dropped": 0, "pkts_link": 0, "bytes_recvd": 0}
            data = json.dumps({**stats, "network_time": time.time()}, separators=(",", ":"))
        elif action[0] != "get_id_value":
            success, error = False, f"dispatch {action[0]} unknown"
        elif len(action) < 2:
            success, error = False, "get_id_value expects name of global identifier"
        elif action[1] not in self.values:
            success, error = False, "unknown id"
        elif self.values[action[1]] is NO_VALUE:
            success, error = False, "no ID value"
        else:
            data = json.dumps(self.values[action[1]], separators=(",", ":"))
        return [reqid, success, None, data, error, self.node]


def _error(context: str) -> str:
    return json.dumps({"type": "error", "code": "deserialization_failed", "context": context})
