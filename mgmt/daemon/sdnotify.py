"""systemd readiness, status and watchdog notifications (``Type=notify`` units).

A pure-Python client of the ``sd_notify(3)`` protocol: one ``AF_UNIX`` datagram per
notification, newline-separated ``KEY=VALUE`` assignments, sent to the socket named by
``$NOTIFY_SOCKET`` (a path, or ``@name`` for the Linux abstract namespace). Without
``$NOTIFY_SOCKET`` (not under systemd) every call is a no-op. A failure to notify is logged
and swallowed: notifications are advice to the service manager and must never take the
daemon down.

What the daemons send (:func:`serve_notifying`):

* ``READY=1`` plus ``STATUS=`` once the service's ``started`` event is set, which both
  daemons set only after their ports accept connections (an agent does not wait for its
  controller);
* ``STATUS=`` again whenever the status line changes (checked every few seconds);
* ``WATCHDOG=1`` every half ``$WATCHDOG_USEC`` when the unit sets ``WatchdogSec=`` (and
  ``$WATCHDOG_PID``, if set, is our pid). The pings come from the event loop itself, so a
  wedged loop stops them and systemd restarts the daemon;
* ``STOPPING=1`` as soon as SIGTERM/SIGINT starts the shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
from collections.abc import Callable, Mapping
from typing import Protocol

log = logging.getLogger("mgmt.daemon.sdnotify")

__all__ = ["Notifier", "NotifyingService", "serve_notifying"]

#: How often the status line is recomputed (seconds); it is sent only when it changed.
STATUS_INTERVAL = 5.0


def _one_line(text: str) -> str:
    # A value ends at the newline; keep a status line a single assignment.
    return " ".join(text.split())


class Notifier:
    """Send ``sd_notify`` messages to ``$NOTIFY_SOCKET``; a no-op when it is not set.

    Args:
        env: the environment to read ``NOTIFY_SOCKET``, ``WATCHDOG_USEC`` and
            ``WATCHDOG_PID`` from (default ``os.environ``).
        pid: our pid, compared to ``$WATCHDOG_PID`` (default ``os.getpid()``).

    No method raises: errors are logged (once per kind at WARNING, then at DEBUG).
    """

    def __init__(self, env: Mapping[str, str] | None = None, pid: int | None = None) -> None:
        env = os.environ if env is None else env
        self.address: str | bytes | None = None
        raw = env.get("NOTIFY_SOCKET", "")
        if raw.startswith("@"):
            # Abstract namespace: a leading NUL byte instead of '@' (sd_notify(3)).
            self.address = b"\0" + raw[1:].encode()
        elif raw.startswith("/"):
            self.address = raw
        elif raw:
            log.warning("NOTIFY_SOCKET=%r is not a unix socket path; not notifying systemd", raw)
        #: Seconds between watchdog pings (half of ``$WATCHDOG_USEC``), or ``None``.
        self.watchdog_interval: float | None = None
        usec, wpid = env.get("WATCHDOG_USEC", ""), env.get("WATCHDOG_PID", "")
        mypid = os.getpid() if pid is None else pid
        if usec and self.address is not None:
            try:
                interval = int(usec) / 2e6
                for_us = not wpid or int(wpid) == mypid
            except ValueError:
                log.warning("ignoring invalid WATCHDOG_USEC=%r / WATCHDOG_PID=%r", usec, wpid)
            else:
                if interval > 0 and for_us:
                    self.watchdog_interval = interval
        self._sock: socket.socket | None = None
        self._warned: set[str] = set()

    @property
    def enabled(self) -> bool:
        """Whether a notification socket is configured."""
        return self.address is not None

    def notify(self, *assignments: str) -> bool:
        """Send one datagram with the given ``KEY=VALUE`` lines.

        Returns:
            Whether it was sent (always ``False`` when not enabled). Never raises.
        """
        if self.address is None or not assignments:
            return False
        data = ("\n".join(assignments) + "\n").encode("utf-8", "replace")
        try:
            if self._sock is None:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                # Never block the event loop on a full receive queue: drop instead.
                sock.setblocking(False)
                self._sock = sock
            self._sock.sendto(data, self.address)
        except OSError as exc:
            kind = type(exc).__name__
            level = logging.DEBUG if kind in self._warned else logging.WARNING
            self._warned.add(kind)
            log.log(level, "cannot notify systemd at %s: %s", self._printable(), exc)
            return False
        log.debug("notified systemd: %s", ", ".join(assignments))
        return True

    def _printable(self) -> str:
        if isinstance(self.address, bytes):
            return "@" + self.address[1:].decode("utf-8", "replace")
        return str(self.address)

    def ready(self, status: str | None = None) -> bool:
        """``READY=1`` (and ``STATUS=``): start-up is complete."""
        return self.notify("READY=1", *self._status(status))

    def status(self, status: str) -> bool:
        """``STATUS=``: a one-line description shown by ``systemctl status``."""
        return self.notify(*self._status(status))

    def watchdog(self) -> bool:
        """``WATCHDOG=1``: keep-alive ping for ``WatchdogSec=``."""
        return self.notify("WATCHDOG=1")

    def stopping(self, status: str | None = None) -> bool:
        """``STOPPING=1`` (and ``STATUS=``): shutdown has begun."""
        return self.notify("STOPPING=1", *self._status(status))

    @staticmethod
    def _status(status: str | None) -> tuple[str, ...]:
        return () if status is None else (f"STATUS={_one_line(status)}",)

    def close(self) -> None:
        """Close the socket (idempotent; a later notification reopens it)."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None


