"""Value kinds of the settings: how each type is parsed from every source and shown.

A parser takes a raw value and whether it is text (env, flag, ``--set``) or a typed TOML
value (file, or a typed flag such as a boolean or a list), and returns the typed value or
raises ValueError with the problem, which the loader turns into a
:class:`~mgmt.exceptions.ConfigError` naming the source and the key.

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
  dials the agent. Parsed into :class:`~mgmt.settings.model.Endpoint` or ``None``.
* Booleans from text: ``true/false``, ``yes/no``, ``on/off``, ``1/0``. In the file they must
  be TOML booleans, numbers TOML numbers: the file is typed, text sources are parsed.
* Paths: ``tls_*`` and ``websocket_tls_*`` may be empty (``None``, not configured);
  ``state_dir``, ``spool_dir``, ``archive_dir`` may not. ``zeek`` and ``archive_cmd`` are
  strings resolved at load time (``zeek``, ``zeek-archiver``, see
  :mod:`mgmt.settings.zeek`); empty means "not found" (an error only when a node must be
  started) and "use the built-in archiver".
* ``agent.archive_interval = 0`` means "the rotation interval", 3600 s, and is stored so.
* Commands (``agent.notify_cmd``): a TOML array is the argv itself (run without a
  shell); a string is kept as written and must split into words (shlex).
* Expiry intervals (``log_expire_interval``, ``crash_expire_interval``) are zeekctl's:
  an integer followed by ``day``, ``hr``, ``min`` (or ``sec``; plurals and a space
  allowed), a bare number means days; 0 = never expire. Stored in seconds.
* Sizes (``archive_max_size``): bytes, or a number with ``K``, ``M``, ``G``, ``T``
  (powers of 1024); 0 = no bound. Percentages (``min_disk_space``): 0 to 100.
"""

from __future__ import annotations

import math
import re
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mgmt.core.frozen import frozen
from mgmt.settings.model import Endpoint

#: Zeek's ``Log::default_rotation_interval`` in management processes (persistence.zeek).
ROTATION_INTERVAL = 3600.0


@frozen
class Kind:
    """How the values of one type of setting are parsed, shown and named in ``--help``."""

    #: ``(raw value, is text) -> typed value``; raises ValueError naming the problem.
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


def port_number(raw: object, lowest: int) -> int:
    """A port from an integer, ``"NNNN"`` or ``"NNNN/tcp"``, in ``lowest``-65535."""
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
    return port_number(raw, 1)


def _parse_listen_port(raw: object, text: bool) -> int:
    return port_number(raw, 0)


def _parse_number(
    raw: object, text: bool, convert: type[float] | type[int], *, positive: bool
) -> float:
    """``raw`` as a finite number of ``convert``'s kind, greater than 0 where ``positive``,
    else not negative; ``text``: a string is parsed (env vars, flags)."""
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
    if positive and value <= 0:
        raise ValueError(f"must be greater than 0, got {raw!r}")
    if value < 0:
        raise ValueError(f"must not be negative, got {raw!r}")
    return value


def _parse_positive_float(raw: object, text: bool) -> float:
    return float(_parse_number(raw, text, float, positive=True))


def _parse_nonneg_float(raw: object, text: bool) -> float:
    return float(_parse_number(raw, text, float, positive=False))


def _parse_archive_interval(raw: object, text: bool) -> float:
    # agent/config.zeek: "0 sec" means Log::default_rotation_interval (1 hr in the agent).
    return _parse_nonneg_float(raw, text) or ROTATION_INTERVAL


def _parse_positive_int(raw: object, text: bool) -> int:
    return int(_parse_number(raw, text, int, positive=True))


def _parse_nonneg_int(raw: object, text: bool) -> int:
    return int(_parse_number(raw, text, int, positive=False))


def _parse_command(raw: object, text: bool) -> str | tuple[str, ...]:
    # A TOML array is the argv itself; a string is split like a shell would (shlex),
    # or given to /bin/sh -c as it is where the setting says so (notify_shell).
    if isinstance(raw, list | tuple):
        if not all(isinstance(item, str) for item in raw):
            raise ValueError(f"expected an array of strings, got {raw!r}")
        if raw and not raw[0]:
            raise ValueError("the program (first element) must not be empty")
        return tuple(raw)
    s = _need_str(raw, "a command: a string or an array of strings")
    try:
        shlex.split(s)
    except ValueError as exc:
        raise ValueError(f"cannot split {s!r} into words: {exc}") from None
    return s


_EXPIRE_UNITS = {"day": 86400.0, "hr": 3600.0, "min": 60.0, "sec": 1.0}
#: Other spellings of the units (plurals, Zeek's and common ones).
_UNIT_ALIASES = {
    "": "day", "d": "day", "days": "day", "h": "hr", "hrs": "hr", "hour": "hr", "hours": "hr",
    "m": "min", "mins": "min", "minute": "min", "minutes": "min",
    "s": "sec", "secs": "sec", "second": "sec", "seconds": "sec",
}  # fmt: skip
_EXPIRE_RE = re.compile(r"([0-9]+(?:\.[0-9]+)?)\s*([a-z]*)")


