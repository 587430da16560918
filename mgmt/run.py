"""``zeek-mgmt run``: the quickstart, like ``zeek -j policy/frameworks/management/...``.

A small process supervisor (kernel name ``zeek``) with two children, the controller
(``zeek.<controller name>``) and the agent (``zeek.<agent name>``). Each child is
restarted with back-off when it dies (1 s, doubling up to 30 s, reset after 30 s up),
without disturbing the other or the cluster nodes, which are the agent's children and
are adopted by the next agent. SIGTERM/SIGINT stop the agent first (which stops its
nodes), then the controller.

The children get the same settings flags (``--config``, ``--state-dir``, ``--spool-dir``,
``--log-level``, ``--set``) and the same environment; the agent also learns the
controller's name and pid file so that get-nodes lists the controller, as Zeek does.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from dataclasses import dataclass, field

from mgmt.agent.main import ENV_CONTROLLER_NAME, ENV_CONTROLLER_PIDFILE
from mgmt.exceptions import ConfigError
from mgmt.procname import set_process_name
from mgmt.settings import (
    AgentSettings,
    ControllerSettings,
    add_settings_flags,
    settings_from_args,
)

log = logging.getLogger("mgmt.run")

#: Restart back-off of a child: first delay, cap, and uptime that resets it.
RESTART_DELAY = 1.0
RESTART_DELAY_MAX = 30.0
RESET_AFTER = 30.0
#: How long a child may take to exit after SIGTERM before SIGKILL.
STOP_TIMEOUT = 60.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``zeek-mgmt run``: the settings shared by controller and agent."""
    add_settings_flags(parser, "both")


def passthrough_flags(args: argparse.Namespace) -> list[str]:
    """The settings flags given to ``run``, to hand on to both children."""
    out: list[str] = []
    for dest, flag in (
        ("settings_config", "--config"),
        ("settings_state_dir", "--state-dir"),
        ("settings_spool_dir", "--spool-dir"),
        ("settings_log_level", "--log-level"),
    ):
        value = getattr(args, dest, None)
        if value is not None:
            out += [flag, str(value)]
    for entry in getattr(args, "settings_set", None) or []:
        out += ["--set", entry]
    return out


@dataclass
class Child:
    """One supervised daemon process."""

    role: str
    argv: list[str]
    env: dict[str, str]
    proc: asyncio.subprocess.Process | None = None
    started_at: float = 0.0
    delay: float = RESTART_DELAY
    restarts: int = 0
    exited: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self) -> None:
        self.exited.clear()
        self.proc = await asyncio.create_subprocess_exec(*self.argv, env=self.env)
        self.started_at = time.monotonic()
        log.info("started %s, pid %d", self.role, self.proc.pid)

    async def stop(self) -> None:
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(STOP_TIMEOUT):
                await proc.wait()
        except TimeoutError:
            log.warning("%s did not stop in %.0f s, killing it", self.role, STOP_TIMEOUT)
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()


class RunSupervisor:
    """Runs and restarts the controller and the agent until asked to stop."""

    def __init__(self, children: list[Child]) -> None:
        self.children = children
        self._shutdown = asyncio.Event()

    def request_shutdown(self) -> None:
        """Stop everything (idempotent; used by the signal handlers)."""
        self._shutdown.set()

    async def _watch(self, child: Child) -> None:
        while not self._shutdown.is_set():
            await child.start()
            assert child.proc is not None
            code = await child.proc.wait()
            child.exited.set()
            if self._shutdown.is_set():
                return
            uptime = time.monotonic() - child.started_at
            if uptime >= RESET_AFTER:
                child.delay = RESTART_DELAY
            log.warning(
                "%s exited with status %s after %.1f s; restarting in %.0f s",
                child.role,
                code,
                uptime,
                child.delay,
            )
            child.restarts += 1
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(child.delay):
                    await self._shutdown.wait()
            child.delay = min(child.delay * 2, RESTART_DELAY_MAX)

    async def run(self) -> None:
        """Start the children and supervise them until shutdown, then stop them in order."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_shutdown)
        watchers = [loop.create_task(self._watch(c)) for c in self.children]
        try:
            await self._shutdown.wait()
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
            # Agent first (it stops its nodes), then the controller.
            for child in reversed(self.children):
                await child.stop()
            for task in watchers:
                task.cancel()
            for task in watchers:
                with contextlib.suppress(asyncio.CancelledError):
                    await task


def run(args: argparse.Namespace) -> int:
    """Run controller and agent until SIGTERM/SIGINT."""
    try:
        controller, _ = settings_from_args("controller", args)
        agent, _ = settings_from_args("agent", args)
    except ConfigError as exc:
        print(f"zeek-mgmt run: error: {exc}", file=sys.stderr)
        return 1
    assert isinstance(controller, ControllerSettings) and isinstance(agent, AgentSettings)
    logging.basicConfig(
        level=agent.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    set_process_name("zeek")
    flags = passthrough_flags(args)
    base = [sys.executable, "-m", "mgmt"]
    env = dict(os.environ)
    # Notifications are the main process's business (NotifyAccess=main): children that
    # inherited NOTIFY_SOCKET would announce readiness or pings on our behalf.
    for key in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
        env.pop(key, None)
    agent_env = dict(env)
    agent_env[ENV_CONTROLLER_NAME] = controller.name
    agent_env[ENV_CONTROLLER_PIDFILE] = str(
        controller.state_dir / "nodes" / controller.name / ".pid"
    )
    children = [
        Child("controller", [*base, "controller", *flags], env),
        Child("agent", [*base, "agent", *flags], agent_env),
    ]
    asyncio.run(RunSupervisor(children).run())
    return 0
