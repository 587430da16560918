"""Side by side with Zeek's own framework on this machine (prints figures; not a test).

Two backends, run alternately ``--runs`` times each (default 5), each run in a fresh
temporary state and spool directory and, as root, in its own network namespace (so both
use the standard ports 2149/2150/2151 and the nodes' ports without clashing):

* ``zeek``: ``<prefix>/bin/zeek -C -j policy/frameworks/management/controller
  policy/frameworks/management/agent`` with the environment of the Zeek 8.2.2 reference
  capture (``ZEEK_CONTROLLER_ADDR=127.0.0.1 ... ZEEK_MANAGEMENT_STATE_DIR=<tmp>/state
  ZEEK_MANAGEMENT_SPOOL_DIR=<tmp>/spool``), plus a one-line script that points
  ``Management::Agent::archive_dir`` into the temporary directory (so a run never writes
  into ``<prefix>/logs``);
* ``zeek-mgmt``: ``python -m mgmt run`` from this checkout with the same environment,
  ``agent.zeek = <prefix>/bin/zeek``, ``agent.node_args = -C`` (what ``zeek -C`` gives
  Zeek's nodes) and the same temporary archive directory. The checkout's bytecode is
  compiled first (``compileall``), as an installed package has it: otherwise, with
  ``PYTHONDONTWRITEBYTECODE=1`` in the environment, every launch would compile our
  modules again and the launch figure would include that.

Every client step but the launch probe uses the real ``zeek-client`` CLI, on both sides.
The figures:

launch
    from starting the top process until a ``get_instances_request`` lists the agent. The
    probe is a raw WebSocket peer in this process sending the frames ``zeek-client
    get-instances`` sends (subscription, then the request event), on a new connection
    per poll, polled back to back: the same probe for both backends, so the figure is
    the backend's, not a client's start-up. The same figure with the real ``zeek-client``
    as the probe (a whole Python process per poll, ~0.4 s each) is a second row.
RSS, PSS
    of the management processes once the agent is listed (Zeek: supervisor, stem,
    controller, agent; zeek-mgmt: run, controller, agent), and again after the deploy:
    the whole process tree minus the cluster nodes (a node is a process whose cwd is
    ``<state>/nodes/<cluster node>``). PSS from psutil's ``memory_full_info``; each run
    also prints RSS/PSS per process.
deploy (all at once)
    ``zeek-client deploy-config`` of manager, logger, proxy and two workers on ``lo``
    until ``get-nodes`` shows all five RUNNING: the deploy's own time when the first
    get-nodes after it already shows them all RUNNING, else the end of the first get-nodes
    that does. Zeek's framework starts all nodes at once; zeek-mgmt runs with
    ``agent.ordered_start=false`` to do the same. For zeek-mgmt also the overhead past the
    slowest node's own RUNNING: the deploy's return minus the newest mtime of the nodes'
    ``.status`` files (what each node writes when it is up; Zeek's nodes have none).
deploy (ordered)
    the same with zeek-mgmt's default ``agent.ordered_start=true`` (zeekctl's order:
    logger, manager, proxy, workers, each group awaited), in a launch of its own after
    the main one; its ratio is against Zeek's all-at-once deploy, so the cost of the
    order is visible.
restart
    ``zeek-client restart`` (all nodes) until get-nodes shows all five RUNNING with new
    pids, measured as deploy.
stop
    SIGTERM to the top process until every process of its tree, nodes included, is gone;
    also until the cluster nodes are gone (Zeek's own exit, the same binary on both
    sides), and the rest: what the management processes take past their nodes. The main
    launch stops all nodes at once (``ordered_start=false``, as Zeek's stem does); the
    ordered launch's stop (workers, proxies, manager, loggers, each group awaited) is
    its own row, compared with Zeek's stop.

A run that fails (e.g. a deploy that times out, as Zeek's framework does on a loaded
machine) is reported, counted and retried, up to twice; medians are over complete runs.

Ratios are Zeek's figure over ours (``3.0x``: we take a third of Zeek's time or memory).
The machine's load average is printed before and after: other work on the machine
inflates both sides, so read the ratios, and rerun on a quiet machine for absolute times.

Usage::

    python bench/vs_zeek.py [--zeek PREFIX] [--runs N]
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import ctypes.util
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from websockets.exceptions import WebSocketException
from websockets.sync.client import connect

REPO = Path(__file__).resolve().parent.parent
NODES = ("manager", "logger", "proxy", "worker-01", "worker-02")
CLUSTER_CFG = """\
[manager]
role = manager

