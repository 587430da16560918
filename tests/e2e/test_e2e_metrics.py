"""End to end (issue 13): both daemons' Prometheus endpoints, the service discovery
document and ``zeek-mgmt df``, against ``zeek-mgmt run`` with the reference cluster (the
zeek double as nodes). Scrapes are parsed with ``prometheus_client``'s own parser."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.faultfs import mounted_tmpfs
from tests.support.ports import free_ports
from tests.support.programs import write_executable
from tests.support.scrape import Samples, http_get
from tests.support.scrape import scrape as scrape_url
from tests.support.sites import QUICKSTART_CFG, TIMEOUT, Site, mgmt_run, on_instance
from tests.support.waiting import wait_until

AGENT = "agent-test"
NODES = ("manager", "logger", "worker-01", "worker-02")


@dataclass
class Metered:
    site: Site
    controller_port: int
    agent_port: int


@pytest.fixture(scope="module")
def metered(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Metered]:
    """The reference cluster under zeek-mgmt run, both daemons serving metrics."""
    cport, aport = free_ports(2)
    settings = [f"controller.metrics_port={cport}", f"agent.metrics_port={aport}"]
    with mgmt_run(tmp_path_factory.mktemp("metrics"), agent=AGENT, settings=settings) as s:
        res = s.deploy_config(on_instance(QUICKSTART_CFG, AGENT))
        assert res.code == 0, (res, s.daemon_logs())
        s.wait_states(AGENT, dict.fromkeys(NODES, "RUNNING"))
        yield Metered(s, cport, aport)


def get(port: int, path: str, accept: str = "") -> tuple[int, str, str]:
    """GET ``http://127.0.0.1:<port><path>``: status, content type, body."""
    return http_get(f"http://127.0.0.1:{port}{path}", accept)


def scrape(port: int) -> Samples:
    """The samples of ``/metrics`` on 127.0.0.1:``port``."""
    return scrape_url(f"http://127.0.0.1:{port}/metrics")


def test_agent_metrics(metered: Metered) -> None:
    """The agent's scrape has every node's state, pid, restarts and uptime, the archive
    backlog and runs, housekeeping counters, free disk and the controller's requests."""
    m = scrape(metered.agent_port)
    rows = metered.site.nodes_of(AGENT)
    for node in NODES:
        assert m["zeek_mgmt_node_state"][(("node", node), ("state", "RUNNING"))] == 1
        assert m["zeek_mgmt_node_state"][(("node", node), ("state", "CRASHED"))] == 0
        assert m["zeek_mgmt_node_pid"][(("node", node),)] == rows[node]["pid"]
        assert m["zeek_mgmt_node_restarts"][(("node", node),)] == 0
        assert m["zeek_mgmt_node_uptime_seconds"][(("node", node),)] >= 0
    assert m["zeek_mgmt_archive_queue_files"][()] >= 0
    assert m["zeek_mgmt_archive_runs_total"][()] == 0
    assert m["zeek_mgmt_housekeeping_runs_total"][()] >= 1
    assert m["zeek_mgmt_expired_bytes_total"][()] == 0
    assert any(v > 0 for v in m["zeek_mgmt_disk_free_bytes"].values())
    dirs = {dict(k)["dirs"] for k in m["zeek_mgmt_disk_free_bytes"]}
    assert "state_dir" in ",".join(dirs) and "archive_dir" in ",".join(dirs)
    assert m["zeek_mgmt_requests_total"][(("request", "deploy"),)] >= 1
    assert m["zeek_mgmt_request_duration_seconds_count"][(("request", "deploy"),)] >= 1
    assert m["process_resident_memory_bytes"][()] > 0


