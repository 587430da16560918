"""The logging node's ASCII logs and their rotation into the log queue."""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import shutil
import time
from collections.abc import Sequence

ROTATION_DATE_FORMAT = "%Y-%m-%d-%H-%M-%S"


class LogRotator:
    """The logging node's ASCII logs, rotated as the management node script sets up:
    into ``<spool>/log-queue`` as ``<path>__<open>__<close>__[<meta>__].log``, every
    ``interval`` seconds (aligned to multiples of it), at clean shutdown, and, for
    leftovers of a crashed run (``.shadow.<path>.log`` files), at start-up.
    """

    def __init__(
        self, cwd: str, queue: str, interval: float, paths: Sequence[str], suffix: str | None
    ) -> None:
        self.cwd = cwd
        self.queue = queue
        self.interval = interval
        self.paths = tuple(paths)
        self.suffix = suffix
        self.opened: dict[str, float] = {}

    def _file(self, path: str) -> str:
        return os.path.join(self.cwd, f"{path}.log")

    def _shadow(self, path: str) -> str:
        return os.path.join(self.cwd, f".shadow.{path}.log")

    def _target(self, path: str, open_ts: float, close_ts: float) -> str:
        base = "__".join(
            [
                path,
                time.strftime(ROTATION_DATE_FORMAT, time.localtime(open_ts)),
                time.strftime(ROTATION_DATE_FORMAT, time.localtime(close_ts)),
                "",
            ]
        )
        if self.suffix:
            base += f"log_suffix={self.suffix}__"
        return os.path.join(self.queue, base + ".log")

    def _move(self, src: str, dst: str) -> None:
        os.makedirs(self.queue, exist_ok=True)
        try:
            os.replace(src, dst)
        except OSError:
            shutil.move(src, dst)

    def rotate_leftovers(self) -> None:
        """LogAscii leftover rotation: open time = the shadow's ctime, close = mtime."""
        for path in sorted(os.listdir(self.cwd)):
            if not (path.startswith(".shadow.") and path.endswith(".log")):
                continue
            name = path[len(".shadow.") : -len(".log")]
            shadow = os.path.join(self.cwd, path)
            log = self._file(name)
            if os.path.exists(log):
                open_ts = os.stat(shadow).st_ctime
                close_ts = os.stat(log).st_mtime
                self._move(log, self._target(name, open_ts, close_ts))
            os.unlink(shadow)

    def open_all(self, now: float) -> None:
        for path in self.paths:
            with open(self._shadow(path), "w") as f:
                f.write(".log\n\n")
            stamp = time.strftime(ROTATION_DATE_FORMAT, time.localtime(now))
            with open(self._file(path), "w") as f:
                f.write(
                    "#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n"
                    f"#unset_field\t-\n#path\t{path}\n#open\t{stamp}\n"
                    "#fields\tts\tmessage\n#types\ttime\tstring\n"
                )
            self.opened[path] = now
            self.write(path, now, "opened")

    def write(self, path: str, now: float, message: str) -> None:
        with open(self._file(path), "a") as f:
            f.write(f"{now:.6f}\tzeek-double {message}\n")

    def rotate_all(self, now: float) -> list[str]:
        """Close, move into the queue, forget the shadow. Returns the new queue files."""
        out = []
        for path, open_ts in list(self.opened.items()):
            stamp = time.strftime(ROTATION_DATE_FORMAT, time.localtime(now))
            with open(self._file(path), "a") as f:
                f.write(f"#close\t{stamp}\n")
            target = self._target(path, open_ts, now)
            self._move(self._file(path), target)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._shadow(path))
            out.append(target)
        self.opened.clear()
        return out

    async def run(self) -> None:
        """Rotate at every multiple of the interval, then reopen."""
        while True:
            now = time.time()
            boundary = (math.floor(now / self.interval) + 1) * self.interval
            await asyncio.sleep(boundary - now)
            self.rotate_all(boundary)
            self.open_all(boundary)
