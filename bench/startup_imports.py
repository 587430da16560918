"""Start-up imports: what importing the daemons costs, and how much of it is building
our frozen dataclasses (issue 16).

Run from the repository root::

    python bench/startup_imports.py [--runs N] [--tree DIR ...] [--instances]

Each run starts fresh interpreters (bytecode cached: the trees are compiled first and
``PYTHONDONTWRITEBYTECODE`` is dropped, as for an installed package) that import, each
alone, the controller (``mgmt.controller.main``), the agent (``mgmt.agent.main``) and what
``zeek-mgmt run`` imports before it forks both (``mgmt.daemon.run`` and the two), and one
more that imports the latter while timing class creation: ``dataclasses``' own processing
plus :func:`mgmt.core.frozen.frozen` around it (outermost calls only), and counting the
classes made. With several ``--tree`` (default: this checkout), the runs alternate between
the trees, so a loaded machine weighs on all alike; the figures are medians.

``--instances`` adds per-instance costs, measured in one more interpreter per run and
tree: construct (keyword arguments), ``==`` of equal objects, ``hash`` and ``repr`` of
``Result``, ``NodeStatus``, ``Node`` and an event (``GetConfigurationRequest``), in
nanoseconds per call, the fastest of all runs (the least disturbed).

The load average is printed before and after: compare trees run together, not absolutes.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

IMPORTS = {
    "controller": "import mgmt.controller.main",
    "agent": "import mgmt.agent.main",
    "both": "import mgmt.daemon.run, mgmt.controller.main, mgmt.agent.main",
}

TIME_IMPORT = """
import time
t, c = time.perf_counter(), time.process_time()
{stmt}
print((time.perf_counter() - t) * 1000, (time.process_time() - c) * 1000)
"""

TIME_CLASSES = """
import dataclasses, time
spent = [0.0, 0, 0]  # ms, classes, depth

def timed(orig, count):
    def wrapper(*args, **kwargs):
        spent[2] += 1
        t = time.perf_counter()
        try:
            return orig(*args, **kwargs)
        finally:
            spent[2] -= 1
            if not spent[2]:
                spent[0] += (time.perf_counter() - t) * 1000
                spent[1] += count
    return wrapper

dataclasses._process_class = timed(dataclasses._process_class, 1)
try:
    import mgmt.core.frozen as frozen
except ImportError:
    frozen = None
else:
    frozen._build = timed(frozen._build, 1)
{stmt}
print(spent[0], spent[1])
"""

TIME_INSTANCES = """
import json, timeit
from mgmt.broker import records as br
from mgmt.broker import events as be
from mgmt.broker.data import Port

cases = {
    "Result": lambda: br.Result(reqid="r1", success=True, instance="i1", data=None),
    "NodeStatus": lambda: br.NodeStatus(
        node="worker-1", state=br.State.RUNNING, mgmt_role=br.Role.NONE,
        cluster_role=br.ClusterRole.WORKER, pid=1234, p=Port(2200, "tcp")),
    "Node": lambda: br.Node(
        name="worker-1", instance="i1", role=br.ClusterRole.WORKER, interface="eth0",
        scripts=("a.zeek",)),
    "event": lambda: be.GetConfigurationRequest(reqid="r1", deployed=True),
}
out = {}
for name, make in cases.items():
    a, b = make(), make()
    try:
        hash(a)
        hashable = True
    except TypeError:
        hashable = False
    ops = {"construct": make, "eq": lambda: a == b, "repr": lambda: repr(a)}
    if hashable:
        ops["hash"] = lambda: hash(a)
    for op, fn in ops.items():
        n, secs = 20000, min(timeit.repeat(fn, number=20000, repeat=5))
        out[f"{name} {op}"] = secs / n * 1e9
print(json.dumps(out))
"""


def child(tree: Path, code: str) -> str:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = str(tree)
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tree, env=env, capture_output=True, text=True
    )
    if done.returncode:
        raise SystemExit(f"{tree}: child failed:\n{done.stderr}")
    return done.stdout.strip()


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--tree", type=Path, action="append", help="checkout to measure")
    parser.add_argument("--instances", action="store_true", help="per-instance costs too")
    args = parser.parse_args()
    trees = [t.resolve() for t in (args.tree or [ROOT])]
    for tree in trees:
        for package in ("mgmt", "client"):
            compileall.compile_dir(tree / package, quiet=1)
    print(f"load average before: {load()}")
    figures: dict[Path, dict[str, list[float]]] = {t: {} for t in trees}
    instances: dict[Path, dict[str, list[float]]] = {t: {} for t in trees}
    for _ in range(args.runs):
        for tree in trees:
            row = figures[tree]
            for name, stmt in IMPORTS.items():
                wall, cpu = child(tree, TIME_IMPORT.format(stmt=stmt)).split()
                row.setdefault(f"import {name} ms", []).append(float(wall))
                row.setdefault(f"import {name} cpu ms", []).append(float(cpu))
            ms, classes = child(tree, TIME_CLASSES.format(stmt=IMPORTS["both"])).split()
            row.setdefault("class creation ms", []).append(float(ms))
            row.setdefault("classes", []).append(float(classes))
            if args.instances:
                for name, ns in json.loads(child(tree, TIME_INSTANCES)).items():
                    instances[tree].setdefault(name, []).append(ns)
    print(f"load average after: {load()}")
    for tree in trees:
        print(f"\n{tree} (medians of {args.runs} runs)")
        for name, values in figures[tree].items():
            print(f"  {name:22} {statistics.median(values):8.1f}")
        for name, values in instances[tree].items():
            print(f"  {name + ' ns':22} {min(values):8.0f}")
    if len(trees) > 1:
        base, *others = trees
        for other in others:
            for name, values in figures[other].items():
                ratio = statistics.median(figures[base][name]) / statistics.median(values)
                print(f"ratio {name} {base.name} / {other.name}: {ratio:.2f}x")


if __name__ == "__main__":
    main()
