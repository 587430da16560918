"""Configurations as TOML tables, for state files (controller and agent).

Readable and diffable: unset optional fields are left out, ports are written ``2200/tcp``,
enums by their short names (``MANAGER``, ``RUNNING``).
"""

from __future__ import annotations

import ipaddress
from typing import Any

from mgmt.broker.data import Port
from mgmt.broker.records import ClusterRole, Configuration, Instance, Node, Option, State


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
                interface=None if row.get("interface") is None else str(row["interface"]),
                cpu_affinity=row.get("cpu_affinity"),
                env={str(k): str(v) for k, v in env.items()},
                metrics_port=_opt_port(row.get("metrics_port")),
            )
        )
    return Configuration(str(table["id"]), instances, tuple(nodes))
