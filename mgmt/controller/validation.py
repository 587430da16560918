"""Configuration validation and port auto-assignment on stage (behaviour.md §4.5).

Mirrors ``policy/frameworks/management/controller/main.zeek`` (``config_validate``,
``config_assign_broker_ports``, ``config_assign_metrics_ports``) with Zeek's error texts
(names in them are shown with :func:`mgmt.core.launchable.quote`, which leaves printable names
as Zeek shows them, and escapes and shortens hostile ones),
plus rules Zeek lacks, marked "beyond Zeek" below: what an agent cannot launch
(:func:`mgmt.core.launchable.problems`, shared with the agent) and roles a cluster layout
cannot express.

Pure: no I/O.
"""

from __future__ import annotations

import ipaddress
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import replace

from mgmt.broker.data import Port, Proto
from mgmt.broker.records import ClusterRole, Configuration, Instance, Node
from mgmt.core import launchable
from mgmt.core.launchable import quote, shown
from mgmt.settings.model import ControllerSettings

#: Roles that need a Broker port, in assignment priority order (§4.5.2).
BROKER_PORT_ROLES = {ClusterRole.MANAGER: 0, ClusterRole.LOGGER: 1, ClusterRole.PROXY: 2}
#: Roles that get a metrics port, in assignment priority order (§4.5.3).
METRICS_PORT_ROLES = {
    ClusterRole.MANAGER: 0,
    ClusterRole.LOGGER: 1,
    ClusterRole.PROXY: 2,
    ClusterRole.WORKER: 3,
}

_UNSPECIFIED = ipaddress.IPv4Address("0.0.0.0")


def _names(items: Iterable[str]) -> str:
    return ", ".join(shown(item) for item in sorted(items))


def validate(
    config: Configuration,
    *,
    controller_port: Port | None,
    auto_assign_broker_ports: bool,
) -> list[str]:
    """Check a configuration before it is staged.

    Args:
        config: the configuration as received from the client.
        controller_port: the controller's agent-facing port (Zeek: its Broker port,
            2150/tcp by default); explicit node ports may not use it.
        auto_assign_broker_ports: when false, managers, loggers and proxies need ports.

    Returns:
        The error texts, each once, sorted as Zeek sorts them (strcmp); empty when valid.
    """
    errors: list[str] = []

    inst_counts = Counter(i.name for i in config.instances)
    for name, count in inst_counts.items():
        if count > 1:
            errors.append(f"multiple instances named {quote(name)}")
    node_counts = Counter(n.name for n in config.nodes)
    for name, count in node_counts.items():
        if count > 1:
            errors.append(f"multiple nodes named {quote(name)}")

    collide = set(inst_counts) & set(node_counts)
    if collide:
        errors.append(f"node and instance names collide: {_names(collide)}")

    instances = {i.name: i for i in config.instances}
    ports_by_instance: dict[str, Counter[Port]] = defaultdict(Counter)
    for node in config.nodes:
        inst = instances.get(node.instance)
        if inst is None:
            errors.append(
                f"node {quote(node.name)} has undeclared instance name {quote(node.instance)}"
            )
        if node.p is None:
            continue
        if inst is not None and inst.listen_port is not None and node.p == inst.listen_port:
            errors.append(
                f"node {quote(node.name)} port {node.p} conflicts with agent port on instance "
                f"{quote(node.instance)}"
            )
        if controller_port is not None and node.p == controller_port:
            errors.append(f"node {quote(node.name)} port {node.p} conflicts with controller port")
        ports_by_instance[node.instance][node.p] += 1
    for inst_name, counts in ports_by_instance.items():
        for port, count in counts.items():
            if count > 1:
                errors.append(f"multiple nodes on instance {quote(inst_name)} using port {port}")

    if not auto_assign_broker_ports:
        lacking = [n.name for n in config.nodes if n.role in BROKER_PORT_ROLES and n.p is None]
        if lacking:
            errors.append(
                f"Broker port auto-assignment disabled but nodes {_names(lacking)} lack ports"
            )

    # Beyond Zeek: everything an agent could not launch (names that are not safe file
    # names, NUL bytes, '=' in env variable names, ...). Its duplicate-node text is Zeek's.
    errors += [problem.text for problem in launchable.problems(config)]
    # Beyond Zeek: a layout entry needs a node type, and a cluster has one manager.
    for node in config.nodes:
        if node.role is ClusterRole.NONE:
            errors.append(
                f"node {quote(node.name)} has no cluster role "
                "(need LOGGER, MANAGER, PROXY or WORKER)"
            )
    managers = [n.name for n in config.nodes if n.role is ClusterRole.MANAGER]
    if len(managers) > 1:
        errors.append(f"multiple manager nodes: {_names(managers)}")

    return sorted(set(errors))