def _parse_expire_interval(raw: object, text: bool) -> float:
    # zeekctl's LogExpireInterval: a bare number is days (its backward compatibility).
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        return _parse_nonneg_float(raw, text) * 86400.0
    match = _EXPIRE_RE.fullmatch(_need_str(raw, "an interval").strip().lower())
    unit = None if match is None else _UNIT_ALIASES.get(match[2], match[2])
    if match is None or unit not in _EXPIRE_UNITS:
        raise ValueError(
            f'expected a number and a unit (day, hr, min, sec), e.g. "30 days", got {raw!r}'
        )
    return float(match[1]) * _EXPIRE_UNITS[unit]


_SIZE_RE = re.compile(r"([0-9]+(?:\.[0-9]+)?)\s*([kmgt]?)i?b?")


def _parse_size(raw: object, text: bool) -> int:
    if isinstance(raw, int) and not isinstance(raw, bool):
        if raw < 0:
            raise ValueError(f"must not be negative, got {raw!r}")
        return raw
    match = _SIZE_RE.fullmatch(_need_str(raw, "a size").strip().lower())
    if match is None:
        raise ValueError(f'expected bytes or a number with K, M, G or T, e.g. "500G", got {raw!r}')
    return int(float(match[1]) * 1024 ** " kmgt".index(match[2] or " "))


def _parse_percent(raw: object, text: bool) -> float:
    value = _parse_nonneg_float(raw, text)
    if value > 100:
        raise ValueError(f"must be a percentage from 0 to 100, got {raw!r}")
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


#: The cluster backends nodes can run on (``policy/frameworks/cluster/backend/<name>``).
CLUSTER_BACKENDS = ("broker", "zeromq")


def _parse_cluster_backend(raw: object, text: bool) -> str:
    s = _need_str(raw).lower()
    if s not in CLUSTER_BACKENDS:
        raise ValueError(f"expected one of {', '.join(CLUSTER_BACKENDS)}, got {raw!r}")
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
    number = port_number(port, 1)
    # agent/config.zeek: address "0.0.0.0" means "do not connect; the controller connects".
    return None if host == "0.0.0.0" else Endpoint(host, number)


def _show_plain(value: object) -> object:
    return list(value) if isinstance(value, tuple) else value


def _show_expire_interval(value: float) -> object:
    """Seconds in the largest of zeekctl's units that holds them exactly (loads back)."""
    if not value:
        return 0
    for unit in ("day", "hr", "min"):
        count = value / _EXPIRE_UNITS[unit]
        if count == int(count):
            return f"{int(count)} {unit}"
    return f"{value:g} sec"


def _show_path(value: Path | None) -> str:
    return "" if value is None else str(value)


def _show_endpoint(value: Endpoint | None) -> str:
    return "none" if value is None else str(value)


STR = Kind(_parse_str, _show_plain, "STR")
OPT_STR = Kind(_parse_opt_str, _show_plain, "STR")
PATH = Kind(_parse_path, _show_path, "PATH")
OPT_PATH = Kind(_parse_opt_path, _show_path, "PATH")
BOOL = Kind(_parse_bool, _show_plain, "BOOL")
PORT = Kind(_parse_port, _show_plain, "PORT")
LISTEN_PORT = Kind(_parse_listen_port, _show_plain, "PORT")
SECONDS = Kind(_parse_positive_float, _show_plain, "SECONDS")
NONNEG_SECONDS = Kind(_parse_nonneg_float, _show_plain, "SECONDS")
ARCHIVE_INTERVAL = Kind(_parse_archive_interval, _show_plain, "SECONDS")
BYTES = Kind(_parse_positive_int, _show_plain, "BYTES")
COUNT = Kind(_parse_positive_int, _show_plain, "N")
COUNT0 = Kind(_parse_nonneg_int, _show_plain, "N")
COMMAND = Kind(_parse_command, _show_plain, "CMD")
EXPIRE_INTERVAL = Kind(_parse_expire_interval, _show_expire_interval, "INTERVAL")
SIZE = Kind(_parse_size, _show_plain, "SIZE")
PERCENT = Kind(_parse_percent, _show_plain, "PERCENT")
STR_LIST = Kind(_parse_str_list, _show_plain, "STR")
LOG_LEVEL = Kind(_parse_log_level, _show_plain, "LEVEL")
CLUSTER_BACKEND = Kind(_parse_cluster_backend, _show_plain, "BACKEND")
ENDPOINT = Kind(_parse_endpoint, _show_endpoint, "HOST:PORT")
