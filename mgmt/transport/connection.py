"""Broker WebSocket endpoints on asyncio: serve, connect, relay, reconnect.

Theory of operation
-------------------
A :class:`Connection` pairs one ``websockets`` connection with one sans-I/O session
(:mod:`mgmt.broker.session`). Two tasks per connection:

* the *reader* feeds every frame to the session, then flushes the session's output and
  hands its events to the owner's callbacks (synchronously, in arrival order);
* the *writer* is the **only** code that calls ``websocket.send()``: everything to send
  goes through :meth:`Connection.send_text` into one queue, so frames never interleave and
  the ack is always first. A peer that does not read (queue over ``max_queue``) is closed
  rather than allowed to grow our memory.

Callbacks are plain functions: the daemons on top are state machines that react to an
event by sending more messages (``send_event``/``publish`` only enqueue), never by
awaiting. That keeps Zeek's rule that events are handled one at a time, in order.

A :class:`Server` serves one port and path (``/v1/messages/json``); it knows its peers'
subscriptions and :meth:`Server.publish` delivers a message to each peer whose
subscription prefix matches the topic (Broker semantics, except that we never echo to the
publisher). With ``relay=True`` a data message from one peer is also relayed to the other
matching peers, as Zeek's hub does for the controller topic.

:func:`connect` dials, handshakes and returns an open connection; a
:class:`ReconnectingClient` does that forever with capped exponential back-off.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import ssl as ssl_module
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from websockets.asyncio.client import connect as ws_connect
from websockets.asyncio.server import Server as WSServer
from websockets.asyncio.server import ServerConnection
from websockets.asyncio.server import serve as ws_serve
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from mgmt.broker import messages as bm
from mgmt.broker.session import (
    Acked,
    ClientSession,
    EventFilter,
    EventReceived,
    Rejected,
    ServerSession,
    SessionEvent,
    SessionState,
)
from mgmt.exceptions import HandshakeError, InvalidState, SessionClosedError
from mgmt.transport.backoff import backoff, classify_exception

log = logging.getLogger("mgmt.transport")

#: Default cap on one message (frame) size, bytes.
DEFAULT_MAX_SIZE = 16 * 1024 * 1024
#: Default cap on queued outgoing frames per connection before we drop the peer.
DEFAULT_MAX_QUEUE = 10_000

EventCallback = Callable[["Connection", EventReceived], None]
ConnCallback = Callable[["Connection"], None]

_CLOSE = object()  # writer-queue sentinel


def _noop_conn(conn: Connection) -> None:
    return None


class Connection:
    """One Broker WebSocket connection (either side).

    Do not construct directly: :class:`Server` and :func:`connect` do.

    Attributes:
        session: the sans-I/O session.
        remote: the peer's (host, port).
        name: a short label for logs (``peer 127.0.0.1:51234``).
    """

    def __init__(
        self,
        ws: Any,
        session: ServerSession | ClientSession,
        *,
        on_event: EventCallback,
        on_rejected: Callable[[Connection, Rejected], None] | None = None,
        max_queue: int = DEFAULT_MAX_QUEUE,
    ) -> None:
        self.ws = ws
        self.session = session
        addr = ws.remote_address or ("?", 0)
        self.remote: tuple[str, int] = (str(addr[0]), int(addr[1]))
        self.name = f"{self.remote[0]}:{self.remote[1]}"
        self._on_event = on_event
        self._on_rejected = on_rejected
        self._queue: asyncio.Queue[object] = asyncio.Queue()
        self._max_queue = max_queue
        self._closed = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self.close_code: int | None = None
        #: Free-form slot for the owner (e.g. the agent name once it said hello).
        self.tag: Any = None

    # -- sending (the one send path) ---------------------------------------------------

    def send_text(self, text: str) -> None:
        """Queue a frame for the writer. Never blocks; a too-slow peer gets disconnected."""
        self._enqueue(text)

    def _enqueue(self, item: str | tuple[bytes | memoryview, ...]) -> None:
        if self._closed.is_set():
            return
        if self._queue.qsize() >= self._max_queue:
            log.warning(
                "%s: peer is not reading (%d frames queued), closing",
                self.name,
                self._queue.qsize(),
            )
            self.abort(1008, "slow consumer")
            return
        self._queue.put_nowait(item)

    def send_fragments(self, fragments: tuple[bytes | memoryview, ...]) -> None:
        """Queue one text message given as UTF-8 fragments, each sent in its own frame.

        The peer reassembles them (RFC 6455 fragmentation). The point is memory: a large
        message sent to many peers can share its big middle fragment, and the writer never
        holds more than one fragment's frame at a time. Never blocks.
        """
        self._enqueue(fragments)

    def send_event(self, topic: str, event: object) -> None:
        """Queue an event as a data message on ``topic``.

        Raises:
            InvalidState: the session is not open (e.g. before the handshake completed).
        """
        self.session.send_event(topic, event)
        self._flush_session()

    def _flush_session(self) -> None:
        for text in self.session.messages_to_send():
            self.send_text(text)

    async def _write_loop(self) -> None:
        try:
            while True:
                item = await self._queue.get()
                if item is _CLOSE:
                    return
                if type(item) is tuple:
                    if log.isEnabledFor(logging.DEBUG):
                        log.debug("%s > %.200r (fragmented)", self.name, item[0])
                    await self.ws.send(item, text=True)
                    continue
                if log.isEnabledFor(logging.DEBUG):
                    log.debug("%s > %.200s", self.name, item)
                await self.ws.send(item)
        except ConnectionClosed:
            pass
        finally:
            self._closed.set()

    def _start_writer(self) -> None:
        self._writer = asyncio.get_running_loop().create_task(self._write_loop())

    # -- receiving ------------------------------------------------------------------------

    def _dispatch(self, events: list[SessionEvent]) -> None:
        for event in events:
            if isinstance(event, EventReceived):
                try:
                    self._on_event(self, event)
                except Exception:
                    # A handler bug must not take the connection (or the daemon) down.
                    log.exception("%s: handler failed for %s", self.name, type(event.event))
            elif isinstance(event, Rejected):
                log.info("%s: rejected message: %s (%s)", self.name, event.context, event.detail)
                if self._on_rejected is not None:
                    self._on_rejected(self, event)

    def _feed(self, frame: str | bytes) -> None:
        text = frame if isinstance(frame, str) else frame.decode("utf-8", "replace")
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s < %.200s", self.name, text)
        self.session.receive_text(text)
        self._flush_session()

    async def _read_loop(
        self, pre_events: Callable[[list[SessionEvent]], None] | None = None
    ) -> None:
        try:
            async for frame in self.ws:
                self._feed(frame)
                events = self.session.events_received()
                if pre_events is not None:
                    pre_events(events)
                self._dispatch(events)
                if self.session.close_requested is not None:
                    code, reason = self.session.close_requested
                    await self.close(code, reason)
                    return
        except ConnectionClosed:
            pass

    # -- closing ------------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        """Whether messages can still be exchanged."""
        return not self._closed.is_set() and self.session.state is SessionState.OPEN

    def abort(self, code: int = 1011, reason: str = "") -> None:
        """Start closing without waiting (safe from callbacks)."""
        if self._closed.is_set():
            return
        self._closed.set()
        self._queue.put_nowait(_CLOSE)
        asyncio.get_running_loop().create_task(self.ws.close(code, reason))

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Flush what is queued, then close the WebSocket. Idempotent."""
        if self._writer is not None and not self._writer.done():
            self._queue.put_nowait(_CLOSE)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(self._writer), 5.0)
        self._closed.set()
        with contextlib.suppress(Exception):
            await self.ws.close(code, reason)

    async def wait_closed(self) -> None:
        """Wait until the connection is closed (either side)."""
        await self._closed.wait()

    async def _teardown(self) -> None:
        self._closed.set()
        if self._writer is not None and not self._writer.done():
            self._queue.put_nowait(_CLOSE)
            self._writer.cancel()
            with contextlib.suppress(BaseException):
                await self._writer
        with contextlib.suppress(Exception):
            await self.ws.close()
        self.close_code = self.ws.close_code


