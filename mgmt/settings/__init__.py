"""Settings of the controller and agent daemons: one model, four sources, every value traced.

Precedence, lowest first::

    built-in default < TOML file < Zeek's environment variables < command-line flags

Each effective value remembers where it came from, as a string: ``default``,
``file /etc/zeek-mgmt.toml``, ``env ZEEK_AGENT_PORT``, ``flag --state-dir`` or
``flag --set``. ``zeek-mgmt show-settings`` prints them.

The file
--------
``--config PATH``, else the file named by env ``ZEEK_MGMT_CONFIG``, else
``/etc/zeek-mgmt.toml`` if it exists (see :func:`find_config_path`). A file named
explicitly must exist. Layout::

    [common]                  # shared by both roles: state_dir, spool_dir, log_level
    state_dir = "/var/lib/zeek-mgmt"

    [controller]              # controller keys; may also override a [common] key
    listen_port = 2150
    log_level = "debug"       # the controller logs at debug, the agent at [common]'s level

    [agent]
    controller = "10.0.0.1:2150/tcp"
    node_scripts = ["local"]

Only these three sections exist; a key at the top level, an unknown section, an unknown
key or a value of the wrong type is a :class:`~mgmt.exceptions.ConfigError` naming the
file and the key. The whole file is checked whichever role loads it, so ``zeek-mgmt run``
(both roles, one file) fails the same way for both. A role section beats ``[common]``.

Environment variables
---------------------
Zeek's (behaviour.md §1): ``ZEEK_MANAGEMENT_STATE_DIR``, ``ZEEK_MANAGEMENT_SPOOL_DIR``,
``ZEEK_CONTROLLER_NAME``, ``ZEEK_CONTROLLER_ADDR``, ``ZEEK_CONTROLLER_PORT``,
``ZEEK_CONTROLLER_WEBSOCKET_ADDR``, ``ZEEK_CONTROLLER_WEBSOCKET_PORT``, ``ZEEK_AGENT_NAME``,
``ZEEK_AGENT_ADDR``, ``ZEEK_AGENT_PORT``, plus ours: ``ZEEK_MGMT_NODE_WEBSOCKET_START_PORT``
and ``ZEEK_MGMT_CONFIG``. As with Zeek's ``getenv``, an empty variable counts as unset.
Only the variables of the role being loaded are read (and ``ZEEK_CONTROLLER_PORT`` by the
agent, when it derives its default controller address).

Flags
-----
:func:`add_settings_flags` adds ``--config``, the common flags, the role's flags and a
repeatable ``--set [SECTION.]KEY=VALUE``. A bare ``KEY`` must belong to the role being
loaded (or to ``[common]``); a qualified key of the other role is checked and otherwise
ignored, so ``zeek-mgmt run --set controller.listen_port=3000`` works for both roles (and
the agent then dials port 3000). A dedicated flag beats ``--set`` for the same key. List
flags (``--node-script``, ``--node-arg``) replace the file's list; from ``--set`` a list is
comma-separated.

Value rules
-----------
* Ports: an integer, ``"NNNN"`` or Zeek's ``"NNNN/tcp"``, from any source. Zeek itself
  rejects a bare number in a port variable and silently does not listen; we accept it, and
  anything else (``abc``, ``70000``, ``2149/udp``, an empty string in the file or a flag) is
  an error, never a silent "not listening".
* Port 0 means "do not listen" for the three listen ports (controller ``listen_port`` and
  ``listen_port_websocket``, agent ``listen_port``), as Zeek's ``0/unknown``. It is an error
  for every other port. If the controller's agent-facing port is 0, the agent's default
  ``controller`` is ``none``: a controller that does not listen for agents dials them.
* ``agent.controller`` is ``"HOST:PORT"`` (``"[v6addr]:PORT"``, port may end in ``/tcp``),
  or ``"none"``; host ``0.0.0.0`` also means none, as in Zeek: do not dial, the controller
  dials the agent. Parsed into :class:`Endpoint` or ``None``.
* Booleans from text: ``true/false``, ``yes/no``, ``on/off``, ``1/0``. In the file they must
  be TOML booleans, numbers TOML numbers: the file is typed, text sources are parsed.
* Paths: ``tls_*`` and ``websocket_tls_*`` may be empty (``None``, not configured);
  ``state_dir``, ``spool_dir``, ``archive_dir`` may not. ``zeek`` and ``archive_cmd`` are
  strings resolved at load time (``zeek``, ``zeek-archiver``, see below); empty means "not
  found" (an error only when a node must be started) and "use the built-in archiver".
* ``agent.archive_interval = 0`` means "the rotation interval", 3600 s, and is stored so.

Defaults from the Zeek installation
-----------------------------------
As Zeek's framework (``Management::get_state_dir()``/``get_spool_dir()`` fall back to
``Installation::state_dir``/``spool_dir``; ``Management::Agent::archive_dir`` is
``Installation::log_dir``), the three directories default to those of the Zeek in use:
``state_dir`` = ``<prefix>/var/lib`` (nodes in ``<prefix>/var/lib/nodes/<name>``),
``spool_dir`` = ``<prefix>/spool`` (log queue ``<prefix>/spool/log-queue``),
``archive_dir`` = ``<prefix>/logs``. Each is independent, as in Zeek: an explicit
``state_dir`` moves neither the spool nor the archive. The Zeek in use is ``agent.zeek``
when set in the file or a flag (for the controller too, so both roles of one file agree),
else ``zeek`` on PATH; its prefix comes from the ``zeek-config`` beside it (run once per
process, only when one of the three is not explicit), else from its path
(``<prefix>/bin/zeek``); without a zeek, from a ``zeek-config`` on PATH. The directories
are read from the installation's ``base/misc/installation.zeek`` when present (a Zeek
built with its own ``--localstatedir``/``--spooldir``/``--logdir`` has them there), else
the layout above. Without any Zeek: ``/var/lib/zeek-mgmt`` as root, else
``$XDG_STATE_HOME/zeek-mgmt`` or ``~/.local/state/zeek-mgmt``, with ``<state_dir>/spool``
and ``<state_dir>/logs``. ``archive_cmd`` defaults to the ``zeek-archiver`` beside the
zeek in use (Zeek's agent runs ``<Installation::root_dir>/bin/zeek-archiver``), else one
on PATH. The sources say which rule applied, e.g. ``default (zeek-config --prefix of
/opt/zeek/bin/zeek)`` or ``default (no Zeek found)``.
"""

