"""Kernel process names, so ``ps c``/``pgrep`` see Zeek's tree (``zeek``,
``zeek.<controller>``, ``zeek.<agent>``, ``zeek.<node>``).

Our own daemons rename themselves with ``prctl(PR_SET_NAME)``; zeek nodes get their name
from the per-node symlink they are executed through (see ``mgmt.supervisor.backend``).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger("mgmt")

_PR_SET_NAME = 15
#: The kernel keeps 15 bytes of a process name (plus the NUL).
COMM_MAX = 15


def set_process_name(name: str) -> bool:
    """Set the calling process's kernel name (``/proc/self/comm``); False if unsupported."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        ok = bool(libc.prctl(_PR_SET_NAME, name.encode()[:COMM_MAX], 0, 0, 0) == 0)
    except (OSError, AttributeError):
        ok = False
    if not ok:
        log.debug("cannot set the process name to %s", name)
    return ok
