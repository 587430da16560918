"""Dialing a Broker WebSocket server on asyncio: :func:`connect`, and
:class:`ReconnectingClient`, which keeps one connection up forever.

:func:`connect` dials, handshakes and returns an open
:class:`~mgmt.transport.connection.Connection` with its reader task (the caller owns
it). A :class:`ReconnectingClient` does that in a loop with capped exponential back-off
(:mod:`mgmt.transport.backoff`): its :meth:`~ReconnectingClient.run` is meant to be a task
of the daemon, which cancels it to stop; the connection is then closed cleanly (1001).
"""

from __future__ import annotations

import asyncio
import logging
import ssl as ssl_module
from collections.abc import Callable, Iterator
from typing import TypedDict, Unpack

from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import InvalidHandshake

from mgmt.broker.session import (
    Acked,
    ClientSession,
    EventFilter,
    SessionState,
    TopicFilter,
)
from mgmt.exceptions import HandshakeError, InvalidState, SessionClosedError
from mgmt.transport.backoff import backoff, classify_exception
from mgmt.transport.connection import ConnCallback, Connection, EventCallback, noop_conn
from mgmt.transport.limits import (
    DEFAULT_CLOSE_TIMEOUT,
    DEFAULT_MAX_SEND_BUFFER,
    DEFAULT_MAX_SIZE,
    RECV_QUEUE,
)

log = logging.getLogger("mgmt.transport")


class ConnectOptions(TypedDict, total=False):
    """The keyword arguments of :func:`connect` besides ``on_event`` (see there)."""

    accept: EventFilter | None
    handles: TopicFilter | None
    open_timeout: float | None
    max_size: int
    max_send_buffer: int
    ping_interval: float | None
    ssl: ssl_module.SSLContext | None
    close_timeout: float | None


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
    close_timeout: float | None = DEFAULT_CLOSE_TIMEOUT,
) -> tuple[Connection, asyncio.Task[None]]:
    """Dial a Broker WebSocket server, subscribe to ``topics`` and wait for the ack.

    Events on topics that ``handles`` refuses (default: other than ``topics``, by prefix)
    are ignored; ``max_size`` and ``max_send_buffer`` bound what each direction may hold.
    ``open_timeout`` bounds the connect and again the ack, ``close_timeout`` the closing
    handshake (``None``: no limit).

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
        close_timeout=close_timeout,
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

    task = asyncio.get_running_loop().create_task(reader(), name=f"reader-{conn.name}")
    return conn, task


def describe_connect_error(uri: str, exc: BaseException, *, tls_plausible: bool = True) -> str:
    """A failed :func:`connect` explained, with a hint for the usual TLS mix-ups.

    Without TLS on our side, a TLS server drops the connection before any HTTP response;
    with TLS 1.3, a server that refuses our client certificate does the same just after
    the handshake; a plaintext server resets a TLS handshake. ``tls_plausible=False``
    (the server spoke plaintext to us before): no TLS hint for a dropped connection, which
    is then a server going away (a Zeek node stopping).
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
        if not tls_plausible:
            return "the server closed the connection without an HTTP response"
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
        options: for :func:`connect` (filters, limits, timeouts, TLS).
    """

    def __init__(
        self,
        uri: str,
        topics: tuple[str, ...],
        *,
        on_event: EventCallback,
        on_open: ConnCallback = noop_conn,
        on_close: ConnCallback = noop_conn,
        delays: Callable[[], Iterator[float]] = backoff,
        **options: Unpack[ConnectOptions],
    ) -> None:
        self.uri = uri
        self.topics = topics
        self._on_event = on_event
        self._on_open = on_open
        self._on_close = on_close
        self._delays = delays
        self._options = options
        self._tls = options.get("ssl") is not None
        self.connection: Connection | None = None
        self.connected = asyncio.Event()

    async def run(self) -> None:
        """Connect, serve, reconnect; returns only when cancelled (then closes cleanly).

        Raises:
            Exception: a failure :func:`classify_exception` deems fatal.
        """
        delays = self._delays()
        last_problem = ""
        # Once the server spoke plaintext to us, a dropped connection is not a TLS mix-up.
        spoke_plaintext = False
        while True:
            await asyncio.sleep(next(delays))
            try:
                conn, reader = await connect(
                    self.uri, self.topics, on_event=self._on_event, **self._options
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
                problem = describe_connect_error(self.uri, exc, tls_plausible=not spoke_plaintext)
                config_problem = isinstance(exc, ssl_module.SSLError | InvalidHandshake) or (
                    self._tls and isinstance(exc, ConnectionResetError)
                )
                if spoke_plaintext and isinstance(exc.__cause__, EOFError):
                    config_problem = False  # the server is going away
                level = logging.DEBUG
                if problem != last_problem and config_problem:
                    level = logging.WARNING
                log.log(level, "cannot connect to %s: %s", self.uri, problem)
                last_problem = problem
                continue
            last_problem = ""
            spoke_plaintext = not self._tls
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
                    try:
                        await reader
                    except Exception:
                        log.exception("reader of %s failed", self.uri)  # a bug
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
        except (InvalidState, SessionClosedError):
            return False
        return True
