"""Requests served and their latency: the same metrics in both daemons.

A daemon calls :meth:`RequestMetrics.received` for each request it takes (an event with
a ``reqid``, e.g. ``get_nodes_request``) and :meth:`RequestMetrics.answered` for each
event it sends; a sent event whose ``reqid`` is that of a request received is its
answer. Requests that are never answered are forgotten past :data:`MAX_OPEN`.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

from mgmt.broker.events import event_name

#: Open requests remembered at most (the oldest are forgotten first).
MAX_OPEN = 10000

#: Latency buckets (seconds): a get-nodes takes milliseconds, a deploy seconds.
BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def request_label(event: object) -> str:
    """``get_nodes`` for ``Management::Controller::API::get_nodes_request`` (and for the
    agent's and ``ZeekMgmt::`` events of the same name)."""
    name = event_name(event).rsplit("::", 1)[-1]
    return name.removesuffix("_request").removesuffix("_response")


class RequestMetrics:
    """``zeek_mgmt_requests_total`` and ``zeek_mgmt_request_duration_seconds``, by request.

    Args:
        registry: the daemon's registry.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.total = Counter(
            "zeek_mgmt_requests",
            "Requests received, by request",
            ("request",),
            registry=registry,
        )
        self.latency = Histogram(
            "zeek_mgmt_request_duration_seconds",
            "Time from a request to its response, by request",
            ("request",),
            buckets=BUCKETS,
            registry=registry,
        )
        self._open: dict[str, tuple[str, float]] = {}

    def received(self, event: object, now: float) -> None:
        """A request arrived (events without ``reqid`` are not requests)."""
        reqid = getattr(event, "reqid", None)
        if not isinstance(reqid, str):
            return
        label = request_label(event)
        self.total.labels(label).inc()
        self._open.pop(reqid, None)
        self._open[reqid] = (label, now)
        if len(self._open) > MAX_OPEN:
            del self._open[next(iter(self._open))]

    def answered(self, event: object, now: float) -> None:
        """An event was sent; if it answers a request received, observe its latency."""
        reqid = getattr(event, "reqid", None)
        if not isinstance(reqid, str):
            return
        entry = self._open.pop(reqid, None)
        if entry is not None:
            label, started = entry
            self.latency.labels(label).observe(max(0.0, now - started))
