"""Start-up and memory of ``zeek-mgmt run`` (prints figures; not a test).

Launches ``python -m mgmt run`` from a checkout (``--checkout``, default this one) with
the settings and environment of ``bench/vs_zeek.py``'s zeek-mgmt backend, ``--runs``
times (default 10), each run in a fresh temporary state directory and, as root, in its
own network namespace, and prints the medians of:

launch
    from starting ``run`` until the raw ``get_instances_request`` probe of
    ``bench/vs_zeek.py`` (the frames ``zeek-client get-instances`` sends) lists the agent;
CPU to listed
    the CPU time (user + system) the management processes have used by then: less
    sensitive than the launch time to other work on the machine;
RSS, PSS
    of the management processes (``run``, controller, agent) once the agent is listed,
    in all and per process;
import CPU
    of ``import mgmt.cli, mgmt.controller.main, mgmt.agent.main`` in a fresh interpreter
    (what ``python -m mgmt run`` imports before it forks), from its own runs.

Before measuring, the checkout's bytecode is compiled (``compileall``), as installing the
package would have: otherwise, in a shell with ``PYTHONDONTWRITEBYTECODE=1``, every
launch compiles our modules again.

``--compare OTHER`` measures a second checkout too, alternating the two run by run (A/B),
and prints ``ratio <figure> OTHER/this: N.NNx`` lines (above 1: this checkout takes less).
The load average is printed before and after: other work inflates both sides alike, so
read the ratios.

Usage::

    python bench/startup.py [--checkout DIR] [--compare OTHER_DIR] [--runs N] [--zeek PREFIX]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import psutil
from vs_zeek import REPO, Run, compile_checkout, launched, load, namespace, zeek_client

LAUNCH = "launch → agent listed (s)"
CPU = "CPU to listed, all processes (s)"
RSS = "RSS (MB)"
PSS = "PSS (MB)"
IMPORT = "import CPU of both daemons (ms)"
#: Per-process figures are named after the process's role.
ROLES = ("run", "controller", "agent")

_IMPORT_PROBE = (
    "import time\n"
    "t0 = time.process_time()\n"
    "import mgmt.cli, mgmt.controller.main, mgmt.agent.main\n"
    "t1 = time.process_time()\n"
    "import mgmt, sys\n"
    "print((t1 - t0) * 1000, mgmt.__file__, len(sys.modules))\n"
)


def role(name: str) -> str:
    """``run``, ``controller`` or ``agent`` from a process name (``zeek``,
    ``zeek.controller``, ``zeek.agent-<host>``)."""
    if name == "zeek":
        return "run"
    return "controller" if name.startswith("zeek.controller") else "agent"


def cpu(run: Run) -> float:
    """User + system CPU seconds of the management processes so far."""
    total = 0.0
    for p in run.tree():
        if run.is_node(p):
            continue
        try:
            t = p.cpu_times()
        except psutil.Error:
            continue
        total += t.user + t.system
    return total


def one_launch(checkout: Path, prefix: Path, root: Path, use_netns: bool) -> dict[str, float]:
    """Launch ``run`` from ``checkout``, measure, stop it."""
    figures: dict[str, float] = {}
    with namespace(f"startup-{os.getpid()}-{root.name}", use_netns) as ns:
        run = Run("zeek-mgmt", prefix, root, ns, zeek_client(), checkout=checkout)
        try:
            figures[LAUNCH] = launched(run)
            figures[CPU] = cpu(run)
            each = run.memory_each()
            figures[RSS] = sum(r for _, r, _ in each)
            figures[PSS] = sum(p for _, _, p in each)
            for name, rss, pss in each:
                figures[f"PSS {role(name)} (MB)"] = pss
                figures[f"RSS {role(name)} (MB)"] = rss
            run.stop()
        finally:
            run.kill()
    return figures


def import_cpu(checkout: Path) -> tuple[float, str, int]:
    """The CPU (ms) of importing both daemons in a fresh interpreter from ``checkout``,
    where ``mgmt`` came from, and how many modules were loaded."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZEEK_", "SPT_"))}
    env["PYTHONPATH"] = str(checkout)
    out = subprocess.run(
        [sys.executable, "-c", _IMPORT_PROBE],
        cwd=checkout,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return float(out[0]), out[1], int(out[2])


def median(results: list[dict[str, float]], name: str) -> float | None:
    values = [r[name] for r in results if name in r]
    return statistics.median(values) if values else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--checkout", type=Path, default=REPO, help="the checkout measured")
    parser.add_argument("--compare", type=Path, help="another checkout, alternated (A/B)")
    parser.add_argument("--runs", type=int, default=10, help="launches per checkout (10)")
    parser.add_argument("--zeek", type=Path, default=Path("/opt/zeek"), help="agent.zeek prefix")
    args = parser.parse_args()
    checkouts = [args.checkout.resolve()]
    if args.compare is not None:
        checkouts.append(args.compare.resolve())
    use_netns = os.geteuid() == 0 and shutil.which("ip") is not None
    for checkout in checkouts:
        compile_checkout(checkout)
    names = [str(c) for c in checkouts]
    print(f"# checkouts: {', '.join(names)}; bytecode compiled first (compileall)")
    print(
        f"# {args.runs} launches per checkout, alternating; PYTHONDONTWRITEBYTECODE="
        + os.environ.get("PYTHONDONTWRITEBYTECODE", "")
    )
    print(
        "# isolation: "
        + ("a network namespace per run" if use_netns else "none (not root): sequential runs")
    )
    print(f"# load average before: {load()}", flush=True)
    results: dict[str, list[dict[str, float]]] = {c: [] for c in names}
    with tempfile.TemporaryDirectory(prefix="startup-") as tmp:
        for i in range(args.runs):
            order = names if i % 2 == 0 else names[::-1]
            for name in order:
                checkout = Path(name)
                root = Path(tmp) / f"{i}-{names.index(name)}"
                figures = one_launch(checkout, args.zeek, root, use_netns)
                ms, where, modules = import_cpu(checkout)
                if not where.startswith(name):
                    sys.exit(f"mgmt imported from {where}, not from {name}")
                figures[IMPORT] = ms
                figures["modules after importing both daemons"] = modules
                results[name].append(figures)
                shown = ", ".join(f"{k.rsplit(' (', 1)[0]} {v:.3f}" for k, v in figures.items())
                print(f"# run {i + 1} {name}: {shown}", flush=True)
    print(f"# load average after: {load()}")
    report(results, names)
    return 0


def report(results: dict[str, list[dict[str, float]]], names: list[str]) -> None:
    """Medians per checkout, and ratios of the second over the first."""
    figures = [LAUNCH, CPU, RSS, PSS]
    figures += [f"{kind} {r} (MB)" for r in ROLES for kind in ("PSS", "RSS")]
    figures += [IMPORT, "modules after importing both daemons"]
    print(f"\n| figure (median) | {' | '.join(names)} |\n|{'---|' * (1 + len(names))}")
    for figure in figures:
        values = [median(results[n], figure) for n in names]
        shown = " | ".join("-" if v is None else f"{v:.3f}" for v in values)
        print(f"| {figure} | {shown} |")
    if len(names) == 2:
        print()
        for figure in figures:
            this, other = (median(results[n], figure) for n in names)
            if this and other:
                print(f"ratio {figure.rsplit(' (', 1)[0]} other/this: {other / this:.2f}x")


if __name__ == "__main__":
    sys.exit(main())
