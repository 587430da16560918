"""Loading settings: one model, four sources, every value traced.

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

Value rules: :mod:`mgmt.settings.kinds`; flags: :mod:`mgmt.settings.flags`; defaults
from the Zeek installation: :mod:`mgmt.settings.zeek`.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from mgmt.exceptions import ConfigError
from mgmt.settings.model import Role, Settings
from mgmt.settings.schema import (
    CLASSES,
    COMMON_NAMES,
    SECTION_SPECS,
    HostInfo,
    Spec,
    role_specs,
)
from mgmt.settings.zeek import ZeekInstallation, find_zeek_installation, resolve_program, which

#: Read when it exists and neither ``--config`` nor ``ZEEK_MGMT_CONFIG`` names a file.
DEFAULT_CONFIG_PATH = "/etc/zeek-mgmt.toml"
#: Env var naming the config file (beaten by ``--config``).
CONFIG_ENV = "ZEEK_MGMT_CONFIG"

#: A parsed value and the source it came from.
_Sourced = tuple[Any, str]


def _parse(spec: Spec, raw: object, text: bool, source: str, key: str) -> Any:
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
    known = SECTION_SPECS.get(section, {})
    import difflib  # only for an unknown key: not with every start-up

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
    sections = ", ".join(f"[{s}]" for s in SECTION_SPECS)
    values: dict[tuple[str, str], _Sourced] = {}
    for section, table in doc.items():
        if not isinstance(table, dict):
            raise ConfigError(
                f"{source}: top-level key {section!r} is not allowed; put it in one of {sections}"
            )
        if section not in SECTION_SPECS:
            raise ConfigError(f"{source}: unknown section [{section}]; expected {sections}")
        for key, raw in table.items():
            spec = SECTION_SPECS[section].get(key)
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
        spec = SECTION_SPECS.get(section, {}).get(name)
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
class _Context:  # implements schema.DefaultContext
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

    def explicit(self, section: str, spec: Spec) -> _Sourced | None:
        """The highest-precedence non-default value of ``section.spec``, if any."""
        if section == self.role and spec.name in self.own_flags:
            return self.own_flags[spec.name]
        if (section, spec.name) in self.other_flags:
            return self.other_flags[section, spec.name]
        if spec.env and self.env.get(spec.env):  # Zeek's getenv: empty = unset
            source = f"env {spec.env}"
            return _parse(spec, self.env[spec.env], True, source, f"{section}.{spec.name}"), source
        for where in (section, "common") if spec.name in COMMON_NAMES else (section,):
            if (where, spec.name) in self.file:
                return self.file[where, spec.name]
        return None

    @property
    def path(self) -> str:
        """The search path for programs: ``$PATH`` of the environment loaded."""
        return self.env.get("PATH", os.defpath)

    def zeek_installation(self) -> ZeekInstallation | None:
        """The installation of the Zeek in use, looked for once, when a default needs it.

        The Zeek in use is ``agent.zeek`` when set in the file or a flag (also when the
        controller is loaded, so that both roles of one configuration agree), else
        ``zeek`` on PATH.
        """
        if self._zeek is False:
            found = self.explicit("agent", SECTION_SPECS["agent"]["zeek"])
            zeek = resolve_program(found[0], self.path) if found else which("zeek", self.path)
            self._zeek = find_zeek_installation(zeek, self.path)
        return self._zeek

    def controller_listen_port(self) -> tuple[int, str]:
        """The controller's agent-facing port as configured here, and its source."""
        spec = SECTION_SPECS["controller"]["listen_port"]
        port, source = self.explicit("controller", spec) or (spec.default, "default")
        assert isinstance(port, int)
        return port, source


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
        ``flag --x``), in the table's order.

    Raises:
        ConfigError: unreadable or malformed file, unknown section or key, wrong type or
            invalid value in any source. The message names the source and the key.
    """
    specs = role_specs(role)
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
    return CLASSES[role](**ctx.values), sources


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
