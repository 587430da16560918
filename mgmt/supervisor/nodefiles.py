"""The files in a node's directory: what the node writes, and how the supervisor reads it.

A node's ``stdout`` and ``stderr`` are its fds 1 and 2 (:mod:`mgmt.supervisor.backend`
opens them); ``.status`` is the file Zeek's ``-U .status`` keeps up to date (behaviour.md
§8.5), whose first line says ``RUNNING`` once the node is up.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

#: The files a node writes in its directory.
STDOUT_FILE = "stdout"
STDERR_FILE = "stderr"
STATUS_FILE = ".status"

#: NodeOutputs keeps this many non-empty lines per stream (behaviour.md §5.8, §6.5).
OUTPUT_LINES = 100


def read_status(node_dir: str | os.PathLike[str]) -> str:
    """The first line of the node's ``.status`` file, or ``""`` if it cannot be read."""
    try:
        with open(Path(node_dir) / STATUS_FILE, "rb") as f:
            head = f.read(256)
    except OSError:
        return ""
    return head.split(b"\n", 1)[0].decode("utf-8", "replace").strip()


def tail_lines(path: str | os.PathLike[str], limit: int = OUTPUT_LINES) -> list[str]:
    """The last ``limit`` non-empty lines of a file, read backwards from its end.

    Only as much of the file is read as the lines need, so a huge ``stdout`` costs a
    few blocks. A missing or unreadable file gives ``[]``. Invalid UTF-8 is replaced.
    """
    try:
        f = open(path, "rb")
    except OSError:
        return []
    with f:
        pos = f.seek(0, os.SEEK_END)
        data = b""
        block = 8192
        while pos > 0:
            size = min(block, pos)
            pos -= size
            f.seek(pos)
            data = f.read(size) + data
            block *= 2
            # The first piece may be a partial line unless we reached the start.
            lines = data.split(b"\n")[1:] if pos > 0 else data.split(b"\n")
            if sum(1 for line in lines if line) >= limit:
                break
        lines = data.split(b"\n")
        if pos > 0:
            lines = lines[1:]
        kept = [line for line in lines if line][-limit:] if limit > 0 else []
    return [line.decode("utf-8", "replace") for line in kept]


class Tail(NamedTuple):
    """The end of a file, and the file's full size."""

    data: bytes
    size: int


def read_tail(path: str | os.PathLike[str], limit: int) -> Tail:
    """The last ``limit`` bytes of a file and its size (``(b"", 0)`` if it cannot be
    read). Only the tail is read, whatever the file's size."""
    try:
        f = open(path, "rb")
    except OSError:
        return Tail(b"", 0)
    with f:
        try:
            size = f.seek(0, os.SEEK_END)
            f.seek(max(0, size - max(0, limit)))
            return Tail(f.read(max(0, limit)), size)
        except OSError:
            return Tail(b"", 0)


def read_outputs(node_dir: str | os.PathLike[str]) -> tuple[str, str]:
    """NodeOutputs of a node: the last 100 non-empty lines of ``stdout`` and ``stderr``.

    Returns:
        ``(stdout, stderr)``, each the lines joined by ``"\\n"`` (``""`` when none).
    """
    node_dir = Path(node_dir)
    return (
        "\n".join(tail_lines(node_dir / STDOUT_FILE)),
        "\n".join(tail_lines(node_dir / STDERR_FILE)),
    )
