"""Broker WebSocket endpoints on asyncio: serve, connect, relay, reconnect.

Theory of operation
-------------------
A :class:`Connection` pairs one ``websockets`` connection with one sans-I/O session
(:mod:`mgmt.broker.session`). Two tasks per connection:

* the *reader* feeds every frame to the session, then flushes the session's output and
  hands its events to the owner's callbacks (synchronously, in arrival order);
* the *writer* is the **only** code that calls ``websocket.send()``: everything to send
  goes through :meth:`Connection.send_text` into one queue, so frames never interleave and
  the ack is always first.

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

Bounded resources per peer
--------------------------
Whatever a peer does, what it costs us is bounded, and it is logged without flooding:

* **Send buffer.** What waits to be written to one peer is counted in bytes; a peer that
  lets more than ``max_send_buffer`` pile up (it does not read) is disconnected at once,
  with one warning. One message is always accepted into an empty buffer, however big.
* **Receive side.** A frame is at most ``max_size`` bytes and websockets buffers at most
  :data:`RECV_QUEUE` frames per connection before it stops reading the socket.
* **Connections.** The server accepts connections itself (not through asyncio's
  ``create_server``): at most ``max_connections`` TCP connections per port, counted from
  ``accept()`` to close, whatever their stage; above that a new connection is closed
  right after ``accept()`` (with an HTTP 503 if the peer has not sent its request yet).
  When ``accept()`` fails for lack of file descriptors or memory (``EMFILE``,
  ``ENFILE``, ...), accepting pauses for :data:`ACCEPT_PAUSE` seconds instead of
  spinning.
* **Handshakes.** A peer has ``handshake_timeout`` seconds for each step of its opening:
  the TLS handshake (if any), the HTTP upgrade, and its subscriptions (the Broker
  handshake's first message); otherwise it is closed.
* **Logs.** Recurring trouble (refused connections, accept errors, silent peers) goes
  through a :class:`LogThrottle`: the first occurrence at once, then at most one line per
  :data:`LOG_INTERVAL` seconds with a count. A connection logs the first rejected message
  of each kind at INFO, the rest at DEBUG, and a count when it closes. Peer-supplied
  strings are quoted shortened (:func:`mgmt.core.peertext.peer_text`).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import itertools
import logging
import socket
import ssl as ssl_module
import uuid
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

from websockets.asyncio.client import connect as ws_connect
from websockets.asyncio.server import Server as WSServer
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed, InvalidHandshake
from websockets.protocol import State
from websockets.server import ServerProtocol

from mgmt.broker import messages as bm
from mgmt.broker.session import (
    Acked,
    ClientSession,
    EventFilter,
    EventReceived,
    Ignored,
    Rejected,
    ServerSession,
    SessionEvent,
    SessionState,
    TopicFilter,
)
from mgmt.core.peertext import peer_text
from mgmt.exceptions import HandshakeError, InvalidState, SessionClosedError
from mgmt.transport.backoff import backoff, classify_exception

log = logging.getLogger("mgmt.transport")

#: Default cap on one message (frame) size, bytes.
DEFAULT_MAX_SIZE = 16 * 1024 * 1024
#: Default cap on what may wait to be sent to one peer, bytes, before we drop the peer.
DEFAULT_MAX_SEND_BUFFER = 16 * 1024 * 1024
#: Default cap on open TCP connections per listening port.
DEFAULT_MAX_CONNECTIONS = 256
#: Default seconds for the HTTP upgrade (with TLS), and again for the subscriptions.
DEFAULT_HANDSHAKE_TIMEOUT = 10.0
#: Received frames websockets buffers per connection before it stops reading the socket.
RECV_QUEUE = 4
#: Seconds accepting pauses after accept() failed for lack of file descriptors or memory.
ACCEPT_PAUSE = 0.5
#: Seconds between two log lines about the same recurring trouble.
LOG_INTERVAL = 10.0
#: What one queued frame costs beyond its text (the Python objects), counted in the buffer.
FRAME_COST = 64
#: accept() errors that mean "out of resources": pause instead of retrying at once.
_RESOURCE_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
#: A best-effort answer to a connection over the limit (its request is never read).
_HTTP_503 = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
    b"Content-Length: 21\r\nConnection: close\r\n\r\ntoo many connections\n"
)

EventCallback = Callable[["Connection", EventReceived], None]
ConnCallback = Callable[["Connection"], None]

_CLOSE = object()  # writer-queue sentinel
_Payload = str | tuple[bytes | memoryview, ...]


def _noop_conn(conn: Connection) -> None:
    return None


class LogThrottle:
    """At most one log line per ``interval`` for one kind of recurring trouble.

    The first occurrence is logged at once. Later ones within the interval are counted;
    when the interval ends, one line repeats the last message with the count. Then the
    next interval starts, so a steady stream costs one line per interval.

    Args:
        logger: where to log.
        level: the level of every line.
        interval: seconds between lines.
    """

    def __init__(self, logger: logging.Logger, level: int, interval: float = LOG_INTERVAL) -> None:
        self._logger = logger
        self._level = level
        self._interval = interval
        self._window_end: float | None = None
        self._count = 0
        self._last: tuple[str, tuple[object, ...]] = ("", ())
        self._timer: asyncio.TimerHandle | None = None
        #: How many occurrences in all (for tests and status).
        self.total = 0

    def __call__(self, msg: str, *args: object) -> None:
        """Note one occurrence (``msg % args``); log it now or count it for later."""
        self.total += 1
        loop = asyncio.get_running_loop()
        now = loop.time()
        if self._window_end is None or now >= self._window_end:
            self._logger.log(self._level, msg, *args)
            self._window_end = now + self._interval
            return
        self._count += 1
        self._last = (msg, args)
        if self._timer is None:
            self._timer = loop.call_at(self._window_end, self.flush)

    def flush(self) -> None:
        """Log the occurrences counted since the last line, if any."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._count:
            return
        msg, args = self._last
        self._logger.log(
            self._level,
            msg + " (%d times in the last %.0f s)",
            *args,
            self._count,
            self._interval,
        )
        self._count = 0
        with contextlib.suppress(RuntimeError):  # no running loop: shutdown
            self._window_end = asyncio.get_running_loop().time() + self._interval


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
        max_send_buffer: int = DEFAULT_MAX_SEND_BUFFER,
    ) -> None:
        self.ws = ws
        self.session = session
        addr = ws.remote_address or ("?", 0)
        self.remote: tuple[str, int] = (str(addr[0]), int(addr[1]))
        self.name = f"{self.remote[0]}:{self.remote[1]}"
        self._on_event = on_event
        self._on_rejected = on_rejected
        self._queue: asyncio.Queue[object] = asyncio.Queue()
        self._max_send_buffer = max_send_buffer
        #: Bytes queued or being written to the peer (see FRAME_COST).
        self.send_buffered = 0
        self._closed = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self.close_code: int | None = None
        #: Rejection contexts already logged at INFO (the rest go to DEBUG).
        self._reported: set[str] = set()
        #: Free-form slot for the owner (e.g. the agent name once it said hello).
        self.tag: Any = None

    # -- sending (the one send path) ---------------------------------------------------

    def send_text(self, text: str) -> None:
        """Queue a frame for the writer. Never blocks; a peer that does not read gets
        disconnected (see the module docstring)."""
        self._enqueue(text, len(text))

    def _enqueue(self, item: _Payload, size: int) -> None:
        if self._closed.is_set():
            return
        size += FRAME_COST
        if self.send_buffered and self.send_buffered + size > self._max_send_buffer:
            log.warning(
                "%s: peer is not reading: %d bytes wait for it (limit %d); disconnecting",
                self.name,
                self.send_buffered + size,
                self._max_send_buffer,
            )
            self._drop()
            return
        self.send_buffered += size
        self._queue.put_nowait((item, size))

    def send_fragments(self, fragments: tuple[bytes | memoryview, ...]) -> None:
        """Queue one text message given as UTF-8 fragments, each sent in its own frame.

        The peer reassembles them (RFC 6455 fragmentation). The point is memory: a large
        message sent to many peers can share its big middle fragment, and the writer never
        holds more than one fragment's frame at a time. Never blocks.
        """
        self._enqueue(fragments, sum(len(f) for f in fragments))

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
                entry = await self._queue.get()
                if entry is _CLOSE:
                    return
                assert isinstance(entry, tuple)
                item, size = entry
                try:
                    if type(item) is tuple:
                        if log.isEnabledFor(logging.DEBUG):
                            log.debug("%s > %.200r (fragmented)", self.name, item[0])
                        await self.ws.send(item, text=True)
                        continue
                    if log.isEnabledFor(logging.DEBUG):
                        log.debug("%s > %.200s", self.name, item)
                    await self.ws.send(item)
                finally:
                    self.send_buffered -= size
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
            elif isinstance(event, Ignored):
                if log.isEnabledFor(logging.DEBUG):
                    log.debug(
                        "%s: ignored %s on topic %s (%s)",
                        self.name,
                        peer_text(event.name),
                        peer_text(event.topic),
                        event.reason,
                    )
            elif isinstance(event, Rejected):
                self._log_rejected(event)
                if self._on_rejected is not None:
                    self._on_rejected(self, event)

    def _log_rejected(self, event: Rejected) -> None:
        # The first rejection of each kind at INFO, repeats at DEBUG (a peer sending
        # garbage in a loop must not flood the log); close_summary() gives the count.
        first = event.context not in self._reported and len(self._reported) < 16
        if first:
            self._reported.add(event.context)
        log.log(
            logging.INFO if first else logging.DEBUG,
            "%s: rejected message: %.100s (%.300s)",
            self.name,
            event.context,
            event.detail,
        )

    def close_summary(self) -> str:
        """What this peer sent that was not handled, for the log line when it closes."""
        parts = []
        if self.session.rejected:
            parts.append(f"{self.session.rejected} messages rejected")
        if self.session.ignored:
            parts.append(f"{self.session.ignored} events on other topics ignored")
        if self.session.unknown_extensions:
            parts.append(f"{self.session.unknown_extensions} unknown extension events ignored")
        return "; " + ", ".join(parts) if parts else ""

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

    def _drop(self) -> None:
        """Cut the TCP connection at once: no closing handshake with a peer that does not
        read (it would only wait for the close timeout)."""
        self._closed.set()
        self._queue.put_nowait(_CLOSE)
        transport = getattr(self.ws, "transport", None)
        if transport is not None:
            transport.abort()

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


