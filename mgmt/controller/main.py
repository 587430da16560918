"""``zeek-mgmt controller``: run the controller daemon in the foreground."""

from __future__ import annotations

import argparse
import asyncio

from mgmt.controller.service import ControllerService
from mgmt.daemon.exitstatus import start_up_failed
from mgmt.daemon.fdlimit import check_fd_budget, raise_fd_limit
from mgmt.daemon.logsetup import enable_stack_dumps, setup_logging
from mgmt.daemon.procname import follow_run_parent, set_process_title
from mgmt.daemon.sdnotify import Notifier, serve_notifying
from mgmt.exceptions import ConfigError, InstanceLocked, ListenError, StateStoreError
from mgmt.settings.flags import add_settings_flags, settings_from_args
from mgmt.settings.model import ControllerSettings
from mgmt.settings.tls import controller_tls


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``zeek-mgmt controller`` (see ``zeek-mgmt show-settings controller``)."""
    add_settings_flags(parser, "controller")


def status_line(service: ControllerService) -> str:
    """The one-line status for systemd: ports, connected agents, deployed configuration."""
    ports = []
    for what, server, tls in (
        ("clients", service.client_server, service.tls.client_ssl),
        ("agents", service.agent_server, service.tls.agent_ssl),
    ):
        if server is not None:
            host = f"[{server.host}]" if ":" in server.host else server.host
            ports.append(f"{what} {'wss' if tls else 'ws'}://{host}:{server.port}")
    state = service.state
    agents = 0 if state is None else len(state.known)
    deployed = None if state is None or state.deployed is None else state.deployed.id
    return "; ".join(
        (
            "listening on " + ", ".join(ports) if ports else "not listening",
            f"{agents} agent{'' if agents == 1 else 's'} connected",
            f"deployed configuration {deployed}" if deployed else "no configuration deployed",
        )
    )


def run(args: argparse.Namespace) -> int:
    """Run the controller until SIGTERM/SIGINT.

    Returns 0, or :data:`~mgmt.daemon.exitstatus.EXIT_FATAL` after a start-up error that a
    restart cannot fix (settings, corrupt state, state directory in use, port in use).

    Under systemd (``Type=notify``) it reports readiness, status, watchdog pings and
    shutdown (:mod:`mgmt.daemon.sdnotify`).
    """
    try:
        settings, sources = settings_from_args("controller", args)
        assert isinstance(settings, ControllerSettings)
        setup_logging(settings.log_level)
        enable_stack_dumps()
        tls = controller_tls(settings, sources)
        set_process_title(f"zeek.{settings.name}")
        if follow_run_parent():
            return 0
        ports = sum(1 for p in (settings.listen_port, settings.listen_port_websocket) if p)
        check_fd_budget(raise_fd_limit(), ports, settings.max_connections)
        service = ControllerService(settings, tls=tls)
        asyncio.run(serve_notifying(service, Notifier(), lambda: status_line(service)))
    except (ConfigError, StateStoreError, InstanceLocked, ListenError) as exc:
        return start_up_failed("controller", str(exc))
    return 0