from __future__ import annotations

import argparse
import difflib
import functools
import math
import os
import re
import shlex
import shutil
import socket
import subprocess
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal, overload

import tomli_w

from mgmt.exceptions import ConfigError

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "AgentSettings",
    "ControllerSettings",
    "Endpoint",
    "HostInfo",
    "Role",
    "Settings",
    "ZeekInstallation",
    "add_settings_flags",
    "find_config_path",
    "find_zeek_installation",
    "load_settings",
    "peer_args",
    "render_settings",
    "settings_from_args",
]

Role = Literal["controller", "agent"]

#: Read when it exists and neither ``--config`` nor ``ZEEK_MGMT_CONFIG`` names a file.
DEFAULT_CONFIG_PATH = "/etc/zeek-mgmt.toml"
#: Env var naming the config file (beaten by ``--config``).
CONFIG_ENV = "ZEEK_MGMT_CONFIG"

_MIB = 1024 * 1024
#: Zeek's ``Log::default_rotation_interval`` in management processes (persistence.zeek).
_ROTATION_INTERVAL = 3600.0


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A TCP address to dial, e.g. the controller an agent connects to."""

    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class ControllerSettings:
    """Effective settings of a controller (``Management::Controller::`` in Zeek)."""

    state_dir: Path
    spool_dir: Path
    log_level: str
    name: str
    listen_address: str
    #: Agent-facing port; 0 = do not listen.
    listen_port: int
    listen_address_websocket: str
    #: Client-facing port (zeek-client); 0 = do not listen.
    listen_port_websocket: int
    request_timeout: float
    auto_assign_broker_ports: bool
    auto_assign_broker_start_port: int
    auto_assign_metrics_ports: bool
    auto_assign_metrics_start_port: int
    #: TLS of the client port only (Zeek's ``tls_options_websocket``); None: plaintext.
    websocket_tls_cert: Path | None
    websocket_tls_key: Path | None
    #: Require clients to present a certificate signed by this CA (mutual TLS).
    websocket_tls_ca: Path | None
    #: TLS of the agent channel: the agent port and the connections to agents we dial.
    tls_cert: Path | None
    tls_key: Path | None
    tls_ca: Path | None
    tls_client_auth: bool
    max_message_size: int
    #: Bytes that may wait to be sent to one peer before it is disconnected.
    max_send_buffer: int
    #: Open connections per port (each of the two); more are refused.
    max_connections: int
    #: Seconds a new connection has for each of TLS, HTTP upgrade and subscriptions.
    handshake_timeout: float


@dataclass(frozen=True, slots=True)
class AgentSettings:
    """Effective settings of an agent (``Management::Agent::`` in Zeek)."""

    state_dir: Path
    spool_dir: Path
    log_level: str
    name: str
    listen_address: str
    #: 0 = do not listen (then the controller cannot dial this agent).
    listen_port: int
    #: Where to dial the controller; ``None``: do not dial, the controller dials us.
    controller: Endpoint | None
    #: The zeek executable; empty when none was found on PATH.
    zeek: str
    node_scripts: tuple[str, ...]
    node_args: tuple[str, ...]
    request_timeout: float
    keep_nodes: bool
    stop_grace: float
    archive_logs: bool
    archive_interval: float
    archive_dir: Path
    #: The archiver command; empty means the built-in archiver.
    archive_cmd: str
    node_websocket_start_port: int
    tls_cert: Path | None
    tls_key: Path | None
    tls_ca: Path | None
    #: Require a dialing controller to present a certificate signed by ``tls_ca``.
    tls_client_auth: bool
    max_message_size: int
    #: Bytes that may wait to be sent to one peer before it is disconnected.
    max_send_buffer: int
    #: Open connections on the agent's port; more are refused.
    max_connections: int
    #: Seconds a new connection has for each of TLS, HTTP upgrade and subscriptions.
    handshake_timeout: float


Settings = ControllerSettings | AgentSettings


@dataclass(frozen=True, slots=True)
class HostInfo:
    """Facts about the host that defaults depend on; injected so tests need not touch it."""

    hostname: str
    is_root: bool
    home: str

    @classmethod
    def current(cls) -> HostInfo:
        """Read the facts from this process and host."""
        return cls(socket.gethostname(), os.geteuid() == 0, os.path.expanduser("~"))


# ---------------------------------------------------------------------------------------
# The Zeek installation in use: where Zeek's framework keeps its state, spool and logs.


@dataclass(frozen=True, slots=True)
class ZeekInstallation:
    """Directories of a Zeek installation, as Zeek's ``Installation::`` module has them."""

    prefix: Path
    #: ``Installation::state_dir`` (``<prefix>/var/lib`` unless configured otherwise).
    state_dir: Path
    #: ``Installation::spool_dir`` (``<prefix>/spool``).
    spool_dir: Path
    #: ``Installation::log_dir`` (``<prefix>/logs``).
    log_dir: Path
    #: How it was found, e.g. ``zeek-config --prefix of /opt/zeek/bin/zeek``.
    origin: str


