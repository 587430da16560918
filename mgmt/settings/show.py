"""``zeek-mgmt daemon-settings`` (formerly ``show-settings``): print the daemons'
effective settings and where each came from.

The output is TOML (one section per role, each line commented with its source), so it can
be saved as a starting point for ``/etc/zeek-mgmt.toml``::

    $ zeek-mgmt daemon-settings agent
    # config file: none
    [agent]
    state_dir = "/home/me/.local/state/zeek-mgmt"  # default
    listen_port = 2151  # env ZEEK_AGENT_PORT
    ...
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping

import tomli_w

from mgmt.exceptions import ConfigError
from mgmt.settings.flags import add_settings_file_flag, settings_from_args
from mgmt.settings.model import ControllerSettings, Role, Settings
from mgmt.settings.schema import role_specs
from mgmt.settings.sources import find_config_path

_ROLES: dict[str, tuple[Role, ...]] = {
    "controller": ("controller",),
    "agent": ("agent",),
    "all": ("controller", "agent"),
}


def render_settings(settings: Settings, sources: Mapping[str, str]) -> list[str]:
    """``key = value  # source`` lines in the settings table's order; valid TOML for the
    role's section."""
    role = "controller" if isinstance(settings, ControllerSettings) else "agent"
    lines = []
    for spec in role_specs(role):
        value = spec.kind.show(getattr(settings, spec.name))
        line = tomli_w.dumps({spec.name: value}).strip()
        lines.append(f"{line}  # {sources.get(spec.name, 'default')}")
    return lines


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the role argument and ``--settings-file``."""
    parser.add_argument(
        "role", nargs="?", choices=tuple(_ROLES), default="all", help="whose settings (all)"
    )
    add_settings_file_flag(parser)


def run(args: argparse.Namespace) -> int:
    """Print the settings of the chosen role(s); 1 with ``error: ...`` on a ConfigError."""
    try:
        config = find_config_path(args.settings_config, os.environ)
        blocks = [f"# config file: {config or 'none'}"]
        for role in _ROLES[args.role]:
            settings, sources = settings_from_args(role, args)
            blocks.append("\n".join([f"[{role}]", *render_settings(settings, sources)]))
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print("\n\n".join(blocks))
    return 0
