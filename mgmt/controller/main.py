"""``zeek-mgmt controller``: run the controller daemon in the foreground."""

from __future__ import annotations

import argparse
import asyncio
import sys

from mgmt.broker.data import Port
from mgmt.controller.service import ControllerConfig, ControllerService
from mgmt.controller.state import ControllerOptions
from mgmt.exceptions import ConfigError, StateStoreError
from mgmt.logsetup import setup_logging
from mgmt.procname import set_process_name
from mgmt.settings import ControllerSettings, add_settings_flags, settings_from_args


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``zeek-mgmt controller`` (see ``zeek-mgmt show-settings controller``)."""
    add_settings_flags(parser, "controller")


def config_from_settings(settings: ControllerSettings) -> ControllerConfig:
    """Translate settings into the daemon's configuration."""
    return ControllerConfig(
        name=settings.name,
        state_dir=settings.state_dir,
        client_address=settings.listen_address_websocket,
        # Port 0 in settings means "do not listen" (Zeek's 0/unknown).
        client_port=settings.listen_port_websocket or None,
        agent_address=settings.listen_address,
        agent_port=settings.listen_port or None,
        options=ControllerOptions(
            request_timeout=settings.request_timeout,
            controller_port=Port(settings.listen_port) if settings.listen_port else None,
            auto_assign_broker_ports=settings.auto_assign_broker_ports,
            auto_assign_broker_start_port=Port(settings.auto_assign_broker_start_port),
            auto_assign_metrics_ports=settings.auto_assign_metrics_ports,
            auto_assign_metrics_start_port=Port(settings.auto_assign_metrics_start_port),
        ),
        max_message_size=settings.max_message_size,
    )


def run(args: argparse.Namespace) -> int:
    """Run the controller until SIGTERM/SIGINT; 1 on a start-up error."""
    try:
        settings, _sources = settings_from_args("controller", args)
        assert isinstance(settings, ControllerSettings)
        setup_logging(settings.log_level)
        set_process_name(f"zeek.{settings.name}")
        service = ControllerService(config_from_settings(settings))
        service.load()
        asyncio.run(service.run(install_signals=True))
    except (ConfigError, StateStoreError) as exc:
        print(f"zeek-mgmt controller: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"zeek-mgmt controller: error: cannot listen: {exc}", file=sys.stderr)
        return 1
    return 0