[logger]
role = logger

[proxy]
role = proxy

[worker-01]
role = worker
interface = lo

[worker-02]
role = worker
interface = lo
"""
#: The environment of the reference capture (framework-launch-command.txt).
BASE_ENV = {
    "ZEEK_CONTROLLER_ADDR": "127.0.0.1",
    "ZEEK_CONTROLLER_WEBSOCKET_ADDR": "127.0.0.1",
    "ZEEK_AGENT_ADDR": "127.0.0.1",
    "ZEEK_DEFAULT_LISTEN_ADDRESS": "127.0.0.1",
}
CLIENT_PORT = 2149
TIMEOUT = 120.0
#: A run that fails (e.g. a deploy timing out on a loaded machine) is retried this often.
RETRIES = 2
_CLONE_NEWNET = 0x40000000
CONTROLLER_TOPIC = "zeek/management/controller"


def zeek_client() -> str:
    """The zeek-client CLI: next to this interpreter, else on PATH."""
    beside = Path(sys.executable).parent / "zeek-client"
    found = str(beside) if beside.exists() else shutil.which("zeek-client")
    if not found:
        sys.exit("zeek-client not found (pip install zeek-client)")
    return found


class Netns:
    """A named network namespace with loopback up; processes enter it before exec."""

    def __init__(self, name: str) -> None:
        self.name = name
        subprocess.run(["ip", "netns", "add", name], check=True)
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        self.fd = os.open(f"/var/run/netns/{name}", os.O_RDONLY)
        self._libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)

    def enter(self) -> None:
        """For ``preexec_fn``: move the child into the namespace."""
        if self._libc.setns(self.fd, _CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns")

    def socket(self) -> socket.socket:
        """A TCP socket in the namespace (a socket stays in the namespace it was made in;
        this thread enters it for the ``socket()`` call only)."""
        home = os.open("/proc/self/ns/net", os.O_RDONLY)
        try:
            if self._libc.setns(self.fd, _CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns")
            try:
                return socket.socket()
            finally:
                if self._libc.setns(home, _CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), "setns back")
        finally:
            os.close(home)

    def close(self) -> None:
        os.close(self.fd)
        subprocess.run(["ip", "netns", "del", self.name], check=False)


@dataclass
class Run:
    """One launch of one backend in its own directory (and namespace)."""

    backend: str
    prefix: Path
    root: Path
    netns: Netns | None
    client: str
    #: zeek-mgmt only: ``agent.ordered_start`` (Zeek's framework starts all at once).
    ordered: bool = False
    #: zeek-mgmt only: the checkout whose ``mgmt`` runs (first on ``PYTHONPATH``).
    checkout: Path = REPO
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    figures: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def state(self) -> Path:
        return self.root / "state"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ZEEK_", "SPT_"))}
        env.update(BASE_ENV)
        env["ZEEK_MANAGEMENT_STATE_DIR"] = str(self.state)
        env["ZEEK_MANAGEMENT_SPOOL_DIR"] = str(self.root / "spool")
        env["PATH"] = f"{self.prefix / 'bin'}:{env.get('PATH', os.defpath)}"
        return env

    def popen(self, argv: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        enter = self.netns.enter if self.netns else None
        return subprocess.Popen(argv, preexec_fn=enter, **kwargs)

    def command(self) -> list[str]:
        archive = self.root / "logs"
        if self.backend == "zeek":
            script = self.root / "bench.zeek"
            script.write_text(f'redef Management::Agent::archive_dir = "{archive}";\n')
            return [
                str(self.prefix / "bin" / "zeek"), "-C", "-j",
                "policy/frameworks/management/controller",
                "policy/frameworks/management/agent", str(script),
            ]  # fmt: skip
        return [
            sys.executable, "-m", "mgmt", "run",
            "--set", f"agent.zeek={self.prefix / 'bin' / 'zeek'}",
            "--set", "agent.node_args=-C",
            "--set", f"agent.archive_dir={archive}",
            "--set", f"agent.ordered_start={str(self.ordered).lower()}",
        ]  # fmt: skip

    def launch(self) -> None:
        for d in ("state", "spool", "run"):
            (self.root / d).mkdir(parents=True, exist_ok=True)
        env = self.env()
        if self.backend == "zeek-mgmt":
            env["PYTHONPATH"] = str(self.checkout)
        self.started = time.monotonic()
        self.proc = self.popen(
            self.command(),
            cwd=self.root / "run",
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=open(self.root / "top.stdout", "wb"),
            stderr=open(self.root / "top.stderr", "wb"),
            start_new_session=True,
        )

    def zeek_client(self, *args: str) -> tuple[int, str, float]:
        """Run zeek-client; its exit code, stdout and the monotonic time it ended."""
        proc = self.popen(
            [self.client, *args],
            cwd=self.root,
            env=self.env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        out, _ = proc.communicate(timeout=TIMEOUT)
        return proc.returncode, out.decode(errors="replace"), time.monotonic()

    def port_open(self) -> bool:
        if self.netns is None:
            return _connects()
        # Probe from inside the namespace: a tiny child that connects.
        probe = self.popen(
            [sys.executable, "-c", _PROBE, str(CLIENT_PORT)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        return probe.wait(timeout=TIMEOUT) == 0

    def nodes(self) -> dict[str, dict[str, Any]]:
        """get-nodes: cluster node -> its record, across instances."""
        rc, out, _ = self.zeek_client("get-nodes")
        try:
            results = json.loads(out).get("results", {})
        except (ValueError, AttributeError):
            return {}
        return {
            name: rec
            for instance in results.values()
            if isinstance(instance, dict)
            for name, rec in instance.items()
            if name in NODES
        }

    def tree(self) -> list[psutil.Process]:
        assert self.proc is not None
        try:
            top = psutil.Process(self.proc.pid)
            return [top, *top.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def memory(self) -> tuple[float, float, str]:
        """RSS and PSS (MB) of the management processes (the tree minus the nodes), and
        ``name RSS/PSS`` of each of them."""
        each = self.memory_each()
        rss = sum(r for _, r, _ in each)
        pss = sum(p for _, _, p in each)
        shown = ", ".join(f"{name} {r:.1f}/{p:.1f}" for name, r, p in each)
        return rss, pss, shown

    def memory_each(self) -> list[tuple[str, float, float]]:
        """``(name, RSS, PSS)`` (MB) of each management process (the tree minus the
        nodes), top process first."""
        each = []
        for p in self.tree():
            if self.is_node(p):
                continue
            with contextlib.suppress(psutil.Error):
                info = p.memory_full_info()
                each.append((p.name(), info.rss / 1e6, info.pss / 1e6))
        return each

    def get_instances(self) -> str | None:
        """One ``get_instances_request`` as zeek-client sends it, on a new connection: the
        response's text, or None while the client port refuses connections."""
        sock = self.netns.socket() if self.netns else socket.socket()
        sock.settimeout(TIMEOUT)
        try:
            sock.connect(("127.0.0.1", CLIENT_PORT))
        except OSError:
            sock.close()
            return None
        reqid = str(uuid.uuid1())
        uri = f"ws://127.0.0.1:{CLIENT_PORT}/v1/messages/json"
        try:
            with connect(uri, sock=sock, compression=None, proxy=None) as ws:
                ws.send(json.dumps([CONTROLLER_TOPIC]))
                ws.recv(TIMEOUT)  # the ack
                ws.send(json.dumps(_event("get_instances_request", reqid)))
                while True:
                    text = str(ws.recv(TIMEOUT))
                    if reqid in text and "get_instances_response" in text:
                        return text
        except (OSError, WebSocketException):
            return None  # closed while starting: try again

    def is_node(self, p: psutil.Process) -> bool:
        """A cluster node: its cwd is its node directory."""
        with contextlib.suppress(psutil.Error):
            return p.cwd() in {str(self.state / "nodes" / n) for n in NODES}
        return False

    def stop(self) -> tuple[float, float]:
        """SIGTERM the top process; seconds until the cluster nodes are gone, and until
        the whole tree is."""
        assert self.proc is not None
        procs = self.tree()
        nodes = [p for p in procs if self.is_node(p)]
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        wait_for(lambda: not any(_alive(p) for p in nodes), "the nodes to exit", 0.002)
        nodes_gone = time.monotonic() - t0
        wait_for(lambda: not any(_alive(p) for p in procs), "the tree to exit", 0.002)
        self.proc.wait()
        return nodes_gone, time.monotonic() - t0

    def kill(self) -> None:
        """Leave nothing behind (after an error)."""
        for p in self.tree():
            with contextlib.suppress(psutil.Error):
                p.kill()
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            self.proc.wait()