_endpoint_counter = itertools.count()


class Server:
    """A Broker WebSocket server on one address and port.

    Args:
        host: address to bind (``0.0.0.0``, ``127.0.0.1``, ``::``, ...).
        port: port to bind; 0 picks a free one (see :attr:`port` after :meth:`start`).
        on_event: called for every accepted event, in arrival order.
        on_open: called when a peer's handshake completed.
        on_close: called when a peer is gone (only for peers that were opened).
        accept: which events peers may send; others get ``failed to create Zeek event``.
        relay: also relay peers' data messages to other matching peers (hub behaviour).
        version: the ``version`` in our ack (Zeek sends its version).
        max_size: largest accepted frame in bytes; bigger ones close the connection (1009).
        ping_interval: WebSocket keep-alive pings; ``None`` disables them. zeek-client
            counts any inbound frame as activity, so client ports must keep this ``None``
            (wire spec §1.8).
        ssl: TLS context for ``wss://``, or ``None`` for plaintext.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        on_event: EventCallback,
        on_open: ConnCallback = _noop_conn,
        on_close: ConnCallback = _noop_conn,
        accept: EventFilter | None = None,
        relay: bool = False,
        version: str = "8.2.2",
        max_size: int = DEFAULT_MAX_SIZE,
        max_queue: int = DEFAULT_MAX_QUEUE,
        ping_interval: float | None = None,
        ssl: ssl_module.SSLContext | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self._on_event = on_event
        self._on_open = on_open
        self._on_close = on_close
        self._accept = accept
        self._relay = relay
        self._version = version
        self._max_size = max_size
        self._max_queue = max_queue
        self._ping_interval = ping_interval
        self._ssl = ssl
        self._node_id = str(uuid.uuid4())
        self._ws_server: WSServer | None = None
        self.connections: set[Connection] = set()
        # Every peer with a running handler, including those still before the Broker
        # handshake: close() must end them all, or waiting for the handlers never returns.
        self._peers: set[Connection] = set()

    async def start(self) -> None:
        """Bind and start accepting connections.

        Raises:
            OSError: the address cannot be bound (e.g. port in use).
        """
        self._ws_server = await ws_serve(
            self._handle,
            self.host,
            self.port,
            compression=None,
            max_size=self._max_size,
            ping_interval=self._ping_interval,
            ping_timeout=None if self._ping_interval is None else self._ping_interval,
            ssl=self._ssl,
            server_header="zeek-mgmt",
            open_timeout=10,
            close_timeout=2,
        )
        sock = next(iter(self._ws_server.sockets))
        self.port = int(sock.getsockname()[1])

    async def _handle(self, ws: ServerConnection) -> None:
        session = ServerSession(
            endpoint=f"{self._node_id}-websocket-{next(_endpoint_counter)}",
            version=self._version,
            accept=self._accept,
        )
        conn = Connection(ws, session, on_event=self._deliver, max_queue=self._max_queue)
        conn._start_writer()
        self._peers.add(conn)
        if ws.request is None or ws.request.path.split("?", 1)[0] != bm.API_PATH:
            session.reject_path()
            conn._flush_session()
            await conn.close(1008, "invalid URI")
            self._peers.discard(conn)
            return
        opened = False

        def on_events(events: list[SessionEvent]) -> None:
            nonlocal opened
            if not opened and session.state is SessionState.OPEN:
                opened = True
                self.connections.add(conn)
                log.info(
                    "peer %s connected, subscriptions %s", conn.name, list(session.subscriptions)
                )
                self._on_open(conn)

        try:
            await conn._read_loop(on_events)
        finally:
            self.connections.discard(conn)
            self._peers.discard(conn)
            await conn._teardown()
            if opened:
                log.info("peer %s disconnected (code %s)", conn.name, conn.close_code)
                try:
                    self._on_close(conn)
                except Exception:
                    log.exception("on_close handler failed for %s", conn.name)

    def _deliver(self, conn: Connection, event: EventReceived) -> None:
        if self._relay:
            self.publish_text(event.topic, event.text, exclude=conn)
        self._on_event(conn, event)

    def publish(self, topic: str, event: object, exclude: Connection | None = None) -> int:
        """Send an event to every open peer subscribed to ``topic``; returns how many."""
        from mgmt.broker.events import event_to_json

        return self.publish_text(
            topic, bm.data_message_text(topic, event_to_json(event)), exclude=exclude
        )

    def publish_text(self, topic: str, text: str, exclude: Connection | None = None) -> int:
        """Send a serialized data message to every open peer subscribed to ``topic``."""
        count = 0
        for conn in tuple(self.connections):
            session = conn.session
            if conn is exclude or not isinstance(session, ServerSession):
                continue
            if conn.is_open and session.matches(topic):
                conn.send_text(text)
                count += 1
        return count

    async def close(self) -> None:
        """Stop accepting, close every peer (1001, going away) and wait. Idempotent."""
        if self._ws_server is None:
            return
        server, self._ws_server = self._ws_server, None
        server.close(close_connections=False)
        await asyncio.gather(
            *(c.close(1001, "going away") for c in tuple(self._peers)), return_exceptions=True
        )
        await server.wait_closed()


async def connect(
    uri: str,
    topics: tuple[str, ...],
    *,
    on_event: EventCallback,
    accept: EventFilter | None = None,
    open_timeout: float | None = 10.0,
    max_size: int = DEFAULT_MAX_SIZE,
    ping_interval: float | None = 20.0,
    ssl: ssl_module.SSLContext | None = None,
) -> tuple[Connection, asyncio.Task[None]]:
    """Dial a Broker WebSocket server, subscribe to ``topics`` and wait for the ack.

    Returns:
        The open connection and its reader task (which ends when the connection closes).

    Raises:
        OSError, TimeoutError: the server cannot be reached in time.
        HandshakeError: the server answered the handshake with something other than an ack.

    Cancellation: safe; a half-open connection is closed.
    """
    ws = await ws_connect(
        uri,
        compression=None,
        open_timeout=open_timeout,
        max_size=max_size,
        ping_interval=ping_interval,
        ping_timeout=ping_interval,
        ssl=ssl,
        proxy=None,
        close_timeout=2,
        user_agent_header="zeek-mgmt",
    )
    session = ClientSession(topics, accept=accept)
    conn = Connection(ws, session, on_event=on_event)
    conn._start_writer()
    try:
        conn._flush_session()
        async with asyncio.timeout(open_timeout):
            frame = await ws.recv()
        conn._feed(frame)
        if session.state is not SessionState.OPEN:
            raise HandshakeError(str(session.fault or "no ack"))
        for ev in session.events_received():
            if not isinstance(ev, Acked):
                conn._dispatch([ev])
    except BaseException:
        await conn._teardown()
        raise

    async def reader() -> None:
        try:
            await conn._read_loop()
        finally:
            await conn._teardown()

    task = asyncio.get_running_loop().create_task(reader())
    return conn, task


def describe_connect_error(uri: str, exc: BaseException) -> str:
    """A failed :func:`connect` explained, with a hint for the usual TLS mix-ups.

    Without TLS on our side, a TLS server drops the connection before any HTTP response;
    with TLS 1.3, a server that refuses our client certificate does the same just after
    the handshake; a plaintext server resets a TLS handshake.
    """
    tls = uri.startswith("wss:")
    if isinstance(exc, ssl_module.SSLCertVerificationError):
        return (
            f"cannot verify the server's certificate: {exc.verify_message} "
            "(is tls_ca the CA that signed it, and is it issued for this address?)"
        )
    if isinstance(exc, ssl_module.SSLError):
        if exc.reason == "WRONG_VERSION_NUMBER":
            return f"TLS handshake failed: {exc.reason} (is the server's port plaintext?)"
        return f"TLS error: {exc.reason or exc}"
    if isinstance(exc, InvalidHandshake) and isinstance(exc.__cause__, EOFError):
        if tls:
            return (
                "the server closed the connection after the TLS handshake, without an "
                "HTTP response: it probably refused our client certificate (tls_cert "
                "and tls_key must be signed by the CA it trusts)"
            )
        return (
            "the server closed the connection without an HTTP response: "
            "is its port TLS (wss://)? then set tls_ca (and tls_cert, tls_key)"
        )
    if tls and isinstance(exc, ConnectionResetError):
        return f"{exc} during the TLS handshake (is the server's port plaintext?)"
    return str(exc) or type(exc).__name__


class ReconnectingClient:
    """Keep one connection to a server up forever, reconnecting with back-off.

    Args:
        uri: ``ws://host:port/v1/messages/json`` (or ``wss://``).
        topics: subscriptions to send in each handshake.
        on_event: called for each accepted event.
        on_open: called after each successful handshake (e.g. to say hello).
        on_close: called when an open connection is lost.
        delays: a factory of back-off delays (default: :func:`backoff`).
    """

    def __init__(
        self,
        uri: str,
        topics: tuple[str, ...],
        *,
        on_event: EventCallback,
        on_open: ConnCallback = _noop_conn,
        on_close: ConnCallback = _noop_conn,
        accept: EventFilter | None = None,
        delays: Callable[[], Iterator[float]] = backoff,
        open_timeout: float = 10.0,
        ping_interval: float | None = 20.0,
        ssl: ssl_module.SSLContext | None = None,
    ) -> None:
        self.uri = uri
        self.topics = topics
        self._on_event = on_event
        self._on_open = on_open
        self._on_close = on_close
        self._accept = accept
        self._delays = delays
        self._open_timeout = open_timeout
        self._ping_interval = ping_interval
        self._ssl = ssl
        self.connection: Connection | None = None
        self.connected = asyncio.Event()

    async def run(self) -> None:
        """Connect, serve, reconnect; returns only when cancelled (then closes cleanly).

        Raises:
            Exception: a failure :func:`classify_exception` deems fatal.
        """
        delays = self._delays()
        last_problem = ""
        while True:
            await asyncio.sleep(next(delays))
            try:
                conn, reader = await connect(
                    self.uri,
                    self.topics,
                    on_event=self._on_event,
                    accept=self._accept,
                    open_timeout=self._open_timeout,
                    ping_interval=self._ping_interval,
                    ssl=self._ssl,
                )
            except Exception as exc:
                # A cancel that races a timeout inside connect() can come out as
                # TimeoutError (asyncio.timeout in Python 3.11): once we are being
                # cancelled, never treat a failure as a reason to retry.
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise asyncio.CancelledError() from exc
                if classify_exception(exc) is not None:
                    raise
                # Configuration problems (TLS, HTTP) at WARNING, transient network
                # trouble at DEBUG; each only when it changes, not on every retry.
                problem = describe_connect_error(self.uri, exc)
                config_problem = isinstance(exc, ssl_module.SSLError | InvalidHandshake) or (
                    self._ssl is not None and isinstance(exc, ConnectionResetError)
                )
                level = logging.DEBUG
                if problem != last_problem and config_problem:
                    level = logging.WARNING
                log.log(level, "cannot connect to %s: %s", self.uri, problem)
                last_problem = problem
                continue
            last_problem = ""
            log.info("connected to %s", self.uri)
            delays = self._delays()  # a success resets the back-off
            next(delays)
            self.connection = conn
            self.connected.set()
            try:
                self._on_open(conn)
                # Shielded: when run() is cancelled, the connection is closed below
                # and its reader finishes, instead of both being dropped half-way.
                await asyncio.shield(reader)
            finally:
                self.connected.clear()
                self.connection = None
                if reader.done():
                    log.info("connection to %s lost", self.uri)
                else:
                    # Cancelled: say goodbye (1001, as a server going away does) and
                    # wait for the close handshake, so that the peer sees a clean close
                    # now rather than a TCP connection left open until we exit. (A
                    # Zeek node with an open WebSocket client takes seconds to stop.)
                    await conn.close(1001, "going away")
                    with contextlib.suppress(BaseException):
                        await reader
                    log.debug("closed connection to %s", self.uri)
                try:
                    self._on_close(conn)
                except Exception:
                    log.exception("on_close handler failed")

    def send_event(self, topic: str, event: object) -> bool:
        """Send on the current connection if there is one; returns whether it was sent."""
        conn = self.connection
        if conn is None or not conn.is_open:
            return False
        try:
            conn.send_event(topic, event)
        except InvalidState:
            return False
        return True


__all__ = [
    "Connection",
    "ReconnectingClient",
    "Server",
    "SessionClosedError",
    "connect",
    "describe_connect_error",
]
