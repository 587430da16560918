"""A small tmpfs for fault tests: fill it up, make it read-only, give it back.

Mounting needs root (CI runs the tests as root; locally, e.g. ``sudo`` or
``unshare -rm``); :func:`mounted_tmpfs` skips the test with the reason otherwise.
The mount lives under the test's ``tmp_path`` and is always unmounted on the way out
(lazily if a process still holds a file on it).
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


class Tmpfs:
    """A mounted tmpfs at :attr:`path`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._filler = path / "filler"

    def _mount(self, *args: str) -> None:
        proc = subprocess.run(["mount", *args], capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"mount {' '.join(args)} failed: {proc.stderr.strip()}")

    def fill(self) -> None:
        """Use up every free block (until the kernel says ENOSPC even for one byte)."""
        chunk = b"\0" * 65536
        fd = os.open(self._filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            for size in (65536, 4096, 1):
                try:
                    while True:
                        os.write(fd, chunk[:size])
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
        finally:
            os.close(fd)
        # Prove it: not even a new one-byte file fits.
        with pytest.raises(OSError, match="No space left"):
            (self.path / ".probe").write_bytes(b"x")

    def free(self) -> None:
        """Give the space :meth:`fill` took back."""
        self._filler.unlink(missing_ok=True)
        with contextlib.suppress(FileNotFoundError):
            (self.path / ".probe").unlink()

    def read_only(self) -> None:
        """Remount read-only (fails while a process has a file open for writing)."""
        self._mount("-o", "remount,ro", str(self.path))

    def writable(self) -> None:
        """Remount read-write."""
        self._mount("-o", "remount,rw", str(self.path))


@contextlib.contextmanager
def mounted_tmpfs(where: Path, size: str = "2m") -> Iterator[Tmpfs]:
    """Mount a tmpfs of ``size`` at ``where`` (created) for the block; skip if not root."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (e.g. run the tests under unshare -rm)")
    where.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "zeek-mgmt-test", str(where)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {proc.stderr.strip()}")
    try:
        yield Tmpfs(where)
    finally:
        if subprocess.run(["umount", str(where)], capture_output=True, check=False).returncode:
            subprocess.run(["umount", "-l", str(where)], capture_output=True, check=False)
