"""The ``Log`` action the pure state machines emit for the operator (no I/O here)."""

from __future__ import annotations

import enum

from mgmt.core.frozen import frozen


class Level(enum.IntEnum):
    """Log levels of :class:`Log` actions (the ``logging`` module's numbers)."""

    DEBUG = 10
    INFO = 20
    WARNING = 30
    ERROR = 40


@frozen
class Log:
    """A log line for the operator."""

    level: Level
    message: str