def test_controller_metrics_and_service_discovery(metered: Metered) -> None:
    """The controller's scrape counts connected agents, deployed nodes and client requests
    with their latency; /services.json lists every node's metrics port at a reachable
    address with its labels; unknown paths are 404."""
    metered.site.client("get-nodes", check=True)
    m = scrape(metered.controller_port)
    assert m["zeek_mgmt_agents_connected"][()] == 1
    assert m["zeek_mgmt_nodes_deployed"][()] == len(NODES)
    assert m["zeek_mgmt_requests_total"][(("request", "get_nodes"),)] >= 1
    assert m["zeek_mgmt_request_duration_seconds_count"][(("request", "get_nodes"),)] >= 1
    status, ctype, body = get(metered.controller_port, "/services.json")
    assert (status, ctype) == (200, "application/json")
    groups = json.loads(body)
    rows = metered.site.nodes_of(AGENT)
    ports = {node: rows[node]["metrics_port"] for node in NODES}
    # The agent connects over loopback: the host's name replaces 127.0.0.1.
    assert sorted(groups, key=lambda g: g["labels"]["zeek_node"]) == [
        {
            "targets": [f"{socket.gethostname()}:{ports[node]}"],
            "labels": {"zeek_node": node, "zeek_role": node.split("-")[0], "zeek_instance": AGENT},
        }
        for node in sorted(NODES)
    ]
    assert get(metered.controller_port, "/nope")[0] == 404
    openmetrics = get(metered.agent_port, "/metrics", "application/openmetrics-text")
    assert openmetrics[1].startswith("application/openmetrics-text")
    assert openmetrics[2].endswith("# EOF\n")


def test_df(metered: Metered) -> None:
    """zeek-mgmt df prints zeekctl's df table with a row per file system of the agent;
    --json gives the payloads."""
    controller = f"127.0.0.1:{metered.site.ws_port}"
    argv = [sys.executable, "-m", "mgmt", "df", "--controller", controller]
    env = metered.site.client_env()

    def df(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*argv, *args], env=env, capture_output=True, text=True, timeout=TIMEOUT
        )

    run = df()
    assert run.returncode == 0, run
    lines = run.stdout.splitlines()
    assert lines[0].split() == ["total", "avail", "capacity"]
    assert len(lines) >= 2 and all(line.split()[0] == AGENT for line in lines[1:])
    assert all(line.endswith("%") for line in lines[1:])
    run = df("--json")
    out = json.loads(run.stdout)
    assert out["errors"] == []
    filesystems = out["results"][AGENT]["filesystems"]
    named = {name for fs in filesystems for name in fs["dirs"]}
    assert named == {"state_dir", "spool_dir", "archive_dir"}
    assert all(fs["size"] >= fs["used"] + fs["avail"] for fs in filesystems)


def test_agent_warns_once_when_its_archive_disk_is_low(tmp_path: Path) -> None:
    """An agent whose archive is on a nearly full file system logs one warning naming it
    and the threshold, not again on later runs, expires nothing by default
    (expire_for_disk_space is off), and says when the space is back; notify_cmd hears
    both crossings."""
    heard = tmp_path / "heard"
    hook = write_executable(
        tmp_path / "hook.sh", f'#!/bin/sh\necho "$ZEEK_MGMT_EVENT $ZEEK_MGMT_PATH" >> {heard}\n'
    )
    with mounted_tmpfs(tmp_path / "fs", size="1m") as fs:
        day = fs.path / "logs" / "2026-01-01"
        day.mkdir(parents=True)
        (day / "conn.log.gz").write_bytes(b"x" * 900_000)
        (port,) = free_ports(1)
        settings = [
            f"agent.archive_dir={fs.path / 'logs'}",
            "agent.min_disk_space=50",
            f"agent.notify_cmd={hook}",
            "agent.housekeeping_interval=0.2",
            f"agent.metrics_port={port}",
        ]
        with mgmt_run(tmp_path / "site", agent=AGENT, settings=settings) as s:
            daemon = s.daemons[0]
            daemon.wait_log(f"disk space low on {fs.path}: ")
            daemon.wait_log("below min_disk_space (50%)")
            runs = scrape(port)["zeek_mgmt_housekeeping_runs_total"][()]
            wait_until(
                lambda: scrape(port)["zeek_mgmt_housekeeping_runs_total"][()] >= runs + 2,
                "two more housekeeping runs",
            )
            assert daemon.log().count("disk space low on") == 1
            assert (day / "conn.log.gz").exists()
            (day / "conn.log.gz").unlink()
            daemon.wait_log(f"disk space on {fs.path} is sufficient again")
            assert daemon.log().count("disk space low on") == 1
            wait_until(lambda: heard.exists() and heard.read_text().count("\n") >= 2, "hook")
            assert heard.read_text().splitlines() == [f"disk-low {fs.path}", f"disk-ok {fs.path}"]