_PROBE = (
    "import socket,sys\n"
    "s=socket.socket();s.settimeout(1)\n"
    "sys.exit(s.connect_ex(('127.0.0.1',int(sys.argv[1]))))\n"
)


def _event(name: str, reqid: str) -> dict[str, Any]:
    """A controller API request event as a Broker data message (zeek-client's framing)."""

    def string(value: str) -> dict[str, Any]:
        return {"@data-type": "string", "data": value}

    def vector(*items: dict[str, Any]) -> dict[str, Any]:
        return {"@data-type": "vector", "data": list(items)}

    count = {"@data-type": "count", "data": 1}
    event = vector(string(f"Management::Controller::API::{name}"), vector(string(reqid)))
    return {**vector(count, count, event), "topic": CONTROLLER_TOPIC, "type": "data-message"}


def _connects() -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", CLIENT_PORT)) == 0


def _alive(p: psutil.Process) -> bool:
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def wait_for(predicate: Callable[[], Any], what: str, interval: float = 0.01) -> Any:
    deadline = time.monotonic() + TIMEOUT
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(interval)


def errors_of(out: str) -> str:
    """The ``errors`` of a zeek-client JSON answer, on one line (else the text itself)."""
    try:
        return json.dumps(json.loads(out).get("errors"))
    except (ValueError, AttributeError):
        return " ".join(out.split())[:200]


