"""What ``get_version`` reports about a management process (README, "API").

The service gathers the facts that need the OS (pid, start time) once; the pure state
machines turn them into the extension payload.
"""

from __future__ import annotations

import sys
from typing import Any, Literal

from mgmt import __version__
from mgmt.core.frozen import frozen

#: This interpreter's version, e.g. ``3.11.7``.
PYTHON_VERSION = "{}.{}.{}".format(*sys.version_info[:3])


@frozen
class ProcessFacts:
    """One management process: its role and name, pid and start time (seconds since the
    epoch), and the versions of zeek-mgmt and Python it runs."""

    role: Literal["controller", "agent"]
    name: str
    pid: int
    started: float
    zeek_mgmt: str = __version__
    python: str = PYTHON_VERSION

    def version_payload(self, zeek: str | None) -> dict[str, Any]:
        """The ``get_version`` payload (without ``"v"``); ``zeek`` is the version of the
        Zeek this process runs nodes with (``None``: none, or not known)."""
        return {
            "role": self.role,
            "name": self.name,
            "zeek_mgmt": self.zeek_mgmt,
            "python": self.python,
            "pid": self.pid,
            "started": int(self.started),
            "zeek": zeek,
        }
