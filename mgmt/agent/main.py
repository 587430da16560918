"""``zeek-mgmt agent``: run the agent daemon in the foreground."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
from collections.abc import Mapping
from pathlib import Path

from mgmt.agent import ENV_CONTROLLER_NAME, ENV_CONTROLLER_PIDFILE
from mgmt.agent.layout import ControllerView
from mgmt.agent.service import AgentConfig, AgentService
from mgmt.daemon.exitstatus import start_up_failed
from mgmt.daemon.fdlimit import check_fd_budget, raise_fd_limit
from mgmt.daemon.logsetup import enable_stack_dumps, setup_logging
from mgmt.daemon.procname import follow_run_parent, set_process_title
from mgmt.daemon.sdnotify import Notifier, serve_notifying
from mgmt.exceptions import ConfigError, InstanceLocked, ListenError, StateStoreError
from mgmt.settings.flags import add_settings_flags, peer_args, settings_from_args
from mgmt.settings.model import AgentSettings, ControllerSettings
from mgmt.settings.tls import AgentTLS, agent_tls
from mgmt.supervisor.policy import ProcessState

__all__ = ["ENV_CONTROLLER_NAME", "ENV_CONTROLLER_PIDFILE", "add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``zeek-mgmt agent`` (see ``zeek-mgmt show-settings agent``)."""
    add_settings_flags(parser, "agent")


def controller_view(args: argparse.Namespace, env: Mapping[str, str]) -> ControllerView | None:
    """The controller's settings as this agent's configuration implies them.

    Read from the same sources the controller reads: the settings file, the environment,
    and the section-qualified ``--set`` flags (:func:`~mgmt.settings.flags.peer_args`). Under
    ``zeek-mgmt run`` both daemons get exactly these, so the view is exact (and the
    name is the one ``run`` passes on). A controller elsewhere, with other settings, is
    seen as this host's settings describe it; ``None`` if they do not load.
    """
    try:
        settings, _ = settings_from_args("controller", peer_args(args), env)
    except ConfigError as exc:
        logging.getLogger("mgmt.agent").warning("controller settings unknown: %s", exc)
        return None
    assert isinstance(settings, ControllerSettings)
    return ControllerView(
        name=env.get(ENV_CONTROLLER_NAME) or settings.name,
        listen_address=settings.listen_address,
        listen_port=settings.listen_port,
        listen_address_websocket=settings.listen_address_websocket,
        listen_port_websocket=settings.listen_port_websocket,
        auto_assign_broker_ports=settings.auto_assign_broker_ports,
        auto_assign_broker_start_port=settings.auto_assign_broker_start_port,
        auto_assign_metrics_ports=settings.auto_assign_metrics_ports,
        auto_assign_metrics_start_port=settings.auto_assign_metrics_start_port,
    )


def config_from_settings(
    settings: AgentSettings,
    env: dict[str, str],
    tls: AgentTLS | None = None,
    view: ControllerView | None = None,
) -> AgentConfig:
    """Translate settings (and TLS contexts built from them) into the daemon's configuration."""
    tls = tls or AgentTLS()
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
        max_send_buffer=settings.max_send_buffer,
        max_connections=settings.max_connections,
        handshake_timeout=settings.handshake_timeout,
        archive_logs=settings.archive_logs,
        archive_interval=settings.archive_interval,
        archive_dir=settings.archive_dir,
        archive_cmd=settings.archive_cmd,
        controller_name=env.get(ENV_CONTROLLER_NAME),
        controller_pidfile=Path(pidfile) if pidfile else None,
        server_ssl=tls.server_ssl,
        dial_ssl=tls.dial_ssl,
        controller_view=view,
    )


def status_line(service: AgentService) -> str:
    """The one-line status for systemd: port, controller link, deployed nodes."""
    cfg = service.config
    parts = []
    if service.server is not None:
        host = service.server.host
        host = f"[{host}]" if ":" in host else host
        scheme = "wss" if cfg.server_ssl else "ws"
        parts.append(f"listening on {scheme}://{host}:{service.server.port}")
    if service.client is not None:
        link = "connected" if service.client.connected.is_set() else "not connected"
        parts.append(f"controller {service.client.uri.split('/v1/')[0]} {link}")
    state, supervisor = service.state, service.supervisor
    mine = [] if state is None else state.my_nodes()
    if state is None or supervisor is None or not mine:
        parts.append("no nodes deployed")
    else:
        running = sum(1 for i in supervisor.status() if i.state is ProcessState.RUNNING)
        parts.append(
            f"deployed configuration {state.config.id}, {running}/{len(mine)} nodes running"
        )
    return "; ".join(parts)


def run(args: argparse.Namespace) -> int:
    """Run the agent until SIGTERM/SIGINT.

    Returns 0, or :data:`~mgmt.daemon.exitstatus.EXIT_FATAL` after a start-up error that a
    restart cannot fix (settings, corrupt state, state directory in use, port in use).

    Under systemd (``Type=notify``) it reports readiness (once its own port accepts
    connections; it does not wait for the controller), status, watchdog pings and
    shutdown (:mod:`mgmt.daemon.sdnotify`).
    """
    try:
        settings, sources = settings_from_args("agent", args)
        assert isinstance(settings, AgentSettings)
        setup_logging(settings.log_level)
        enable_stack_dumps()
        tls = agent_tls(settings, sources)
        set_process_title(f"zeek.{settings.name}")
        if follow_run_parent():
            return 0
        ports = 1 if settings.listen_port else 0
        check_fd_budget(raise_fd_limit(), ports, settings.max_connections)
        view = controller_view(args, os.environ)
        service = AgentService(config_from_settings(settings, dict(os.environ), tls, view))
        asyncio.run(serve_notifying(service, Notifier(), lambda: status_line(service)))
    except (ConfigError, StateStoreError, InstanceLocked, ListenError) as exc:
        return start_up_failed("agent", str(exc))
    return 0