def until_running(run: Run, t0: float, returned: float, old: dict[str, int]) -> float:
    """Seconds from t0 until get-nodes shows every node RUNNING (with a pid not in old)."""
    first = True
    while True:
        nodes = run.nodes()
        ended = time.monotonic()
        if set(nodes) == set(NODES) and all(
            rec.get("state") == "RUNNING" and rec.get("pid") not in (None, old.get(n))
            for n, rec in nodes.items()
        ):
            return (returned if first else ended) - t0
        first = False
        if ended - t0 > TIMEOUT:
            raise TimeoutError(f"{run.backend}: nodes not all RUNNING: {nodes}")


LAUNCH = "launch → agent listed (s)"
LAUNCH_CLIENT = "launch → agent listed, zeek-client polls (s)"
DEPLOY = "deploy (all at once) → all RUNNING (s)"
DEPLOY_ORDERED = "deploy (ordered) → all RUNNING (s)"
STOP = "stop, whole tree gone (s)"
STOP_ORDERED = "stop (ordered), whole tree gone (s)"
#: Figures compared with another of Zeek's (Zeek has no ordered start or stop).
COMPARED_WITH = {DEPLOY_ORDERED: DEPLOY, STOP_ORDERED: STOP}


def launched(run: Run) -> float:
    """Launch; seconds until the raw get_instances probe lists the agent."""
    run.launch()
    while True:
        text = run.get_instances()
        ended = time.monotonic()
        if text is not None and '"agent-' in text:
            return ended - run.started
        if ended - run.started > TIMEOUT:
            raise TimeoutError(f"{run.backend}: agent never listed: {text!r}")
        if text is None:
            time.sleep(0.01)  # the port is not open yet


