"""Daemon settings for tests: the settings table's defaults, with explicit changes.

Built by :func:`mgmt.settings.sources.load_settings` (so every default is the table's),
for a fixed host and without looking for a Zeek installation: the directories are under
the given state directory and ``zeek``/``archive_cmd`` are empty unless changed.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from mgmt.settings.model import AgentSettings, ControllerSettings
from mgmt.settings.schema import HostInfo
from mgmt.settings.sources import load_settings

HOST = HostInfo(hostname="testhost", is_root=False, home="/nonexistent")
#: An empty PATH: no zeek or zeek-archiver is found, whatever is installed here.
ENV = {"PATH": ""}


def _dirs(state_dir: Path) -> dict[str, object]:
    return {"state_dir": str(state_dir), "spool_dir": str(state_dir / "spool")}


def controller_settings(state_dir: Path, **changes: Any) -> ControllerSettings:
    """A controller's settings: the defaults, state under ``state_dir``, then ``changes``."""
    settings, _ = load_settings(
        "controller", config_path=None, env=ENV, flags=_dirs(state_dir), host=HOST
    )
    assert isinstance(settings, ControllerSettings)
    return dataclasses.replace(settings, **changes)


def agent_settings(state_dir: Path, **changes: Any) -> AgentSettings:
    """An agent's settings: the defaults, state (and spool and archive) under
    ``state_dir``, then ``changes``."""
    flags = {**_dirs(state_dir), "archive_dir": str(state_dir / "logs")}
    settings, _ = load_settings("agent", config_path=None, env=ENV, flags=flags, host=HOST)
    assert isinstance(settings, AgentSettings)
    return dataclasses.replace(settings, **changes)