def _bind(host: str, port: int, backlog: int) -> list[socket.socket]:
    """Listening, non-blocking sockets for every address ``host`` resolves to (as asyncio's
    ``create_server`` binds them: ``SO_REUSEADDR``, IPv6 sockets IPv6-only).

    Raises:
        OSError: an address cannot be bound (e.g. the port is in use).
    """
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _, addr in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                sock.bind(addr)
            except OSError as exc:
                raise OSError(
                    exc.errno,
                    f"error while attempting to bind on address {addr!r}: "
                    f"{(exc.strerror or str(exc)).lower()}",
                ) from None
            sock.listen(backlog)
            sock.setblocking(False)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def _refuse(sock: socket.socket) -> None:
    """Turn a connection away right after accept(): a 503 if it fits, then close."""
    try:
        sock.setblocking(False)
        sock.send(_HTTP_503)
        # Read what the peer sent already (a little), so that closing sends FIN rather
        # than RST (with unread data the kernel resets, and the peer may lose the 503).
        for _ in range(4):
            if not sock.recv(65536):
                break
    except OSError:
        pass
    finally:
        sock.close()


async def _never_create_server() -> asyncio.AbstractServer:
    raise NotImplementedError  # pragma: no cover - Server accepts connections itself


class _Registry(WSServer):
    """What websockets' ``ServerConnection`` needs of its server: the handler to run per
    connection, the set of handler tasks, and whether we still serve (otherwise it answers
    the upgrade with 503)."""

    def __init__(self, handler: Callable[[ServerConnection], Coroutine[Any, Any, None]]) -> None:
        super().__init__(_never_create_server, handler)  # type: ignore[arg-type]
        self.serving = True

    def is_serving(self) -> bool:
        return self.serving