_INSTALLATION_CONST = re.compile(
    r'^\s*const\s+(state_dir|spool_dir|log_dir)\s*=\s*"([^"\\]*)"\s*;', re.MULTILINE
)
#: How long zeek-config (a small shell script) may take.
_ZEEK_CONFIG_TIMEOUT = 10.0


def _is_program(path: str) -> bool:
    return os.path.isfile(path) and os.access(path, os.X_OK)


def _resolve_program(ctx: _Context, program: str) -> str:
    """A program setting as a path: a bare name is looked up on PATH ("" if not found)."""
    if not program or os.sep in program:
        return program
    return _which(ctx, program)


def _bin_dirs(program: str) -> list[str]:
    """The directory of ``program`` and, if it is a symlink, that of its target."""
    if not program:
        return []
    dirs = [os.path.dirname(os.path.abspath(program))]
    real = os.path.dirname(os.path.realpath(program))
    return dirs if real in dirs else [*dirs, real]


@functools.cache
def _ask_zeek_config(zeek_config: str) -> tuple[str, str] | None:
    """``zeek-config --prefix --script_dir``, once per process; None if it fails."""
    try:
        done = subprocess.run(
            [zeek_config, "--prefix", "--script_dir"],
            capture_output=True,
            text=True,
            timeout=_ZEEK_CONFIG_TIMEOUT,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    lines = done.stdout.splitlines()
    if done.returncode != 0 or len(lines) != 2 or not all(os.path.isabs(x) for x in lines):
        return None
    return lines[0], lines[1]


@functools.cache
def _installation_dirs(script_dir: str) -> dict[str, str]:
    """The directories ``base/misc/installation.zeek`` names (what Zeek really uses)."""
    path = os.path.join(script_dir, "base", "misc", "installation.zeek")
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError:
        return {}
    return {m[1]: m[2] for m in _INSTALLATION_CONST.finditer(text) if os.path.isabs(m[2])}


def _installation(prefix: str, script_dir: str, origin: str) -> ZeekInstallation:
    dirs = _installation_dirs(script_dir)
    return ZeekInstallation(
        prefix=Path(prefix),
        state_dir=Path(dirs.get("state_dir") or os.path.join(prefix, "var", "lib")),
        spool_dir=Path(dirs.get("spool_dir") or os.path.join(prefix, "spool")),
        log_dir=Path(dirs.get("log_dir") or os.path.join(prefix, "logs")),
        origin=origin,
    )


def find_zeek_installation(zeek: str, path: str) -> ZeekInstallation | None:
    """The installation of the Zeek in use, or None when no Zeek is found.

    ``zeek`` is the zeek executable in use ("" if none; one that is not an executable file
    is no installation): the ``zeek-config`` beside it
    (or beside the file a symlink points to) gives the prefix; without one, a zeek at
    ``<prefix>/bin/zeek`` does. Without a zeek, a ``zeek-config`` on ``path`` does.
    The directories are those of the installation's ``base/misc/installation.zeek``
    (Zeek's ``Installation::`` module, which the framework uses), else the standard layout
    ``<prefix>/var/lib``, ``<prefix>/spool``, ``<prefix>/logs``.
    """
    if zeek:
        if not _is_program(zeek):
            return None
        for bindir in _bin_dirs(zeek):
            zeek_config = os.path.join(bindir, "zeek-config")
            if _is_program(zeek_config) and (answer := _ask_zeek_config(zeek_config)):
                return _installation(*answer, origin=f"zeek-config --prefix of {zeek}")
        bindir = _bin_dirs(zeek)[-1]
        if os.path.basename(bindir) == "bin":
            prefix = os.path.dirname(bindir)
            scripts = os.path.join(prefix, "share", "zeek")
            return _installation(prefix, scripts, origin=f"prefix of {zeek}")
        return None
    zeek_config = shutil.which("zeek-config", path=path) or ""
    if zeek_config and (answer := _ask_zeek_config(zeek_config)):
        return _installation(*answer, origin=f"{zeek_config} --prefix")
    return None


# ---------------------------------------------------------------------------------------
# Value kinds. A parser takes a raw value and whether it is text (env, flag, --set) or a
# typed TOML value (file, or a typed flag such as a boolean or a list), and returns the
# typed value or raises ValueError with the problem, which the caller turns into a
# ConfigError naming the source and the key.


@dataclass(frozen=True, slots=True)
class _Kind:
    parse: Callable[[object, bool], object]
    #: Typed value -> TOML value for show-settings (its output loads back).
    show: Callable[[Any], object]
    metavar: str


def _typename(raw: object) -> str:
    names = {bool: "boolean", int: "integer", float: "float", str: "string", list: "array"}
    return names.get(type(raw), "table" if isinstance(raw, dict) else type(raw).__name__)


def _need_str(raw: object, what: str = "a string") -> str:
    if not isinstance(raw, str):
        raise ValueError(f"expected {what}, got {_typename(raw)} {raw!r}")
    return raw


def _parse_str(raw: object, text: bool) -> str:
    s = _need_str(raw)
    if not s:
        raise ValueError("must not be empty")
    return s


def _parse_opt_str(raw: object, text: bool) -> str:
    return _need_str(raw)


def _parse_path(raw: object, text: bool) -> Path:
    return Path(_parse_str(raw, text))


def _parse_opt_path(raw: object, text: bool) -> Path | None:
    s = _need_str(raw, "a path or an empty string")
    return Path(s) if s else None


_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def _parse_bool(raw: object, text: bool) -> bool:
    if isinstance(raw, bool):
        return raw
    if text and isinstance(raw, str) and raw.lower() in _TRUE | _FALSE:
        return raw.lower() in _TRUE
    expected = "true or false" if text else "a boolean"
    raise ValueError(f"expected {expected}, got {_typename(raw)} {raw!r}")


_PORT_RE = re.compile(r"([0-9]{1,5})(?:/([a-z]+))?")
_PORT_FORMS = "expected NNNN or NNNN/tcp"


def _port_number(raw: object, lowest: int) -> int:
    if isinstance(raw, int) and not isinstance(raw, bool):
        number = raw
    elif isinstance(raw, str):
        m = _PORT_RE.fullmatch(raw)
        if m is None:
            raise ValueError(f"invalid port {raw!r}: {_PORT_FORMS}")
        if m[2] not in (None, "tcp"):
            raise ValueError(f"invalid port {raw!r}: only tcp ports are supported")
        number = int(m[1])
    else:
        raise ValueError(f"invalid port {raw!r}: {_PORT_FORMS}")
    if not lowest <= number <= 65535:
        raise ValueError(f"invalid port {raw!r}: must be in {lowest}-65535")
    return number


def _parse_port(raw: object, text: bool) -> int:
    return _port_number(raw, 1)


def _parse_listen_port(raw: object, text: bool) -> int:
    return _port_number(raw, 0)


def _parse_number(raw: object, text: bool, convert: type[float] | type[int]) -> float:
    if text and isinstance(raw, str):
        try:
            value: float = convert(raw)
        except ValueError:
            what = "an integer" if convert is int else "a number"
            raise ValueError(f"expected {what}, got {raw!r}") from None
    elif isinstance(raw, int | float) and not isinstance(raw, bool):
        if convert is int and not isinstance(raw, int):
            raise ValueError(f"expected an integer, got {raw!r}")
        value = raw
    else:
        raise ValueError(f"expected a number, got {_typename(raw)} {raw!r}")
    if not math.isfinite(value):
        raise ValueError(f"expected a finite number, got {raw!r}")
    return value


def _parse_positive_float(raw: object, text: bool) -> float:
    value = float(_parse_number(raw, text, float))
    if value <= 0:
        raise ValueError(f"must be greater than 0, got {raw!r}")
    return value


def _parse_nonneg_float(raw: object, text: bool) -> float:
    value = float(_parse_number(raw, text, float))
    if value < 0:
        raise ValueError(f"must not be negative, got {raw!r}")
    return value


def _parse_archive_interval(raw: object, text: bool) -> float:
    # agent/config.zeek: "0 sec" means Log::default_rotation_interval (1 hr in the agent).
    return _parse_nonneg_float(raw, text) or _ROTATION_INTERVAL


def _parse_positive_int(raw: object, text: bool) -> int:
    value = int(_parse_number(raw, text, int))
    if value <= 0:
        raise ValueError(f"must be greater than 0, got {raw!r}")
    return value


def _parse_str_list(raw: object, text: bool) -> tuple[str, ...]:
    if text and isinstance(raw, str):
        return tuple(item.strip() for item in raw.split(",") if item.strip())
    if isinstance(raw, list | tuple) and all(isinstance(item, str) for item in raw):
        return tuple(raw)
    raise ValueError(f"expected an array of strings, got {_typename(raw)} {raw!r}")


LOG_LEVELS = ("debug", "info", "warning", "error")


def _parse_log_level(raw: object, text: bool) -> str:
    s = _need_str(raw).lower()
    if s not in LOG_LEVELS:
        raise ValueError(f"expected one of {', '.join(LOG_LEVELS)}, got {raw!r}")
    return s


def _parse_endpoint(raw: object, text: bool) -> Endpoint | None:
    s = _need_str(raw, '"HOST:PORT" or "none"')
    if s.lower() == "none":
        return None
    host, sep, port = s.rpartition(":")
    if not sep or not host:
        raise ValueError(f'expected "HOST:PORT" or "none", got {s!r}')
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"write an IPv6 address as [ADDR]:PORT, got {s!r}")
    number = _port_number(port, 1)
    # agent/config.zeek: address "0.0.0.0" means "do not connect; the controller connects".
    return None if host == "0.0.0.0" else Endpoint(host, number)


