"""Programs tests write (hooks, fake zeek binaries, node doubles) and run."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def write_executable(path: Path, text: str) -> Path:
    """Write the script ``text`` (its ``#!`` line included) to ``path`` with mode 0755;
    returns ``path``."""
    path.write_text(text)
    path.chmod(0o755)
    return path


@contextlib.contextmanager
def killed_at_exit(proc: subprocess.Popen[Any]) -> Iterator[subprocess.Popen[Any]]:
    """``proc`` for the block; at its end, SIGKILLed if it still runs, and reaped."""
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
