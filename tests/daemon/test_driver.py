"""The daemons' shared driver: signals request an orderly shutdown and are restored."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest

from mgmt.controller.service import ControllerConfig, ControllerService
from mgmt.controller.state import ControllerOptions
from tests.support.waiting import TIMEOUT


@pytest.mark.asyncio
async def test_sigterm_stops_a_daemon_and_its_handler_is_removed(tmp_path: Path) -> None:
    """With install_signals, SIGTERM ends run() cleanly; afterwards the loop no longer
    handles SIGTERM (the previous disposition is back)."""
    service = ControllerService(
        ControllerConfig(
            "ctl", tmp_path, "127.0.0.1", 0, "127.0.0.1", 0, ControllerOptions(request_timeout=1.0)
        )
    )
    task = asyncio.get_running_loop().create_task(service.run(install_signals=True))
    await service.started.wait()
    os.kill(os.getpid(), signal.SIGTERM)
    async with asyncio.timeout(TIMEOUT):
        await task
    loop = asyncio.get_running_loop()
    assert loop.remove_signal_handler(signal.SIGTERM) is False  # nothing left installed
