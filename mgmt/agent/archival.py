"""The agent's log archival (behaviour §5.13): the archiver, every interval and at exit.

Every ``archive_interval`` the agent runs ``<archive_cmd> -1 <spool>/log-queue
<archive_dir>`` through ``/bin/sh -c`` (as in Zeek, ``archive_cmd`` is a shell command line
that may carry its own arguments), through the OS seam's one-shot commands
(:meth:`mgmt.supervisor.backend.CommandRunner.run_command`): in its own process group,
without blocking the event loop, killed with its children at the time limit. The outcome
is logged and the next interval tries again whatever happened. Like Zeek, the first run
is one interval after start-up, and the next one interval after the previous one ended,
so runs never overlap. Once more at shutdown, after the nodes stopped.

An empty ``archive_cmd`` means the built-in archiver, ``<python> -m mgmt archive``.
Killing an archiver is safe: archivers compress to a temporary file and rename, so an
interrupted run leaves its source in the queue for the next one.
"""

from __future__ import annotations

import asyncio
import logging
import shlex
import sys

from mgmt.settings.model import AgentSettings
from mgmt.supervisor.backend import CommandRunner

log = logging.getLogger("mgmt.agent")

#: Seconds an archiver run may take before it is killed.
ARCHIVE_TIMEOUT = 3600.0

#: Longest the archival run at agent shutdown may take (seconds): with the default
#: ``stop_grace`` (26 s) a stop stays within ``zeek-mgmt run``'s 60 s and the systemd
#: unit's ``TimeoutStopSec`` (90 s).
FINAL_ARCHIVE_TIMEOUT = 30.0

#: How much of an archiver's output goes into the log (the end is the interesting part).
OUTPUT_MAX = 4000


class Archival:
    """Runs the archiver for the agent.

    Args:
        settings: the agent's settings (``archive_*``, ``spool_dir``).
        runner: the OS seam that runs the command.
        timeout: seconds one run may take before it is killed.
    """

    def __init__(
        self, settings: AgentSettings, runner: CommandRunner, timeout: float = ARCHIVE_TIMEOUT
    ) -> None:
        self.settings = settings
        self.runner = runner
        self.timeout = timeout
        #: Runs since start-up, and those that failed (metrics).
        self.runs = 0
        self.failures = 0

    @property
    def enabled(self) -> bool:
        """Whether the agent archives logs at all."""
        return self.settings.archive_logs

    def archiver(self) -> str:
        """The archiver part of the command: ``archive_cmd``, else the built-in one."""
        return self.settings.archive_cmd or f"{shlex.quote(sys.executable)} -m mgmt archive"

    def command(self) -> str:
        """The shell command line of one run: the archiver, ``-1`` and the queue and
        archive directories, quoted."""
        queue = shlex.quote(str(self.settings.spool_dir / "log-queue"))
        return f"{self.archiver()} -1 {queue} {shlex.quote(str(self.settings.archive_dir))}"

    async def run_once(self, limit: float | None = None) -> int | None:
        """Run the archive command once, at most ``limit`` seconds (default ``timeout``).

        Returns:
            Its exit status, or ``None`` if nothing ran (no queue directory), it could not
            start, or it was killed at the limit.

        Cancellation: kills the archiver, then re-raises.
        """
        if not (self.settings.spool_dir / "log-queue").is_dir():
            return None
        command = self.command()
        log.info("triggering log archival via '%s'", command)
        limit = self.timeout if limit is None else limit
        result = await self.runner.run_command(
            ["/bin/sh", "-c", command], time_limit=limit, output_limit=OUTPUT_MAX
        )
        output = f": {result.output}" if result.output else ""
        self.runs += 1
        self.failures += result.status != 0
        if result.timed_out:
            log.error("log archival took longer than %.0f s; killed it", limit)
        elif result.status is None:
            log.error("log archival could not start%s", output)
        elif result.status == 0:
            log.info("log archival finished%s", output)
        else:
            log.error("log archival failed with status %s%s", result.status, output)
        return result.status

    async def loop(self) -> None:
        """Run the archiver every ``archive_interval`` seconds, forever (cancel to stop)."""
        while True:
            await asyncio.sleep(self.settings.archive_interval)
            try:
                await self.run_once()
            except Exception:  # a bug here must not end archival for good
                log.exception("log archival run failed")

    async def at_exit(self) -> None:
        """Archive once more after the nodes stopped (Zeek 8.2.2 archives only on its timer).

        The nodes rotated their open logs into the queue as they terminated; without this
        run those logs would wait there until the next agent's first interval. Limited to
        :data:`FINAL_ARCHIVE_TIMEOUT` (or ``timeout`` if shorter) so a stop stays within
        the service manager's stop timeout; an archiver killed at the limit leaves the
        rest of the queue for the next run.
        """
        if not self.enabled:
            return
        try:
            await self.run_once(min(self.timeout, FINAL_ARCHIVE_TIMEOUT))
        except Exception:  # shutdown must finish whatever the archiver did
            log.exception("log archival at shutdown failed")
