"""Benchmark of the controller daemon (prints figures; not a test).

Three processes on 127.0.0.1, all real sockets:

* the controller: ``python -m mgmt controller`` (so its RSS can be read with psutil);
* the agents: N minimal agents in one child process, each on its own WebSocket connection
  to the controller's agent port, answering at once from pre-encoded responses;
* this process: one async API client on :func:`mgmt.transport.connect`.

For each scenario (agents x nodes per agent) it stages a configuration, times deploys
(request -> response), then the round trip of ``get_instances`` and ``get_nodes``
(p50/p99, sequential requests, with only the timing client connected), and reads the
controller's RSS at the end. The controller's CPU time per get-nodes is printed too: it
is the figure to compare when the machine is loaded (the load average is printed before
and after; latencies on a loaded machine say more about the machine).

With ``--profile FILE`` the controller profiles itself (cProfile, the bench-only hook in
``bench/profilehook``) during the get-nodes requests of the largest scenario only; the
statistics are written to ``FILE`` and their top entries printed.

Usage::

    python bench/controller.py [--quick] [--large-only] [--profile FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pstats
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import psutil  # noqa: E402
from websockets.asyncio.client import connect as ws_connect  # noqa: E402

from mgmt.broker import events as ev  # noqa: E402
from mgmt.broker import messages as bm  # noqa: E402
from mgmt.broker.data import Port  # noqa: E402
from mgmt.broker.records import ClusterRole, NodeStatus, Result, Role, State  # noqa: E402
from mgmt.core.topics import CONTROLLER_TOPIC, agent_topic  # noqa: E402
from tests.support.controller_harness import (  # noqa: E402
    ApiClient,
    ControllerProcess,
    agent_uri,
    multi_config,
    reqid,
)

TARGETS = {
    "get_nodes_p50_small_ms": 5.0,
    "get_nodes_p50_large_ms": 50.0,
    "deploy_large_s": 1.0,
    "rss_mb": 100.0,
}


PROFILE_HOOK = REPO / "bench" / "profilehook"
#: The hook's signals (bench/profilehook/sitecustomize.py).
PROFILE_START = signal.SIGRTMIN + 1
PROFILE_STOP = signal.SIGRTMIN + 2


class ProfiledController(ControllerProcess):
    """The controller with the bench-only profiling hook (SIGRTMIN+1 starts, SIGRTMIN+2 stops
    and writes ``out``)."""

    def __init__(self, state_dir: Path, out: Path, **kwargs: float) -> None:
        super().__init__(state_dir, **kwargs)
        self.out = out

    def env(self) -> dict[str, str]:
        env = super().env()
        env["PYTHONPATH"] = f"{PROFILE_HOOK}{os.pathsep}{env['PYTHONPATH']}"
        env["BENCH_PROFILE_OUT"] = str(self.out)
        return env


async def profile_signal(proc: ControllerProcess, signum: int) -> None:
    """Send ``signum`` to the controller and give it a moment to run the handler."""
    proc.proc.send_signal(signum)
    await asyncio.sleep(0.2)


def print_profile(out: Path, queries: int) -> None:
    """The profile's top functions, by own time and by cumulative time."""
    stats = pstats.Stats(str(out))
    print(f"\n== controller profile of {queries} get-nodes requests ({out})")
    stats.sort_stats("tottime").print_stats(25)
    stats.sort_stats("cumulative").print_stats(40)


def agent_names(count: int) -> list[str]:
    return [f"agent-{i:03d}" for i in range(count)]


_REQUEST = re.compile(
    r'"Management::Agent::API::(\w+)"\},\{"@data-type":"vector","data":\['
    r'\{"@data-type":"string","data":"([^"]*)"'
)
_RID = "@@RID@@"


def response_templates(name: str, index: int, nodes: int) -> dict[str, str]:
    """Pre-encoded responses of agent ``name`` (the ``index``-th) with a reqid placeholder.

    The nodes are those :func:`tests.controller_helpers.multi_config` gives this agent.
    """
    topic = agent_topic(name)
    node_names = [f"{name}-n{j:02d}" for j in range(nodes)]

    def role(j: int) -> ClusterRole:
        return ClusterRole.MANAGER if index == 0 and j == 0 else ClusterRole.WORKER

    rows = [NodeStatus(name, State.RUNNING, Role.AGENT, ClusterRole.NONE, 1000 + index)]
    rows += [
        NodeStatus(n, State.RUNNING, Role.NONE, role(j), 20000 + j, None, Port(9000 + j))
        for j, n in enumerate(node_names)
    ]
    events = {
        "agent_welcome_request": ev.AgentWelcomeResponse(_RID, Result(_RID, True, instance=name)),
        "deploy_request": ev.AgentDeployResponse(
            _RID, tuple(Result(_RID, True, instance=name, node=n) for n in node_names)
        ),
        "get_nodes_request": ev.AgentGetNodesResponse(
            _RID, Result(_RID, True, instance=name, data=tuple(rows))
        ),
        "agent_standby_request": ev.AgentStandbyResponse(_RID, Result(_RID, True, instance=name)),
    }
    return {k: bm.data_message_text(topic, ev.event_to_json(e)) for k, e in events.items()}


