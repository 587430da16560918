"""The tests' one time unit, and waiting for what no event reports.

Every time limit a test sets on a wait is a multiple of :data:`MS`, which
``ZEEK_MGMT_TEST_TIME_SCALE`` (a factor, default 1) scales: on a slow or loaded machine,
``ZEEK_MGMT_TEST_TIME_SCALE=3`` gives every wait three times as long, and no test
changes. Settings handed to the code under test (request timeouts, poll intervals) are
behaviour, not waits, and stay as the tests write them.

Waiting is for an event wherever the code offers one (``asyncio.Event``, a response on a
connection, a state snapshot). What only the OS can tell (a file appeared, a process
ended, a port opened) is polled with a deadline: :func:`wait_until` in blocking code,
:func:`wait_until_async` in a coroutine (the event loop keeps running meanwhile).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")

#: Scales every time limit below (a factor; default 1).
SCALE_ENV = "ZEEK_MGMT_TEST_TIME_SCALE"
#: The time unit: one millisecond, scaled by :data:`SCALE_ENV`.
MS = 0.001 * float(os.environ.get(SCALE_ENV, "1"))
#: The upper bound of one wait on something the OS does (a process starts or exits, a
#: port opens, a line is logged).
TIMEOUT = 10_000 * MS
#: How often a poll looks again.
INTERVAL = 20 * MS


class _Poll(Generic[T]):
    """One poll of ``predicate`` with a deadline: :meth:`done` looks once."""

    def __init__(self, predicate: Callable[[], T | None], what: str, timeout: float) -> None:
        self.predicate = predicate
        self.what = what
        self.timeout = timeout
        self.deadline = time.monotonic() + timeout
        self.value: T | None = None

    def done(self) -> bool:
        """Whether the predicate holds now (its value in :attr:`value`).

        Raises:
            AssertionError: the deadline passed (naming ``what`` and the last value).
        """
        self.value = self.predicate()
        if self.value:
            return True
        if time.monotonic() >= self.deadline:
            raise AssertionError(
                f"timed out after {self.timeout:.1f} s waiting for {self.what}: {self.value!r}"
            )
        return False


def wait_until(
    predicate: Callable[[], T | None],
    what: str = "condition",
    *,
    timeout: float = TIMEOUT,
    interval: float = INTERVAL,
) -> T:
    """Poll ``predicate`` until it returns something truthy, and return that.

    Raises:
        AssertionError: ``timeout`` seconds passed (naming ``what`` and the last value).
    """
    poll = _Poll(predicate, what, timeout)
    while not poll.done():
        time.sleep(interval)
    return poll.value  # type: ignore[return-value]


async def wait_until_async(
    predicate: Callable[[], T | None],
    what: str = "condition",
    *,
    timeout: float = TIMEOUT,  # noqa: ASYNC109 - the poll's deadline, as in wait_until
    interval: float = INTERVAL,
) -> T:
    """:func:`wait_until` for coroutines: the event loop runs while it waits."""
    poll = _Poll(predicate, what, timeout)
    while True:
        if poll.done():
            return poll.value  # type: ignore[return-value]
        await asyncio.sleep(interval)