def _show_plain(value: object) -> object:
    return list(value) if isinstance(value, tuple) else value


def _show_path(value: Path | None) -> str:
    return "" if value is None else str(value)


def _show_endpoint(value: Endpoint | None) -> str:
    return "none" if value is None else str(value)


_STR = _Kind(_parse_str, _show_plain, "STR")
_OPT_STR = _Kind(_parse_opt_str, _show_plain, "STR")
_PATH = _Kind(_parse_path, _show_path, "PATH")
_OPT_PATH = _Kind(_parse_opt_path, _show_path, "PATH")
_BOOL = _Kind(_parse_bool, _show_plain, "BOOL")
_PORT = _Kind(_parse_port, _show_plain, "PORT")
_LISTEN_PORT = _Kind(_parse_listen_port, _show_plain, "PORT")
_SECONDS = _Kind(_parse_positive_float, _show_plain, "SECONDS")
_NONNEG_SECONDS = _Kind(_parse_nonneg_float, _show_plain, "SECONDS")
_ARCHIVE_INTERVAL = _Kind(_parse_archive_interval, _show_plain, "SECONDS")
_BYTES = _Kind(_parse_positive_int, _show_plain, "BYTES")
_COUNT = _Kind(_parse_positive_int, _show_plain, "N")
_STR_LIST = _Kind(_parse_str_list, _show_plain, "STR")
_LOG_LEVEL = _Kind(_parse_log_level, _show_plain, "LEVEL")
_ENDPOINT = _Kind(_parse_endpoint, _show_endpoint, "HOST:PORT")


# ---------------------------------------------------------------------------------------
# The settings table. Order = dataclass field order = show-settings order.


