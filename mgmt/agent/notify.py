"""The notification hook: ``[agent] notify_cmd``, run when something happens to a node.

zeekctl mails crash reports; here the operator plugs in mail, a chat webhook or a pager.
:func:`notify` runs the command once for one :class:`NotifyEvent`: without a shell (an
array is the argv; a string is split into words like a shell would, or run by ``/bin/sh
-c`` as written with ``notify_shell = true``), stdin from ``/dev/null``, in its own
process group, with the event in environment variables:

==========================  ==============================================================
``ZEEK_MGMT_EVENT``         the kind: ``crashed``, ``gave-up``, ``failed``, ``recovered``
                            (node events); ``disk-low``, ``disk-ok`` (disk checks)
``ZEEK_MGMT_NODE``          the node's name (empty for events that concern no node)
``ZEEK_MGMT_INSTANCE``      the agent's name
``ZEEK_MGMT_TEXT``          one line for a human, e.g. ``worker-01 on agent-a crashed:
                            killed by SIGKILL; revived (restart 1)``
``ZEEK_MGMT_TIME``          when, seconds since the epoch (UTC), e.g. ``1767225296.789``
``ZEEK_MGMT_<FIELD>``       each extra field, the name upper-cased (``PID``, ``EXIT``,
                            ``RESTARTS``, ``CRASH_DIR``, ``REASON``, ...)
==========================  ==============================================================

The command gets ``notify_timeout`` seconds; then its process group is killed. Its output
is logged (at most a few lines); a failure (cannot start, non-zero exit, time limit) is a
WARNING in the agent's log and never affects supervision: :func:`notify` never raises.
:class:`Notifier` runs the hook for a stream of events, one run at a time, in order.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import shlex
import time
from collections.abc import Mapping
from dataclasses import field

from mgmt.core.exittext import exit_text
from mgmt.core.frozen import frozen
from mgmt.core.peertext import peer_text
from mgmt.settings.model import AgentSettings
from mgmt.supervisor.backend import run_command
from mgmt.supervisor.crashdirs import signal_name
from mgmt.supervisor.nodeevents import NodeEvent

log = logging.getLogger("mgmt.agent")

#: Events waiting for the hook at most; beyond that new ones are dropped (and logged).
MAX_WAITING = 100
#: Bytes of the hook's output kept for the log.
OUTPUT_BYTES = 2000


@frozen
class NotifyEvent:
    """One event for the hook.

    Attributes:
        kind: ``crashed``, ``gave-up``, ``failed``, ``recovered``, ``disk-low``, ...
        node: the node it concerns ("" for none).
        text: one line for a human.
        extra: more fields, each passed as ``ZEEK_MGMT_<NAME upper-cased>``.
        time: when (seconds since the epoch).
    """

    kind: str
    node: str
    text: str
    extra: Mapping[str, str] = field(default_factory=dict)
    time: float = field(default_factory=time.time)


def from_node_event(instance: str, event: NodeEvent) -> NotifyEvent:
    """The hook's event for a supervisor's :class:`~mgmt.supervisor.nodeevents.NodeEvent`
    (extra fields ``pid``, ``exit``, ``exit_code``, ``exit_signal``, ``restarts``,
    ``crash_dir``, ``reason`` where known)."""
    where = f"{event.node} on {instance}"
    status = event.exit_status
    said = (
        "" if status is None else exit_text(status.code, status.signal, signal_name(status.signal))
    )
    if event.kind == "crashed":
        text = f"{where} crashed: {said} (pid {event.pid}); it will be revived"
    elif event.kind == "gave-up":
        text = f"{where} crashed and is given up (FAILED): {event.reason or said}"
    elif event.kind == "failed":
        text = f"{where} cannot start (FAILED): {event.reason or 'unknown reason'}"
    elif event.kind == "recovered":
        text = f"{where} recovered: RUNNING as pid {event.pid}"
    else:
        text = f"{where}: {event.kind}"
    extra = {
        "pid": event.pid,
        "exit": said or None,
        "exit_code": None if status is None else status.code,
        "exit_signal": None if status is None else status.signal,
        "restarts": event.restarts,
        "crash_dir": event.crash_dir,
        "reason": event.reason,
    }
    return NotifyEvent(
        event.kind,
        event.node,
        text,
        {k: str(v) for k, v in extra.items() if v is not None},
        event.time,
    )


def hook_argv(settings: AgentSettings) -> list[str] | None:
    """The argv that runs ``notify_cmd``; ``None`` when no hook is set."""
    cmd = settings.notify_cmd
    if not cmd:
        return None
    if isinstance(cmd, str):
        if settings.notify_shell:
            return ["/bin/sh", "-c", cmd]
        words = shlex.split(cmd)
        return words or None
    return list(cmd)


def hook_env(settings: AgentSettings, event: NotifyEvent) -> dict[str, str]:
    """The hook's environment: the agent's, plus the event's variables."""
    env = dict(os.environ)
    for name, value in event.extra.items():
        env["ZEEK_MGMT_" + name.upper().replace("-", "_")] = value
    env.update(
        ZEEK_MGMT_EVENT=event.kind,
        ZEEK_MGMT_NODE=event.node,
        ZEEK_MGMT_INSTANCE=settings.name,
        ZEEK_MGMT_TEXT=event.text,
        ZEEK_MGMT_TIME=f"{event.time:.3f}",
    )
    return env


