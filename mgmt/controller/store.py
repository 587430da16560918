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

import ipaddress
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w

from mgmt.broker.data import Port
from mgmt.broker.records import ClusterRole, Configuration, Instance, Node, Option, State
from mgmt.exceptions import StateStoreError
from mgmt.statestore import load_toml, write_atomic

KIND = "zeek-mgmt-controller"
SCHEMA_VERSION = 1
SLOTS = ("staged", "ready", "deployed")


def config_to_table(config: Configuration) -> dict[str, Any]:
    """A TOML-ready table for a configuration (unset fields are left out)."""
    instances = []
    for inst in config.instances:
        row: dict[str, Any] = {"name": inst.name, "host": str(inst.host)}
        if inst.listen_port is not None:
            row["listen_port"] = str(inst.listen_port)
        instances.append(row)
    nodes = []
    for n in config.nodes:
        node: dict[str, Any] = {
            "name": n.name,
            "instance": n.instance,
            "role": n.role.name,
            "state": n.state.name,
        }
        if n.p is not None:
            node["port"] = str(n.p)
        if n.scripts is not None:
            node["scripts"] = list(n.scripts)
        if n.options is not None:
            node["options"] = [{"name": o.name, "value": o.value} for o in n.options]
        if n.interface is not None:
            node["interface"] = n.interface
        if n.cpu_affinity is not None:
            node["cpu_affinity"] = n.cpu_affinity
        node["env"] = dict(n.env)
        if n.metrics_port is not None:
            node["metrics_port"] = str(n.metrics_port)
        nodes.append(node)
    return {"id": config.id, "instances": instances, "nodes": nodes}


def _opt_port(value: Any) -> Port | None:
    return None if value is None else Port.parse(str(value))


def config_from_table(table: dict[str, Any]) -> Configuration:
    """Inverse of :func:`config_to_table`.

    Raises:
        KeyError, ValueError, TypeError: the table is malformed.
    """
    instances = tuple(
        Instance(
            str(row["name"]),
            ipaddress.ip_address(str(row["host"])),
            _opt_port(row.get("listen_port")),
        )
        for row in table.get("instances", [])
    )
    nodes = []
    for row in table.get("nodes", []):
        options = row.get("options")
        env = row.get("env", {})
        if not isinstance(env, dict):
            raise TypeError("env must be a table")
        nodes.append(
            Node(
                name=str(row["name"]),
                instance=str(row["instance"]),
                role=ClusterRole[row["role"]],
                state=State[row.get("state", "RUNNING")],
                p=_opt_port(row.get("port")),
                scripts=None if row.get("scripts") is None else tuple(map(str, row["scripts"])),
                options=None
                if options is None
                else tuple(Option(str(o["name"]), str(o["value"])) for o in options),
                interface=row.get("interface"),
                cpu_affinity=row.get("cpu_affinity"),
                env={str(k): str(v) for k, v in env.items()},
                metrics_port=_opt_port(row.get("metrics_port")),
            )
        )
    return Configuration(str(table["id"]), instances, tuple(nodes))


@dataclass(frozen=True, slots=True)
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