@dataclass(frozen=True, slots=True)
class _Spec:
    name: str
    kind: _Kind
    #: A constant default, or a function of the load context (see _Context).
    default: object
    env: str | None = None
    flag: str | None = None
    help: str = ""


def _default_state_dir(ctx: _Context) -> Path:
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


def _default_spool_dir(ctx: _Context) -> Path:
    # As Management::get_spool_dir(): the installation's, whatever the state dir is.
    zeek = ctx.zeek_installation()
    if zeek is not None:
        ctx.notes["spool_dir"] = f"default ({zeek.origin})"
        return zeek.spool_dir
    ctx.notes["spool_dir"] = "default (<state_dir>/spool, no Zeek found)"
    return Path(ctx.values["state_dir"]) / "spool"


def _default_archive_dir(ctx: _Context) -> Path:
    # As Management::Agent::archive_dir: Installation::log_dir, not under the spool.
    zeek = ctx.zeek_installation()
    if zeek is not None:
        ctx.notes["archive_dir"] = f"default ({zeek.origin})"
        return zeek.log_dir
    ctx.notes["archive_dir"] = "default (<state_dir>/logs, no Zeek found)"
    return Path(ctx.values["state_dir"]) / "logs"


def _which(ctx: _Context, program: str) -> str:
    return shutil.which(program, path=ctx.env.get("PATH", os.defpath)) or ""


def _archiver_command(ctx: _Context) -> str:
    # Zeek's agent runs <Installation::root_dir>/bin/zeek-archiver: the one installed
    # beside the zeek in use; else one on PATH. archive_cmd is a shell command line (as in
    # Zeek), so a found path is quoted.
    zeek = ctx.values.get("zeek") or ""
    for bindir in _bin_dirs(_resolve_program(ctx, zeek)):
        beside = os.path.join(bindir, "zeek-archiver")
        if _is_program(beside):
            ctx.notes["archive_cmd"] = f"default (zeek-archiver beside {zeek})"
            return shlex.quote(beside)
    path = _which(ctx, "zeek-archiver")
    return shlex.quote(path) if path else ""


def _default_controller(ctx: _Context) -> Endpoint | None:
    # agent/config.zeek: 127.0.0.1 and Management::Controller::network_info()$bound_port,
    # i.e. the controller's own listen port setting (ZEEK_CONTROLLER_PORT or 2150/tcp).
    port, source = ctx.controller_listen_port()
    if source != "default":
        ctx.notes["controller"] = f"default, port from {source}"
    return Endpoint("127.0.0.1", port) if port else None


_COMMON = (
    _Spec("state_dir", _PATH, _default_state_dir, "ZEEK_MANAGEMENT_STATE_DIR", "--state-dir",
          "state directory (default <zeek prefix>/var/lib; without a Zeek "
          "/var/lib/zeek-mgmt as root, else the XDG state dir)"),
    _Spec("spool_dir", _PATH, _default_spool_dir, "ZEEK_MANAGEMENT_SPOOL_DIR", "--spool-dir",
          "spool directory (default <zeek prefix>/spool, else <state_dir>/spool)"),
    _Spec("log_level", _LOG_LEVEL, "info", None, "--log-level", "debug, info, warning or error"),
)  # fmt: skip

_CONTROLLER = (
    _Spec("name", _STR, lambda ctx: f"controller-{ctx.host.hostname}", "ZEEK_CONTROLLER_NAME",
          "--name", "controller name (default controller-<hostname>)"),
    _Spec("listen_address", _STR, "0.0.0.0", "ZEEK_CONTROLLER_ADDR", "--listen-address",
          "address of the agent-facing port"),
    _Spec("listen_port", _LISTEN_PORT, 2150, "ZEEK_CONTROLLER_PORT", "--listen-port",
          "agent-facing port, 0 = do not listen"),
    _Spec("listen_address_websocket", _STR, "0.0.0.0", "ZEEK_CONTROLLER_WEBSOCKET_ADDR",
          "--websocket-address", "address of the client port"),
    _Spec("listen_port_websocket", _LISTEN_PORT, 2149, "ZEEK_CONTROLLER_WEBSOCKET_PORT",
          "--websocket-port", "client (zeek-client) port, 0 = do not listen"),
    _Spec("request_timeout", _SECONDS, 10.0, None, "--request-timeout",
          "seconds before a request times out"),
    _Spec("auto_assign_broker_ports", _BOOL, True),
    _Spec("auto_assign_broker_start_port", _PORT, 2200),
    _Spec("auto_assign_metrics_ports", _BOOL, True),
    _Spec("auto_assign_metrics_start_port", _PORT, 9000),
    _Spec("websocket_tls_cert", _OPT_PATH, None),
    _Spec("websocket_tls_key", _OPT_PATH, None),
    _Spec("websocket_tls_ca", _OPT_PATH, None),
    _Spec("tls_cert", _OPT_PATH, None),
    _Spec("tls_key", _OPT_PATH, None),
    _Spec("tls_ca", _OPT_PATH, None),
    _Spec("tls_client_auth", _BOOL, False),
    _Spec("max_message_size", _BYTES, 16 * _MIB),
    # Per-peer bounds (the defaults of mgmt.transport.connection).
    _Spec("max_send_buffer", _BYTES, 16 * _MIB),
    _Spec("max_connections", _COUNT, 256),
    _Spec("handshake_timeout", _SECONDS, 10.0),
)  # fmt: skip

