"""The agent's Prometheus metrics, read at scrape time (issue 13).

Per node, one row of :data:`NODE_METRICS` each (a new field is one more row): state
(one series per state, 1 for the current one), pid, restarts, uptime, last exit.
For the agent: the archive backlog (files and bytes in ``<spool>/log-queue``), archival
runs and failures, what housekeeping expired, free space of the watched file systems,
and (from :mod:`mgmt.metrics.requests`) the controller's requests served and their
latency. The process' own CPU and memory come from ``prometheus_client``'s process
collector. A scrape reads the log queue's directory and ``statvfs`` on the event loop:
cheap next to what a node does, and only when Prometheus asks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from mgmt.agent.housekeeping import file_systems, queue_backlog, watched_dirs
from mgmt.core.frozen import frozen
from mgmt.metrics.requests import RequestMetrics
from mgmt.supervisor.node import NodeInfo
from mgmt.supervisor.policy import ProcessState

if TYPE_CHECKING:
    from mgmt.agent.service import AgentService


@frozen
class NodeMetric:
    """One per-node gauge: its name (after ``zeek_mgmt_node_``), help, and value (``None``:
    no sample for that node)."""

    name: str
    help: str
    value: Callable[[NodeInfo, float], float | None]


def _uptime(info: NodeInfo, now: float) -> float | None:
    if info.state is not ProcessState.RUNNING or info.started_at is None:
        return None
    return max(0.0, now - info.started_at)


#: The per-node metrics (``now`` is the wall clock).
NODE_METRICS = (
    NodeMetric("pid", "Process id of the node", lambda i, now: i.pid),
    NodeMetric(
        "restarts",
        "Automatic restarts since the node was last started on request",
        lambda i, now: i.restarts,
    ),
    NodeMetric("uptime_seconds", "Seconds the running node process is up", _uptime),
    NodeMetric(
        "last_exit_code",
        "Exit code of the node's previous process",
        lambda i, now: None if i.exit_status is None else i.exit_status.code,
    ),
    NodeMetric(
        "last_exit_signal",
        "Signal that ended the node's previous process",
        lambda i, now: None if i.exit_status is None else i.exit_status.signal,
    ),
    NodeMetric(
        "last_exit_time_seconds",
        "When the node's previous process ended (seconds since the epoch)",
        lambda i, now: i.exit_time,
    ),
)


def _counter(name: str, help_text: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, help_text, value=value)


def _gauge(name: str, help_text: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, help_text, value=value)


class AgentCollector(Collector):
    """What the agent knows, as metrics, read from the service at each scrape."""

    def __init__(self, service: AgentService, clock: Callable[[], float]) -> None:
        self.service = service
        self.clock = clock

    def collect(self) -> Iterator[Metric]:
        yield from self._nodes()
        svc = self.service
        settings = svc.settings
        files, size = queue_backlog(settings.spool_dir / "log-queue")
        yield _gauge("zeek_mgmt_archive_queue_files", "Logs waiting in the log queue", files)
        yield _gauge("zeek_mgmt_archive_queue_bytes", "Bytes waiting in the log queue", size)
        yield _counter("zeek_mgmt_archive_runs", "Archiver runs", svc.archival.runs)
        yield _counter(
            "zeek_mgmt_archive_failures", "Archiver runs that failed", svc.archival.failures
        )
        hk = svc.housekeeping
        yield _counter("zeek_mgmt_housekeeping_runs", "Housekeeping runs", hk.runs)
        yield _counter("zeek_mgmt_expired_files", "Archived logs expired", hk.files_expired)
        yield _counter("zeek_mgmt_expired_bytes", "Bytes expired", hk.bytes_expired)
        yield _counter(
            "zeek_mgmt_expired_dirs", "Crash and old node directories expired", hk.dirs_expired
        )
        free = GaugeMetricFamily(
            "zeek_mgmt_disk_free_bytes",
            "Bytes free (to unprivileged users) on the file systems of the agent's directories",
            labels=("fs", "dirs"),
        )
        total = GaugeMetricFamily(
            "zeek_mgmt_disk_size_bytes",
            "Size of the file systems of the agent's directories",
            labels=("fs", "dirs"),
        )
        for fs in file_systems(watched_dirs(settings)):
            labels = [fs.mount, ",".join(fs.dirs)]
            free.add_metric(labels, fs.avail)
            total.add_metric(labels, fs.size)
        yield free
        yield total

    def _nodes(self) -> Iterator[Metric]:
        supervisor = self.service.supervisor
        infos = [] if supervisor is None else supervisor.status()
        now = self.clock()
        state = GaugeMetricFamily(
            "zeek_mgmt_node_state", "1 for the node's current state", labels=("node", "state")
        )
        for info in infos:
            for candidate in ProcessState:
                state.add_metric([info.name, candidate.value], int(candidate is info.state))
        yield state
        for row in NODE_METRICS:
            family = GaugeMetricFamily(f"zeek_mgmt_node_{row.name}", row.help, labels=("node",))
            for info in infos:
                value = row.value(info, now)
                if value is not None:
                    family.add_metric([info.name], value)
            yield family


def agent_registry(service: AgentService, clock: Callable[[], float]) -> tuple[
    CollectorRegistry, RequestMetrics
]:  # fmt: skip
    """The agent's registry: its collector, the process collector, request metrics."""
    registry = CollectorRegistry()
    registry.register(AgentCollector(service, clock))
    ProcessCollector(registry=registry)
    return registry, RequestMetrics(registry)