class _PortConnection(ServerConnection):
    """A server connection that gives its slot back to the port when it is lost."""

    def __init__(self, *args: Any, release: Callable[[], None], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._release_slot = release
        self.made = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.made = True
        super().connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        try:
            super().connection_lost(exc)
        finally:
            self._release_slot()


class Server:
    """A Broker WebSocket server on one address and port.

    Args:
        host: address to bind (``0.0.0.0``, ``127.0.0.1``, ``::``, ...).
        port: port to bind; 0 picks a free one (see :attr:`port` after :meth:`start`).
        on_event: called for every accepted event, in arrival order.
        on_open: called when a peer's handshake completed.
        on_close: called when a peer is gone (only for peers that were opened).
        accept: which events peers may send; others get ``failed to create Zeek event``.
        topics: which topics this endpoint handles; events published on others are
            ignored (counted, logged at debug), as a Zeek endpoint never sees events on
            topics it did not subscribe to. ``None``: every topic.
        relay: also relay peers' data messages to other matching peers (hub behaviour).
        version: the ``version`` in our ack (Zeek sends its version).
        max_size: largest accepted frame in bytes; bigger ones close the connection (1009).
        max_send_buffer: bytes that may wait to be sent to one peer before it is dropped.
        max_connections: open TCP connections on this port; more are refused at once.
        handshake_timeout: seconds for each of the TLS handshake, the HTTP upgrade and the
            peer's subscriptions.
        ping_interval: WebSocket keep-alive pings; ``None`` disables them. zeek-client
            counts any inbound frame as activity, so client ports must keep this ``None``
            (wire spec §1.8).
        ssl: TLS context for ``wss://``, or ``None`` for plaintext.
        backlog: the listen() backlog.
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
        topics: TopicFilter | None = None,
        relay: bool = False,
        version: str = "8.2.2",
        max_size: int = DEFAULT_MAX_SIZE,
        max_send_buffer: int = DEFAULT_MAX_SEND_BUFFER,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
        ping_interval: float | None = None,
        ssl: ssl_module.SSLContext | None = None,
        backlog: int = 100,
    ) -> None:
        self.host = host
        self.port = port
        self._on_event = on_event
        self._on_open = on_open
        self._on_close = on_close
        self._accept = accept
        self._topics = topics
        self._relay = relay
        self._version = version
        self._max_size = max_size
        self._max_send_buffer = max_send_buffer
        self.max_connections = max_connections
        self._handshake_timeout = handshake_timeout
        self._ping_interval = ping_interval
        self._ssl = ssl
        self._backlog = backlog
        self._node_id = str(uuid.uuid4())
        self._registry: _Registry | None = None
        self._sockets: list[socket.socket] = []
        self._acceptors: list[asyncio.Task[None]] = []
        #: Connections being set up (TLS handshake), as tasks.
        self._attaching: set[asyncio.Task[None]] = set()
        #: Every TCP connection handed to websockets and not yet lost.
        self._live: set[_PortConnection] = set()
        #: Open TCP connections on this port, from accept() to close.
        self.open_connections = 0
        self.connections: set[Connection] = set()
        # Every peer with a running handler, including those still before the Broker
        # handshake: close() must end them all, or waiting for the handlers never returns.
        self._peers: set[Connection] = set()
        self._refused = LogThrottle(log, logging.WARNING)
        self._accept_failed = LogThrottle(log, logging.WARNING)
        self._silent = LogThrottle(log, logging.INFO)

    @property
    def _label(self) -> str:
        return f"port {self.port}"

    async def start(self) -> None:
        """Bind and start accepting connections.

        Raises:
            OSError: the address cannot be bound (e.g. port in use).
        """
        self._sockets = _bind(self.host, self.port, self._backlog)
        self.port = int(self._sockets[0].getsockname()[1])
        self._registry = _Registry(self._serve_connection)
        loop = asyncio.get_running_loop()
        self._acceptors = [
            loop.create_task(self._accept_loop(sock), name=f"accept-{self.port}")
            for sock in self._sockets
        ]

    # -- accepting --------------------------------------------------------------------

    async def _accept_loop(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                conn, addr = await loop.sock_accept(sock)
            except OSError as exc:
                if exc.errno in _RESOURCE_ERRNOS:
                    self._accept_failed(
                        "%s: cannot accept connections: %s; pausing %.1f s",
                        self._label,
                        exc.strerror or exc,
                        ACCEPT_PAUSE,
                    )
                    await asyncio.sleep(ACCEPT_PAUSE)
                else:  # e.g. ECONNABORTED: that peer is gone already
                    log.debug("%s: accept failed: %s", self._label, exc)
                continue
            if self.open_connections >= self.max_connections:
                _refuse(conn)
                self._refused(
                    "%s: %d connections open, the limit (max_connections); refused a "
                    "connection from %s",
                    self._label,
                    self.open_connections,
                    addr[0],
                )
                continue
            self.open_connections += 1
            task = loop.create_task(self._attach(conn))
            self._attaching.add(task)
            task.add_done_callback(self._attaching.discard)

    def _release(self) -> None:
        self.open_connections -= 1

    async def _attach(self, sock: socket.socket) -> None:
        """Hand an accepted socket to websockets (after the TLS handshake, if any)."""
        created: list[_PortConnection] = []
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self._release()

        def factory() -> _PortConnection:
            assert self._registry is not None
            ws = _PortConnection(
                ServerProtocol(max_size=self._max_size),
                self._registry,
                ping_interval=self._ping_interval,
                ping_timeout=self._ping_interval,
                close_timeout=2,
                max_queue=RECV_QUEUE,
                release=release,
            )
            created.append(ws)
            return ws

        loop = asyncio.get_running_loop()
        try:
            await loop.connect_accepted_socket(
                factory,
                sock,
                ssl=self._ssl,
                ssl_handshake_timeout=self._handshake_timeout if self._ssl else None,
            )
        except BaseException as exc:
            # The TLS handshake failed (tlsconfig logs why) or timed out, or the peer left.
            if not (created and created[0].made):
                release()
            sock.close()
            if isinstance(exc, asyncio.CancelledError):
                raise
            log.debug("%s: connection setup failed: %r", self._label, exc)
            return
        self._live.add(created[0])
        created[0].connection_lost_waiter.add_done_callback(
            lambda _: self._live.discard(created[0])
        )

    async def _serve_connection(self, ws: ServerConnection) -> None:
        """Run one connection: the HTTP upgrade (bounded in time), then :meth:`_handle`."""
        try:
            try:
                async with asyncio.timeout(self._handshake_timeout):
                    await ws.handshake(None, None, "zeek-mgmt")
            except TimeoutError:
                self._silent(
                    "%s: closed connections that sent no HTTP upgrade within %.0f s (last from %s)",
                    self._label,
                    self._handshake_timeout,
                    (ws.remote_address or ("?",))[0],
                )
                ws.transport.abort()
                return
            if ws.protocol.state is not State.OPEN:
                ws.transport.abort()
                return
            ws.start_keepalive()
            await self._handle(ws)
        except Exception:
            log.exception("%s: connection handler failed", self._label)
            ws.transport.abort()
        finally:
            task = asyncio.current_task()
            if task is not None:
                ws.server.handler_tasks.discard(task)

    def _no_subscription(self, conn: Connection) -> None:
        if conn.session.state is SessionState.AWAIT_HANDSHAKE:
            self._silent(
                "%s: closed connections that sent no subscriptions within %.0f s of the "
                "upgrade (last %s)",
                self._label,
                self._handshake_timeout,
                conn.name,
            )
            conn.abort(1008, "no subscriptions")

    async def _handle(self, ws: ServerConnection) -> None:
        session = ServerSession(
            endpoint=f"{self._node_id}-websocket-{next(_endpoint_counter)}",
            version=self._version,
            accept=self._accept,
            topics=self._topics,
        )
        conn = Connection(
            ws, session, on_event=self._deliver, max_send_buffer=self._max_send_buffer
        )
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
                    "peer %s connected, subscriptions %s",
                    conn.name,
                    peer_text(list(session.subscriptions)),
                )
                self._on_open(conn)

        timer = asyncio.get_running_loop().call_later(
            self._handshake_timeout, self._no_subscription, conn
        )
        try:
            await conn._read_loop(on_events)
        finally:
            timer.cancel()
            self.connections.discard(conn)
            self._peers.discard(conn)
            await conn._teardown()
            if opened:
                log.info(
                    "peer %s disconnected (code %s%s)",
                    conn.name,
                    conn.close_code,
                    conn.close_summary(),
                )
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
        registry = self._registry
        if registry is None:
            return
        self._registry = None
        registry.serving = False
        tasks = (*self._acceptors, *self._attaching)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._acceptors = []
        for sock in self._sockets:
            sock.close()
        await asyncio.gather(
            *(c.close(1001, "going away") for c in tuple(self._peers)), return_exceptions=True
        )
        # Connections still in their HTTP upgrade have no peer object yet.
        for ws in tuple(self._live):
            if ws.protocol.state is not State.CLOSED:
                ws.transport.abort()
        if registry.handler_tasks:
            await asyncio.wait(tuple(registry.handler_tasks))
        for throttle in (self._refused, self._accept_failed, self._silent):
            throttle.flush()


async def connect(
    uri: str,
    topics: tuple[str, ...],
    *,
    on_event: EventCallback,
    accept: EventFilter | None = None,
    handles: TopicFilter | None = None,
    open_timeout: float | None = 10.0,
    max_size: int = DEFAULT_MAX_SIZE,
    max_send_buffer: int = DEFAULT_MAX_SEND_BUFFER,
    ping_interval: float | None = 20.0,
    ssl: ssl_module.SSLContext | None = None,
) -> tuple[Connection, asyncio.Task[None]]:
    """Dial a Broker WebSocket server, subscribe to ``topics`` and wait for the ack.

    Events on topics that ``handles`` refuses (default: other than ``topics``, by prefix)
    are ignored; ``max_size`` and ``max_send_buffer`` bound what each direction may hold.

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
        max_queue=RECV_QUEUE,
        user_agent_header="zeek-mgmt",
    )
    session = ClientSession(topics, accept=accept, handles=handles)
    conn = Connection(ws, session, on_event=on_event, max_send_buffer=max_send_buffer)
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
        accept, handles, max_send_buffer: as for :func:`connect`.
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
        handles: TopicFilter | None = None,
        delays: Callable[[], Iterator[float]] = backoff,
        open_timeout: float = 10.0,
        max_size: int = DEFAULT_MAX_SIZE,
        max_send_buffer: int = DEFAULT_MAX_SEND_BUFFER,
        ping_interval: float | None = 20.0,
        ssl: ssl_module.SSLContext | None = None,
    ) -> None:
        self.uri = uri
        self.topics = topics
        self._on_event = on_event
        self._on_open = on_open
        self._on_close = on_close
        self._accept = accept
        self._handles = handles
        self._delays = delays
        self._open_timeout = open_timeout
        self._max_size = max_size
        self._max_send_buffer = max_send_buffer
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
                    handles=self._handles,
                    open_timeout=self._open_timeout,
                    max_size=self._max_size,
                    max_send_buffer=self._max_send_buffer,
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
                    log.info("connection to %s lost%s", self.uri, conn.close_summary())
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
    "LogThrottle",
    "ReconnectingClient",
    "Server",
    "SessionClosedError",
    "connect",
    "describe_connect_error",
]