_AGENT = (
    _Spec("name", _STR, lambda ctx: f"agent-{ctx.host.hostname}", "ZEEK_AGENT_NAME", "--name",
          "agent (instance) name (default agent-<hostname>)"),
    _Spec("listen_address", _STR, "0.0.0.0", "ZEEK_AGENT_ADDR", "--listen-address",
          "address the agent listens on"),
    _Spec("listen_port", _LISTEN_PORT, 2151, "ZEEK_AGENT_PORT", "--listen-port",
          "port the agent listens on, 0 = do not listen"),
    _Spec("controller", _ENDPOINT, _default_controller, None, "--controller",
          "controller to dial, HOST:PORT or none (default 127.0.0.1:<controller port>)"),
    _Spec("zeek", _OPT_STR, lambda ctx: _which(ctx, "zeek"), None, "--zeek",
          "zeek executable (default: zeek on PATH)"),
    _Spec("node_scripts", _STR_LIST, (), None, "--node-script",
          "script every node loads (repeatable)"),
    _Spec("node_args", _STR_LIST, (), None, "--node-arg",
          "extra zeek argument for every node (repeatable; write --node-arg=-X for options)"),
    _Spec("request_timeout", _SECONDS, 5.0, None, "--request-timeout",
          "seconds before a request times out"),
    _Spec("keep_nodes", _BOOL, False, None, "--keep-nodes",
          "leave nodes running when the agent exits"),
    _Spec("stop_grace", _NONNEG_SECONDS, 26.0),
    _Spec("archive_logs", _BOOL, True),
    _Spec("archive_interval", _ARCHIVE_INTERVAL, _ROTATION_INTERVAL),
    _Spec("archive_dir", _PATH, _default_archive_dir),
    _Spec("archive_cmd", _OPT_STR, lambda ctx: _archiver_command(ctx)),
    _Spec("node_websocket_start_port", _PORT, 27800, "ZEEK_MGMT_NODE_WEBSOCKET_START_PORT"),
    _Spec("tls_cert", _OPT_PATH, None),
    _Spec("tls_key", _OPT_PATH, None),
    _Spec("tls_ca", _OPT_PATH, None),
    _Spec("tls_client_auth", _BOOL, False),
    _Spec("max_message_size", _BYTES, 16 * _MIB),
    # Per-peer bounds (the defaults of mgmt.transport.connection).
    _Spec("max_send_buffer", _BYTES, 16 * _MIB),
    _Spec("max_connections", _COUNT, 256),
    _Spec("handshake_timeout", _SECONDS, 10.0),
)  # fmt: skip

_ROLES: dict[str, tuple[_Spec, ...]] = {"controller": _CONTROLLER, "agent": _AGENT}
_COMMON_NAMES = frozenset(spec.name for spec in _COMMON)
#: Keys allowed per file section.
_SECTION_SPECS: dict[str, dict[str, _Spec]] = {
    "common": {s.name: s for s in _COMMON},
    "controller": {s.name: s for s in _COMMON + _CONTROLLER},
    "agent": {s.name: s for s in _COMMON + _AGENT},
}
_CLASSES: dict[str, type[ControllerSettings] | type[AgentSettings]] = {
    "controller": ControllerSettings,
    "agent": AgentSettings,
}


def _role_specs(role: str) -> tuple[_Spec, ...]:
    if role not in _ROLES:
        raise ValueError(f"unknown role {role!r}")
    return _COMMON + _ROLES[role]


# ---------------------------------------------------------------------------------------
# Loading.

#: A parsed value and the source it came from.
_Sourced = tuple[Any, str]


def _parse(spec: _Spec, raw: object, text: bool, source: str, key: str) -> Any:
    try:
        return spec.kind.parse(raw, text)
    except ValueError as exc:
        raise ConfigError(f"{source}: {key}: {exc}") from None


#: Keys that existed once, with what replaces them.
_REMOVED = {
    ("controller", "tls_client_auth_websocket"): (
        "the client port has its own TLS settings now (Zeek's tls_options_websocket): "
        "websocket_tls_cert and websocket_tls_key, and websocket_tls_ca to require client "
        "certificates signed by that CA; tls_* apply to the agent channel only"
    ),
}


def _unknown_key(source: str, section: str, key: str) -> ConfigError:
    if (section, key) in _REMOVED:
        return ConfigError(f"{source}: {section}.{key} was removed: {_REMOVED[section, key]}")
    known = _SECTION_SPECS.get(section, {})
    close = difflib.get_close_matches(key, known, n=1)
    hint = f" (did you mean {section}.{close[0]}?)" if close else ""
    return ConfigError(f"{source}: unknown key {section}.{key}{hint}")