class NotifyingService(Protocol):
    """What :func:`serve_notifying` needs of a daemon (controller and agent services)."""

    @property
    def started(self) -> asyncio.Event:
        """Set once the daemon's ports accept connections."""
        ...

    def request_shutdown(self) -> None:
        """Start the daemon's shutdown (idempotent)."""
        ...

    async def run(self) -> None:
        """Serve until :meth:`request_shutdown`."""
        ...


async def serve_notifying(
    service: NotifyingService,
    notifier: Notifier,
    status: Callable[[], str],
    *,
    install_signals: bool = True,
    status_interval: float = STATUS_INTERVAL,
) -> None:
    """Run ``service`` and keep systemd informed (see the module docstring).

    This is the daemons' one signal path: SIGTERM and SIGINT are handled here rather than
    by the service, so that ``STOPPING=1`` goes out the moment one arrives, before the
    (possibly long) shutdown that :meth:`NotifyingService.request_shutdown` starts.

    Args:
        service: the daemon; its ``run`` is awaited.
        notifier: where notifications go (a disabled one makes this a plain ``run``).
        status: returns the current one-line status; called from the event loop.
        install_signals: handle SIGTERM/SIGINT (restored on return).
        status_interval: seconds between status checks.

    Raises:
        Whatever ``service.run`` raises (start-up errors: no ``READY=1`` is sent then).

    Cancellation: cancels the service's ``run`` task and waits for it to finish.
    """
    loop = asyncio.get_running_loop()
    stopping = False

    def begin_shutdown() -> None:
        nonlocal stopping
        if not stopping:
            stopping = True
            notifier.stopping("stopping")
        service.request_shutdown()

    installed: list[signal.Signals] = []
    if install_signals:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, begin_shutdown)
            installed.append(sig)
    run_task = loop.create_task(service.run(), name="service")
    helpers: list[asyncio.Task[None]] = []
    try:
        started = loop.create_task(service.started.wait())
        try:
            await asyncio.wait({run_task, started}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            started.cancel()
        if service.started.is_set() and not run_task.done():
            last = _one_line(_safe_status(status))
            notifier.ready(last)
            if notifier.enabled:
                helpers.append(
                    loop.create_task(_status_loop(notifier, status, last, status_interval))
                )
            if notifier.watchdog_interval is not None:
                helpers.append(
                    loop.create_task(_watchdog_loop(notifier, notifier.watchdog_interval))
                )
        await asyncio.shield(run_task)
    except asyncio.CancelledError:
        service.request_shutdown()
        with contextlib.suppress(BaseException):
            await run_task
        raise
    finally:
        for task in helpers:
            task.cancel()
        for task in helpers:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for sig in installed:
            loop.remove_signal_handler(sig)
        if not stopping:
            notifier.stopping()
        notifier.close()


def _safe_status(status: Callable[[], str]) -> str:
    try:
        return status()
    except Exception:  # a status bug must not stop the daemon
        log.exception("computing the status line failed")
        return "running"


async def _status_loop(
    notifier: Notifier, status: Callable[[], str], last: str, interval: float
) -> None:
    while True:
        await asyncio.sleep(interval)
        line = _one_line(_safe_status(status))
        if line != last:
            notifier.status(line)
            last = line


async def _watchdog_loop(notifier: Notifier, interval: float) -> None:
    while True:
        notifier.watchdog()
        await asyncio.sleep(interval)
