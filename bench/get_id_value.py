"""Benchmark: get-id-value latency through controller, agent and node channels.

Starts ``python -m mgmt run`` (controller + agent as child processes) with the test-double
``zeek`` on ``PATH``, deploys ``--nodes`` nodes (one manager, one logger, the rest
workers) on one agent, then times ``--runs`` ``get_id_value_request``s for
``LogAscii::use_json`` on all nodes, sent over one WebSocket connection to the
controller's client port the way zeek-client sends them, from send to the complete
``get_id_value_response``. Each request fans out controller -> agent -> every node's
channel and back. A few real ``zeek-client get-id-value`` runs are timed as well
(wall time, including the client's Python start-up).

Prints per-percentile latencies and ends with ``p50 <N.N> ms (target < 20 ms)``.

Usage::

    python bench/get_id_value.py [--nodes 16] [--runs 300] [--cli-runs 5]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


from mgmt.broker import events as ev  # noqa: E402
from mgmt.broker.data import BrokerSet  # noqa: E402
from mgmt.broker.session import EventReceived  # noqa: E402
from mgmt.core.topics import CONTROLLER_TOPIC  # noqa: E402
from mgmt.transport import Connection, connect  # noqa: E402
from tests.support.ports import free_port_block  # noqa: E402
from tests.support.sites import mgmt_run  # noqa: E402


def cluster_config(agent: str, nodes: int) -> str:
    """A configuration with a manager, a logger and ``nodes - 2`` workers."""
    sections = [f"[instances]\n{agent}\n"]
    for i in range(nodes):
        if i == 0:
            name, role = "manager", "manager"
        elif i == 1:
            name, role = "logger", "logger"
        else:
            name, role = f"worker-{i - 1:02d}", "worker"
        sections.append(f"[{name}]\ninstance = {agent}\nrole = {role}\n")
    return "\n".join(sections)


async def measure(port: int, runs: int, nodes: int) -> list[float]:
    """Round-trip times (seconds) of ``runs`` sequential get_id_value requests."""
    answers: asyncio.Queue[ev.GetIdValueResponse] = asyncio.Queue()

    def on_event(conn: Connection, received: EventReceived) -> None:
        if isinstance(received.event, ev.GetIdValueResponse):
            answers.put_nowait(received.event)

    conn, reader = await connect(
        f"ws://127.0.0.1:{port}/v1/messages/json",
        (CONTROLLER_TOPIC,),
        on_event=on_event,
        accept=lambda e: isinstance(e, ev.GetIdValueResponse),
        ping_interval=None,
    )
    times: list[float] = []
    try:
        for i in range(runs + 10):
            reqid = str(uuid.uuid1())
            start = time.perf_counter()
            conn.send_event(
                CONTROLLER_TOPIC, ev.GetIdValueRequest(reqid, "LogAscii::use_json", BrokerSet())
            )
            answer = await asyncio.wait_for(answers.get(), 15)
            elapsed = time.perf_counter() - start
            assert answer.reqid == reqid
            ok = [r for r in answer.results if r.success and r.data == "false"]
            if len(ok) != nodes:
                raise SystemExit(f"unexpected answer: {answer.results}")
            if i >= 10:  # warm-up
                times.append(elapsed)
    finally:
        await conn.close()
        reader.cancel()
    return times


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=16)
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--cli-runs", type=int, default=5)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-gidv-") as tmp:
        settings = [
            f"agent.node_websocket_start_port={free_port_block(args.nodes)}",
            "agent.request_timeout=10",
        ]
        agent = "agent-test"
        with mgmt_run(Path(tmp), agent=agent, settings=settings, log_level="info") as run:
            res = run.deploy_config(cluster_config(agent, args.nodes))
            if res.code != 0:
                print(res.stdout, res.stderr, file=sys.stderr)
                return 1
            times = asyncio.run(measure(run.ws_port, args.runs, args.nodes))
            cli: list[float] = []
            for _ in range(args.cli_runs):
                start = time.perf_counter()
                out = run.client("get-id-value", "LogAscii::use_json")
                cli.append(time.perf_counter() - start)
                if out.code != 0:
                    print(out.stdout, out.stderr, file=sys.stderr)
                    return 1

    ms = [t * 1000 for t in times]
    print(f"get-id-value LogAscii::use_json on {args.nodes} nodes, {len(ms)} requests")
    print(
        f"  controller round trip: p50 {statistics.median(ms):.1f} ms, "
        f"p90 {percentile(ms, 0.9):.1f} ms, p99 {percentile(ms, 0.99):.1f} ms, "
        f"max {max(ms):.1f} ms"
    )
    if cli:
        print(
            f"  zeek-client get-id-value (wall, incl. client start-up): "
            f"median {statistics.median(cli) * 1000:.0f} ms over {len(cli)} runs"
        )
    print(f"p50 {statistics.median(ms):.1f} ms (target < 20 ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
