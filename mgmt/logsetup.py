"""Logging set-up shared by the daemons (stderr; journald adds timestamps of its own)."""

from __future__ import annotations

import logging


def setup_logging(level: str) -> None:
    """Log to stderr with timestamps (journald adds its own when run under systemd)."""
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # websockets logs every server start/stop at INFO; our own lines say what matters.
    logging.getLogger("websockets").setLevel(max(logging.WARNING, logging.root.level))
