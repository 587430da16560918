"""Benchmark: the agent with 64 nodes, and ``zeek-mgmt run`` start-up and memory.

Part 1 -- one controller and one agent (``python -m mgmt controller`` / ``agent``,
separate processes), 1 instance x ``--nodes`` (64) nodes of the zeek test double (instant
start, no ``ZEEK_DOUBLE_START_DELAY``):

* deploy time: from sending ``deploy_request`` to receiving ``deploy_response`` with
  every node successful, measured with an in-process Broker WebSocket client (no
  zeek-client start-up in the figure). Each run first deploys an empty configuration
  (untimed) so that every timed run starts 64 fresh processes. Median of ``--runs``.
  The double is a Python program, so every node costs a Python start-up; the same is
  measured with a ``/bin/sh`` stand-in that writes ``RUNNING`` to ``.status`` and
  sleeps, to separate the agent's own cost from the nodes'.
* agent RSS with the nodes running (VmRSS of the agent process).
* agent CPU while idle: user+system CPU seconds of the agent over ``--idle-seconds``
  (60) with the nodes running, as a percentage of one CPU.

Part 2 -- ``python -m mgmt run`` with no nodes:

* time from launch until ``get_instances`` lists the agent: polled every 10 ms with the
  in-process client (and, as in the Zeek reference, with the real ``zeek-client``
  command, whose own start-up is included). Median of ``--runs``.
* RSS of the ``run`` supervisor, the controller and the agent, and their total, once
  the agent is listed.

For scale (Zeek 8.2.2, reference captures): 214 MB for supervisor + stem + controller +
agent, 1.74 s from launch to the agent listed. Targets: deploy of 64 nodes < 2 s, agent
RSS < 80 MB with 64 nodes, idle CPU < 1 %; ``zeek-mgmt run`` <= 30 MB RSS and <= 0.25 s
to the agent listed.

Usage::

    python bench/agent.py [--nodes 64] [--runs 3] [--idle-seconds 60] [--skip-run]
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

import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from mgmt.broker import events as ev  # noqa: E402
from mgmt.broker.records import ClusterRole, Configuration, Instance, Node  # noqa: E402
from mgmt.broker.session import EventReceived  # noqa: E402
from mgmt.transport import Connection, connect  # noqa: E402
from tests.support.ports import port_open  # noqa: E402
from tests.support.reference import LOCAL_AGENT  # noqa: E402
from tests.support.sites import Site  # noqa: E402
from tests.support.waiting import wait_until  # noqa: E402

TOPIC = "zeek/management/controller"

SH_NODE = """#!/bin/sh
# Stand-in for zeek: ready at once, dies on SIGTERM.
echo "RUNNING [run_loop]" > .status
exec sleep 100000
"""


class Client:
    """A minimal controller client over our own transport (request -> response)."""

    def __init__(self, port: int) -> None:
        self.url = f"ws://127.0.0.1:{port}/v1/messages/json"
        self.conn: Connection | None = None
        self.reader: asyncio.Task[None] | None = None
        self.waiting: dict[str, asyncio.Future[object]] = {}

    def _on_event(self, conn: Connection, received: EventReceived) -> None:
        reqid = getattr(received.event, "reqid", None)
        fut = self.waiting.get(reqid) if isinstance(reqid, str) else None
        if fut is not None and not fut.done():
            fut.set_result(received.event)

    async def open(self) -> None:
        self.conn, self.reader = await connect(
            self.url, (TOPIC,), on_event=self._on_event, ping_interval=None
        )

    async def ask(self, event: object, limit: float = 120.0) -> object:
        assert self.conn is not None
        reqid = event.reqid  # type: ignore[attr-defined]
        fut: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        self.waiting[reqid] = fut
        self.conn.send_event(TOPIC, event)
        try:
            async with asyncio.timeout(limit):
                return await fut
        finally:
            self.waiting.pop(reqid, None)

    async def close(self) -> None:
        if self.conn is not None:
            await self.conn.close()
        if self.reader is not None:
            self.reader.cancel()


def rid() -> str:
    return str(uuid.uuid4())


def config(nodes: int) -> Configuration:
    """``nodes`` workers on the local instance (no interface: the double needs none)."""
    return Configuration(
        rid(),
        (Instance(LOCAL_AGENT),),
        tuple(Node(f"w{i:03d}", LOCAL_AGENT, ClusterRole.WORKER) for i in range(nodes)),
    )


async def deploy(client: Client, cfg: Configuration) -> float:
    """Stage and deploy ``cfg``; seconds from deploy_request to its response."""
    staged = await client.ask(ev.StageConfigurationRequest(rid(), cfg))
    assert isinstance(staged, ev.StageConfigurationResponse), staged
    assert all(r.success for r in staged.results), staged
    start = time.perf_counter()
    resp = await client.ask(ev.DeployRequest(rid()))
    took = time.perf_counter() - start
    assert isinstance(resp, ev.DeployResponse), resp
    failed = [r for r in resp.results if not r.success]
    assert not failed, failed[:3]
    return took


def rss_mb(pid: int) -> float:
    return psutil.Process(pid).memory_info().rss / 1e6


def bench_deploy(args: argparse.Namespace, root: Path, label: str, zeek_sh: bool) -> None:
    s = Site.create(root)
    if zeek_sh:
        zeek = s.bin_dir / "zeek"
        zeek.write_text(SH_NODE)
        zeek.chmod(0o755)
    try:
        s.start("controller", "--log-level", "warning", "--request-timeout", "120")
        # A long agent timeout, so that a slow deploy is measured instead of cut at 5 s.
        agent = s.start("agent", "--log-level", "warning", "--request-timeout", "120")
        s.wait_agents(LOCAL_AGENT)

        async def runs() -> list[float]:
            client = Client(s.ws_port)
            await client.open()
            times = []
            try:
                for _ in range(args.runs):
                    await deploy(client, Configuration(rid(), (Instance(LOCAL_AGENT),), ()))
                    times.append(await deploy(client, config(args.nodes)))
            finally:
                await client.close()
            return times

        times = asyncio.run(runs())
        print(
            f"[{label}] deploy of {args.nodes} nodes, runs: "
            + ", ".join(f"{t:.2f} s" for t in times)
        )
        print(
            f"[{label}] deploy of {args.nodes} nodes, median: "
            f"{statistics.median(times):.2f} s (target < 2 s)"
        )
        proc = psutil.Process(agent.pid)
        children = proc.children()
        assert len(children) == args.nodes, children
        node_cpu = 0.0
        for child in children:
            used = child.cpu_times()
            node_cpu += used.user + used.system
        print(
            f"[{label}] CPU the {args.nodes} node processes used to start (last run): "
            f"{node_cpu:.2f} s, i.e. >= {node_cpu / (psutil.cpu_count() or 1):.2f} s of wall "
            f"time on {psutil.cpu_count()} CPUs before the last node can be RUNNING"
        )
        print(
            f"[{label}] agent RSS with {args.nodes} nodes: {rss_mb(agent.pid):.1f} MB "
            "(target < 80 MB)"
        )
        if args.idle_seconds > 0:
            before = proc.cpu_times()
            time.sleep(args.idle_seconds)
            after = proc.cpu_times()
            used = (after.user - before.user) + (after.system - before.system)
            pct = 100.0 * used / args.idle_seconds
            print(
                f"[{label}] agent CPU idle over {args.idle_seconds:.0f} s with {args.nodes} nodes: "
                f"{used:.2f} s = {pct:.2f} % (target < 1 %)"
            )
    finally:
        leftovers = s.close()
        if leftovers:
            print(f"[{label}] WARNING: processes left behind: {leftovers}")


def bench_run(args: argparse.Namespace, root: Path) -> None:
    probe_times, client_times = [], []
    rss: dict[str, list[float]] = {}
    for i in range(args.runs):
        for use_cli in (False, True):
            s = Site.create(root / f"run-{i}-{int(use_cli)}")
            try:
                start = time.perf_counter()
                run = s.start("run", "--log-level", "warning")
                if use_cli:

                    def listed(s: Site = s) -> bool:
                        res = s.client("get-instances")
                        return res.code == 0 and LOCAL_AGENT in res.json()

                    wait_until(listed, "agents listed", timeout=30, interval=0.0)
                    client_times.append(time.perf_counter() - start)
                    continue
                listed_after = asyncio.run(_probe_listed(s.ws_port, start))
                probe_times.append(listed_after)
                parent = psutil.Process(run.pid)
                procs = [parent, *parent.children()]
                for p in procs:
                    rss.setdefault(p.name(), []).append(rss_mb(p.pid))
            finally:
                s.close()
    print(
        "[run] launch -> agent listed (in-process probe every 10 ms), runs: "
        + ", ".join(f"{t:.3f} s" for t in probe_times)
        + f"; median {statistics.median(probe_times):.3f} s (target <= 0.25 s)"
    )
    print(
        "[run] launch -> agent listed (zeek-client get-instances, as in the Zeek reference), "
        "runs: "
        + ", ".join(f"{t:.3f} s" for t in client_times)
        + f"; median {statistics.median(client_times):.3f} s (Zeek: 1.74 s)"
    )
    total = 0.0
    for name, values in rss.items():
        med = statistics.median(values)
        total += med
        print(f"[run] RSS {name}: {med:.1f} MB")
    print(
        f"[run] RSS total (run + controller + agent): {total:.1f} MB "
        "(target <= 30 MB; Zeek: 214 MB)"
    )


def _instance_name(value: object) -> object:
    """The name of an Instance in a Result's ``data`` (a record or a decoded vector)."""
    if isinstance(value, tuple | list) and value:
        return value[0]
    return getattr(value, "name", None)


