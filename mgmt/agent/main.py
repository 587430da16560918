"""``zeek-mgmt agent``: run the agent daemon in the foreground."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
from collections.abc import Mapping
from pathlib import Path

from mgmt.agent import ENV_CONTROLLER_NAME, ENV_CONTROLLER_PIDFILE
from mgmt.agent.service import AgentService, RunController
from mgmt.daemon.startup import run_daemon
from mgmt.exceptions import ConfigError
from mgmt.settings.flags import add_settings_flags, peer_args, settings_from_args
from mgmt.settings.model import AgentSettings, ControllerSettings
from mgmt.settings.sources import load_settings
from mgmt.settings.tls import agent_tls

__all__ = ["ENV_CONTROLLER_NAME", "ENV_CONTROLLER_PIDFILE", "add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``zeek-mgmt agent`` (see ``zeek-mgmt daemon-settings agent``)."""
    add_settings_flags(parser, "agent")


def controller_settings(
    args: argparse.Namespace, env: Mapping[str, str], agent: AgentSettings
) -> ControllerSettings:
    """The controller's settings as this agent's configuration implies them.

    Read from the same sources the controller reads: the settings file, the environment,
    and the section-qualified ``--set`` flags (:func:`~mgmt.settings.flags.peer_args`).
    Under ``zeek-mgmt run`` both daemons get exactly these, so they are exact (and the
    name is the one ``run`` passes on). A controller elsewhere, with other settings, is
    seen as this host's settings describe it. If they do not load: the defaults, with
    the port the agent dials.
    """
    try:
        settings, _ = settings_from_args("controller", peer_args(args), env)
    except ConfigError as exc:
        logging.getLogger("mgmt.agent").warning("controller settings unknown: %s", exc)
        flags: dict[str, object] = {
            "state_dir": str(agent.state_dir),
            "spool_dir": str(agent.spool_dir),
        }
        if agent.controller is not None:
            flags["listen_port"] = agent.controller.port
        settings, _ = load_settings("controller", config_path=None, env={}, flags=flags)
    assert isinstance(settings, ControllerSettings)
    if env.get(ENV_CONTROLLER_NAME):
        settings = dataclasses.replace(settings, name=env[ENV_CONTROLLER_NAME])
    return settings


def run_controller(env: Mapping[str, str]) -> RunController | None:
    """The controller ``zeek-mgmt run`` started beside us, as its environment names it."""
    name = env.get(ENV_CONTROLLER_NAME)
    if not name:
        return None
    pidfile = env.get(ENV_CONTROLLER_PIDFILE)
    return RunController(name, Path(pidfile) if pidfile else None)


def status_line(service: AgentService) -> str:
    """The one-line status for systemd: port, controller link, deployed nodes."""
    parts = []
    server, client = service.link.server, service.link.client
    if server is not None:
        host = f"[{server.host}]" if ":" in server.host else server.host
        scheme = "wss" if service.link.tls.server_ssl else "ws"
        parts.append(f"listening on {scheme}://{host}:{server.port}")
    if client is not None:
        link = "connected" if client.connected.is_set() else "not connected"
        parts.append(f"controller {client.uri.split('/v1/')[0]} {link}")
    state, nodes = service.state, service.nodes
    mine = [] if state is None else state.my_nodes()
    if state is None or nodes is None or not mine:
        parts.append("no nodes deployed")
    else:
        running = nodes.running_count()
        parts.append(
            f"deployed configuration {state.config.id}, {running}/{len(mine)} nodes running"
        )
    return "; ".join(parts)


def warn_without_zeek(settings: AgentSettings, sources: Mapping[str, str]) -> None:
    """Say at start-up, not at the first deploy, that no node can start without a zeek."""
    zeek = settings.zeek
    if zeek and os.path.isfile(zeek) and os.access(zeek, os.X_OK):
        return
    problem = (
        f"{zeek} ({sources.get('zeek', 'set')}) is not an executable file"
        if zeek
        else "no zeek found on PATH"
    )
    logging.getLogger("mgmt.agent").warning(
        "%s: nodes cannot start until the [agent] zeek setting names one, e.g. zeek = "
        '"/opt/zeek/bin/zeek" in the settings file (or --zeek)',
        problem,
    )


def run(args: argparse.Namespace) -> int:
    """Run the agent until SIGTERM/SIGINT.

    Returns 0, or :data:`~mgmt.daemon.exitstatus.EXIT_FATAL` after a start-up error that a
    restart cannot fix (settings, corrupt state, state directory in use, port in use).

    Under systemd (``Type=notify``) it reports readiness (once its own port accepts
    connections; it does not wait for the controller), status, watchdog pings and
    shutdown (:mod:`mgmt.daemon.sdnotify`).
    """

    def build(settings: AgentSettings, sources: Mapping[str, str]) -> AgentService:
        warn_without_zeek(settings, sources)
        return AgentService(
            settings,
            controller_settings=controller_settings(args, os.environ, settings),
            tls=agent_tls(settings, sources),
            run_controller=run_controller(os.environ),
        )

    return run_daemon(
        "agent",
        args,
        AgentSettings,
        build=build,
        ports=lambda settings: 1 if settings.listen_port else 0,
        status=status_line,
    )
