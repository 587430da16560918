"""The controller's persisted configurations (behaviour.md §4.13).

Zeek keeps STAGED, READY and DEPLOYED in a Broker SQLite store in the controller's working
directory; we keep them in one TOML file, ``<state>/nodes/<controller>/controller.toml``,
written atomically (:mod:`mgmt.persist.statefile`) before the controller answers the request that
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

import uuid
from pathlib import Path

import tomli_w

from mgmt.broker.records import Configuration
from mgmt.core.frozen import frozen
from mgmt.exceptions import StateStoreError
from mgmt.persist.configtoml import config_from_table, config_to_table
from mgmt.persist.statefile import load_toml, write_atomic

KIND = "zeek-mgmt-controller"
SCHEMA_VERSION = 1
SLOTS = ("staged", "ready", "deployed")


@frozen
class SavedConfigs:
    """The three persisted configuration slots."""

    staged: Configuration | None = None
    ready: Configuration | None = None
    deployed: Configuration | None = None


class ConfigStore:
    """Reads and writes ``controller.toml``.

    Writing a 4,000-node configuration with tomli-w takes about a second, and every stage
    and deploy rewrites the file before answering. A deploy stores the READY object as
    DEPLOYED, so the TOML text of each configuration object is kept (for the objects in
    the three slots only) and reused under another slot name: a deploy then costs one
    file write, not three serializations.

    Args:
        path: the state file.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        # A table name that cannot occur in a configuration's own text.
        self._slot_marker = f"zeek_mgmt_slot_{uuid.uuid4().hex}"
        self._texts: list[tuple[Configuration, str]] = []

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

    def _text(self, config: Configuration) -> str:
        """The TOML of ``config`` under the marker table name (cached per object)."""
        for cached, text in self._texts:
            if cached is config:
                return text
        return tomli_w.dumps({self._slot_marker: config_to_table(config)})

    def save(self, configs: SavedConfigs) -> None:
        """Write all three slots atomically.

        Raises:
            StateStoreError: the file cannot be written.
        """
        parts = [tomli_w.dumps({"kind": KIND, "schema_version": SCHEMA_VERSION})]
        texts: list[tuple[Configuration, str]] = []
        for slot in SLOTS:
            cfg: Configuration | None = getattr(configs, slot)
            if cfg is None:
                continue
            text = self._text(cfg)
            texts.append((cfg, text))
            parts.append(text.replace(self._slot_marker, slot))
        write_atomic(self.path, "\n".join(parts).encode("utf-8"))
        self._texts = texts
