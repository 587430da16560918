"""Multi-host: a controller and two agents on three "hosts" (network namespaces joined by
a bridge), deploying one configuration across both agents with the real zeek-client.

Runs when the tests run as root with iproute2 (``ip netns``); skipped otherwise. Only
addresses inside the namespaces this test creates are used. The nodes are the test
double, and (marker ``zeek``) real Zeek on each cluster backend.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from mgmt.persist import curvekeys
from mgmt.settings.kinds import CLUSTER_BACKENDS
from tests.paths import REPO_ROOT
from tests.support.cli import RUN_TIMEOUT, zeek_client_path
from tests.support.real_zeek import PROBE_SCRIPT, TIMEOUT, real_zeek
from tests.support.waiting import MS, wait_until
from tests.zeekdouble.fixture import install_zeek_double

pytestmark = pytest.mark.netns

SUBNET = "10.231.77"
CONTROLLER_IP = f"{SUBNET}.1"
AGENTS = {"agent-r1": f"{SUBNET}.2", "agent-r2": f"{SUBNET}.3"}
NODES = {"manager", "logger", "worker-1", "worker-2"}
CONFIG = """\
[instances]
agent-r1
agent-r2

[manager]
instance = agent-r1
role = manager

[logger]
instance = agent-r1
role = logger

[worker-1]
instance = agent-r2
role = worker
interface = lo

