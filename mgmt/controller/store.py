"""The controller's persisted configurations (behaviour.md §4.13).

Zeek keeps STAGED, READY and DEPLOYED in a Broker SQLite store in the controller's working
directory; we keep them in one TOML file, ``<state>/nodes/<controller>/controller.toml``,
written atomically (:mod:`mgmt.statestore`) before the controller answers the request that
changed them. Configurations are stored as readable tables::

    kind = "zeek-mgmt-controller"
    schema_version = 1
    [staged]
    id = "..."
    [[staged.instances]]
    name = "agent-testbox"
    host = "0.0.0.0"
    [[staged.nodes]]
    name = "manager"
    instance = "agent-testbox"
    role = "MANAGER"
    ...
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mgmt.broker.records import Configuration
from mgmt.configtoml import config_from_table, config_to_table
from mgmt.exceptions import StateStoreError
from mgmt.statestore import load_toml, save_toml

KIND = "zeek-mgmt-controller"
SCHEMA_VERSION = 1
SLOTS = ("staged", "ready", "deployed")


@dataclass(frozen=True, slots=True)
class SavedConfigs:
    """The three persisted configuration slots."""

    staged: Configuration | None = None
    ready: Configuration | None = None
    deployed: Configuration | None = None


class ConfigStore:
    """Reads and writes ``controller.toml``.

    Args:
        path: the state file.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> SavedConfigs:
        """Read the saved configurations (all ``None`` on a fresh start).

        Raises:
            StateStoreError: the file exists but is corrupt; it is left untouched.
        """
        doc = load_toml(self.path, KIND, SCHEMA_VERSION)
        if doc is None:
            return SavedConfigs()
        slots: dict[str, Configuration | None] = {}
        for slot in SLOTS:
            table = doc.get(slot)
            try:
                slots[slot] = None if table is None else config_from_table(table)
            except (KeyError, ValueError, TypeError, AttributeError) as exc:
                raise StateStoreError(
                    str(self.path), f"corrupt state file: bad [{slot}] configuration ({exc!r})"
                ) from exc
        return SavedConfigs(**slots)

    def save(self, configs: SavedConfigs) -> None:
        """Write all three slots atomically.

        Raises:
            StateStoreError: the file cannot be written.
        """
        body = {
            slot: config_to_table(cfg)
            for slot in SLOTS
            if (cfg := getattr(configs, slot)) is not None
        }
        save_toml(self.path, KIND, SCHEMA_VERSION, body)