def _read_file(path: str) -> dict[tuple[str, str], _Sourced]:
    """Read and check a whole settings file: (section, key) -> (value, source)."""
    source = f"file {path}"
    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read: {exc.strerror or exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: invalid TOML: {exc}") from exc
    sections = ", ".join(f"[{s}]" for s in _SECTION_SPECS)
    values: dict[tuple[str, str], _Sourced] = {}
    for section, table in doc.items():
        if not isinstance(table, dict):
            raise ConfigError(
                f"{source}: top-level key {section!r} is not allowed; put it in one of {sections}"
            )
        if section not in _SECTION_SPECS:
            raise ConfigError(f"{source}: unknown section [{section}]; expected {sections}")
        for key, raw in table.items():
            spec = _SECTION_SPECS[section].get(key)
            if spec is None:
                raise _unknown_key(source, section, key)
            values[section, key] = (_parse(spec, raw, False, source, f"{section}.{key}"), source)
    return values


def _check_flags(
    role: str, flags: Mapping[str, object], flag_sources: Mapping[str, str]
) -> tuple[dict[str, _Sourced], dict[tuple[str, str], _Sourced]]:
    """Parse flags: this role's (by name; bare, ``common.`` or ``<role>.``) and the others'."""
    own: dict[str, _Sourced] = {}
    other: dict[tuple[str, str], _Sourced] = {}
    for key, raw in flags.items():
        section, dot, name = key.rpartition(".")
        section = section if dot else role
        spec = _SECTION_SPECS.get(section, {}).get(name)
        dedicated = spec is not None and spec.flag is not None and not dot
        label = flag_sources.get(key) or (
            f"flag {spec.flag}" if spec and dedicated else "flag --set"
        )
        if spec is None:
            raise _unknown_key(label, section, name)
        value = _parse(spec, raw, isinstance(raw, str), label, f"{section}.{name}")
        if section in ("common", role):
            own[name] = (value, label)
        else:
            other[section, name] = (value, label)
    return own, other


@dataclass
class _Context:
    """What defaults and lookups need while one role is loaded."""

    role: str
    host: HostInfo
    env: Mapping[str, str]
    file: dict[tuple[str, str], _Sourced]
    own_flags: dict[str, _Sourced]
    other_flags: dict[tuple[str, str], _Sourced]
    values: dict[str, Any]
    #: A more precise source than "default" for a computed default, by name.
    notes: dict[str, str]
    #: The Zeek installation (False: not looked for yet; None: none found).
    _zeek: ZeekInstallation | None | Literal[False] = False

    def explicit(self, section: str, spec: _Spec) -> _Sourced | None:
        """The highest-precedence non-default value of ``section.spec``, if any."""
        if section == self.role and spec.name in self.own_flags:
            return self.own_flags[spec.name]
        if (section, spec.name) in self.other_flags:
            return self.other_flags[section, spec.name]
        if spec.env and self.env.get(spec.env):  # Zeek's getenv: empty = unset
            source = f"env {spec.env}"
            return _parse(spec, self.env[spec.env], True, source, f"{section}.{spec.name}"), source
        for where in (section, "common") if spec.name in _COMMON_NAMES else (section,):
            if (where, spec.name) in self.file:
                return self.file[where, spec.name]
        return None

    def zeek_installation(self) -> ZeekInstallation | None:
        """The installation of the Zeek in use, looked for once, when a default needs it.

        The Zeek in use is ``agent.zeek`` when set in the file or a flag (also when the
        controller is loaded, so that both roles of one configuration agree), else
        ``zeek`` on PATH.
        """
        if self._zeek is False:
            found = self.explicit("agent", _SECTION_SPECS["agent"]["zeek"])
            zeek = _resolve_program(self, found[0]) if found else _which(self, "zeek")
            self._zeek = find_zeek_installation(zeek, self.env.get("PATH", os.defpath))
        return self._zeek

    def controller_listen_port(self) -> tuple[int, str]:
        """The controller's agent-facing port as configured here, and its source."""
        spec = _SECTION_SPECS["controller"]["listen_port"]
        port, source = self.explicit("controller", spec) or (spec.default, "default")
        assert isinstance(port, int)
        return port, source


@overload
def load_settings(
    role: Literal["controller"],
    *,
    config_path: str | None,
    env: Mapping[str, str],
    flags: Mapping[str, object],
    flag_sources: Mapping[str, str] | None = None,
    host: HostInfo | None = None,
) -> tuple[ControllerSettings, dict[str, str]]: ...
@overload
def load_settings(
    role: Literal["agent"],
    *,
    config_path: str | None,
    env: Mapping[str, str],
    flags: Mapping[str, object],
    flag_sources: Mapping[str, str] | None = None,
    host: HostInfo | None = None,
) -> tuple[AgentSettings, dict[str, str]]: ...
@overload
def load_settings(
    role: Role,
    *,
    config_path: str | None,
    env: Mapping[str, str],
    flags: Mapping[str, object],
    flag_sources: Mapping[str, str] | None = None,
    host: HostInfo | None = None,
) -> tuple[Settings, dict[str, str]]: ...
def load_settings(
    role: Role,
    *,
    config_path: str | None,
    env: Mapping[str, str],
    flags: Mapping[str, object],
    flag_sources: Mapping[str, str] | None = None,
    host: HostInfo | None = None,
) -> tuple[Settings, dict[str, str]]:
    """Compute a role's effective settings and the source of each.

    Reads only the file named (no default lookup: see :func:`find_config_path`), the given
    ``env`` (never ``os.environ``) and, for ``zeek``/``archive_cmd``, ``env["PATH"]``.

    Args:
        role: ``"controller"`` or ``"agent"``.
        config_path: the TOML file to read, or None for none.
        env: environment variables (``os.environ`` in the daemons).
        flags: command-line values by key: ``name`` (this role or common),
            ``common.name`` or ``<role>.name``. Strings are parsed like env values; other
            values (a bool, a list) must already have the right type. Keys of the other
            role are checked and ignored, except that the agent's default ``controller``
            follows ``controller.listen_port``.
        flag_sources: the source label per flags key (default ``flag --<its flag>``, or
            ``flag --set`` for keys without a dedicated flag).
        host: hostname, euid and home directory; default: this host's.

    Returns:
        The settings and a dict name -> source (``default``, ``file PATH``, ``env VAR``,
        ``flag --x``), in field order.

    Raises:
        ConfigError: unreadable or malformed file, unknown section or key, wrong type or
            invalid value in any source. The message names the source and the key.
    """
    specs = _role_specs(role)
    own, other = _check_flags(role, flags, flag_sources or {})
    ctx = _Context(
        role=role,
        host=host or HostInfo.current(),
        env=env,
        file=_read_file(config_path) if config_path is not None else {},
        own_flags=own,
        other_flags=other,
        values={},
        notes={},
    )
    sources: dict[str, str] = {}
    for spec in specs:
        found = ctx.explicit(role, spec)
        if found is None:
            default = spec.default(ctx) if callable(spec.default) else spec.default
            found = (default, ctx.notes.get(spec.name, "default"))
        ctx.values[spec.name], sources[spec.name] = found
    return _CLASSES[role](**ctx.values), sources


def find_config_path(
    explicit: str | None, env: Mapping[str, str], default: str = DEFAULT_CONFIG_PATH
) -> str | None:
    """Which settings file to read: ``--config``, else ``$ZEEK_MGMT_CONFIG``, else ``default``
    if it exists, else None. A file named by the first two need not exist here; reading it
    then fails with a ConfigError."""
    if explicit:
        return explicit
    if env.get(CONFIG_ENV):
        return env[CONFIG_ENV]
    return default if os.path.exists(default) else None


# ---------------------------------------------------------------------------------------
# Command line.


def _dest(name: str) -> str:
    return f"settings_{name}"


def add_settings_flags(parser: argparse.ArgumentParser, role: Role | Literal["both"]) -> None:
    """Add ``--settings-file``, ``--set`` and the role's setting flags to ``parser``.

    Values stay strings (or bools and lists) so :func:`settings_from_args` validates them
    with messages naming the flag. Read them back with :func:`settings_from_args`, once per
    role. ``"both"`` (for ``zeek-mgmt run``) adds only the flags that mean the same for
    both roles: ``--config``, ``--state-dir``, ``--spool-dir``, ``--log-level``, ``--set``.
    """
    group = parser.add_argument_group(
        "daemon settings (beat the settings file and the environment; "
        "see zeek-mgmt daemon-settings)"
    )
    add_settings_file_flag(group)
    for spec in _COMMON if role == "both" else _role_specs(role):
        if spec.flag is None:
            continue
        if spec.kind is _BOOL:
            group.add_argument(
                spec.flag,
                dest=_dest(spec.name),
                action=argparse.BooleanOptionalAction,
                default=None,
                help=spec.help,
            )
        elif spec.kind is _STR_LIST:
            group.add_argument(
                spec.flag,
                dest=_dest(spec.name),
                action="append",
                metavar=spec.kind.metavar,
                help=spec.help,
            )
        else:
            group.add_argument(
                spec.flag, dest=_dest(spec.name), metavar=spec.kind.metavar, help=spec.help
            )
    group.add_argument(
        "--set",
        dest=_dest("set"),
        action="append",
        default=[],
        metavar="[SECTION.]KEY=VALUE",
        help="any daemon setting, e.g. --set agent.stop_grace=10 (repeatable; sections "
        "common, controller, agent)",
    )


def add_settings_file_flag(group: argparse._ActionsContainer) -> None:
    """``--settings-file FILE`` (the former ``--config``, still accepted, not shown: next
    to the client commands' ``-c/--configfile`` it read as the same thing)."""
    group.add_argument(
        "--settings-file",
        dest=_dest("config"),
        metavar="FILE",
        help=f"TOML settings file (default ${CONFIG_ENV}, else {DEFAULT_CONFIG_PATH} if present)",
    )
    group.add_argument("--config", dest=_dest("config"), help=argparse.SUPPRESS)


def settings_from_args(
    role: Role,
    args: argparse.Namespace,
    env: Mapping[str, str] = os.environ,
    *,
    default_config_path: str = DEFAULT_CONFIG_PATH,
    host: HostInfo | None = None,
) -> tuple[Settings, dict[str, str]]:
    """Load a role's settings from parsed arguments (see :func:`add_settings_flags`).

    Attributes missing from ``args`` count as not given, so a parser with only some of the
    flags (or another role's flags) works.

    Raises:
        ConfigError: as :func:`load_settings`, and for a ``--set`` without ``=``.
    """
    flags: dict[str, object] = {}
    labels: dict[str, str] = {}
    for entry in getattr(args, _dest("set"), None) or []:
        key, sep, value = entry.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"flag --set: expected [SECTION.]KEY=VALUE, got {entry!r}")
        flags[key.strip()] = value
        labels[key.strip()] = "flag --set"
    for spec in _role_specs(role):
        value = getattr(args, _dest(spec.name), None) if spec.flag else None
        if value is not None:
            # The dedicated flag beats --set, whichever spelling --set used.
            for key in (spec.name, f"{role}.{spec.name}", f"common.{spec.name}"):
                flags.pop(key, None)
            flags[spec.name] = value
            labels[spec.name] = f"flag {spec.flag}"
    config = find_config_path(getattr(args, _dest("config"), None), env, default_config_path)
    return load_settings(
        role, config_path=config, env=env, flags=flags, flag_sources=labels, host=host
    )