async def notify(settings: AgentSettings, event: NotifyEvent) -> bool:
    """Run ``settings.notify_cmd`` for ``event`` (module docstring); wait at most
    ``settings.notify_timeout`` seconds, then kill it.

    The one entry point for every caller (node events here, disk checks elsewhere):
    ``await notify(settings, NotifyEvent("disk-low", "", "...", {"path": ...}))``.

    Returns:
        Whether the hook ran and exited 0 (``True`` also when no hook is set). Never
        raises (cancellation aside: the hook is then killed).
    """
    argv = hook_argv(settings)
    if argv is None:
        return True
    what = f"notify_cmd for {event.kind} {event.node}".rstrip()
    result = await run_command(
        argv,
        time_limit=settings.notify_timeout,
        output_limit=OUTPUT_BYTES,
        env=hook_env(settings, event),
    )
    if result.timed_out:
        log.warning("%s: no exit within %s s, killed", what, settings.notify_timeout)
        return False
    if result.status is None:
        log.warning("%s: cannot run %s: %s", what, peer_text(argv[0]), result.output)
        return False
    text = result.output
    if result.status != 0:
        log.warning("%s: exit status %s%s", what, result.status, f": {text}" if text else "")
        return False
    log.debug("%s: done%s", what, f": {text}" if text else "")
    return True


class Notifier:
    """Runs the hook for each posted event, one run at a time, in order.

    Args:
        settings: the agent's settings (``notify_cmd`` empty: posts are ignored).
    """

    def __init__(self, settings: AgentSettings) -> None:
        self.settings = settings
        self._queue: collections.deque[NotifyEvent] = collections.deque()
        self._task: asyncio.Task[None] | None = None

    @property
    def enabled(self) -> bool:
        """Whether a hook is set."""
        return bool(self.settings.notify_cmd)

    def post(self, event: NotifyEvent) -> None:
        """Run the hook for ``event`` after those before it; returns at once."""
        if not self.enabled:
            return
        if len(self._queue) >= MAX_WAITING:
            log.warning("notify_cmd: %d events waiting; dropped %s", len(self._queue), event.kind)
            return
        self._queue.append(event)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(
                self._drain(), name="mgmt.agent.notify"
            )

    async def _drain(self) -> None:
        while self._queue:
            await notify(self.settings, self._queue.popleft())

    async def close(self, grace: float = 5.0) -> None:
        """Let the waiting runs finish, at most ``grace`` seconds, then stop."""
        task = self._task
        if task is None or task.done():
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(grace):
                await asyncio.shield(task)
        if not task.done():
            log.warning("notify_cmd: %d events not notified at shutdown", len(self._queue))
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
