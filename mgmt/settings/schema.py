"""The settings table: every setting of both roles, its kind, default, env var and flag.

Order = show-settings order. The defaults here are the only ones:
the daemons take :mod:`mgmt.settings.model` values as they are. A default is a constant
or a function of the load context (computed defaults: the directories of the Zeek in use,
see :mod:`mgmt.settings.zeek`; names from the host name; the controller the agent dials).
"""

from __future__ import annotations

import os
import shlex
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from mgmt.core.frozen import frozen
from mgmt.settings.kinds import (
    ARCHIVE_INTERVAL,
    BOOL,
    BYTES,
    CLUSTER_BACKEND,
    COMMAND,
    COUNT,
    COUNT0,
    ENDPOINT,
    EXPIRE_INTERVAL,
    LISTEN_PORT,
    LOG_LEVEL,
    NONNEG_SECONDS,
    OPT_PATH,
    OPT_STR,
    PATH,
    PERCENT,
    PORT,
    ROTATION_INTERVAL,
    SECONDS,
    SIZE,
    STR,
    STR_LIST,
    Kind,
)
from mgmt.settings.model import AgentSettings, ControllerSettings, Endpoint
from mgmt.settings.zeek import ZeekInstallation, bin_dirs, is_program, resolve_program, which

MIB = 1024 * 1024


@frozen
class HostInfo:
    """Facts about the host that defaults depend on; injected so tests need not touch it."""

    hostname: str
    is_root: bool
    home: str

    @classmethod
    def current(cls) -> HostInfo:
        """Read the facts from this process and host."""
        return cls(socket.gethostname(), os.geteuid() == 0, os.path.expanduser("~"))


class DefaultContext(Protocol):
    """What computed defaults may use while one role is loaded."""

    host: HostInfo
    env: Mapping[str, str]
    #: The values computed so far (earlier fields of the role), by name.
    values: dict[str, Any]
    #: A more precise source than "default" for a computed default, by name.
    notes: dict[str, str]

    @property
    def path(self) -> str:
        """The search path for programs (``$PATH`` of the environment loaded)."""
        ...

    def zeek_installation(self) -> ZeekInstallation | None:
        """The installation of the Zeek in use (see :mod:`mgmt.settings.zeek`)."""
        ...

    def controller_listen_port(self) -> tuple[int, str]:
        """The controller's agent-facing port as configured, and its source."""
        ...


@frozen
class Spec:
    """One setting: its name (the key and the dataclass field), kind, default and sources."""

    name: str
    kind: Kind
    #: A constant default, or a function of the load context (see :class:`DefaultContext`).
    default: object
    env: str | None = None
    flag: str | None = None
    help: str = ""


def _default_state_dir(ctx: DefaultContext) -> Path:
    zeek = ctx.zeek_installation()
    if zeek is not None:
        ctx.notes["state_dir"] = f"default ({zeek.origin})"
        return zeek.state_dir
    ctx.notes["state_dir"] = "default (no Zeek found)"
    if ctx.host.is_root:
        return Path("/var/lib/zeek-mgmt")
    xdg = ctx.env.get("XDG_STATE_HOME", "")
    if os.path.isabs(xdg):  # the XDG spec says relative values are to be ignored
        return Path(xdg) / "zeek-mgmt"
    return Path(ctx.env.get("HOME") or ctx.host.home) / ".local" / "state" / "zeek-mgmt"


def _installation_dir(ctx: DefaultContext, name: str, fallback: str) -> Path:
    """``name``'s default: the Zeek installation's directory, else ``<state_dir>/<fallback>``.

    As Management::get_spool_dir() and Management::Agent::archive_dir
    (Installation::log_dir): the installation's, whatever the state dir is.
    """
    zeek = ctx.zeek_installation()
    if zeek is not None:
        ctx.notes[name] = f"default ({zeek.origin})"
        return zeek.spool_dir if name == "spool_dir" else zeek.log_dir
    ctx.notes[name] = f"default (<state_dir>/{fallback}, no Zeek found)"
    return Path(ctx.values["state_dir"]) / fallback


