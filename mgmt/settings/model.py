"""The settings model: one frozen dataclass per role, the daemons' only configuration.

Pure (no I/O, no event loop): the pure state machines take these as they are. Every
default is in the settings table (:mod:`mgmt.settings.schema`), not here; values are
produced by :func:`mgmt.settings.sources.load_settings`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Role = Literal["controller", "agent"]


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A TCP address to dial, e.g. the controller an agent connects to."""

    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


@dataclass(frozen=True, slots=True, kw_only=True)
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

    @property
    def work_dir(self) -> Path:
        """The daemon's directory, ``<state>/nodes/<name>`` as in Zeek."""
        return self.state_dir / "nodes" / self.name


@dataclass(frozen=True, slots=True, kw_only=True)
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


@dataclass(frozen=True, slots=True, kw_only=True)
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


Settings = ControllerSettings | AgentSettings
