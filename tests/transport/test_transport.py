"""The asyncio transport (mgmt.transport) on real sockets (127.0.0.1, port 0).

Malformed input is sent with raw ``websockets`` clients; well-behaved peers use our own
:func:`~mgmt.transport.connect`. No fixed sleeps: ordering on one connection is used to
prove that something was *not* delivered (a later marker frame arrives first), and state
changes are awaited through events.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

from mgmt.broker import events as be
from mgmt.broker import messages as bm
from mgmt.broker.session import EventReceived
from mgmt.exceptions import HandshakeError, SessionClosedError
from mgmt.transport import ReconnectingClient, Server, connect
from mgmt.transport.backoff import backoff, classify_exception
from tests.support.waiting import MS, TIMEOUT

TOPIC = "zeek/management/controller"


class Recorder:
    """Server callbacks that record what happened and answer get_nodes requests."""

    def __init__(self) -> None:
        self.events: list[Any] = []
        self.opened = 0
        self.closed = asyncio.Event()
        self.closed_count = 0
        self.got_event = asyncio.Event()

    def on_event(self, conn: Any, ev: EventReceived) -> None:
        self.events.append(ev.event)
        self.got_event.set()
        if isinstance(ev.event, be.GetNodesRequest):
            if ev.event.reqid == "boom":
                raise RuntimeError("handler bug")
            conn.send_event(TOPIC, be.GetNodesResponse(ev.event.reqid, ()))

    def on_open(self, conn: Any) -> None:
        self.opened += 1

    def on_close(self, conn: Any) -> None:
        self.closed_count += 1
        self.closed.set()


class Inbox:
    """A client's on_event that keeps what arrives; :meth:`wait` awaits it."""

    def __init__(self) -> None:
        self.events: list[Any] = []
        self._got = asyncio.Event()

    def on_event(self, conn: Any, ev: EventReceived) -> None:
        self.events.append(ev.event)
        self._got.set()

    async def wait(self, count: int) -> list[Any]:
        """The events, once ``count`` of them arrived."""
        while len(self.events) < count:
            self._got.clear()
            await self._got.wait()
        return self.events


@contextlib.asynccontextmanager
async def running_server(**kw: Any) -> AsyncIterator[tuple[Server, Recorder]]:
    rec = Recorder()
    server = Server(
        "127.0.0.1",
        kw.pop("port", 0),
        on_event=rec.on_event,
        on_open=rec.on_open,
        on_close=rec.on_close,
        **kw,
    )
    await server.start()
    try:
        async with asyncio.timeout(TIMEOUT):
            yield server, rec
    finally:
        await server.close()


def uri(server: Server, path: str = bm.API_PATH) -> str:
    return f"ws://127.0.0.1:{server.port}{path}"


async def recv_json(ws: ClientConnection) -> Any:
    return json.loads(await ws.recv())


@contextlib.asynccontextmanager
async def raw_client(
    server: Server, topics: list[str] | None = None, **kw: Any
) -> AsyncIterator[ClientConnection]:
    """A raw websockets client; with ``topics`` it handshakes and consumes the ack."""
    async with ws_connect(uri(server, kw.pop("path", bm.API_PATH)), **kw) as ws:
        if topics is not None:
            await ws.send(json.dumps(topics))
            ack = await recv_json(ws)
            assert ack["type"] == "ack"
        yield ws


def request_text(reqid: str, topic: str = TOPIC) -> str:
    return bm.data_message_text(topic, be.event_to_json(be.GetNodesRequest(reqid)))


async def assert_serving(server: Server) -> None:
    """A fresh well-behaved client still gets its answer."""
    async with raw_client(server, [TOPIC]) as ws:
        await ws.send(request_text("still-serving"))
        answer = await recv_json(ws)
        payload = {"@data-type": answer["@data-type"], "data": answer["data"]}
        assert be.event_from_json(payload) == be.GetNodesResponse("still-serving", ())


def error_json(context: str, code: str = bm.DESERIALIZATION_FAILED) -> dict[str, str]:
    return {"type": "error", "code": code, "context": context}


async def closed_code(ws: ClientConnection) -> int | None:
    """Read until the server closes; return the close code it sent."""
    with pytest.raises(ConnectionClosed):
        while True:
            await ws.recv()
    return ws.close_code


# --------------------------------------------------------------------------------------
# Handshake


