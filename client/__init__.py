"""zeek-mgmt's own client for the Management framework's controller API.

Layers, from the wire up:

* :mod:`client.api` -- an asyncio library, ``async with ControllerClient(host, port) as c:``
  with one coroutine per controller request; :mod:`client.connect` configures it from
  the client settings (TLS as zeek-client);
* pure inputs and outputs: :mod:`client.config` (settings), :mod:`client.clusterconfig`
  and :mod:`client.workers` (the ``.ini`` cluster configuration), :mod:`client.render`
  (zeek-client's outputs), :mod:`client.extrender` and :mod:`client.observe`
  (zeek-mgmt's own tables and JSON);
* ``zeek-mgmt <command>``: :mod:`client.cli` (what every command shares: options,
  settings, logging, requests, exit codes), :mod:`client.commands` (zeek-client 1.5.0's
  commands with the same options, output bytes and exit codes) and
  :mod:`client.extcommands` (``status``, ``top``, ``df``, ``check``, ``stop``, ...).

This module stays import-light: ``zeek-mgmt --help`` reads :data:`COMMANDS` without
loading the client.
"""

from __future__ import annotations

#: The client subcommands of ``zeek-mgmt``: (command name, one-line help), in help order.
#: Each is implemented by the attribute ``<module>:<name with - replaced by _>`` of
#: :func:`command_target`.
COMMANDS: tuple[tuple[str, str], ...] = (
    ("deploy", "deploy the staged cluster configuration (zeek-client deploy)"),
    ("deploy-config", "upload a cluster configuration and deploy it (zeek-client deploy-config)"),
    ("get-config", "retrieve the staged or deployed cluster configuration"),
    ("get-id-value", "show the value of a Zeek script identifier in cluster nodes"),
    ("get-instances", "show the instances (agents) connected to the controller"),
    ("get-nodes", "show the Zeek nodes of every instance (JSON)"),
    ("monitor", "for troubleshooting: report the controller events seen"),
    ("restart", "restart cluster nodes"),
    ("stage-config", "upload a cluster configuration for later deployment"),
    ("test-timeout", "send the controller's timeout test request"),
    ("status", "readable table of every node and its state (exit 1 unless all RUNNING)"),
    # observation (issue 12)
    ("diag", "crash report of cluster nodes: last exit, output, command line, environment"),
    ("top", "CPU, memory and threads of every cluster and management process (--watch)"),
    ("netstats", "packets received, dropped and on the link per capturing node"),
    ("get-versions", "show the versions of the controller, the agents and their Zeek (JSON)"),
    ("df", "free space on each agent's state, spool and archive file systems (zeekctl df)"),
    ("client-settings", "show the client's settings (zeek-client show-settings)"),
    # stop/start, check (issue 11)
    ("check", "check a cluster configuration (default: the staged one) with zeek -a on each node"),
    ("stop", "stop cluster nodes and keep them stopped until started (zeekctl stop)"),
    ("start", "start nodes stopped with zeek-mgmt stop (zeekctl start)"),
)


#: The commands that are zeek-client's (in :mod:`client.commands`; ``client-settings`` is
#: its ``show-settings``); the others are zeek-mgmt's own (:mod:`client.extcommands`).
ZEEK_CLIENT_COMMANDS = frozenset(
    {
        "deploy",
        "deploy-config",
        "get-config",
        "get-id-value",
        "get-instances",
        "get-nodes",
        "monitor",
        "restart",
        "stage-config",
        "test-timeout",
        "client-settings",
    }
)


def command_target(name: str) -> str:
    """The ``module:attribute`` that implements client command ``name``."""
    module = "client.commands" if name in ZEEK_CLIENT_COMMANDS else "client.extcommands"
    return f"{module}:{name.replace('-', '_')}"