def launched_client(run: Run) -> float:
    """Launch; seconds until ``zeek-client get-instances`` (polled back to back once the
    client port accepts TCP, as the reference capture did) lists the agent."""
    run.launch()
    wait_for(run.port_open, "the client port")
    while True:
        rc, out, ended = run.zeek_client("get-instances")
        if rc == 0 and '"agent-' in out:
            return ended - run.started
        if ended - run.started > TIMEOUT:
            raise TimeoutError(f"{run.backend}: agent never listed: {out!r}")


def deployed(run: Run, cfg: Path, name: str) -> None:
    """deploy-config until all nodes are RUNNING (figure ``name``), and for zeek-mgmt the
    overhead past the slowest node's own RUNNING."""
    f = run.figures
    t0 = time.monotonic()
    rc, out, returned = run.zeek_client("deploy-config", str(cfg))
    if rc != 0:
        raise RuntimeError(f"{run.backend}: deploy-config exit {rc}: {errors_of(out)}")
    f[name] = until_running(run, t0, returned, {})
    if run.backend == "zeek-mgmt":
        statuses = [run.state / "nodes" / n / ".status" for n in NODES]
        newest = max(p.stat().st_mtime for p in statuses)
        # Wall-clock mtimes against the deploy's return on the same clock.
        f[name.split(" →")[0] + " overhead past slowest node (ms)"] = (
            time.time() - (time.monotonic() - returned) - newest
        ) * 1000


def one_run(run: Run, cfg: Path) -> None:
    """Launch, measure every figure, stop."""
    f = run.figures
    f[LAUNCH] = launched(run)
    f["RSS idle (MB)"], f["PSS idle (MB)"], each = run.memory()
    run.notes.append(f"idle RSS/PSS (MB) per process: {each}")
    deployed(run, cfg, DEPLOY)
    f["RSS deployed (MB)"], f["PSS deployed (MB)"], each = run.memory()
    run.notes.append(f"deployed RSS/PSS (MB) per process: {each}")

    pids = {n: rec.get("pid") for n, rec in run.nodes().items()}
    t0 = time.monotonic()
    rc, out, returned = run.zeek_client("restart")
    if rc != 0:
        raise RuntimeError(f"{run.backend}: restart exit {rc}: {errors_of(out)}")
    f["restart all → RUNNING (s)"] = until_running(run, t0, returned, pids)  # type: ignore[arg-type]
    nodes_gone, tree_gone = run.stop()
    f[STOP] = tree_gone
    f["stop: cluster nodes gone (s)"] = nodes_gone
    f["stop: past the nodes (s)"] = tree_gone - nodes_gone


def second_run(run: Run, cfg: Path) -> None:
    """Launch polled with zeek-client; for zeek-mgmt (ordered start) the ordered deploy and
    the ordered stop."""
    run.figures[LAUNCH_CLIENT] = launched_client(run)
    if run.backend == "zeek-mgmt":
        deployed(run, cfg, DEPLOY_ORDERED)
        run.figures[STOP_ORDERED] = run.stop()[1]
    else:
        run.stop()


@contextlib.contextmanager
def namespace(name: str, use: bool) -> Iterator[Netns | None]:
    if not use:
        yield None
        return
    ns = Netns(name)
    try:
        yield ns
    finally:
        ns.close()


def measure(
    backend: str, prefix: Path, root: Path, use_netns: bool, client: str, cfg: Path
) -> tuple[dict[str, float], list[str]]:
    """The figures of one run of ``backend`` (two launches, each in its own namespace) and
    notes to print."""
    figures: dict[str, float] = {}
    notes: list[str] = []
    for step, ordered in ((one_run, False), (second_run, True)):
        where = root / step.__name__
        with namespace(f"vszeek-{os.getpid()}-{root.name}-{ordered:d}", use_netns) as ns:
            run = Run(backend, prefix, where, ns, client, ordered=ordered)
            try:
                step(run, cfg)
            finally:
                run.kill()
        figures |= run.figures
        notes += run.notes
    return figures, notes


def compile_checkout(checkout: Path) -> None:
    """Write the bytecode of ``checkout``'s packages, as installing them would (pip
    compiles on install): without it, a shell with ``PYTHONDONTWRITEBYTECODE=1`` makes
    every launch compile our modules afresh (~0.15-0.3 s of CPU)."""
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", "mgmt", "client"], cwd=checkout, check=True
    )


