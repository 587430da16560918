"""A fake monotonic clock for the pure state machines (``now`` is passed in, never read)."""

from __future__ import annotations


class FakeClock:
    """A monotonic clock that moves only when told to."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def advance(self, seconds: float) -> float:
        """Move on by ``seconds``; the new time."""
        self.now += seconds
        return self.now
