"""Process figures for ``zeek-mgmt top``: CPU %, RSS, threads, state (psutil).

psutil is imported at the first sample, not with this module: a daemon starts without it
(it was about 4 % of the daemons' start-up imports).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Collection
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psutil


class ProcessSampler:
    """CPU %, RSS, threads and state of processes, as ``top`` shows them.

    CPU % (of one core) is measured since the previous sample of the same process (psutil
    keeps it in its Process object, which this class keeps per pid), or over the
    process's lifetime when it is sampled for the first time, so that no request waits.
    """

    def __init__(self) -> None:
        self._procs: dict[int, psutil.Process] = {}

    def forget_others(self, pids: Collection[int]) -> None:
        """Drop the samples of processes not among ``pids``."""
        for pid in list(self._procs):
            if pid not in pids:
                del self._procs[pid]

    def sample(self, pid: int) -> dict[str, Any]:
        """``{"pid", "cpu", "rss" (bytes), "threads", "proc_state"}``; ``null`` values
        for a process that is gone or unreadable."""
        entry: dict[str, Any] = {
            "pid": pid,
            "cpu": None,
            "rss": None,
            "threads": None,
            "proc_state": None,
        }
        import psutil

        with contextlib.suppress(psutil.Error):
            proc = self._procs.get(pid)
            if proc is None or not proc.is_running():
                proc = psutil.Process(pid)
                times = proc.cpu_times()
                proc.cpu_percent(None)
                age = max(time.time() - proc.create_time(), 0.001)
                cpu = 100.0 * (times.user + times.system) / age
                self._procs[pid] = proc
            else:
                cpu = proc.cpu_percent(None)
            with proc.oneshot():
                entry["cpu"] = round(cpu, 1)
                entry["rss"] = proc.memory_info().rss
                entry["threads"] = proc.num_threads()
                entry["proc_state"] = proc.status()
        return entry
