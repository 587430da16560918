"""Benchmark: start-up cost of the test-double ``zeek`` (tests/zeekdouble).

The test suite starts the double hundreds of times, so its start-up is test time.
Installs the double as the fixture does (``<tmp>/zeek-prefix/bin/zeek``) and per run
measures

* ``version``: ``zeek --version`` (interpreter start, imports, exit);
* ``node``: a logger node as the agent starts it (``CLUSTER_NODE``, layout and the
  management node script on ``ZEEKPATH``, ``-U .status``, node channel on a free port):
  the wall time until the status file says ``RUNNING``, then SIGTERM; CPU is the
  process's user+sys time over its whole life (``wait4``).

Prints per-kind medians of wall and CPU time. CPU time is the figure to compare on a
loaded machine; the load average is printed with it.

Usage (from the repository root, preferably inside a network namespace of its own)::

    python bench/zeek_double.py [--runs 30]
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.support.double_nodes import BACKEND, layout_text, write_node_script  # noqa: E402
from tests.zeekdouble.fixture import install_zeek_double  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _reap(proc: subprocess.Popen[bytes]) -> float:
    """Wait for ``proc``; its user+sys CPU seconds."""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return usage.ru_utime + usage.ru_stime


def run_version(zeek: Path) -> tuple[float, float]:
    start = time.perf_counter()
    proc = subprocess.Popen([str(zeek), "--version"], stdout=subprocess.DEVNULL)
    cpu = _reap(proc)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"zeek --version exited {proc.returncode}")
    return wall, cpu


def run_node(zeek: Path, root: Path, layout_dir: Path, n: int) -> tuple[float, float]:
    cwd = root / "nodes" / f"logger-{n}"
    cwd.mkdir(parents=True)
    status = cwd / ".status"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZEEK")}
    env.update(
        CLUSTER_NODE="logger",
        ZEEKPATH=f"{layout_dir}:.",
        ZEEK_MANAGEMENT_SPOOL_DIR=str(root / "spool"),
        ZEEK_MGMT_NODE_WEBSOCKET_PORT=str(_free_port()),
    )
    argv = [str(zeek), "-U", ".status", BACKEND, "zeek-mgmt-node"]
    with open(cwd / "stdout", "wb") as out, open(cwd / "stderr", "wb") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=out, stderr=err)
    while True:  # only the file system tells; poll finely so the figure stays honest
        try:
            if status.read_text().startswith("RUNNING"):
                break
        except FileNotFoundError:
            pass
        if proc.poll() is not None:
            raise SystemExit(f"node exited {proc.returncode}: {(cwd / 'stderr').read_text()}")
        time.sleep(0.0005)
    wall = time.perf_counter() - start
    proc.send_signal(signal.SIGTERM)
    return wall, _reap(proc)


def _report(kind: str, samples: list[tuple[float, float]]) -> None:
    wall = statistics.median(s[0] for s in samples) * 1000
    cpu = statistics.median(s[1] for s in samples) * 1000
    print(f"{kind:8} median wall {wall:7.1f} ms   median cpu {cpu:7.1f} ms   (n={len(samples)})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-double-") as tmp:
        root = Path(tmp)
        zeek = install_zeek_double(root / "zeek-prefix" / "bin")
        layout_dir = root / "layout"
        layout_dir.mkdir()
        (layout_dir / "cluster-layout.zeek").write_text(
            layout_text({"manager": "MANAGER", "logger": "LOGGER"})
        )
        write_node_script(layout_dir)
        run_version(zeek)  # warm-up (first start may write byte-code caches)
        versions = [run_version(zeek) for _ in range(args.runs)]
        nodes = [run_node(zeek, root, layout_dir, n) for n in range(args.runs)]
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    _report("version", versions)
    _report("node", nodes)


if __name__ == "__main__":
    main()