def short(figure: str) -> str:
    """The figure's name without its unit."""
    return figure.rsplit(" (", 1)[0]


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg()) + f" ({os.cpu_count()} CPUs)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--zeek", type=Path, default=Path("/opt/zeek"), help="Zeek prefix")
    parser.add_argument("--runs", type=int, default=5, help="runs per backend (5)")
    args = parser.parse_args()
    if not (args.zeek / "bin" / "zeek").exists():
        sys.exit(f"no zeek at {args.zeek}/bin/zeek")
    use_netns = os.geteuid() == 0 and shutil.which("ip") is not None
    client = zeek_client()
    version = subprocess.run(
        [str(args.zeek / "bin" / "zeek"), "--version"], capture_output=True, text=True
    ).stdout.strip()
    print(f"# {version} at {args.zeek}; {args.runs} runs per backend, alternating")
    print(
        "# isolation: "
        + ("a network namespace per run" if use_netns else "none (not root): sequential runs")
    )
    compile_checkout(REPO)
    print(f"# zeek-mgmt from {REPO}, its bytecode compiled first (compileall), as installed")
    print(f"# load average before: {load()}")
    results: dict[str, list[dict[str, float]]] = {"zeek": [], "zeek-mgmt": []}
    failures: dict[str, list[str]] = {"zeek": [], "zeek-mgmt": []}
    with tempfile.TemporaryDirectory(prefix="vs-zeek-") as tmp:
        cfg = Path(tmp) / "cluster.cfg"
        cfg.write_text(CLUSTER_CFG)
        for i in range(args.runs):
            order = ("zeek", "zeek-mgmt") if i % 2 == 0 else ("zeek-mgmt", "zeek")
            for backend in order:
                for attempt in range(1 + RETRIES):
                    root = Path(tmp) / f"{backend}-{i}-{attempt}"
                    try:
                        figures, notes = measure(backend, args.zeek, root, use_netns, client, cfg)
                    except (RuntimeError, TimeoutError) as exc:
                        failures[backend].append(str(exc).split("\n", 1)[0])
                        print(f"# run {i + 1} {backend}: FAILED: {exc}", flush=True)
                        continue
                    results[backend].append(figures)
                    shown = ", ".join(f"{short(k)} {v:.2f}" for k, v in figures.items())
                    print(f"# run {i + 1} {backend}: {shown}", flush=True)
                    for note in notes:
                        print(f"#   {note}", flush=True)
                    break
    print(f"# load average after: {load()}")
    for backend, reasons in failures.items():
        if reasons:
            print(f"# {backend}: {len(reasons)} failed run(s), retried: {'; '.join(reasons)}")
    if not results["zeek-mgmt"]:
        print("no complete run of zeek-mgmt")
        return 1
    report(results)
    if not results["zeek"]:
        print("\nno complete run of Zeek's framework (no ratios): rerun on a quieter machine")
        return 1
    return 0


def report(results: dict[str, list[dict[str, float]]]) -> None:
    """The table of medians (Zeek's column '-' where it has no complete run) and ratios."""
    figures = list(results["zeek-mgmt"][0])
    print(f"\n| figure (median) | zeek -j | zeek-mgmt run | ratio |\n|{'---|' * 4}")
    ratios = []
    for name in figures:
        ours = statistics.median(r[name] for r in results["zeek-mgmt"])
        zeeks = COMPARED_WITH.get(name, name)
        if not results["zeek"] or zeeks not in results["zeek"][0]:
            print(f"| {name} | - | {ours:.2f} | - |")
            continue
        theirs = statistics.median(r[zeeks] for r in results["zeek"])
        ratio = theirs / ours if ours > 0 else float("inf")
        print(f"| {name} | {theirs:.2f} | {ours:.2f} | {ratio:.1f}x |")
        ratios.append(f"ratio {short(name)} vs zeek: {ratio:.1f}x")
    print()
    print("\n".join(ratios))


if __name__ == "__main__":
    sys.exit(main())
