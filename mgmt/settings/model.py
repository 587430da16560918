"""The settings model: one frozen dataclass per role, the daemons' only configuration.

Pure (no I/O, no event loop): the pure state machines take these as they are. Every
default is in the settings table (:mod:`mgmt.settings.schema`), not here; values are
produced by :func:`mgmt.settings.sources.load_settings`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, TypedDict

from mgmt.core.frozen import frozen

Role = Literal["controller", "agent"]


class ServerLimits(TypedDict):
    """What one peer of a server may cost (:mod:`mgmt.transport.limits`)."""

    max_size: int
    max_send_buffer: int
    max_connections: int
    handshake_timeout: float


@frozen
class Endpoint:
    """A TCP address to dial, e.g. the controller an agent connects to."""

    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


@frozen(kw_only=True)
class DaemonSettings:
    """What the settings of both roles have (each role's are a subclass)."""

    state_dir: Path
    spool_dir: Path
    log_level: str
    name: str
    listen_address: str
    #: The port peers dial (the controller's agent port, the agent's own); 0 = do not
    #: listen (then the controller cannot dial an agent).
    listen_port: int
    request_timeout: float
    #: TLS of the agent channel (see :mod:`mgmt.settings.tls`); None: plaintext.
    tls_cert: Path | None
    tls_key: Path | None
    tls_ca: Path | None
    #: Require peers dialing us on the agent channel to present a certificate signed by
    #: ``tls_ca``.
    tls_client_auth: bool
    max_message_size: int
    #: Bytes that may wait to be sent to one peer before it is disconnected.
    max_send_buffer: int
    #: Open connections per port; more are refused.
    max_connections: int
    #: Seconds a new connection has for each of TLS, HTTP upgrade and subscriptions.
    handshake_timeout: float
    #: The Prometheus endpoint (issue 13); port 0 = off.
    metrics_port: int
    metrics_address: str

    def server_limits(self) -> ServerLimits:
        """The per-peer bounds of this daemon's WebSocket servers, as their keywords."""
        return ServerLimits(
            max_size=self.max_message_size,
            max_send_buffer=self.max_send_buffer,
            max_connections=self.max_connections,
            handshake_timeout=self.handshake_timeout,
        )

    @property
    def work_dir(self) -> Path:
        """The daemon's directory, ``<state>/nodes/<name>`` as in Zeek."""
        return self.state_dir / "nodes" / self.name


@frozen(kw_only=True)
class ControllerSettings(DaemonSettings):
    """Effective settings of a controller (``Management::Controller::`` in Zeek)."""

    listen_address_websocket: str
    #: Client-facing port (zeek-client); 0 = do not listen.
    listen_port_websocket: int
    auto_assign_broker_ports: bool
    auto_assign_broker_start_port: int
    auto_assign_metrics_ports: bool
    auto_assign_metrics_start_port: int
    #: TLS of the client port only (Zeek's ``tls_options_websocket``); None: plaintext.
    websocket_tls_cert: Path | None
    websocket_tls_key: Path | None
    #: Require clients to present a certificate signed by this CA (mutual TLS).
    websocket_tls_ca: Path | None


@frozen(kw_only=True)
class AgentSettings(DaemonSettings):
    """Effective settings of an agent (``Management::Agent::`` in Zeek)."""

    #: Where to dial the controller; ``None``: do not dial, the controller dials us.
    controller: Endpoint | None
    #: The zeek executable; empty when none was found on PATH.
    zeek: str
    node_scripts: tuple[str, ...]
    node_args: tuple[str, ...]
    keep_nodes: bool
    #: Seconds from a node's first SIGTERM to SIGKILL.
    stop_grace: float
    #: Start nodes by role in zeekctl's order (loggers, manager, proxies, workers).
    ordered_start: bool
    #: Seconds a start group waits for the previous group to be RUNNING.
    start_group_timeout: float
    archive_logs: bool
    archive_interval: float
    archive_dir: Path
    #: The archiver command; empty means the built-in archiver.
    archive_cmd: str
    node_websocket_start_port: int
    #: Consecutive automatic restarts before a node is given up (FAILED); 0: never.
    max_restarts: int
    #: Crash directories kept per node; 0: none are written.
    crash_keep: int
    #: The notification hook: an argv (run without a shell), or a string (split into
    #: words, or run by ``/bin/sh -c`` with ``notify_shell``); empty: no hook.
    notify_cmd: str | tuple[str, ...]
    notify_shell: bool
    #: Seconds one run of the hook may take before it is killed.
    notify_timeout: float
    # Housekeeping (issue 13; :mod:`mgmt.agent.housekeeping`). Intervals in seconds,
    # 0 = never expire; archive_max_size in bytes, 0 = no bound.
    housekeeping_interval: float
    log_expire_interval: float
    #: File-name patterns of archived logs never expired (zeekctl's KeepLogs).
    keep_logs: tuple[str, ...]
    archive_max_size: int
    #: Percent free below which a file system is reported low (0 = no check).
    min_disk_space: float
    #: Also remove the oldest archived days while the archive's file system is low.
    expire_for_disk_space: bool
    crash_expire_interval: float
    #: The nodes' cluster backend: ``broker`` or ``zeromq`` (issue 14).
    cluster_backend: str


Settings = ControllerSettings | AgentSettings