[worker-2]
instance = agent-r2
role = worker
interface = lo
"""


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


def _netns_usable() -> str | None:
    if os.geteuid() != 0:
        return "needs root"
    if shutil.which("ip") is None:
        return "needs iproute2 (ip)"
    probe = f"zmprobe{uuid.uuid4().hex[:6]}"
    try:
        _ip("netns", "add", probe)
    except (subprocess.CalledProcessError, OSError) as exc:
        return f"ip netns does not work here: {exc}"
    _ip("netns", "del", probe)
    return None


@pytest.fixture
def hosts() -> Iterator[dict[str, str]]:
    """Three namespaces: the controller's (holding the bridge) and one per agent."""
    reason = _netns_usable()
    if reason is not None:
        pytest.skip(reason)
    tag = uuid.uuid4().hex[:6]
    names = {"controller": f"zmc{tag}", **{a: f"zm{a[-2:]}{tag}" for a in AGENTS}}
    created: list[str] = []
    try:
        for ns in names.values():
            _ip("netns", "add", ns)
            created.append(ns)
            _ip("-n", ns, "link", "set", "lo", "up")
        ctl = names["controller"]
        _ip("-n", ctl, "link", "add", "br0", "type", "bridge")
        _ip("-n", ctl, "addr", "add", f"{CONTROLLER_IP}/24", "dev", "br0")
        _ip("-n", ctl, "link", "set", "br0", "up")
        for agent, addr in AGENTS.items():
            ns, veth = names[agent], f"v{agent[-2:]}{tag}"
            _ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
            _ip("link", "set", veth, "netns", ctl)
            _ip("-n", ctl, "link", "set", veth, "master", "br0")
            _ip("-n", ctl, "link", "set", veth, "up")
            _ip("-n", ns, "addr", "add", f"{addr}/24", "dev", "eth0")
            _ip("-n", ns, "link", "set", "eth0", "up")
        yield names
    finally:
        for ns in created:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def _in(ns: str, argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen(
            ["ip", "netns", "exec", ns, *argv],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _client(ns: str, *args: str) -> tuple[int, dict[str, object]]:
    out = subprocess.run(
        ["ip", "netns", "exec", ns, zeek_client_path(), "--controller", "127.0.0.1:2149", *args],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
    )
    try:
        parsed: dict[str, object] = json.loads(out.stdout) if out.stdout.strip() else {}
    except json.JSONDecodeError:
        parsed = {"raw": out.stdout, "stderr": out.stderr}
    return out.returncode, parsed


@contextlib.contextmanager
def _deployed(
    hosts: dict[str, str], tmp_path: Path, bin_dir: Path, agent_args: list[str]
) -> Iterator[None]:
    """The controller and both agents started in their namespaces (``bin_dir`` first on
    PATH, ``agent_args`` for each agent), CONFIG deployed with its nodes RUNNING where
    they belong; at exit every daemon stops cleanly, leaving no process behind."""
    base = dict(os.environ, PYTHONPATH=str(REPO_ROOT), PATH=f"{bin_dir}:{os.environ['PATH']}")
    procs: list[subprocess.Popen[bytes]] = []
    try:
        procs.append(
            _in(
                hosts["controller"],
                [sys.executable, "-m", "mgmt", "controller", "--state-dir", str(tmp_path / "ctl")],
                base,
                tmp_path / "controller.log",
            )
        )
        for agent in AGENTS:
            env = dict(base, ZEEK_AGENT_NAME=agent)
            argv = [sys.executable, "-m", "mgmt", "agent", "--controller", f"{CONTROLLER_IP}:2150"]
            argv += ["--state-dir", str(tmp_path / agent), *agent_args]
            procs.append(_in(hosts[agent], argv, env, tmp_path / f"{agent}.log"))

        def both_listed() -> dict[str, object] | None:
            rc, out = _client(hosts["controller"], "get-instances")
            return out if rc == 0 and set(AGENTS) <= set(out) else None

        instances = wait_until(both_listed, timeout=60_000 * MS, interval=0.3, what="both agents")
        for agent, addr in AGENTS.items():
            assert instances[agent] == {"host": addr}

        cfg = tmp_path / "cluster.cfg"
        cfg.write_text(CONFIG)
        rc, deployed = _client(hosts["controller"], "deploy-config", str(cfg))
        assert rc == 0, deployed
        nodes = deployed["results"]["nodes"]  # type: ignore[index]
        assert {n: v["instance"] for n, v in nodes.items()} == {
            "manager": "agent-r1",
            "logger": "agent-r1",
            "worker-1": "agent-r2",
            "worker-2": "agent-r2",
        }

        rc, status = _client(hosts["controller"], "get-nodes")
        assert rc == 0, status
        results = status["results"]
        assert isinstance(results, dict)
        for agent, want in (
            ("agent-r1", {"manager", "logger"}),
            ("agent-r2", {"worker-1", "worker-2"}),
        ):
            rows = results[agent]
            cluster = {n: r for n, r in rows.items() if r["cluster_role"] is not None}
            assert set(cluster) == want
            assert all(r["state"] == "RUNNING" and r["pid"] for r in cluster.values())
        yield
    finally:
        for proc in procs:
            proc.terminate()
        hung = []
        for proc in procs:
            try:
                proc.wait(timeout=40_000 * MS)
            except subprocess.TimeoutExpired:
                hung.append(proc.args)
                proc.kill()
                proc.wait()
        leftovers = _processes_under(tmp_path)
        for leftover in leftovers:
            leftover.kill()
    # A clean stop of every daemon stops its nodes: nothing may hang or outlive it.
    assert not hung, f"daemons ignored SIGTERM: {hung}"
    assert not leftovers, f"processes left behind: {leftovers}"
    # ... and within its grace period: no task of theirs had to be abandoned.
    for log in tmp_path.glob("*.log"):
        assert "did not stop within" not in log.read_text(), log.read_text()[-3000:]


def test_controller_and_two_agents_on_separate_hosts(hosts: dict[str, str], tmp_path: Path) -> None:
    """Agents on two "remote" hosts dial the controller, get one configuration deployed
    across them, and report their nodes RUNNING; the controller sees each agent's own
    address."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    install_zeek_double(bin_dir)
    with _deployed(hosts, tmp_path, bin_dir, []):
        pass


@pytest.mark.zeek
@pytest.mark.parametrize("backend", CLUSTER_BACKENDS)
def test_real_zeek_cluster_across_hosts(
    hosts: dict[str, str], tmp_path: Path, backend: str
) -> None:
    """Real Zeek on both hosts, on each cluster backend: the workers' log rows reach the
    logger on the other host, get-id-value reaches every node, ZeroMQ runs with the
    controller's CURVE keys, and no secret key reaches a daemon's log."""
    zeek = real_zeek()
    probe = tmp_path / "probe.zeek"
    probe.write_text(PROBE_SCRIPT)
    args = [f"--cluster-backend={backend}", "--node-arg=-C", f"--node-script={probe}"]
    with _deployed(hosts, tmp_path, zeek.zeek.parent, args):
        logger_log = tmp_path / "agent-r1" / "nodes" / "logger" / "mgmt_probe.log"

        def writers() -> set[str] | None:
            with contextlib.suppress(OSError):
                rows = logger_log.read_text().splitlines()
                seen = {r for r in rows if not r.startswith("#")}
                return seen if seen >= NODES else None
            return None

        wait_until(writers, timeout=TIMEOUT, interval=0.3, what="rows of every node")
        rc, out = _client(hosts["controller"], "get-id-value", "Cluster::node")
        assert (rc, out) == (0, {"errors": [], "results": {n: n for n in sorted(NODES)}})
        # Two hosts on ZeroMQ: encrypted with the controller's keys (zeekctl's auto).
        ident = "Cluster::Backend::ZeroMQ::curve_server_publickey"
        rc, out = _client(hosts["controller"], "get-id-value", ident, "worker-1")
        (key_file,) = (tmp_path / "ctl" / "nodes").glob(f"*/{curvekeys.FILE_NAME}")
        keys = curvekeys.load(key_file)
        assert keys is not None
        if backend == "zeromq":
            assert (rc, out) == (0, {"errors": [], "results": {"worker-1": keys.server_publickey}})
        else:  # Broker nodes have no ZeroMQ options at all
            assert out["errors"] == [{"error": "unknown id", "source": "worker-1"}], out
    secrets = (keys.server_secretkey, keys.client_secretkey)
    for log in tmp_path.glob("*.log"):
        assert not any(secret in log.read_text() for secret in secrets), log


def _processes_under(root: Path) -> list[psutil.Process]:
    """Live processes whose command line mentions ``root`` (our daemons and nodes)."""
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        try:
            if proc.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            if any(str(root) in arg for arg in proc.info["cmdline"] or ()):
                found.append(proc)
        except psutil.Error:
            continue
    return found
