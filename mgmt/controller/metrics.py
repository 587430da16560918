"""The controller's Prometheus metrics and service discovery document (issue 13).

Metrics, read from the state machine at each scrape: agents connected and expected by
the deployment, nodes deployed, and (from :mod:`mgmt.metrics.requests`) the client
requests served and their latency; the process' own CPU and memory come from
``prometheus_client``'s process collector.

``/services.json`` is a Prometheus HTTP service discovery document (``http_sd_configs``)
listing each deployed node's own metrics port (``metrics_port``, Zeek's telemetry
endpoint) at an address a remote Prometheus can reach: the address the node's agent
connected from (or the one its instance names), not the cluster-internal one Zeek's own
``/services.json`` lists. An agent on the controller's host connects over loopback;
its nodes are then listed under the controller host's name. Each target has the labels
``zeek_node``, ``zeek_role`` and ``zeek_instance``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from mgmt.broker.records import Configuration, Instance
from mgmt.controller.state import ControllerState
from mgmt.metrics.requests import RequestMetrics


def _reachable(host: str, here: str) -> str:
    """``host`` as a remote scraper dials it: loopback means this host (``here``)."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if address.is_loopback:
        return here
    return f"[{address}]" if address.version == 6 else str(address)


def service_discovery(
    config: Configuration | None, known: Mapping[str, Instance], here: str
) -> list[dict[str, Any]]:
    """The HTTP SD document: one target group per deployed node with a metrics port.

    Args:
        config: the deployed configuration.
        known: the connected agents (their addresses as seen by the controller).
        here: this host's name, for agents connected over loopback.
    """
    if config is None:
        return []
    configured = {i.name: i for i in config.instances}
    groups = []
    for node in sorted(config.nodes, key=lambda n: n.name):
        if node.metrics_port is None or not node.metrics_port.number:
            continue
        instance = known.get(node.instance) or configured.get(node.instance)
        if instance is None or instance.host.is_unspecified:
            continue
        host = _reachable(str(instance.host), here)
        groups.append(
            {
                "targets": [f"{host}:{node.metrics_port.number}"],
                "labels": {
                    "zeek_node": node.name,
                    "zeek_role": node.role.name.lower(),
                    "zeek_instance": node.instance,
                },
            }
        )
    return groups


class ControllerCollector(Collector):
    """What the controller knows, as metrics, read from its state at each scrape."""

    def __init__(self, state: Callable[[], ControllerState | None]) -> None:
        self.state = state

    def collect(self) -> Iterator[Metric]:
        state = self.state()
        if state is None:
            return
        deployed = state.deployed
        yield GaugeMetricFamily(
            "zeek_mgmt_agents_connected",
            "Agents connected to the controller (that said hello)",
            value=len(state.known),
        )
        yield GaugeMetricFamily(
            "zeek_mgmt_agents_expected",
            "Instances of the deployed configuration",
            value=0 if deployed is None else len(deployed.instances),
        )
        yield GaugeMetricFamily(
            "zeek_mgmt_nodes_deployed",
            "Nodes of the deployed configuration",
            value=0 if deployed is None else len(deployed.nodes),
        )


def controller_registry(
    state: Callable[[], ControllerState | None],
) -> tuple[CollectorRegistry, RequestMetrics]:
    """The controller's registry: its collector, the process collector, request metrics."""
    registry = CollectorRegistry()
    registry.register(ControllerCollector(state))
    ProcessCollector(registry=registry)
    return registry, RequestMetrics(registry)
