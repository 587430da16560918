"""Reconnect timing: a pure back-off generator and a failure classifier.

Kept free of I/O so the policy can be tested without sockets (STYLE guideline 9).
"""

from __future__ import annotations

from collections.abc import Iterator

from mgmt.exceptions import HandshakeError, SessionClosedError


def backoff(initial: float = 0.1, factor: float = 2.0, maximum: float = 30.0) -> Iterator[float]:
    """Yield reconnect delays: ``initial``, growing by ``factor``, capped at ``maximum``.

    The first delay is 0 so the first attempt happens at once. The generator never ends:
    daemons reconnect forever, as Zeek's Broker peerings do.
    """
    yield 0.0
    delay = initial
    while True:
        yield min(delay, maximum)
        delay = min(delay * factor, maximum)


def classify_exception(exc: BaseException) -> BaseException | None:
    """Decide whether a connection failure is worth retrying.

    Returns:
        ``None`` when the failure is transient (refused, reset, timed out, the peer closed,
        a bad handshake from a peer that may be restarting); otherwise the exception to
        raise, which ends the reconnect loop.
    """
    # Imported here so the module stays importable without websockets for pure tests.
    from websockets.exceptions import InvalidHandshake, WebSocketException

    if isinstance(exc, OSError | TimeoutError | SessionClosedError | HandshakeError):
        return None
    if isinstance(exc, InvalidHandshake | WebSocketException):
        return None
    return exc