async def raw_agent(uri: str, name: str, index: int, nodes: int, stop: asyncio.Event) -> None:
    """An agent that answers at once without decoding what it gets (a regex finds the
    event name and reqid), so that 200 of them in one process can keep up."""
    templates = response_templates(name, index, nodes)
    async with ws_connect(uri, max_size=None, compression=None, ping_interval=None) as ws:
        await ws.send(json.dumps([agent_topic(name)]))
        await ws.recv()  # the ack
        hello = ev.NotifyAgentHello(name, f"bench-{name}", True, 1)
        await ws.send(bm.data_message_text(agent_topic(name), ev.event_to_json(hello)))
        async for message in ws:
            assert isinstance(message, str)
            match = _REQUEST.search(message, 0, 400)
            if match is None or match.group(1) not in templates:
                continue
            await ws.send(templates[match.group(1)].replace(_RID, match.group(2)))
            if stop.is_set():
                break


async def run_agents(uri: str, count: int, nodes: int) -> None:
    """Child process: run ``count`` raw agents until SIGTERM."""
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    tasks = [
        asyncio.create_task(raw_agent(uri, name, i, nodes, stop))
        for i, name in enumerate(agent_names(count))
    ]
    print("ready", flush=True)
    await stop.wait()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    k = max(0, min(len(ordered) - 1, round(q * (len(ordered) - 1))))
    return ordered[k]


_RESPONSE_ID = re.compile(
    r'"Management::Controller::API::\w+_response"\},\{"@data-type":"vector","data":\['
    r'\{"@data-type":"string","data":"([^"]*)"'
)


async def timed(port: int, make: Callable[[str], object], n: int) -> list[float]:
    """Round trips (ms) of ``n`` sequential requests on one raw client connection.

    The client only finds the response's reqid (no decoding), so the figure is the
    controller's (and the agents') latency, not this process's JSON decoding.
    """
    out = []
    uri = f"ws://127.0.0.1:{port}/v1/messages/json"
    async with ws_connect(uri, max_size=None, compression=None, ping_interval=None) as ws:
        await ws.send(json.dumps([CONTROLLER_TOPIC]))
        await ws.recv()
        for _ in range(n):
            rid = reqid()
            text = bm.data_message_text(CONTROLLER_TOPIC, ev.event_to_json(make(rid)))
            t0 = time.perf_counter()
            await ws.send(text)
            while True:
                reply = await ws.recv()
                assert isinstance(reply, str)
                match = _RESPONSE_ID.search(reply, 0, 400)
                if match is not None and match.group(1) == rid:
                    break
            out.append((time.perf_counter() - t0) * 1000)
            assert '"request timed out"' not in reply
    return out


