"""The one exception hierarchy of zeek-mgmt.

Foreign exceptions (``websockets.ConnectionClosed``, ``OSError``, ``psutil.NoSuchProcess``,
``json.JSONDecodeError``, ``tomllib.TOMLDecodeError``) are translated into these at each
boundary, in one place per boundary, with ``raise ... from exc``::

    MgmtError
    ├── BrokerError                 anything about the Broker WebSocket JSON protocol
    │   ├── DecodeError             a JSON value does not decode (carries .path and .reason)
    │   ├── InvalidMessage          a whole message is malformed (carries a Broker error code)
    │   └── HandshakeError          the subscription handshake or ack went wrong
    ├── SessionClosedError          the connection is gone (``__cause__`` says why)
    ├── RequestTimeout              a request's deadline passed
    ├── SupervisorError
    │   ├── SpawnError              a node process could not be started
    │   └── NoSuchNode              a node name that is not supervised
    ├── ConfigError                 bad settings (names the key and where it came from)
    ├── ArchiveError                the log queue or archive directory is unusable
    ├── StateStoreError             a state file cannot be read or written
    ├── InstanceLocked              another daemon of the same role uses the state directory
    └── ListenError                 a listening port cannot be bound
    InvalidState(MgmtError, AssertionError)   misuse of an API (a bug in the caller)

Peer faults in the protocol layer are not raised: the sans-I/O sessions record them and
answer with Broker errors (:mod:`mgmt.broker.session`). Each class here has a raise site.
"""

from __future__ import annotations


class MgmtError(Exception):
    """Base class of every error raised on purpose by zeek-mgmt."""


class BrokerError(MgmtError):
    """An error in the Broker WebSocket JSON protocol layer."""


class DecodeError(BrokerError, ValueError):
    """A Broker JSON value could not be decoded.

    Attributes:
        path: where in the JSON document, e.g. ``data[2].data[0]`` (empty for the root).
        reason: what was wrong, e.g. ``expected count, got "abc"``.
    """

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}" if path else reason)


class InvalidMessage(BrokerError):
    """A whole message is malformed.

    Attributes:
        code: the Broker error code to answer with, e.g. ``deserialization_failed``.
        context: the human-readable context Zeek sends with that code.
    """

    def __init__(self, code: str, context: str, detail: str = "") -> None:
        self.code = code
        self.context = context
        self.detail = detail
        super().__init__(f"{code}: {context}" + (f" ({detail})" if detail else ""))


class HandshakeError(BrokerError):
    """The subscription handshake or its ack failed."""


class SessionClosedError(MgmtError):
    """The connection is closed; nothing more can be sent or received. ``__cause__``
    holds the reason when known."""


class RequestTimeout(MgmtError):
    """A request was not answered before its deadline."""


class SupervisorError(MgmtError):
    """Base class for process supervision errors."""


class SpawnError(SupervisorError):
    """A node process could not be started.

    Attributes:
        node: the node name.
    """

    def __init__(self, node: str, reason: str) -> None:
        self.node = node
        self.reason = reason
        super().__init__(f"cannot start node {node}: {reason}")


class NoSuchNode(SupervisorError, KeyError):
    """A node name that the supervisor does not know."""

    def __init__(self, node: str) -> None:
        self.node = node
        super().__init__(node)

    def __str__(self) -> str:
        return f"no such node: {self.node}"


class ConfigError(MgmtError):
    """Invalid settings. The message names the key and where the value came from."""


class _PathError(MgmtError):
    """An error about one file or directory: ``<path>: <reason>``.

    Attributes:
        path: the file or directory concerned.
        reason: what is wrong with it.
    """

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}")


class ArchiveError(_PathError):
    """The log queue or the archive directory (``path``) cannot be used (whole run
    impossible)."""


class StateStoreError(_PathError):
    """A persisted state file (``path``) cannot be read or written."""


class InstanceLocked(MgmtError):
    """Another daemon of the same role holds the lock of the state directory.

    Attributes:
        role: ``controller`` or ``agent``.
        pid: the holder's pid as it recorded it (``None`` if unreadable).
        state_dir: the directory concerned.
    """

    def __init__(self, role: str, pid: int | None, state_dir: str) -> None:
        self.role = role
        self.pid = pid
        self.state_dir = state_dir
        holder = "pid unknown" if pid is None else f"pid {pid}"
        super().__init__(f"another zeek-mgmt {role} ({holder}) is using {state_dir}")


class ListenError(MgmtError):
    """A daemon cannot bind one of its listening ports (in use, no such address, ...).

    Attributes:
        address: the address and port, as ``host:port``.
    """

    def __init__(self, address: str, reason: str) -> None:
        self.address = address
        self.reason = reason
        super().__init__(f"cannot listen on {address}: {reason}")


class InvalidState(MgmtError, AssertionError):
    """An API was used in a state that does not allow it (a programming error)."""
