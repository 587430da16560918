"""Logging set-up shared by the daemons (stderr; journald adds timestamps of its own)."""

from __future__ import annotations

import faulthandler
import logging
import signal


def setup_logging(level: str) -> None:
    """Log to stderr with timestamps (journald adds its own when run under systemd)."""
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # websockets logs every server start/stop at INFO; our own lines say what matters.
    logging.getLogger("websockets").setLevel(max(logging.WARNING, logging.root.level))


def enable_stack_dumps() -> None:
    """``kill -USR1 <pid>`` prints every thread's stack to stderr (for a daemon that seems
    stuck), and fatal errors print one too."""
    faulthandler.enable()
    faulthandler.register(signal.SIGUSR1, all_threads=True)