def _archiver_command(ctx: DefaultContext) -> str:
    # Zeek's agent runs <Installation::root_dir>/bin/zeek-archiver: the one installed
    # beside the zeek in use; else one on PATH. archive_cmd is a shell command line (as in
    # Zeek), so a found path is quoted.
    zeek = ctx.values.get("zeek") or ""
    for bindir in bin_dirs(resolve_program(zeek, ctx.path)):
        beside = os.path.join(bindir, "zeek-archiver")
        if is_program(beside):
            ctx.notes["archive_cmd"] = f"default (zeek-archiver beside {zeek})"
            return shlex.quote(beside)
    path = which("zeek-archiver", ctx.path)
    return shlex.quote(path) if path else ""


def _default_controller(ctx: DefaultContext) -> Endpoint | None:
    # agent/config.zeek: 127.0.0.1 and Management::Controller::network_info()$bound_port,
    # i.e. the controller's own listen port setting (ZEEK_CONTROLLER_PORT or 2150/tcp).
    port, source = ctx.controller_listen_port()
    if source != "default":
        ctx.notes["controller"] = f"default, port from {source}"
    return Endpoint("127.0.0.1", port) if port else None


COMMON = (
    Spec("state_dir", PATH, _default_state_dir, "ZEEK_MANAGEMENT_STATE_DIR", "--state-dir",
         "state directory (default <zeek prefix>/var/lib; without a Zeek "
         "/var/lib/zeek-mgmt as root, else the XDG state dir)"),
    Spec("spool_dir", PATH, lambda ctx: _installation_dir(ctx, "spool_dir", "spool"),
         "ZEEK_MANAGEMENT_SPOOL_DIR", "--spool-dir",
         "spool directory (default <zeek prefix>/spool, else <state_dir>/spool)"),
    Spec("log_level", LOG_LEVEL, "info", None, "--log-level", "debug, info, warning or error"),
)  # fmt: skip

#: Issue 13, metrics: each daemon's Prometheus endpoint (0 = off).
_METRICS = (
    Spec("metrics_port", LISTEN_PORT, 0, None, "--metrics-port",
         "port of the Prometheus metrics endpoint, 0 = off"),
    Spec("metrics_address", STR, "127.0.0.1", None, None,
         "address of the metrics endpoint"),
)  # fmt: skip

#: Issue 13, housekeeping: retention, disk checks, expiry of crash and old node dirs.
_HOUSEKEEPING = (
    Spec("housekeeping_interval", SECONDS, 300.0),
    Spec("log_expire_interval", EXPIRE_INTERVAL, 0.0),
    Spec("keep_logs", STR_LIST, ()),
    Spec("archive_max_size", SIZE, 0),
    Spec("min_disk_space", PERCENT, 5.0),
    Spec("expire_for_disk_space", BOOL, False),
    Spec("crash_expire_interval", EXPIRE_INTERVAL, 0.0),
)

#: The agent channel's TLS and the bounds per peer, last in both roles' tables.
_CHANNEL = (
    Spec("tls_cert", OPT_PATH, None),
    Spec("tls_key", OPT_PATH, None),
    Spec("tls_ca", OPT_PATH, None),
    Spec("tls_client_auth", BOOL, False),
    Spec("max_message_size", BYTES, 16 * MIB),
    # Per-peer bounds (the defaults of mgmt.transport.connection).
    Spec("max_send_buffer", BYTES, 16 * MIB),
    Spec("max_connections", COUNT, 256),
    Spec("handshake_timeout", SECONDS, 10.0),
)

CONTROLLER = (
    Spec("name", STR, lambda ctx: f"controller-{ctx.host.hostname}", "ZEEK_CONTROLLER_NAME",
         "--name", "controller name (default controller-<hostname>)"),
    Spec("listen_address", STR, "0.0.0.0", "ZEEK_CONTROLLER_ADDR", "--listen-address",
         "address of the agent-facing port"),
    Spec("listen_port", LISTEN_PORT, 2150, "ZEEK_CONTROLLER_PORT", "--listen-port",
         "agent-facing port, 0 = do not listen"),
    Spec("listen_address_websocket", STR, "0.0.0.0", "ZEEK_CONTROLLER_WEBSOCKET_ADDR",
         "--websocket-address", "address of the client port"),
    Spec("listen_port_websocket", LISTEN_PORT, 2149, "ZEEK_CONTROLLER_WEBSOCKET_PORT",
         "--websocket-port", "client (zeek-client) port, 0 = do not listen"),
    Spec("request_timeout", SECONDS, 10.0, None, "--request-timeout",
         "seconds before a request times out"),
    Spec("auto_assign_broker_ports", BOOL, True),
    Spec("auto_assign_broker_start_port", PORT, 2200),
    Spec("auto_assign_metrics_ports", BOOL, True),
    Spec("auto_assign_metrics_start_port", PORT, 9000),
    Spec("websocket_tls_cert", OPT_PATH, None),
    Spec("websocket_tls_key", OPT_PATH, None),
    Spec("websocket_tls_ca", OPT_PATH, None),
    *_METRICS,
    *_CHANNEL,
)  # fmt: skip