async def scenario(
    agents: int, nodes: int, *, deploys: int, queries: int, profile: Path | None = None
) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        proc = (
            ControllerProcess(Path(tmp), request_timeout=60.0)
            if profile is None
            else ProfiledController(Path(tmp), profile, request_timeout=60.0)
        )
        proc.start()
        child = None
        try:
            await proc.wait_listening()
            ps = psutil.Process(proc.proc.pid)  # type: ignore[union-attr]
            env = dict(os.environ, PYTHONPATH=str(REPO))
            child = await asyncio.create_subprocess_exec(
                sys.executable,
                __file__,
                "_agents",
                agent_uri(proc.agent_port),
                str(agents),
                str(nodes),
                env=env,
                stdout=subprocess.PIPE,
            )
            assert child.stdout is not None
            await child.stdout.readline()
            client = await ApiClient.open(proc.client_port)
            try:
                # Wait until every agent has said hello.
                t0 = time.perf_counter()
                while True:
                    resp = await client.request(ev.GetInstancesRequest(reqid()))
                    if len(resp.result.data) == agents:
                        break
                    await asyncio.sleep(0.05)
                connect_s = time.perf_counter() - t0

                names = agent_names(agents)
                agents_ps = psutil.Process(child.pid)
                cpu0 = (sum(ps.cpu_times()[:2]), sum(agents_ps.cpu_times()[:2]))
                deploy_s = []
                deploy_cpu = 0.0
                for _ in range(deploys):
                    config = multi_config(names, nodes)
                    resp = await client.request(ev.StageConfigurationRequest(reqid(), config))
                    assert resp.results[0].success, resp.results
                    c0 = sum(ps.cpu_times()[:2])
                    t0 = time.perf_counter()
                    resp = await client.request(ev.DeployRequest(reqid()), limit=60)
                    deploy_s.append(time.perf_counter() - t0)
                    deploy_cpu += sum(ps.cpu_times()[:2]) - c0
                    assert all(r.success for r in resp.results), resp.results[-1]
                    assert len(resp.results) == agents * nodes + 1

                cpu1 = (sum(ps.cpu_times()[:2]), sum(agents_ps.cpu_times()[:2]))
            finally:
                await client.close()
            # Only the timed client is connected now: every response goes to it alone,
            # and this process decodes nothing but the reqid.
            inst = await timed(proc.client_port, ev.GetInstancesRequest, queries)
            if profile is not None:
                await profile_signal(proc, PROFILE_START)
            cpu2 = (sum(ps.cpu_times()[:2]), sum(agents_ps.cpu_times()[:2]))
            got = await timed(proc.client_port, ev.GetNodesRequest, queries)
            cpu3 = (sum(ps.cpu_times()[:2]), sum(agents_ps.cpu_times()[:2]))
            if profile is not None:
                await profile_signal(proc, PROFILE_STOP)
            rss_mb = ps.memory_info().rss / 1e6
        finally:
            if child is not None:
                child.send_signal(signal.SIGTERM)
                await asyncio.wait_for(child.wait(), 30)
            proc.kill(signal.SIGTERM)
    return {
        "agents_connected_s": connect_s,
        "deploy_first_s": deploy_s[0],
        "deploy_median_s": statistics.median(deploy_s),
        "get_instances_p50_ms": percentile(inst, 0.5),
        "get_instances_p99_ms": percentile(inst, 0.99),
        "get_nodes_p50_ms": percentile(got, 0.5),
        "get_nodes_p99_ms": percentile(got, 0.99),
        "controller_rss_mb": rss_mb,
        "stage+deploy_cpu_controller_s": (cpu1[0] - cpu0[0]) / deploys,
        "deploy_only_cpu_controller_s": deploy_cpu / deploys,
        "stage+deploy_cpu_agents_s": (cpu1[1] - cpu0[1]) / deploys,
        "get_instances_cpu_controller_ms": (cpu2[0] - cpu1[0]) * 1000 / queries,
        "get_nodes_cpu_controller_ms": (cpu3[0] - cpu2[0]) * 1000 / queries,
        "get_nodes_cpu_agents_ms": (cpu3[1] - cpu2[1]) * 1000 / queries,
    }


def load() -> str:
    """The machine's load average (other work inflates every latency here)."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg()) + f" ({os.cpu_count()} CPUs)"


def report(title: str, figures: dict[str, float]) -> None:
    print(f"\n== {title}")
    for key, value in figures.items():
        print(f"  {key:30s} {value:10.3f}")


async def main(quick: bool, large_only: bool, profile: Path | None = None) -> int:
    print(f"# load average before: {load()}")
    small = {} if large_only else await scenario(1, 16, deploys=5, queries=50 if quick else 300)
    if small:
        report("1 agent x 16 nodes", small)
    queries = 10 if quick else 50
    large = await scenario(200, 20, deploys=3 if quick else 5, queries=queries, profile=profile)
    report("200 agents x 20 nodes (4,000 nodes)", large)
    if profile is not None:
        print_profile(profile, queries)
    print(f"# load average after: {load()}")
    checks = [
        (
            "get-nodes p50 @1x16 < 5 ms",
            small.get("get_nodes_p50_ms", float("nan")),
            TARGETS["get_nodes_p50_small_ms"],
        ),
        (
            "get-nodes p50 @200x20 < 50 ms",
            large["get_nodes_p50_ms"],
            TARGETS["get_nodes_p50_large_ms"],
        ),
        ("deploy 4,000 nodes < 1 s", large["deploy_median_s"], TARGETS["deploy_large_s"]),
        ("controller RSS < 100 MB", large["controller_rss_mb"], TARGETS["rss_mb"]),
    ]
    print()
    for label, value, limit in checks:
        if value != value:  # the scenario did not run
            continue
        print(f"  {'ok  ' if value < limit else 'MISS'} {label}: {value:.3f}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_agents":
        asyncio.run(run_agents(sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
        sys.exit(0)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("--large-only", action="store_true", help="only 200 agents x 20 nodes")
    parser.add_argument(
        "--profile", type=Path, metavar="FILE", help="profile the large get-nodes into FILE"
    )
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.quick, args.large_only, args.profile)))
