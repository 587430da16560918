"""The daemons' one signal path: SIGTERM through serve_notifying, as in production."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest

from mgmt.controller.service import ControllerService
from mgmt.daemon.sdnotify import Notifier, serve_notifying
from tests.support.settings import controller_settings
from tests.support.waiting import TIMEOUT


class RecordingNotifier(Notifier):
    """A Notifier without a socket that records what it would send."""

    def __init__(self) -> None:
        super().__init__(env={})
        self.sent: list[tuple[str, ...]] = []

    def notify(self, *assignments: str) -> bool:
        self.sent.append(assignments)
        return False


@pytest.mark.asyncio
async def test_sigterm_stops_a_daemon_and_its_handler_is_removed(tmp_path: Path) -> None:
    """SIGTERM to a daemon run as main() runs it (serve_notifying) says STOPPING and
    ends run() cleanly; afterwards the loop no longer handles SIGTERM."""
    service = ControllerService(
        controller_settings(
            tmp_path, name="ctl", listen_address="127.0.0.1", listen_address_websocket="127.0.0.1"
        ),
        ephemeral_ports=True,
    )
    notifier = RecordingNotifier()
    task = asyncio.get_running_loop().create_task(serve_notifying(service, notifier, lambda: "up"))
    await service.started.wait()
    os.kill(os.getpid(), signal.SIGTERM)
    async with asyncio.timeout(TIMEOUT):
        await task
    assert ("STOPPING=1", "STATUS=stopping") in notifier.sent
    loop = asyncio.get_running_loop()
    assert loop.remove_signal_handler(signal.SIGTERM) is False  # nothing left installed
