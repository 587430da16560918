"""Settings flags: ``--settings-file``, the roles' dedicated flags and ``--set``.

:func:`add_settings_flags` adds ``--settings-file`` (formerly ``--config``, still
accepted, not shown), the common flags, the role's flags and a
repeatable ``--set [SECTION.]KEY=VALUE``. A bare ``KEY`` must belong to the role being
loaded (or to ``[common]``); a qualified key of the other role is checked and otherwise
ignored, so ``zeek-mgmt run --set controller.listen_port=3000`` works for both roles (and
the agent then dials port 3000). A dedicated flag beats ``--set`` for the same key. List
flags (``--node-script``, ``--node-arg``) replace the file's list; from ``--set`` a list is
comma-separated.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from typing import Literal

from mgmt.exceptions import ConfigError
from mgmt.settings import kinds
from mgmt.settings.model import Role, Settings
from mgmt.settings.schema import COMMON, HostInfo, role_specs
from mgmt.settings.sources import (
    CONFIG_ENV,
    DEFAULT_CONFIG_PATH,
    find_config_path,
    load_settings,
)


def _dest(name: str) -> str:
    return f"settings_{name}"


def add_settings_flags(parser: argparse.ArgumentParser, role: Role | Literal["both"]) -> None:
    """Add ``--settings-file``, ``--set`` and the role's setting flags to ``parser``.

    Values stay strings (or bools and lists) so :func:`settings_from_args` validates them
    with messages naming the flag. Read them back with :func:`settings_from_args`, once per
    role. ``"both"`` (for ``zeek-mgmt run``) adds only the flags that mean the same for
    both roles: ``--settings-file``, ``--state-dir``, ``--spool-dir``, ``--log-level``,
    ``--set``.
    """
    group = parser.add_argument_group(
        "daemon settings (beat the settings file and the environment; "
        "see zeek-mgmt daemon-settings)"
    )
    add_settings_file_flag(group)
    for spec in COMMON if role == "both" else role_specs(role):
        if spec.flag is None:
            continue
        if spec.kind is kinds.BOOL:
            group.add_argument(
                spec.flag,
                dest=_dest(spec.name),
                action=argparse.BooleanOptionalAction,
                default=None,
                help=spec.help,
            )
        elif spec.kind is kinds.STR_LIST:
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
    for spec in role_specs(role):
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
    for name in ("config", *(spec.name for spec in COMMON)):
        setattr(peer, _dest(name), getattr(args, _dest(name), None))
    entries = getattr(args, _dest("set"), None) or []
    setattr(peer, _dest("set"), [e for e in entries if "." in e.partition("=")[0]])
    return peer