async def _probe_listed(port: int, start: float) -> float:
    """Seconds from ``start`` until get_instances lists the agent (10 ms polling)."""
    while True:
        if port_open(port):
            client = Client(port)
            try:
                await client.open()
                while True:
                    resp = await client.ask(ev.GetInstancesRequest(rid()), limit=10)
                    assert isinstance(resp, ev.GetInstancesResponse)
                    data = resp.result.data or ()
                    if any(_instance_name(i) == LOCAL_AGENT for i in data):
                        return time.perf_counter() - start
                    await asyncio.sleep(0.01)
            except (OSError, TimeoutError):
                pass
            finally:
                await client.close()
        await asyncio.sleep(0.01)
        if time.perf_counter() - start > 30:
            raise TimeoutError("agent never listed")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", type=int, default=64)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--idle-seconds", type=float, default=60.0)
    parser.add_argument("--skip-run", action="store_true", help="skip part 2 (zeek-mgmt run)")
    parser.add_argument("--skip-sh", action="store_true", help="skip the /bin/sh stand-in")
    parser.add_argument("--skip-double", action="store_true", help="skip the zeek double")
    args = parser.parse_args()
    print(f"machine: {psutil.cpu_count()} CPUs, load average {psutil.getloadavg()}")
    with tempfile.TemporaryDirectory(prefix="bench-agent-") as tmp:
        root = Path(tmp)
        if not args.skip_double:
            bench_deploy(args, root / "double", "double", zeek_sh=False)
        if not args.skip_sh:
            bench_deploy(args, root / "sh", "sh", zeek_sh=True)
        if not args.skip_run:
            bench_run(args, root)
    return 0


if __name__ == "__main__":
    sys.exit(main())
