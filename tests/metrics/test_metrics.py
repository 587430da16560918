"""The metrics building blocks: the HTTP endpoint, request timing, service discovery."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from mgmt.broker import events as ev
from mgmt.broker.data import Port
from mgmt.broker.records import ClusterRole, Configuration, Instance, Node
from mgmt.controller.metrics import service_discovery
from mgmt.metrics.endpoint import MAX_CONNECTIONS, MAX_HEAD, MetricsEndpoint
from mgmt.metrics.requests import RequestMetrics
from tests.paths import REPO_ROOT
from tests.support.waiting import MS


async def exchange(port: int, request: bytes) -> bytes:
    """Send raw bytes (then EOF) to 127.0.0.1:``port``, read until the server closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    writer.write_eof()
    async with asyncio.timeout(5000 * MS):
        data = await reader.read()
    writer.close()
    await writer.wait_closed()
    return data


@pytest.mark.asyncio
async def test_endpoint_serves_metrics_documents_and_refuses_the_rest() -> None:
    """GET /metrics is the registry's exposition, a document path its JSON, an unknown
    path 404, POST 405, HEAD headers only; a garbage request is closed without a crash."""
    registry = CollectorRegistry()
    requests = RequestMetrics(registry)
    requests.received(ev.GetNodesRequest("r1"), 10.0)
    requests.answered(ev.GetNodesResponse("r1", ()), 10.25)
    requests.answered(ev.GetNodesResponse("unknown", ()), 11.0)  # not ours: ignored
    endpoint = MetricsEndpoint("127.0.0.1", 0, registry, {"/doc.json": lambda: [{"a": 1}]})
    await endpoint.start()
    try:
        reply = await exchange(endpoint.port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        head, _, body = reply.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 OK")
        samples = {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for f in text_string_to_metric_families(body.decode())
            for s in f.samples
        }
        assert samples[("zeek_mgmt_requests_total", (("request", "get_nodes"),))] == 1
        count = ("zeek_mgmt_request_duration_seconds_count", (("request", "get_nodes"),))
        assert samples[count] == 1
        le = (("le", "0.25"), ("request", "get_nodes"))
        assert samples[("zeek_mgmt_request_duration_seconds_bucket", le)] == 1
        reply = await exchange(endpoint.port, b"GET /doc.json HTTP/1.1\r\n\r\n")
        assert json.loads(reply.partition(b"\r\n\r\n")[2]) == [{"a": 1}]
        assert (await exchange(endpoint.port, b"GET /x HTTP/1.1\r\n\r\n")).startswith(
            b"HTTP/1.1 404"
        )
        assert (await exchange(endpoint.port, b"POST /metrics HTTP/1.1\r\n\r\n")).startswith(
            b"HTTP/1.1 405"
        )
        head_only = await exchange(endpoint.port, b"HEAD /metrics HTTP/1.1\r\n\r\n")
        assert head_only.endswith(b"\r\n\r\n") and b"200 OK" in head_only
        assert await exchange(endpoint.port, b"\x00garbage") == b""
    finally:
        await endpoint.close()


def node(name: str, instance: str, role: ClusterRole, metrics: int | None) -> Node:
    return Node(name, instance, role, metrics_port=None if metrics is None else Port(metrics))


def test_service_discovery_addresses() -> None:
    """One target group per node with a metrics port: the agent's address as the controller
    saw it (loopback -> this host's name, IPv6 in brackets), else the configured one; nodes
    without a port or a known address are left out."""
    config = Configuration(
        "c1",
        instances=(
            Instance("a-local"),
            Instance("a-remote", ipaddress.ip_address("10.0.0.5")),
            Instance("a-v6"),
            Instance("a-unknown"),
        ),
        nodes=(
            node("manager", "a-local", ClusterRole.MANAGER, 9000),
            node("worker-1", "a-remote", ClusterRole.WORKER, 9001),
            node("worker-2", "a-v6", ClusterRole.WORKER, 9002),
            node("worker-3", "a-unknown", ClusterRole.WORKER, 9003),
            node("proxy", "a-remote", ClusterRole.PROXY, None),
        ),
    )
    known = {
        "a-local": Instance("a-local", ipaddress.ip_address("127.0.0.1")),
        "a-v6": Instance("a-v6", ipaddress.ip_address("fd00::7")),
    }
    groups = service_discovery(config, known, "sensor-host")
    assert groups == [
        {
            "targets": ["sensor-host:9000"],
            "labels": {"zeek_node": "manager", "zeek_role": "manager", "zeek_instance": "a-local"},
        },
        {
            "targets": ["10.0.0.5:9001"],
            "labels": {"zeek_node": "worker-1", "zeek_role": "worker", "zeek_instance": "a-remote"},
        },
        {
            "targets": ["[fd00::7]:9002"],
            "labels": {"zeek_node": "worker-2", "zeek_role": "worker", "zeek_instance": "a-v6"},
        },
    ]
    assert service_discovery(None, {}, "h") == []


async def unanswered(port: int, request: bytes) -> bool:
    """Whether the server closes the connection without a byte of answer (EOF, or a reset
    since our request was left unread)."""
    try:
        return await exchange(port, request) == b""
    except ConnectionResetError:
        return True


@pytest.mark.asyncio
async def test_endpoint_bounds_what_a_peer_costs() -> None:
    """Past MAX_CONNECTIONS silent connections a new one is closed at once; a head over
    MAX_HEAD is closed unanswered; once the silent peers leave, scrapes work again."""
    endpoint = MetricsEndpoint("127.0.0.1", 0, CollectorRegistry())
    await endpoint.start()
    silent = []
    try:
        for _ in range(MAX_CONNECTIONS):
            silent.append(await asyncio.open_connection("127.0.0.1", endpoint.port))
        assert await unanswered(endpoint.port, b"GET /metrics HTTP/1.1\r\n\r\n")
        for _, writer in silent:
            writer.close()
            await writer.wait_closed()
        huge = b"GET /metrics HTTP/1.1\r\nX: " + b"a" * MAX_HEAD + b"\r\n\r\n"
        assert await unanswered(endpoint.port, huge)
        reply = await exchange(endpoint.port, b"GET /metrics HTTP/1.1\r\n\r\n")
        assert reply.startswith(b"HTTP/1.1 200 OK")
    finally:
        await endpoint.close()


def test_daemons_without_a_metrics_port_do_not_import_prometheus_client(tmp_path: Path) -> None:
    """Without a metrics port neither daemon (nor ``run``) loads prometheus_client, which
    is about a sixth of a daemon's start-up imports; with one, the controller does."""
    code = (
        "import sys, mgmt.daemon.run, mgmt.controller.service, mgmt.agent.service\n"
        "from pathlib import Path\n"
        "from mgmt.controller.service import ControllerService\n"
        "from tests.support.settings import controller_settings\n"
        "loaded = lambda: any(m.startswith('prometheus_client') for m in sys.modules)\n"
        "print(loaded())\n"
        f"ControllerService(controller_settings(Path({str(tmp_path)!r}), metrics_port=9991))\n"
        "print(loaded())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO_ROOT
    ).stdout.split()
    assert out == ["False", "True"]
