"""Driving a pure state machine from asyncio: the part the daemons share.

A pure machine (``ControllerState``, ``AgentState``) takes inputs with a ``now``
timestamp, queues actions, and names its next deadline. :class:`MachineDriver` feeds it
(:meth:`~MachineDriver._step`), executes its actions in order, and runs the one timer
task that calls ``tick()`` at each deadline until shutdown is requested.

Shutdown is requested with :meth:`~MachineDriver.request_shutdown`: by SIGTERM/SIGINT,
whose handlers :func:`mgmt.daemon.sdnotify.serve_notifying` installs (the daemons' one
signal path), or by a test.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any, Generic, Protocol, TypeVar

log = logging.getLogger("mgmt")

#: How long shutdown waits for cancelled tasks before leaving them behind.
SHUTDOWN_GRACE = 10.0


class Machine(Protocol):
    """What a driven state machine offers."""

    def actions(self) -> list[Any]:
        """Drain the queued actions."""
        ...

    def next_deadline(self) -> float | None:
        """When :meth:`tick` is due, if ever."""
        ...

    def tick(self, now: float) -> None:
        """Handle deadlines that passed."""
        ...


M = TypeVar("M", bound=Machine)


class MachineDriver(Generic[M]):
    """Base of the daemons: one step at a time, one timer, one shutdown flag.

    Subclasses set :attr:`state` (the machine, once start-up has built it) and provide
    :meth:`_execute`.

    Args:
        clock: monotonic clock (injectable for tests).
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._wakeup = asyncio.Event()
        self._shutdown = asyncio.Event()
        #: The state machine (``None`` until start-up built it).
        self.state: M | None = None

    @property
    def _state(self) -> M:
        assert self.state is not None, "the state machine is not built yet"
        return self.state

    def _execute(self, action: Any) -> None:
        raise NotImplementedError

    def request_shutdown(self) -> None:
        """Ask the daemon to stop (idempotent; safe from signal handlers)."""
        self._shutdown.set()
        self._wakeup.set()

    def _step(self, fn: Callable[[float], object]) -> None:
        """Give the machine one input (``fn(now)``), then execute its actions in order.

        Executing an action may give the machine another input (the controller reports
        how a ``Persist`` went); the actions that produces are executed next.
        """
        fn(self._clock())
        machine = self._state
        while actions := machine.actions():
            for action in actions:
                self._execute(action)
        self._wakeup.set()  # the next deadline may have changed

    async def _timer_loop(self) -> None:
        """Call ``tick()`` at each deadline until shutdown is requested."""
        machine = self._state
        while not self._shutdown.is_set():
            deadline = machine.next_deadline()
            timeout = None if deadline is None else max(0.0, deadline - self._clock())
            self._wakeup.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wakeup.wait()
            if self._shutdown.is_set():
                return
            self._step(machine.tick)


async def cancel_and_wait(
    tasks: Iterable[asyncio.Task[Any]], grace: float = SHUTDOWN_GRACE
) -> None:
    """Cancel ``tasks`` and wait for them, at most ``grace`` seconds (shutdown must end even
    if a task mishandles its cancellation; stragglers are logged, not awaited)."""
    pending = [t for t in tasks if not t.done()]
    for task in pending:
        task.cancel()
    if not pending:
        return
    _, left = await asyncio.wait(pending, timeout=grace)
    for task in left:
        log.warning("task %s did not stop within %.0f s of shutdown", task.get_name(), grace)