def _order_key(node: Node, priorities: dict[ClusterRole, int]) -> tuple[str, int, str]:
    return (node.instance, priorities[node.role], node.name)


def assign_broker_ports(config: Configuration, start: Port) -> Configuration:
    """Give managers, loggers and proxies without a port one from ``start`` upwards.

    One counter is shared by all instances; ports already used by instances' listen ports
    and by explicit node ports are skipped (§4.5.2).
    """
    used = {i.listen_port.number for i in config.instances if i.listen_port is not None}
    used |= {n.p.number for n in config.nodes if n.p is not None}
    needing = sorted(
        (n for n in config.nodes if n.role in BROKER_PORT_ROLES and n.p is None),
        key=lambda n: _order_key(n, BROKER_PORT_ROLES),
    )
    assigned: dict[str, Port] = {}
    counter = start.number
    for node in needing:
        while counter in used:
            counter += 1
        assigned[node.name] = Port(counter, Proto.TCP)
        used.add(counter)
        counter += 1
    return replace(
        config,
        nodes=tuple(
            replace(n, p=assigned[n.name]) if n.name in assigned else n for n in config.nodes
        ),
    )


def assign_metrics_ports(config: Configuration, start: Port) -> Configuration:
    """Give every cluster node without a metrics port one, per host address (§4.5.3).

    Instances that share a host share a counter (starting at ``start``) and a used set,
    seeded with their listen ports and every node's Broker and explicit metrics port.
    """
    host_of = {i.name: i.host for i in config.instances}
    used: dict[object, set[int]] = defaultdict(set)
    for inst in config.instances:
        if inst.listen_port is not None:
            used[inst.host].add(inst.listen_port.number)
    for node in config.nodes:
        host = host_of.get(node.instance, _UNSPECIFIED)
        if node.p is not None:
            used[host].add(node.p.number)
        if node.metrics_port is not None:
            used[host].add(node.metrics_port.number)
    counters: dict[object, int] = {}
    needing = sorted(
        (n for n in config.nodes if n.role in METRICS_PORT_ROLES and n.metrics_port is None),
        key=lambda n: _order_key(n, METRICS_PORT_ROLES),
    )
    assigned: dict[str, Port] = {}
    for node in needing:
        host = host_of.get(node.instance, _UNSPECIFIED)
        counter = counters.get(host, start.number)
        while counter in used[host]:
            counter += 1
        assigned[node.name] = Port(counter, Proto.TCP)
        used[host].add(counter)
        counters[host] = counter + 1
    return replace(
        config,
        nodes=tuple(
            replace(n, metrics_port=assigned[n.name]) if n.name in assigned else n
            for n in config.nodes
        ),
    )


def fill_instance_hosts(config: Configuration, known: Mapping[str, Instance]) -> Configuration:
    """Replace unspecified (0.0.0.0) instance hosts by the addresses agents connected
    from (§4.5 step 4)."""
    instances = []
    for inst in config.instances:
        seen = known.get(inst.name)
        if seen is not None and inst.host == _UNSPECIFIED and seen.host != _UNSPECIFIED:
            inst = replace(inst, host=seen.host)
        instances.append(inst)
    return replace(config, instances=tuple(instances))


def make_ready(
    config: Configuration, settings: ControllerSettings, known: Mapping[str, Instance]
) -> tuple[list[str], Configuration | None]:
    """Validate a configuration as staging does; its errors, or the configuration ready
    to deploy (instance hosts filled in from the ``known`` agents, ports assigned as the
    controller's ``settings`` say)."""
    errors = validate(
        config,
        controller_port=Port(settings.listen_port) if settings.listen_port else None,
        auto_assign_broker_ports=settings.auto_assign_broker_ports,
    )
    if errors:
        return errors, None
    ready = fill_instance_hosts(config, known)
    if settings.auto_assign_broker_ports:
        ready = assign_broker_ports(ready, Port(settings.auto_assign_broker_start_port))
    if settings.auto_assign_metrics_ports:
        ready = assign_metrics_ports(ready, Port(settings.auto_assign_metrics_start_port))
    return [], ready
