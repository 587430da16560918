"""One daemon per role and state directory.

A second agent (or controller) on a state directory that a live one uses would adopt the
first one's nodes, rewrite its node table, fail to bind its port and then stop the nodes
it adopted. So each daemon first takes an exclusive ``flock(2)`` on
``<state>/zeek-mgmt-<role>.lock`` and holds it until it exits; the file holds the
holder's pid for the error message of the one that does not get the lock. The lock is per
role because under ``zeek-mgmt run`` the controller and the agent share one state
directory.

The kernel releases the lock when the holder exits, however it exits (``kill -9``
included), so there is no stale lock to clean up. The descriptor is close-on-exec, so node
processes never inherit it. The file is never removed: removing it while another process
opens it would let two processes lock two different files.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from pathlib import Path

from mgmt.exceptions import InstanceLocked, StateStoreError

log = logging.getLogger("mgmt")


def lock_path(state_dir: Path, role: str) -> Path:
    """The lock file of ``role`` in ``state_dir``."""
    return state_dir / f"zeek-mgmt-{role}.lock"


class InstanceLock:
    """The exclusive lock of one role on a state directory.

    Args:
        state_dir: the daemon's state directory (created if missing).
        role: ``controller`` or ``agent``.
    """

    def __init__(self, state_dir: Path, role: str) -> None:
        self.state_dir = state_dir
        self.role = role
        self.path = lock_path(state_dir, role)
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """Whether this object holds the lock."""
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock, or fail at once.

        Raises:
            InstanceLocked: another process holds it (the message names its pid).
            StateStoreError: the directory or lock file cannot be created or locked.
        """
        if self._fd is not None:
            return
        fd = self._open()
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            raise InstanceLocked(self.role, holder, str(self.state_dir)) from None
        except OSError as exc:
            os.close(fd)
            raise StateStoreError(str(self.path), f"cannot lock: {exc.strerror or exc}") from exc
        self._fd = fd
        try:
            wfd = os.open(self.path, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW)
            try:
                os.write(wfd, f"{os.getpid()}\n".encode())
            finally:
                os.close(wfd)
        except OSError as exc:
            # Read-only or full: the lock itself holds; only the message of a second
            # instance will lack our pid.
            log.warning("cannot record our pid in %s: %s", self.path, exc.strerror or exc)

    def _open(self) -> int:
        # The descriptor we keep is read-only (flock does not need more): a file open
        # for writing would stop an operator from remounting the file system read-only.
        flags = os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            return os.open(self.path, flags | os.O_CREAT, 0o644)
        except OSError as exc:
            # A read-only state directory: an existing lock file can still be locked.
            with contextlib.suppress(OSError):
                return os.open(self.path, flags)
            raise StateStoreError(
                str(self.path), f"cannot create the lock file: {exc.strerror or exc}"
            ) from exc

    def release(self) -> None:
        """Give the lock up (idempotent)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
