"""Helpers for node-channel, get-id-value and archival tests.

* :func:`free_port_block` finds consecutive free loopback ports (node channel ports are
  assigned consecutively from a start port).
* :class:`DoubleNode` runs one test-double ``zeek`` the way the agent starts a node
  (layout dir with ``cluster-layout.zeek``, ``zeek-mgmt-node.zeek`` and the settings it
  loads on ``ZEEKPATH``,
  ``CLUSTER_NODE``, cwd ``<nodes>/<name>``, ``-U .status``).
* :class:`MgmtRun` runs ``python -m mgmt run`` (controller + agent) on free ports with
  the double on ``PATH``, and runs the real ``zeek-client`` against it.
"""

from __future__ import annotations

import contextlib
import importlib.resources
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from mgmt.agent.layout import SETTINGS_FILE, settings_text
from tests.paths import REPO_ROOT
from tests.support.cli import Run, run_cmd_sync, zeek_client_argv
from tests.support.ports import free_port, free_port_block
from tests.support.waiting import TIMEOUT, wait_until
from tests.zeekdouble.fixture import install_zeek_double

BACKEND = "policy/frameworks/cluster/backend/broker"
NODE_SCRIPT_TEXT = (
    importlib.resources.files("mgmt").joinpath("scripts/zeek-mgmt-node.zeek").read_text()
)


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

    def wait_running(self, timeout: float = 10.0) -> None:
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

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
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
        (self.layout_dir / "zeek-mgmt-node.zeek").write_text(NODE_SCRIPT_TEXT)
        (self.layout_dir / SETTINGS_FILE).write_text(settings_text(None, management_scripts=False))
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


# --------------------------------------------------------------------------------------
# zeek-mgmt run + zeek-client


class MgmtRun:
    """``python -m mgmt run`` on free ports, with the test-double zeek on PATH.

    Args:
        root: a fresh directory (state, spool, logs, double).
        agent: the agent's name (use it as the nodes' instance in configurations).
        node_ports: first node channel port (``agent.node_websocket_start_port``).
        settings: more ``--set`` entries, e.g. ``agent.archive_interval=1``.
        env: more environment for the daemons (and so for the nodes).
    """

    def __init__(
        self,
        root: Path,
        *,
        agent: str = "agent-test",
        node_ports: int | None = None,
        settings: list[str] | None = None,
        env: dict[str, str] | None = None,
        log_level: str = "debug",
    ) -> None:
        self.root = root
        self.log_level = log_level
        self.agent = agent
        self.zeek = install_zeek_double(root / "zeek-prefix" / "bin")
        self.state = root / "state"
        self.spool = root / "spool"
        self.ws_port = free_port()
        self.agent_port = free_port()
        self.node_ports = node_ports if node_ports is not None else free_port_block(16)
        self.settings = [
            f"controller.listen_port={self.agent_port}",
            f"controller.listen_port_websocket={self.ws_port}",
            "controller.listen_address=127.0.0.1",
            "controller.listen_address_websocket=127.0.0.1",
            "controller.name=controller-test",
            f"agent.name={agent}",
            "agent.listen_port=0",
            f"agent.controller=127.0.0.1:{self.agent_port}",
            f"agent.node_websocket_start_port={self.node_ports}",
            "agent.stop_grace=5",
            *(settings or []),
        ]
        base = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("ZEEK_", "PYTHON")) and k != "NOTIFY_SOCKET"
        }
        base["PATH"] = f"{self.zeek.parent}:{base.get('PATH', '')}"
        base["PYTHONPATH"] = str(REPO_ROOT)
        base.update(env or {})
        self.env = base
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = root / "mgmt-run.log"

    def start(self) -> None:
        argv = [
            sys.executable,
            "-m",
            "mgmt",
            "run",
            "--state-dir",
            str(self.state),
            "--spool-dir",
            str(self.spool),
            "--log-level",
            self.log_level,
        ]
        for entry in self.settings:
            argv += ["--set", entry]
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                argv, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        wait_until(self._agent_connected, "controller with agent connected", timeout=2 * TIMEOUT)

    def _agent_connected(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            pytest.fail(f"zeek-mgmt run exited {self.proc.returncode}:\n{self.logtext()}")
        res = self.client("get-instances", check_alive=False)
        return res.code == 0 and self.agent in res.stdout

    def logtext(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def client(self, *args: str, check_alive: bool = True, timeout: float = 30.0) -> Run:
        """Run the real zeek-client against our controller."""
        return run_cmd_sync(zeek_client_argv(self.ws_port, *args), cwd=self.root, timeout=timeout)

    def deploy(self, config: str) -> Run:
        path = self.root / "cluster.cfg"
        path.write_text(config)
        return self.client("deploy-config", str(path))

    def node_dir(self, name: str) -> Path:
        return self.state / "nodes" / name

    def nodes(self) -> dict[str, Any]:
        """get-nodes' rows of our agent: ``{name: {"state": ..., "pid": ...}}``."""
        res = self.client("get-nodes")
        rows: dict[str, Any] = res.json().get("results", {}).get(self.agent, {})
        return rows

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        # Nodes are the agent's children: make sure none outlives the test.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)


@contextlib.contextmanager
def mgmt_run(root: Path, **kwargs: Any) -> Iterator[MgmtRun]:
    """A started :class:`MgmtRun`, stopped at exit."""
    run = MgmtRun(root, **kwargs)
    try:
        run.start()
        yield run
    finally:
        run.stop()
