"""``zeek-mgmt controller``: run the controller daemon in the foreground."""

from __future__ import annotations

import argparse

from mgmt.controller.service import ControllerService
from mgmt.daemon.startup import run_daemon
from mgmt.settings.flags import add_settings_flags
from mgmt.settings.model import ControllerSettings
from mgmt.settings.tls import controller_tls


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``zeek-mgmt controller`` (see ``zeek-mgmt daemon-settings controller``)."""
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
    return run_daemon(
        "controller",
        args,
        ControllerSettings,
        build=lambda settings, sources: ControllerService(
            settings, tls=controller_tls(settings, sources)
        ),
        ports=lambda s: sum(1 for p in (s.listen_port, s.listen_port_websocket) if p),
        status=status_line,
    )
