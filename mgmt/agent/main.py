"""``zeek-mgmt agent``: run the agent daemon in the foreground."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

from mgmt.agent import ENV_CONTROLLER_NAME, ENV_CONTROLLER_PIDFILE
from mgmt.agent.service import AgentConfig, AgentService
from mgmt.exceptions import ConfigError, StateStoreError
from mgmt.logsetup import setup_logging
from mgmt.procname import set_process_name
from mgmt.settings import AgentSettings, add_settings_flags, settings_from_args

__all__ = ["ENV_CONTROLLER_NAME", "ENV_CONTROLLER_PIDFILE", "add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``zeek-mgmt agent`` (see ``zeek-mgmt show-settings agent``)."""
    add_settings_flags(parser, "agent")


def config_from_settings(settings: AgentSettings, env: dict[str, str]) -> AgentConfig:
    """Translate settings into the daemon's configuration."""
    controller = None
    if settings.controller is not None:
        controller = (settings.controller.host, settings.controller.port)
    pidfile = env.get(ENV_CONTROLLER_PIDFILE)
    return AgentConfig(
        name=settings.name,
        state_dir=settings.state_dir,
        spool_dir=settings.spool_dir,
        listen_address=settings.listen_address,
        listen_port=settings.listen_port or None,
        controller=controller,
        zeek=settings.zeek or "zeek",
        node_scripts=settings.node_scripts,
        node_args=settings.node_args,
        request_timeout=settings.request_timeout,
        keep_nodes=settings.keep_nodes,
        stop_grace=settings.stop_grace,
        node_websocket_start_port=settings.node_websocket_start_port,
        max_message_size=settings.max_message_size,
        archive_logs=settings.archive_logs,
        archive_interval=settings.archive_interval,
        archive_dir=settings.archive_dir,
        archive_cmd=settings.archive_cmd,
        controller_name=env.get(ENV_CONTROLLER_NAME),
        controller_pidfile=Path(pidfile) if pidfile else None,
    )


def run(args: argparse.Namespace) -> int:
    """Run the agent until SIGTERM/SIGINT; 1 on a start-up error."""
    try:
        settings, _sources = settings_from_args("agent", args)
        assert isinstance(settings, AgentSettings)
        setup_logging(settings.log_level)
        set_process_name(f"zeek.{settings.name}")
        service = AgentService(config_from_settings(settings, dict(os.environ)))
        asyncio.run(service.run(install_signals=True))
    except (ConfigError, StateStoreError) as exc:
        print(f"zeek-mgmt agent: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"zeek-mgmt agent: error: cannot listen: {exc}", file=sys.stderr)
        return 1
    return 0