AGENT = (
    Spec("name", STR, lambda ctx: f"agent-{ctx.host.hostname}", "ZEEK_AGENT_NAME", "--name",
         "agent (instance) name (default agent-<hostname>)"),
    Spec("listen_address", STR, "0.0.0.0", "ZEEK_AGENT_ADDR", "--listen-address",
         "address the agent listens on"),
    Spec("listen_port", LISTEN_PORT, 2151, "ZEEK_AGENT_PORT", "--listen-port",
         "port the agent listens on, 0 = do not listen"),
    Spec("controller", ENDPOINT, _default_controller, None, "--controller",
         "controller to dial, HOST:PORT or none (default 127.0.0.1:<controller port>)"),
    Spec("zeek", OPT_STR, lambda ctx: which("zeek", ctx.path), None, "--zeek",
         "zeek executable (default: zeek on PATH)"),
    Spec("node_scripts", STR_LIST, (), None, "--node-script",
         "script every node loads (repeatable)"),
    Spec("node_args", STR_LIST, (), None, "--node-arg",
         "extra zeek argument for every node (repeatable; write --node-arg=-X for options)"),
    Spec("request_timeout", SECONDS, 5.0, None, "--request-timeout",
         "seconds before a request times out"),
    Spec("keep_nodes", BOOL, False, None, "--keep-nodes",
         "leave nodes running when the agent exits"),
    Spec("stop_grace", NONNEG_SECONDS, 26.0),
    # ordered start (issue 11)
    Spec("ordered_start", BOOL, True),
    Spec("start_group_timeout", SECONDS, 10.0),
    Spec("archive_logs", BOOL, True),
    Spec("archive_interval", ARCHIVE_INTERVAL, ROTATION_INTERVAL),
    Spec("archive_dir", PATH, lambda ctx: _installation_dir(ctx, "archive_dir", "logs")),
    Spec("archive_cmd", OPT_STR, lambda ctx: _archiver_command(ctx)),
    Spec("node_websocket_start_port", PORT, 27800, "ZEEK_MGMT_NODE_WEBSOCKET_START_PORT"),
    # observation (issue 12; README, "Crashes, diag, top, netstats")
    Spec("max_restarts", COUNT0, 0, None, None,
         "consecutive automatic restarts before a node is given up (FAILED); 0 = forever"),
    Spec("crash_keep", COUNT0, 10, None, None,
         "crash directories kept per node (<node dir>/crash/<time>); 0 = none"),
    Spec("notify_cmd", COMMAND, (), None, None,
         "command run when a node crashes, fails, gives up or recovers"),
    Spec("notify_shell", BOOL, False, None, None, "run notify_cmd through /bin/sh -c"),
    Spec("notify_timeout", SECONDS, 30.0, None, None, "seconds notify_cmd may take"),
    *_HOUSEKEEPING,
    *_METRICS,
    # Cluster backends (issue 14).
    Spec("cluster_backend", CLUSTER_BACKEND, "broker", "ZEEK_MGMT_CLUSTER_BACKEND",
         "--cluster-backend", "cluster backend of the nodes: broker or zeromq"),
    *_CHANNEL,
)  # fmt: skip

ROLES: dict[str, tuple[Spec, ...]] = {"controller": CONTROLLER, "agent": AGENT}
COMMON_NAMES = frozenset(spec.name for spec in COMMON)
#: Keys allowed per file section.
SECTION_SPECS: dict[str, dict[str, Spec]] = {
    "common": {s.name: s for s in COMMON},
    "controller": {s.name: s for s in COMMON + CONTROLLER},
    "agent": {s.name: s for s in COMMON + AGENT},
}
CLASSES: dict[str, type[ControllerSettings] | type[AgentSettings]] = {
    "controller": ControllerSettings,
    "agent": AgentSettings,
}


def role_specs(role: str) -> tuple[Spec, ...]:
    """The specs of a role's settings: the common ones, then the role's own."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}")
    return COMMON + ROLES[role]
