"""A Broker WebSocket server on asyncio: one port, its peers, publish and relay.

Theory of operation
-------------------
A :class:`Server` serves one address and port on the one path ``/v1/messages/json``. It
accepts TCP connections itself, bounded (:mod:`mgmt.transport.limits`), hands them to
``websockets`` for the HTTP upgrade, and runs each peer as a
:class:`~mgmt.transport.connection.Connection` with a :class:`ServerSession`. It knows its
peers' subscriptions: :meth:`Server.publish` delivers a message to each peer whose
subscription prefix matches the topic (Broker semantics, except that we never echo to
the publisher). With ``relay=True`` a data message from one peer is also relayed to the
other matching peers, as Zeek's hub does for the controller topic. Every message goes
out through each peer's one send path.

Every task has an owner: the accept loops and the connection set-ups are the server's,
each peer's handler is websockets' (``handler_tasks``), each peer's reader and writer are
its connection's; :meth:`Server.close` ends them all.
"""

from __future__ import annotations

import asyncio
import errno
import itertools
import logging
import socket
import ssl as ssl_module
import uuid
from collections.abc import Callable, Coroutine
from typing import Any

from websockets.asyncio.server import Server as WSServer
from websockets.asyncio.server import ServerConnection
from websockets.protocol import State
from websockets.server import ServerProtocol

from mgmt.broker import messages as bm
from mgmt.broker.events import event_to_json
from mgmt.broker.session import (
    EventFilter,
    EventReceived,
    ServerSession,
    SessionEvent,
    SessionState,
    TopicFilter,
)
from mgmt.core.peertext import peer_text
from mgmt.transport.connection import ConnCallback, Connection, EventCallback, noop_conn
from mgmt.transport.limits import (
    DEFAULT_ACCEPT_PAUSE,
    DEFAULT_CLOSE_TIMEOUT,
    DEFAULT_HANDSHAKE_TIMEOUT,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_SEND_BUFFER,
    DEFAULT_MAX_SIZE,
    RECV_QUEUE,
    LogThrottle,
)

log = logging.getLogger("mgmt.transport")

#: accept() errors that mean "out of resources": pause instead of retrying at once.
_RESOURCE_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
#: A best-effort answer to a connection over the limit (its request is never read).
_HTTP_503 = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
    b"Content-Length: 21\r\nConnection: close\r\n\r\ntoo many connections\n"
)

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
            peer's subscriptions; ``None``: no limit (the TLS handshake then has asyncio's
            default, 60 s).
        ping_interval: WebSocket keep-alive pings; ``None`` disables them. zeek-client
            counts any inbound frame as activity, so client ports must keep this ``None``
            (wire spec §1.8).
        ssl: TLS context for ``wss://``, or ``None`` for plaintext.
        backlog: the listen() backlog.
        close_timeout: seconds to wait for a peer's half of the closing handshake.
        accept_pause: seconds accepting pauses when ``accept()`` fails for lack of file
            descriptors or memory.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        on_event: EventCallback,
        on_open: ConnCallback = noop_conn,
        on_close: ConnCallback = noop_conn,
        accept: EventFilter | None = None,
        topics: TopicFilter | None = None,
        relay: bool = False,
        version: str = "8.2.2",
        max_size: int = DEFAULT_MAX_SIZE,
        max_send_buffer: int = DEFAULT_MAX_SEND_BUFFER,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        handshake_timeout: float | None = DEFAULT_HANDSHAKE_TIMEOUT,
        ping_interval: float | None = None,
        ssl: ssl_module.SSLContext | None = None,
        backlog: int = 100,
        close_timeout: float | None = DEFAULT_CLOSE_TIMEOUT,
        accept_pause: float = DEFAULT_ACCEPT_PAUSE,
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
        self._close_timeout = close_timeout
        self._accept_pause = accept_pause
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
                        self._accept_pause,
                    )
                    await asyncio.sleep(self._accept_pause)
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
                close_timeout=self._close_timeout,
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
            # The TLS handshake failed (tlsconfig logs why) or timed out, or the peer left;
            # or we are being cancelled (closing): give the slot back either way.
            if not (created and created[0].made):
                release()
            sock.close()
            if not isinstance(exc, Exception):
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

        timer = (
            None
            if self._handshake_timeout is None
            else asyncio.get_running_loop().call_later(
                self._handshake_timeout, self._no_subscription, conn
            )
        )
        try:
            await conn._read_loop(on_events)
        finally:
            if timer is not None:
                timer.cancel()
            self.connections.discard(conn)
            self._peers.discard(conn)
            await conn._teardown()
            if opened:
                # zeek-client never closes its connection cleanly (1006): not worth INFO
                # for an anonymous peer, unless it sent something that was not handled.
                quiet = conn.close_code == 1006 and conn.tag is None and not conn.close_summary()
                log.log(
                    logging.DEBUG if quiet else logging.INFO,
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
                conn.send_data(text)
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