@pytest.mark.asyncio
async def test_handshake_ack_first() -> None:
    """The ack is the first frame, with exactly type/endpoint/version, then requests work."""
    async with running_server(version="8.2.2") as (server, rec):
        async with raw_client(server) as ws:
            await ws.send(json.dumps([TOPIC]))
            ack = await recv_json(ws)
            assert set(ack) == {"type", "endpoint", "version"}
            assert ack["type"] == "ack" and ack["version"] == "8.2.2"
            assert "-websocket-" in ack["endpoint"]
            await ws.send(request_text("r1"))
            answer = await recv_json(ws)
            assert answer["type"] == "data-message" and answer["topic"] == TOPIC
        assert rec.events == [be.GetNodesRequest("r1")]
        assert rec.opened == 1


@pytest.mark.asyncio
async def test_endpoints_differ_per_connection() -> None:
    """Each connection gets its own endpoint id in the ack."""
    async with running_server() as (server, _):
        async with raw_client(server) as a, raw_client(server) as b:
            await a.send("[]")
            await b.send("[]")
            assert (await recv_json(a))["endpoint"] != (await recv_json(b))["endpoint"]


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("first", "context"),
    [
        ('{"topics": []}', bm.CTX_NOT_AN_ARRAY),
        ("not json", bm.CTX_NOT_AN_ARRAY),
        ('["ok", 5]', bm.CTX_SUB_NOT_A_STRING),
    ],
)
async def test_bad_handshake_closes_1008(first: str, context: str) -> None:
    """A wrong first message gets Zeek's error (no ack) and a 1008 close; others unaffected."""
    async with running_server() as (server, rec):
        async with raw_client(server) as ws:
            await ws.send(first)
            assert await recv_json(ws) == error_json(context)
            assert await closed_code(ws) == 1008
        assert rec.opened == 0
        await assert_serving(server)


@pytest.mark.asyncio
async def test_wrong_path() -> None:
    """A wrong URL path gets invalid_uri and a 1008 close."""
    async with running_server() as (server, _):
        async with raw_client(server, path="/v1/messages/binary") as ws:
            assert await recv_json(ws) == error_json(bm.CTX_INVALID_URI, bm.INVALID_URI)
            assert await closed_code(ws) == 1008
        await assert_serving(server)


@pytest.mark.asyncio
async def test_query_string_is_ignored() -> None:
    """The path check ignores a query string."""
    async with running_server() as (server, _):
        async with raw_client(server, [TOPIC], path=bm.API_PATH + "?x=1") as ws:
            await ws.send(request_text("q"))
            assert (await recv_json(ws))["type"] == "data-message"


# --------------------------------------------------------------------------------------
# Errors after the ack: answered, connection stays open


BAD_AFTER_ACK = [
    ("{broken", bm.CTX_BAD_JSON),
    ("[1, 2, 3]", bm.CTX_BAD_JSON),
    (json.dumps({"type": "data-message", "@data-type": "count", "data": 1}), bm.CTX_NO_TOPIC),
    (
        bm.data_message_text(TOPIC, {"@data-type": "vector", "data": 7}),
        bm.CTX_BAD_JSON,
    ),
    (bm.data_message_text(TOPIC, be.raw_event_to_json("Nope::event", [])), bm.CTX_BAD_EVENT),
    (
        bm.data_message_text(
            TOPIC, be.raw_event_to_json(be.event_name(be.GetNodesRequest("x")), [])
        ),
        bm.CTX_BAD_EVENT,
    ),
    (
        bm.data_message_text(
            TOPIC,
            be.raw_event_to_json(
                be.event_name(be.GetNodesRequest("x")), [{"@data-type": "count", "data": 1}]
            ),
        ),
        bm.CTX_BAD_EVENT,
    ),
    ("[" * 50_000 + "]" * 50_000, bm.CTX_BAD_JSON),
]


@pytest.mark.asyncio
@pytest.mark.parametrize(("text", "context"), BAD_AFTER_ACK, ids=lambda x: str(x)[:25])
async def test_errors_after_ack_keep_connection_open(text: str, context: str) -> None:
    """Malformed JSON, no topic, unknown event, wrong arity or argument type: Zeek's error
    message, and the same connection then still answers a valid request."""
    async with running_server() as (server, rec):
        async with raw_client(server, [TOPIC]) as ws:
            await ws.send(text)
            assert await recv_json(ws) == error_json(context)
            await ws.send(request_text("after"))
            answer = await recv_json(ws)
            assert answer["type"] == "data-message"
        assert rec.events == [be.GetNodesRequest("after")]


