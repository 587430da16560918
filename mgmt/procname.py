"""Process identity helpers for the daemons.

* Kernel process names, so ``ps c``/``pgrep`` see Zeek's tree (``zeek``,
  ``zeek.<controller>``, ``zeek.<agent>``, ``zeek.<node>``). Our own daemons rename
  themselves with ``prctl(PR_SET_NAME)``; zeek nodes get their name from the per-node
  symlink they are executed through (see ``mgmt.supervisor.backend``).
* Parent death: under ``zeek-mgmt run`` the controller and agent ask the kernel for a
  SIGTERM when the run supervisor dies (even by ``kill -9``), as Zeek's stem ends when its
  supervisor disappears, so no daemon is left orphaned.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import signal

log = logging.getLogger("mgmt")

_PR_SET_PDEATHSIG = 1
_PR_SET_NAME = 15
#: Set by ``zeek-mgmt run`` in its children's environment: its own pid.
ENV_RUN_PARENT = "ZEEK_MGMT_RUN_PARENT"
#: The kernel keeps 15 bytes of a process name (plus the NUL).
COMM_MAX = 15


def set_process_name(name: str) -> bool:
    """Set the calling process's kernel name (``/proc/self/comm``); False if unsupported."""
    ok = _prctl(_PR_SET_NAME, name.encode()[:COMM_MAX])
    if not ok:
        log.debug("cannot set the process name to %s", name)
    return ok


def _prctl(option: int, arg: int | bytes) -> bool:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return bool(libc.prctl(option, arg, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def follow_run_parent() -> bool:
    """Under ``zeek-mgmt run``: get SIGTERM when the run supervisor dies.

    Returns:
        True if the supervisor is already gone (the caller should exit at once).
    """
    parent = os.environ.get(ENV_RUN_PARENT, "")
    if not parent.isdigit():
        return False
    if not _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM):
        log.debug("cannot request a parent-death signal")
    # The parent may have died before the request took effect.
    return os.getppid() != int(parent)