def peer_args(args: argparse.Namespace) -> argparse.Namespace:
    """The flags of one role's command line that speak for the other role as well:
    ``--config``, the common flags and the ``--set`` entries that name a section.

    The agent loads its controller's settings from these (``settings_from_args(
    "controller", peer_args(args))``); the role's own dedicated flags, and bare ``--set``
    keys, which mean the role's own keys, are left out.
    """
    peer = argparse.Namespace()
    for name in ("config", *(spec.name for spec in _COMMON)):
        setattr(peer, _dest(name), getattr(args, _dest(name), None))
    entries = getattr(args, _dest("set"), None) or []
    setattr(peer, _dest("set"), [e for e in entries if "." in e.partition("=")[0]])
    return peer


def render_settings(settings: Settings, sources: Mapping[str, str]) -> list[str]:
    """``key = value  # source`` lines in field order; valid TOML for the role's section."""
    role = "controller" if isinstance(settings, ControllerSettings) else "agent"
    specs = {spec.name: spec for spec in _role_specs(role)}
    lines = []
    for f in fields(settings):
        value = specs[f.name].kind.show(getattr(settings, f.name))
        line = tomli_w.dumps({f.name: value}).strip()
        lines.append(f"{line}  # {sources.get(f.name, 'default')}")
    return lines
