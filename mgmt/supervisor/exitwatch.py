"""Waking the supervisor driver when a node process exits, without polling.

Where the backend offers a pidfd per process (``exit_fd``, Linux >= 5.3), the driver's
event loop watches it, so a cluster of RUNNING nodes costs no CPU at all. Without one
(or without a running loop) the driver's poll interval covers the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable

from mgmt.supervisor.backend import Backend, Handle
from mgmt.typing import NodeName

logger = logging.getLogger("mgmt.supervisor")


class ExitWatcher:
    """Watches node processes' pidfds and calls ``wakeup`` when one becomes readable.

    Args:
        backend: the OS seam; its optional ``exit_fd(handle)`` gives the pidfd.
        wakeup: called (in the event loop) when a watched process exits.
    """

    def __init__(self, backend: Backend, wakeup: Callable[[], None]) -> None:
        self._exit_fd: Callable[[Handle], int | None] | None = getattr(backend, "exit_fd", None)
        self._wakeup = wakeup
        #: pidfds being watched, by node name.
        self._fds: dict[NodeName, int] = {}

    def __contains__(self, name: object) -> bool:
        """Whether the node's process is watched (else it has to be polled)."""
        return name in self._fds

    def watch(self, name: NodeName, handle: Handle) -> None:
        """Watch the node's process (replacing a previous watch of the node)."""
        if self._exit_fd is None:
            return
        self.unwatch(name)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop (a synchronous caller): the poll interval covers it
        fd = self._exit_fd(handle)
        if fd is None:
            return
        try:
            loop.add_reader(fd, self._wakeup)
        except (OSError, NotImplementedError, ValueError) as exc:
            logger.debug("[%s] cannot watch pidfd: %s", name, exc)
            os.close(fd)
            return
        self._fds[name] = fd

    def unwatch(self, name: NodeName) -> None:
        """Stop watching the node's process (if it was)."""
        fd = self._fds.pop(name, None)
        if fd is None:
            return
        with contextlib.suppress(RuntimeError, ValueError, OSError):
            asyncio.get_running_loop().remove_reader(fd)
        os.close(fd)
