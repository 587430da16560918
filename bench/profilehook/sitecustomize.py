"""Bench-only profiling hook for a daemon started by a benchmark (never on a real run).

A benchmark puts this directory first on ``PYTHONPATH`` and sets ``BENCH_PROFILE_OUT``;
the daemon then profiles its main thread with :mod:`cProfile` between ``SIGRTMIN+1``
(start; ``SIGUSR1`` is taken, the daemons' traceback dump) and ``SIGRTMIN+2`` (stop, and
write the statistics to ``BENCH_PROFILE_OUT``), so that only the requests the benchmark
wants looked at are in the profile.
"""

from __future__ import annotations

import cProfile
import os
import signal
from types import FrameType

#: The signals that start and stop profiling (bench/controller.py sends them).
PROFILE_START = signal.SIGRTMIN + 1
PROFILE_STOP = signal.SIGRTMIN + 2

_OUT = os.environ.get("BENCH_PROFILE_OUT")

if _OUT:
    _profiler = cProfile.Profile()

    def _start(signum: int, frame: FrameType | None) -> None:
        _profiler.enable()

    def _stop(signum: int, frame: FrameType | None) -> None:
        _profiler.disable()
        assert _OUT is not None
        _profiler.dump_stats(_OUT)

    signal.signal(PROFILE_START, _start)
    signal.signal(PROFILE_STOP, _stop)