@pytest.mark.asyncio
async def test_accept_filter_on_port() -> None:
    """Events the port does not accept are rejected like unknown events."""
    async with running_server(accept=lambda ev: isinstance(ev, be.DeployRequest)) as (
        server,
        rec,
    ):
        async with raw_client(server, [TOPIC]) as ws:
            await ws.send(request_text("r"))
            assert await recv_json(ws) == error_json(bm.CTX_BAD_EVENT)
        assert rec.events == []


@pytest.mark.asyncio
async def test_handler_exception_does_not_kill_connection(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A failing event handler is logged; the connection and server keep working."""
    async with running_server() as (server, rec):
        async with raw_client(server, [TOPIC]) as ws:
            await ws.send(request_text("boom"))
            await ws.send(request_text("fine"))
            answer = await recv_json(ws)
            assert answer["data"][2]["data"][1]["data"][0]["data"] == "fine"
    assert "handler failed" in caplog.text


# --------------------------------------------------------------------------------------
# Routing


@pytest.mark.asyncio
async def test_publish_routes_by_prefix() -> None:
    """publish() reaches exactly the peers with a matching subscription prefix."""
    async with running_server() as (server, _):
        async with (
            raw_client(server, [TOPIC]) as exact,
            raw_client(server, ["zeek/management/"]) as broad,
            raw_client(server, ["other/"]) as other,
        ):
            sent = server.publish(TOPIC, be.GetNodesRequest("p1"))
            assert sent == 2
            for ws in (exact, broad):
                msg = await recv_json(ws)
                assert msg["topic"] == TOPIC
            # The marker is the first thing `other` receives: the event never reached it.
            assert server.publish("other/x", be.GetNodesRequest("marker")) == 1
            msg = await recv_json(other)
            assert msg["topic"] == "other/x"
            assert server.publish("nobody/listens", be.GetNodesRequest("z")) == 0


@pytest.mark.asyncio
@pytest.mark.parametrize("relay", [True, False])
async def test_relay_and_no_echo(relay: bool) -> None:
    """With relay=True a peer's message reaches other matching peers; never the sender
    itself, nor non-matching peers. With relay=False nobody else gets it."""
    async with running_server(relay=relay) as (server, rec):
        async with (
            raw_client(server, [TOPIC]) as sender,
            raw_client(server, [TOPIC]) as peer,
            raw_client(server, ["other"]) as other,
        ):
            await sender.send(request_text("relayed", topic=TOPIC + "/x"))
            # The sender's first frame is its own answer (no echo of the request).
            answer = await recv_json(sender)
            assert answer["data"][2]["data"][0]["data"].endswith("get_nodes_response")
            server.publish(TOPIC, be.GetNodesRequest("marker"))
            first = await recv_json(peer)
            got = first["data"][2]["data"][1]["data"][0]["data"]
            assert got == ("relayed" if relay else "marker")
            assert first["topic"] == (TOPIC + "/x" if relay else TOPIC)
            server.publish("other", be.GetNodesRequest("other-marker"))
            assert (await recv_json(other))["topic"] == "other"
        assert rec.events == [be.GetNodesRequest("relayed")]


# --------------------------------------------------------------------------------------
# Limits and disconnects


@pytest.mark.asyncio
async def test_oversized_frame_closes_only_that_connection() -> None:
    """A frame over max_size closes that connection with 1009; others keep working."""
    async with running_server(max_size=4096) as (server, _):
        async with raw_client(server, [TOPIC]) as healthy, raw_client(server, [TOPIC]) as big:
            await big.send(request_text("x" * 10_000))
            assert await closed_code(big) == 1009
            await healthy.send(request_text("ok"))
            assert (await recv_json(healthy))["type"] == "data-message"
        await assert_serving(server)


@pytest.mark.asyncio
async def test_abrupt_disconnect() -> None:
    """A TCP drop without a close frame is noticed (on_close runs, peer forgotten) and the
    server keeps serving."""
    async with running_server() as (server, rec):
        async with raw_client(server, [TOPIC]) as ws:
            assert len(server.connections) == 1
            ws.transport.abort()
            await rec.closed.wait()
        assert rec.closed_count == 1
        assert server.connections == set()
        assert server.publish(TOPIC, be.GetNodesRequest("nobody")) == 0
        await assert_serving(server)


@pytest.mark.asyncio
async def test_client_vanishes_before_handshake() -> None:
    """A peer that drops before its handshake never counts as opened or closed."""
    async with running_server() as (server, rec):
        async with raw_client(server) as ws:
            ws.transport.abort()
        await assert_serving(server)
        assert rec.opened == 1  # only assert_serving's client
        await rec.closed.wait()
        assert rec.closed_count == 1


@pytest.mark.asyncio
async def test_many_concurrent_connections() -> None:
    """200 connections open at once all get their answers."""
    count = 200
    async with running_server() as (server, rec):
        async with contextlib.AsyncExitStack() as stack:
            clients = [await stack.enter_async_context(raw_client(server)) for _ in range(count)]
            await asyncio.gather(*(ws.send(json.dumps([TOPIC])) for ws in clients))
            acks = await asyncio.gather(*(recv_json(ws) for ws in clients))
            assert all(a["type"] == "ack" for a in acks)
            assert len(server.connections) == count
            await asyncio.gather(
                *(ws.send(request_text(f"req-{i}")) for i, ws in enumerate(clients))
            )
            answers = await asyncio.gather(*(recv_json(ws) for ws in clients))
            for i, answer in enumerate(answers):
                assert answer["data"][2]["data"][1]["data"][0]["data"] == f"req-{i}"
        assert len(rec.events) == count


@pytest.mark.asyncio
async def test_server_close_says_going_away() -> None:
    """Server.close() closes peers with 1001 and is idempotent."""
    rec = Recorder()
    server = Server("127.0.0.1", 0, on_event=rec.on_event)
    await server.start()
    async with asyncio.timeout(TIMEOUT):
        async with raw_client(server, [TOPIC]) as ws:
            await server.close()
            assert await closed_code(ws) == 1001
        await server.close()


# --------------------------------------------------------------------------------------
# Our client side


@pytest.mark.asyncio
async def test_connect_round_trip() -> None:
    """connect() handshakes; events flow both ways; the reader ends when the server goes."""
    inbox = Inbox()
    async with running_server() as (server, _):
        conn, reader = await connect(uri(server), (TOPIC,), on_event=inbox.on_event)
        assert conn.is_open
        conn.send_event(TOPIC, be.GetNodesRequest("c1"))
        assert await inbox.wait(1) == [be.GetNodesResponse("c1", ())]
        await server.close()
        await reader
        assert not conn.is_open


@pytest.mark.asyncio
async def test_connect_refused_and_classified() -> None:
    """Dialling a closed port raises OSError, which the reconnect policy retries."""
    async with running_server() as (server, _):
        port = server.port
    with pytest.raises(OSError) as info:
        await connect(f"ws://127.0.0.1:{port}{bm.API_PATH}", (TOPIC,), on_event=lambda c, e: None)
    assert classify_exception(info.value) is None
    assert classify_exception(ValueError("bug")) is not None


@pytest.mark.asyncio
async def test_connect_without_ack() -> None:
    """A server answering the handshake with an error raises HandshakeError."""
    async with running_server() as (server, _):
        with pytest.raises(HandshakeError):
            await connect(
                uri(server, "/wrong"), (TOPIC,), on_event=lambda c, e: None, open_timeout=5
            )


def test_backoff_delays() -> None:
    """Back-off: 0 first, then initial growing by factor, capped at maximum, forever."""
    gen = backoff(initial=0.5, factor=2.0, maximum=3.0)
    assert [next(gen) for _ in range(7)] == [0.0, 0.5, 1.0, 2.0, 3.0, 3.0, 3.0]


@pytest.mark.asyncio
async def test_reconnecting_client_survives_server_restart() -> None:
    """ReconnectingClient reconnects with back-off after the server restarts on its port."""
    opened = 0
    lost = asyncio.Event()
    received: list[Any] = []
    got = asyncio.Event()

    def on_open(conn: Any) -> None:
        nonlocal opened
        opened += 1

    def on_event(conn: Any, ev: EventReceived) -> None:
        received.append(ev.event)
        got.set()

    async with running_server() as (server, _):
        port = server.port
        client = ReconnectingClient(
            uri(server),
            (TOPIC,),
            on_event=on_event,
            on_open=on_open,
            on_close=lambda conn: lost.set(),
            delays=lambda: backoff(initial=0.02, factor=2.0, maximum=0.2),
        )
        task = asyncio.create_task(client.run())
        try:
            await client.connected.wait()
            assert client.send_event(TOPIC, be.GetNodesRequest("before"))
            await got.wait()
            got.clear()
            # Stop the server: the client notices, then retries (refused) until it is back.
            await server.close()
            await lost.wait()
            assert not client.send_event(TOPIC, be.GetNodesRequest("nobody"))
            async with running_server(port=port) as (server2, _):
                await client.connected.wait()
                assert client.send_event(TOPIC, be.GetNodesRequest("after"))
                await got.wait()
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    assert received == [be.GetNodesResponse("before", ()), be.GetNodesResponse("after", ())]
    assert opened == 2


@pytest.mark.asyncio
async def test_debug_logging(caplog: pytest.LogCaptureFixture) -> None:
    """With DEBUG logging received frames are logged; rejections are logged at INFO."""
    caplog.set_level("DEBUG", logger="mgmt.transport")
    async with running_server() as (server, _):
        async with raw_client(server, [TOPIC]) as ws:
            await ws.send("{oops")
            await recv_json(ws)
    assert "rejected message" in caplog.text
    assert " < {oops" in caplog.text


@pytest.mark.asyncio
async def test_fragmented_message_received_intact() -> None:
    """A message queued as fragments arrives whole, in order with the frames around it."""
    from mgmt.broker.records import ClusterRole, Configuration, Instance, Node

    inbox = Inbox()
    nodes = tuple(Node(f"n-ü-{i}", "a", ClusterRole.WORKER) for i in range(2000))
    big = be.AgentDeployRequest("big", Configuration("c", (Instance("a"),), nodes), False)
    data = bm.data_message_text(TOPIC, be.event_to_json(big)).encode()
    assert len(data) > 256 * 1024
    view = memoryview(data)
    parts = (view[:10], view[10:100_000], view[100_000:], b"")
    async with running_server() as (server, _):
        conn, reader = await connect(uri(server), (TOPIC,), on_event=inbox.on_event)
        (peer,) = server.connections
        peer.send_event(TOPIC, be.GetNodesRequest("before"))
        peer.send_fragments(parts)
        peer.send_event(TOPIC, be.GetNodesRequest("after"))
        received = await inbox.wait(3)
        assert received == [be.GetNodesRequest("before"), big, be.GetNodesRequest("after")]
        await conn.close()
        await reader


@pytest.mark.asyncio
async def test_cancelled_reconnecting_client_says_going_away() -> None:
    """Cancelling ReconnectingClient.run() closes its connection with 1001 (a close
    handshake, not a TCP connection left open) before run() ends."""
    peers: list[Any] = []
    async with running_server() as (server, rec):
        server._on_open = peers.append
        client = ReconnectingClient(uri(server), (TOPIC,), on_event=lambda c, e: None)
        task = asyncio.create_task(client.run())
        await client.connected.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert client.connection is None and not client.connected.is_set()
        await rec.closed.wait()
        assert [p.close_code for p in peers] == [1001]


@pytest.mark.asyncio
async def test_reconnecting_client_ends_when_cancel_surfaces_as_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A cancel that reaches connect() as a TimeoutError (Python 3.11's asyncio.timeout
    race) still ends ReconnectingClient.run() instead of another retry."""
    from mgmt.transport import client as tc

    entered = asyncio.Event()

    async def connect_swallowing_cancel(*args: object, **kwargs: object) -> None:
        entered.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            raise TimeoutError("timed out") from None

    monkeypatch.setattr(tc, "connect", connect_swallowing_cancel)
    client = tc.ReconnectingClient(
        "ws://127.0.0.1:9/v1/messages/json", ("t",), on_event=lambda c, e: None
    )
    task = asyncio.get_running_loop().create_task(client.run())
    await entered.wait()
    task.cancel()
    async with asyncio.timeout(5000 * MS):
        with pytest.raises(asyncio.CancelledError):
            await task


@contextlib.asynccontextmanager
async def dropping_server(port: int = 0) -> AsyncIterator[tuple[int, asyncio.Queue[None]]]:
    """A TCP server that closes every connection at once, before any HTTP response (as a
    TLS port does to a plaintext client, or a Zeek node that is stopping); yields its port
    and a queue getting one item per accepted connection."""
    accepted: asyncio.Queue[None] = asyncio.Queue()

    async def drop(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()
        accepted.put_nowait(None)

    server = await asyncio.start_server(drop, "127.0.0.1", port)
    try:
        yield server.sockets[0].getsockname()[1], accepted
    finally:
        server.close()
        await server.wait_closed()


async def _attempts(client: ReconnectingClient, accepted: asyncio.Queue[None], n: int) -> None:
    """Run ``client`` until it made ``n`` connection attempts at the dropping server."""
    task = asyncio.create_task(client.run())
    try:
        async with asyncio.timeout(TIMEOUT):
            for _ in range(n):
                await accepted.get()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@pytest.mark.asyncio
async def test_tls_hint_only_when_plausible(caplog: pytest.LogCaptureFixture) -> None:
    """A server that never answered gets a WARNING with the TLS hint; one that spoke
    plaintext to this client before and now drops connections (it is stopping) is logged
    at DEBUG, without the false hint."""
    caplog.set_level("DEBUG", logger="mgmt.transport")
    quick = lambda: backoff(initial=0.01, factor=1.0, maximum=0.01)  # noqa: E731
    async with dropping_server() as (port, accepted):
        fresh = ReconnectingClient(
            f"ws://127.0.0.1:{port}{bm.API_PATH}", (TOPIC,), on_event=lambda c, e: None,
            delays=quick,
        )  # fmt: skip
        await _attempts(fresh, accepted, 2)
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "is its port TLS (wss://)?" in warnings[0], warnings

    caplog.clear()
    lost = asyncio.Event()
    async with running_server() as (server, _):
        port = server.port
        client = ReconnectingClient(
            uri(server), (TOPIC,), on_event=lambda c, e: None,
            on_close=lambda conn: lost.set(), delays=quick,
        )  # fmt: skip
        task = asyncio.create_task(client.run())
        await client.connected.wait()
    await lost.wait()
    try:
        async with dropping_server(port) as (_, accepted), asyncio.timeout(TIMEOUT):
            for _ in range(2):
                await accepted.get()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    messages = [r.getMessage() for r in caplog.records]
    assert not [r for r in caplog.records if r.levelname == "WARNING"], messages
    assert not [m for m in messages if "TLS" in m], messages
    assert any("closed the connection without an HTTP response" in m for m in messages)


@pytest.mark.asyncio
async def test_abrupt_client_disconnect_logged_at_debug(caplog: pytest.LogCaptureFixture) -> None:
    """A peer that drops its TCP connection (1006, as zeek-client always does) is logged
    at DEBUG; one that closes cleanly, or that the application identified (tag), at INFO."""
    caplog.set_level("DEBUG", logger="mgmt.transport")
    async with running_server() as (server, rec):
        async with raw_client(server, [TOPIC]) as ws:
            ws.transport.abort()
            await rec.closed.wait()
        rec.closed.clear()
        async with raw_client(server, [TOPIC]) as ws:
            next(iter(server.connections)).tag = "agent-x"
            ws.transport.abort()
            await rec.closed.wait()
        rec.closed.clear()
        async with raw_client(server, [TOPIC]):
            pass
        await rec.closed.wait()
    lines = [
        (r.levelname, r.getMessage()) for r in caplog.records if "disconnected" in r.getMessage()
    ]
    assert [(level, "(code 1006)" in msg) for level, msg in lines] == [
        ("DEBUG", True),
        ("INFO", True),
        ("INFO", False),
    ], lines


@pytest.mark.asyncio
async def test_sending_on_a_closed_connection_is_an_error() -> None:
    """Every send goes through the one send path, which refuses a closed connection:
    an event, a relayed message and fragments alike raise SessionClosedError."""
    async with running_server() as (server, _):
        conn, reader = await connect(uri(server), (TOPIC,), on_event=lambda c, e: None)
        await conn.close()
        await reader
        for send in (
            lambda: conn.send_event(TOPIC, be.GetNodesRequest("r")),
            lambda: conn.send_data("{}"),
            lambda: conn.send_fragments((b"{}",)),
        ):
            with pytest.raises(SessionClosedError):
                send()


@pytest.mark.asyncio
async def test_abort_sends_what_is_queued_then_the_close_frame() -> None:
    """abort() (from a callback) lets the writer send the queued messages, then the close
    frame with the code and reason; no task outlives the connection."""
    got: list[Any] = []
    async with running_server() as (server, _):
        before = asyncio.all_tasks()
        conn, reader = await connect(uri(server), (TOPIC,), on_event=lambda c, e: got.append(e))
        (peer,) = server.connections
        peer.send_event(TOPIC, be.GetNodesRequest("last words"))
        peer.abort(1008, "replaced")
        await reader
        assert [e.event for e in got] == [be.GetNodesRequest("last words")]
        assert (conn.ws.close_code, conn.ws.close_reason) == (1008, "replaced")
        await server.close()
        assert asyncio.all_tasks() - before == set()
