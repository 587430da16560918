"""How a daemon process starts and runs: the same steps for the controller and the agent.

Settings (file, environment, flags), logging and stack dumps, the service (TLS contexts
are built from the settings here, so a bad certificate stops start-up), the kernel name
``zeek.<name>``, the ``zeek-mgmt run`` parent check, the open-file limit, then the
service under :func:`~mgmt.daemon.sdnotify.serve_notifying` (systemd notifications and
the SIGTERM/SIGINT handlers) until it stops. A start-up error that a restart cannot fix
is printed and exits with :data:`~mgmt.daemon.exitstatus.EXIT_FATAL`.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
from collections.abc import Callable, Mapping
from typing import TypeVar

from mgmt.daemon.exitstatus import start_up_failed
from mgmt.daemon.fdlimit import check_fd_budget, raise_fd_limit
from mgmt.daemon.logsetup import enable_stack_dumps, setup_logging
from mgmt.daemon.procname import follow_run_parent, set_process_title
from mgmt.daemon.sdnotify import Notifier, NotifyingService, serve_notifying
from mgmt.exceptions import ConfigError, InstanceLocked, ListenError, StateStoreError
from mgmt.settings.flags import settings_from_args
from mgmt.settings.model import AgentSettings, ControllerSettings, Role

S = TypeVar("S", ControllerSettings, AgentSettings)
D = TypeVar("D", bound=NotifyingService)


def run_daemon(
    role: Role,
    args: argparse.Namespace,
    kind: type[S],
    *,
    build: Callable[[S, Mapping[str, str]], D],
    ports: Callable[[S], int],
    status: Callable[[D], str],
) -> int:
    """Start the ``role`` daemon from its command line and run it until it stops.

    Args:
        role: ``controller`` or ``agent``.
        args: the parsed command line (with the settings flags).
        kind: the role's settings class.
        build: the service from the settings and their sources (raises ConfigError for
            unusable TLS settings).
        ports: how many ports the settings make the daemon listen on (for the fd budget).
        status: the one-line status of the running service, for systemd.

    Returns:
        0, or :data:`~mgmt.daemon.exitstatus.EXIT_FATAL` after a start-up error that a
        restart cannot fix (settings, corrupt state, state directory in use, port in use).
    """
    try:
        settings, sources = settings_from_args(role, args)
        assert isinstance(settings, kind)
        setup_logging(settings.log_level)
        enable_stack_dumps()
        service = build(settings, sources)
        set_process_title(f"zeek.{settings.name}")
        if follow_run_parent():
            return 0
        check_fd_budget(raise_fd_limit(), ports(settings), settings.max_connections)
        tune_gc()
        asyncio.run(serve_notifying(service, Notifier(), lambda: status(service)))
    except (ConfigError, StateStoreError, InstanceLocked, ListenError) as exc:
        return start_up_failed(role, str(exc))
    return 0


def tune_gc() -> None:
    """Make the cyclic garbage collector cheap for a daemon that parses large messages.

    Start-up's objects (modules, classes, settings) never die: :func:`gc.freeze` moves
    them out of every collection. A 200-agent get-nodes answer holds some 40,000
    containers (the agents' parsed answers) while it is gathered, which the default
    threshold (700) turned into dozens of young and older collections, each scanning
    what survived; a threshold of 50,000 makes those rare. Reference counting still
    frees acyclic garbage at once, so memory stays bounded by what cycles leak between
    collections.
    """
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)
