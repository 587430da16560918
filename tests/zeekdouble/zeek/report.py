"""Zeek's diagnostics: the ``-U`` status file, the reporter's ``error``/``fatal error``
lines, and the exits they lead to."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, NoReturn

if TYPE_CHECKING:
    from .knobs import Recorder


class ZeekExit(Exception):
    """Leave the program with ``code`` (messages have already been printed)."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


class StatusFile:
    """Zeek's ``-U`` process status file (``util::detail::set_processing_status``)."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self.last: str | None = None

    def set(self, status: str, reason: str) -> None:
        """Create/truncate the file and write ``<status> [<reason>]``."""
        self.last = f"{status} [{reason}]"
        if self.path is None:
            return
        data = f"{status} [{reason}]\n".encode()
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o777)
        except OSError as exc:
            to_stderr(f"Failed to open process status file '{self.path}': {exc.errno} [{status}]")
            return
        try:
            os.write(fd, data)
        finally:
            os.close(fd)


def to_stderr(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def to_stdout(line: str) -> None:
    # No flush: like C's stdout on a file, fully buffered, unless the management node
    # script made it line-buffered (ZeekDouble._main in process.py).
    sys.stdout.write(line + "\n")


@dataclass(frozen=True, slots=True)
class Location:
    """A script location as Zeek's reporter prints it."""

    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}, line {self.line}"


class Reporter:
    """Zeek's reporter: ``error``/``fatal error`` lines on stderr, error count."""

    def __init__(self, status: StatusFile, recorder: Recorder) -> None:
        self.status = status
        self.recorder = recorder
        self.errors = 0

    def error(self, msg: str, loc: Location | None = None) -> None:
        self.errors += 1
        to_stderr(f"error in {loc}: {msg}" if loc else f"error: {msg}")

    def fatal(self, msg: str, loc: Location | None = None) -> NoReturn:
        """``Reporter::FatalError``: print, ``TERMINATED [fatal_error]``, ``_exit(1)``."""
        to_stderr(f"fatal error in {loc}: {msg}" if loc else f"fatal error: {msg}")
        self.status.set("TERMINATED", "fatal_error")
        sys.stdout.flush()
        self.recorder.finish(1, "fatal_error")
        os._exit(1)

    def info(self, msg: str) -> None:
        to_stderr(msg)

    def unsupported(self, what: str) -> NoReturn:
        """Valid for Zeek, but beyond this double: say so plainly and exit 1."""
        to_stderr(f"zeek-double: unsupported: {what}")
        self.recorder.finish(1, "unsupported")
        raise ZeekExit(1)
