"""What one peer may cost: the defaults of the transport's bounds, and log throttling.

Whatever a peer does, what it costs us is bounded, and it is logged without flooding:

* **Send buffer.** What waits to be written to one peer is counted in bytes (each frame
  costs :data:`FRAME_COST` more); a peer that lets more than ``max_send_buffer`` pile up
  (it does not read) is disconnected at once, with one warning. One message is always
  accepted into an empty buffer, however big.
* **Receive side.** A frame is at most ``max_size`` bytes and websockets buffers at most
  :data:`RECV_QUEUE` frames per connection before it stops reading the socket.
* **Connections.** A server accepts connections itself (not through asyncio's
  ``create_server``): at most ``max_connections`` TCP connections per port, counted from
  ``accept()`` to close, whatever their stage; above that a new connection is closed
  right after ``accept()`` (with an HTTP 503 if the peer has not sent its request yet).
  When ``accept()`` fails for lack of file descriptors or memory (``EMFILE``,
  ``ENFILE``, ...), accepting pauses (``accept_pause``) instead of spinning.
* **Handshakes.** A peer has ``handshake_timeout`` seconds for each step of its opening:
  the TLS handshake (if any), the HTTP upgrade, and its subscriptions (the Broker
  handshake's first message); otherwise it is closed.
* **Logs.** Recurring trouble (refused connections, accept errors, silent peers) goes
  through a :class:`LogThrottle`: the first occurrence at once, then at most one line per
  interval with a count. A connection logs the first rejected message of each kind at
  INFO, the rest at DEBUG, and a count when it closes. Peer-supplied strings are quoted
  shortened (:func:`mgmt.core.peertext.peer_text`).

The numbers here are defaults of constructor parameters (``None`` disables a timeout),
except :data:`RECV_QUEUE` and :data:`FRAME_COST`, which are properties of the design.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

#: Default cap on one message (frame) size, bytes.
DEFAULT_MAX_SIZE = 16 * 1024 * 1024
#: Default cap on what may wait to be sent to one peer, bytes, before we drop the peer.
DEFAULT_MAX_SEND_BUFFER = 16 * 1024 * 1024
#: Default cap on open TCP connections per listening port.
DEFAULT_MAX_CONNECTIONS = 256
#: Default seconds for the HTTP upgrade (with TLS), and again for the subscriptions.
DEFAULT_HANDSHAKE_TIMEOUT = 10.0
#: Default seconds websockets waits for the peer's half of the closing handshake.
DEFAULT_CLOSE_TIMEOUT = 2.0
#: Default seconds accepting pauses after accept() failed for lack of descriptors or memory.
DEFAULT_ACCEPT_PAUSE = 0.5
#: Default seconds between two log lines about the same recurring trouble.
DEFAULT_LOG_INTERVAL = 10.0
#: Received frames websockets buffers per connection before it stops reading the socket.
RECV_QUEUE = 4
#: What one queued frame costs beyond its text (the Python objects), counted in the buffer.
FRAME_COST = 64


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

    def __init__(
        self, logger: logging.Logger, level: int, interval: float = DEFAULT_LOG_INTERVAL
    ) -> None:
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
