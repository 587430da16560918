"""One Broker WebSocket connection on asyncio: a sans-I/O session over ``websockets``.

Theory of operation
-------------------
A :class:`Connection` pairs one ``websockets`` connection with one session
(:mod:`mgmt.broker.session`) and runs two tasks it owns:

* the *reader* feeds every frame to the session, then hands the session's output to the
  writer and its events to the owner's callbacks (synchronously, in arrival order);
* the *writer* is the **only** code that calls ``websocket.send()`` or ``close()``.

The one send path (STYLE guideline 7): every message the application sends -- an event,
an already-serialized data message (a relay), a message in fragments (a deployment) --
goes through :meth:`Connection._sending`, which checks that the connection is open, lets
the session queue the message (the session checks that *it* is open: no data message
before the handshake), and moves the session's output into the writer's queue. So
frames never interleave, the ack is always first, and nothing is written to a closed or
half-open connection.

Callbacks are plain functions: the daemons on top are state machines that react to an
event by sending more messages (sending only enqueues), never by awaiting. That keeps
Zeek's rule that events are handled one at a time, in order.

What one peer may cost is bounded (:mod:`mgmt.transport.limits`): a peer that lets more
than ``max_send_buffer`` bytes pile up (it does not read) is disconnected at once, with
one warning; one message is always accepted into an empty buffer, however big.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterator
from typing import Any

from websockets.exceptions import ConnectionClosed

from mgmt.broker.session import (
    ClientSession,
    EventReceived,
    Fragments,
    Ignored,
    Rejected,
    ServerSession,
    SessionEvent,
    SessionState,
)
from mgmt.core.frozen import frozen
from mgmt.core.peertext import peer_text
from mgmt.exceptions import SessionClosedError
from mgmt.transport.limits import DEFAULT_MAX_SEND_BUFFER, FRAME_COST

log = logging.getLogger("mgmt.transport")

EventCallback = Callable[["Connection", EventReceived], None]
ConnCallback = Callable[["Connection"], None]


def noop_conn(conn: Connection) -> None:
    """A connection callback that does nothing."""
    return None


@frozen
class _Close:
    """Writer queue: send a close frame (``code`` ``None``: just stop writing)."""

    code: int | None = None
    reason: str = ""


async def cancel_and_join(task: asyncio.Task[Any]) -> None:
    """Cancel ``task`` and wait until it ended; its own cancellation is absorbed, that of
    the caller is not (a caller being cancelled meanwhile gets its CancelledError).

    Raises:
        Exception: what ``task`` raised instead of ending by its cancellation.
    """
    if task.done():
        return
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise


class Connection:
    """One Broker WebSocket connection (either side).

    Do not construct directly: :class:`~mgmt.transport.server.Server` and
    :func:`~mgmt.transport.client.connect` do.

    Args:
        ws: the ``websockets`` connection.
        session: the sans-I/O session for it.
        on_event: called for each accepted event.
        max_send_buffer: bytes that may wait for the peer before it is dropped.
        flush_timeout: seconds :meth:`close` waits for queued messages to be written
            (``None``: as long as it takes).

    Attributes:
        session: the sans-I/O session.
        remote: the peer's (host, port).
        name: a short label for logs (``127.0.0.1:51234``).
        tag: free for the owner (e.g. the agent name once it said hello).
    """

    def __init__(
        self,
        ws: Any,
        session: ServerSession | ClientSession,
        *,
        on_event: EventCallback,
        max_send_buffer: int = DEFAULT_MAX_SEND_BUFFER,
        flush_timeout: float | None = 5.0,
    ) -> None:
        self.ws = ws
        self.session = session
        addr = ws.remote_address or ("?", 0)
        self.remote: tuple[str, int] = (str(addr[0]), int(addr[1]))
        self.name = f"{self.remote[0]}:{self.remote[1]}"
        self._on_event = on_event
        self._queue: asyncio.Queue[tuple[str | Fragments, int] | _Close] = asyncio.Queue()
        self._max_send_buffer = max_send_buffer
        self._flush_timeout = flush_timeout
        #: Bytes queued or being written to the peer (see FRAME_COST).
        self.send_buffered = 0
        self._closed = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self.close_code: int | None = None
        #: Rejection contexts already logged at INFO (the rest go to DEBUG).
        self._reported: set[str] = set()
        self.tag: Any = None

    # -- sending: the one send path ---------------------------------------------------

    def send_event(self, topic: str, event: object) -> None:
        """Queue an event as a data message on ``topic``. Never blocks.

        Raises:
            SessionClosedError: the connection is closed.
            InvalidState: the session is not open (before the handshake completed).
        """
        with self._sending() as session:
            session.send_event(topic, event)

    def send_data(self, text: str) -> None:
        """Queue an already-serialized data message (e.g. one relayed as received).

        Raises:
            SessionClosedError, InvalidState: as for :meth:`send_event`.
        """
        with self._sending() as session:
            session.send_text(text)

    def send_fragments(self, fragments: Fragments) -> None:
        """Queue one data message given as UTF-8 fragments, each sent in its own frame.

        The peer reassembles them (RFC 6455 fragmentation). The point is memory: a large
        message sent to many peers can share its big middle fragment, and the writer never
        holds more than one fragment's frame at a time.

        Raises:
            SessionClosedError, InvalidState: as for :meth:`send_event`.
        """
        with self._sending() as session:
            session.send_fragments(fragments)

    @contextlib.contextmanager
    def _sending(self) -> Iterator[ServerSession | ClientSession]:
        """The one send path: refuse a closed connection, let the caller queue messages in
        the session (which checks its own state), then hand them to the writer."""
        if self._closed.is_set():
            raise SessionClosedError(f"connection to {self.name} is closed")
        yield self.session
        self._flush_session()

    def _flush_session(self) -> None:
        """Move what the session wants written into the writer's queue (the only way a
        frame reaches the writer)."""
        for item in self.session.messages_to_send():
            size = FRAME_COST + (len(item) if isinstance(item, str) else sum(map(len, item)))
            if self._closed.is_set():
                return
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

    async def _write_loop(self) -> None:
        try:
            while True:
                entry = await self._queue.get()
                if isinstance(entry, _Close):
                    if entry.code is not None:
                        await self.ws.close(entry.code, entry.reason)
                    return
                item, size = entry
                try:
                    if isinstance(item, str):
                        if log.isEnabledFor(logging.DEBUG):
                            log.debug("%s > %.200s", self.name, item)
                        await self.ws.send(item)
                    else:
                        if log.isEnabledFor(logging.DEBUG):
                            log.debug("%s > %.200r (fragmented)", self.name, item[0])
                        await self.ws.send(item, text=True)
                finally:
                    self.send_buffered -= size
        except ConnectionClosed:
            pass
        except Exception:
            log.exception("%s: writer failed", self.name)  # a bug: the peer gets cut off
            self._drop()
        finally:
            self._closed.set()

    def _start_writer(self) -> None:
        self._writer = asyncio.get_running_loop().create_task(
            self._write_loop(), name=f"writer-{self.name}"
        )

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
        """Start closing without waiting (safe from callbacks): nothing more is accepted;
        the writer sends what is queued, then the close frame. Idempotent."""
        if self._closed.is_set():
            return
        self._closed.set()
        self._queue.put_nowait(_Close(code, reason))

    def _drop(self) -> None:
        """Cut the TCP connection at once: no closing handshake with a peer that does not
        read (it would only wait for the close timeout)."""
        self._closed.set()
        self._queue.put_nowait(_Close())
        transport = getattr(self.ws, "transport", None)
        if transport is not None:
            transport.abort()

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Flush what is queued (for at most ``flush_timeout``), then close the WebSocket
        and wait for the closing handshake. Idempotent.

        Cancellation: the connection is still closed by websockets' own timeout.
        """
        if not self._closed.is_set():
            self._closed.set()
            self._queue.put_nowait(_Close(code, reason))
        writer = self._writer
        if writer is not None and not writer.done():
            # Waits without raising what ends the writer (the reader's teardown may
            # cancel it once the close completed) and without cancelling it.
            done, _ = await asyncio.wait({writer}, timeout=self._flush_timeout)
            if not done:
                log.debug("%s: queued messages not written in time; closing", self.name)
        # Idempotent in websockets: a no-op once the writer sent the close frame.
        await self.ws.close(code, reason)

    async def wait_closed(self) -> None:
        """Wait until the connection is closed (either side)."""
        await self._closed.wait()

    async def _teardown(self) -> None:
        """The end of a connection's life: stop the writer, close the socket, note the
        close code. Idempotent."""
        self._closed.set()
        if self._writer is not None:
            await cancel_and_join(self._writer)
        await self.ws.close()
        self.close_code = self.ws.close_code
