"""Test-double nodes started the way the agent starts a node, without an agent (for
the node channel, the double's own behaviour and log rotation).

* :class:`DoubleNode` is one double ``zeek`` process: layout dir with
  ``cluster-layout.zeek``, ``zeek-mgmt-node.zeek`` and the settings it loads on
  ``ZEEKPATH``, ``CLUSTER_NODE``, cwd ``<nodes>/<name>``, ``-U .status``.
* :class:`DoubleCluster` (:func:`double_cluster`) starts such nodes sharing one layout
  dir, spool and record dir, and kills them at the end.
"""

from __future__ import annotations

import contextlib
import importlib.resources
import os
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from mgmt.agent.layout import BACKEND_FILE, NODE_SCRIPT, SETTINGS_FILE, settings_text
from tests.support.waiting import TIMEOUT, wait_until
from tests.zeekdouble.fixture import install_zeek_double

BACKEND = "policy/frameworks/cluster/backend/broker"
NODE_SCRIPT_TEXT = (
    importlib.resources.files("mgmt").joinpath("scripts/zeek-mgmt-node.zeek").read_text()
)


def write_node_script(layout_dir: Path, settings: str | None = None, backend: str = "") -> None:
    """Put ``zeek-mgmt-node.zeek`` and the files it loads into ``layout_dir``: the
    Management settings (``settings``; default: none known) and the backend settings."""
    (layout_dir / f"{NODE_SCRIPT}.zeek").write_text(NODE_SCRIPT_TEXT)
    if settings is None:
        settings = settings_text(None, management_scripts=False)
    (layout_dir / SETTINGS_FILE).write_text(settings)
    (layout_dir / BACKEND_FILE).write_text(backend or "# no backend settings\n")


def layout_text(nodes: dict[str, str], manager_is_logger: bool = False) -> str:
    """A ``cluster-layout.zeek`` for ``{name: "MANAGER"|"LOGGER"|"WORKER"|...}``."""
    lines = [f"redef Cluster::manager_is_logger = {'T' if manager_is_logger else 'F'};"]
    lines.append("redef Cluster::nodes = {")
    for name, kind in nodes.items():
        lines.append(f'\t["{name}"] = [$node_type=Cluster::{kind}, $ip=127.0.0.1],')
    lines.append("};")
    return "\n".join(lines) + "\n"


@dataclass
class DoubleNode:
    """One test-double node process."""

    name: str
    proc: subprocess.Popen[bytes]
    cwd: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def status(self) -> str:
        try:
            return (self.cwd / ".status").read_text().strip()
        except OSError:
            return ""

    def wait_running(self, timeout: float = TIMEOUT) -> None:
        """Wait until the status file says RUNNING (the channel is up by then)."""

        def running() -> bool:
            if self.proc.poll() is not None:
                pytest.fail(f"{self.name} exited {self.proc.returncode}: {self.stderr()}")
            return self.status().startswith("RUNNING")

        wait_until(running, f"{self.name} RUNNING", timeout=timeout)

    def stderr(self) -> str:
        try:
            return (self.cwd / "stderr").read_text()
        except OSError:
            return ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = TIMEOUT) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout)


@dataclass
class DoubleCluster:
    """Start double nodes sharing one layout dir, spool and record dir."""

    root: Path
    nodes: dict[str, str]
    manager_is_logger: bool = False
    zeek: Path = field(init=False)
    layout_dir: Path = field(init=False)
    spool: Path = field(init=False)
    running: list[DoubleNode] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.zeek = install_zeek_double(self.root / "zeek-prefix" / "bin")
        self.layout_dir = self.root / "layout"
        self.layout_dir.mkdir(parents=True, exist_ok=True)
        (self.layout_dir / "cluster-layout.zeek").write_text(
            layout_text(self.nodes, self.manager_is_logger)
        )
        write_node_script(self.layout_dir)
        self.spool = self.root / "spool"

    def start(
        self,
        name: str,
        port: int | None,
        *,
        env: dict[str, str] | None = None,
        script: bool = True,
        wait: bool = True,
    ) -> DoubleNode:
        cwd = self.root / "nodes" / name
        cwd.mkdir(parents=True, exist_ok=True)
        (cwd / ".status").unlink(missing_ok=True)  # a killed run's RUNNING must not count
        full_env = {
            k: v for k, v in os.environ.items() if not k.startswith(("ZEEK_DOUBLE_", "ZEEK_MGMT"))
        }
        full_env.update(
            CLUSTER_NODE=name,
            ZEEKPATH=f"{self.layout_dir}:.",
            ZEEK_MANAGEMENT_SPOOL_DIR=str(self.spool),
        )
        if port is not None:
            full_env["ZEEK_MGMT_NODE_WEBSOCKET_PORT"] = str(port)
        full_env.update(env or {})
        argv = [str(self.zeek), "-U", ".status", BACKEND]
        if script:
            argv.append("zeek-mgmt-node")
        with open(cwd / "stdout", "wb") as out, open(cwd / "stderr", "wb") as err:
            proc = subprocess.Popen(argv, cwd=cwd, env=full_env, stdout=out, stderr=err)
        node = DoubleNode(name, proc, cwd)
        self.running.append(node)
        if wait:
            node.wait_running()
        return node

    def close(self) -> None:
        for node in self.running:
            if node.proc.poll() is None:
                node.proc.kill()
            node.proc.wait()


@contextlib.contextmanager
def double_cluster(
    root: Path, nodes: dict[str, str], manager_is_logger: bool = False
) -> Iterator[DoubleCluster]:
    """A :class:`DoubleCluster` whose processes are killed at exit."""
    cluster = DoubleCluster(root, nodes, manager_is_logger)
    try:
        yield cluster
    finally:
        cluster.close()
