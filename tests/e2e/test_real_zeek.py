"""zeek-mgmt with real Zeek nodes: ``zeek-mgmt run``, the real ``zeek-client`` and the
``zeek`` on PATH (Zeek 8.2.2 in CI), checked against what Zeek 8.2.2's own framework
does (its recorded outputs, such as the bad-interface deploy, and its sources).

One cluster (manager, logger, proxy, two workers on ``lo``; the logger rotates every 2 s)
is shared by the tests that leave it running; each of them first waits for every node
to be RUNNING. Failing deployments share a second site. Tests that stop the daemons
have their own.

Skipped without a Zeek (see tests/real_zeek.py); failed instead under .ci/run.
"""

from __future__ import annotations

import contextlib
import gzip
import ipaddress
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from mgmt.agent.layout import (
    BACKEND_SCRIPTS,
    LAYOUT_FILE,
    NODE_SCRIPT,
    ManagementSettings,
    backend_text,
    layout_text,
    settings_text,
)
from mgmt.broker.data import Port
from mgmt.broker.records import ClusterRole, Configuration, Instance, Node
from mgmt.settings.kinds import CLUSTER_BACKENDS
from tests.support.double_nodes import write_node_script
from tests.support.ports import free_ports
from tests.support.real_zeek import (
    NODES,
    PROBE_SCRIPT,
    TIMEOUT,
    RealZeek,
    own_ports,
    real_site,
    real_zeek,
    write_script,
)
from tests.support.reference import LOCAL_AGENT
from tests.support.scrape import http_get, scrape
from tests.support.settings import agent_settings, controller_settings
from tests.support.sites import CONTROLLER_NAME, Site, comm, node_rows, pids, proc_name
from tests.support.waiting import wait_until

pytestmark = pytest.mark.zeek

#: ``<path>__<open>__<close>__.log``: a rotated log in the queue (archiver naming).
QUEUE_NAME = re.compile(
    r"^(?P<path>[a-z_]+)__(?P<open>\d{4}-\d\d-\d\d)-(?P<ot>\d\d-\d\d-\d\d)__"
    r"\d{4}-\d\d-\d\d-(?P<ct>\d\d-\d\d-\d\d)__\.log$"
)
#: ``<YYYY-MM-DD>/<path>.<HH:MM:SS>-<HH:MM:SS>.log.gz``: zeek-archiver's archive names.
ARCHIVE_NAME = re.compile(r"^\d{4}-\d\d-\d\d/[a-z_]+\.\d\d:\d\d:\d\d-\d\d:\d\d:\d\d\.log\.gz$")
#: The pcap error of Zeek 8.2.2 for a missing interface (zeek-client deploy-config).
PCAP_ERROR = (
    "fatal error: problem with interface not-a-valid-interface "
    "(pcap_error: No such device exists (pcap_activate))"
)
#: Metrics ports start here in the shared cluster (not Zeek's 9000: a setting in effect).
METRICS_START = 9100


def cluster_cfg(logger_script: Path) -> str:
    """Manager, logger (with ``logger_script``), proxy and two workers on ``lo``."""
    return (
        "[manager]\nrole = manager\n\n"
        f"[logger]\nrole = logger\nscripts = {logger_script}\n\n"
        "[proxy]\nrole = proxy\n\n"
        "[worker-01]\nrole = worker\ninterface = lo\n\n"
        "[worker-02]\nrole = worker\ninterface = lo\n"
    )


def deploy(s: Site, text: str) -> tuple[int, dict[str, object]]:
    """``zeek-client deploy-config`` of ``text``: exit code and JSON output."""
    s.write_cfg(text)
    res = s.client("deploy-config", "cluster.cfg", timeout=TIMEOUT)
    return res.code, res.json()


def all_running(s: Site) -> dict[str, dict[str, object]]:
    """Wait until every node of the shared cluster is RUNNING; its get-nodes rows."""
    return s.wait_states(LOCAL_AGENT, dict.fromkeys(NODES, "RUNNING"), timeout=TIMEOUT)


@pytest.fixture(scope="module")
def zeek() -> RealZeek:
    """The real Zeek on PATH."""
    return real_zeek()


@pytest.fixture(scope="module", params=CLUSTER_BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """Each cluster backend in turn (``[agent] cluster_backend``)."""
    return str(request.param)


@pytest.fixture(scope="module")
def deployed(
    zeek: RealZeek, tmp_path_factory: pytest.TempPathFactory, backend: str
) -> Iterator[tuple[Site, dict[str, object]]]:
    """The shared cluster of each cluster backend (one at a time), and zeek-client's
    output of its deploy-config."""
    root = tmp_path_factory.mktemp(f"real-{backend}")
    rotate = write_script(
        root / "rotate-fast.zeek", "redef Log::default_rotation_interval = 2 secs;\n"
    )
    # Issue 13: both daemons serve metrics (test_metrics_of_a_real_cluster).
    cport, aport = free_ports(2)
    probe = write_script(root / "probe.zeek", PROBE_SCRIPT)
    settings = {
        "controller": {"auto_assign_metrics_start_port": METRICS_START, "metrics_port": cport},
        "agent": {
            "metrics_port": aport,
            "cluster_backend": backend,
            "node_scripts": [str(probe)],
        },
    }
    with real_site(root, zeek, **settings) as s:
        code, out = deploy(s, cluster_cfg(rotate))
        assert code == 0, f"{out}\n{s.daemon_logs()}"
        yield s, out


@pytest.fixture
def cluster(deployed: tuple[Site, dict[str, object]]) -> Site:
    """The shared cluster, once all its nodes are RUNNING."""
    s, _ = deployed
    all_running(s)
    return s


def test_quickstart_deploy_runs_five_real_nodes(
    zeek: RealZeek, deployed: tuple[Site, dict[str, object]], backend: str
) -> None:
    """deploy-config of manager, logger, proxy and two workers on lo: success for every
    node, all RUNNING, each a real zeek process named zeek.<node> in its directory,
    on the cluster backend of the agent's setting."""
    s, out = deployed
    assert out["errors"] == []
    results = out["results"]
    assert isinstance(results, dict)
    assert results["nodes"] == {n: {"instance": LOCAL_AGENT, "success": True} for n in NODES}
    rows = all_running(s)
    nodes = node_rows(rows)
    assert sorted(nodes) == NODES
    assert {n: r["cluster_role"] for n, r in nodes.items()} == {
        "logger": "LOGGER",
        "manager": "MANAGER",
        "proxy": "PROXY",
        "worker-01": "WORKER",
        "worker-02": "WORKER",
    }
    # Broker ports from Zeek's start port; metrics ports from the configured one.
    assert [nodes[n].get("port") for n in NODES] == [2201, 2200, 2202, None, None]
    assert sorted(r["metrics_port"] for r in nodes.values()) == list(
        range(METRICS_START, METRICS_START + 5)
    )
    for name, row in nodes.items():
        proc = psutil.Process(row["pid"])
        assert proc.exe() == str(zeek.zeek)
        assert BACKEND_SCRIPTS[backend] in proc.cmdline()
        assert comm(proc.pid) == proc_name(f"zeek.{name}")
        assert proc.cwd() == str(s.node_dir(name))
        assert (s.node_dir(name) / ".status").read_text().startswith("RUNNING")
    assert "listening on lo" in (s.node_dir("worker-01") / "stderr").read_text()


def test_every_nodes_logs_reach_the_logger(cluster: Site) -> None:
    """Rows each node (the workers on lo included) writes to a log stream arrive at the
    logger, in its mgmt_probe.log or the rotated files in the queue."""
    queue = cluster.spool_dir / "log-queue"

    def writers() -> set[str] | None:
        files = [cluster.node_dir("logger") / "mgmt_probe.log", *queue.glob("mgmt_probe__*")]
        seen = set()
        for f in files:
            with contextlib.suppress(OSError):
                seen.update(
                    line.strip() for line in f.read_text().splitlines() if not line.startswith("#")
                )
        return seen if seen >= set(NODES) else None

    assert wait_until(writers, "rows of every node", timeout=TIMEOUT, interval=0.2) == set(NODES)


def test_get_id_value_on_every_node(cluster: Site) -> None:
    """get-id-value reaches every real node: Cluster::node and the node script's settings."""
    res = cluster.client("get-id-value", "Cluster::node", check=True)
    assert res.json() == {"errors": [], "results": {n: n for n in NODES}}
    res = cluster.client("get-id-value", "Log::default_rotation_dir", check=True)
    queue = str(cluster.spool_dir / "log-queue")
    assert res.json()["results"] == dict.fromkeys(NODES, queue)
    res = cluster.client("get-id-value", "Log::default_rotation_interval", "logger", check=True)
    assert res.json()["results"] == {"logger": "2.0 secs"}  # the logger's own script
    res = cluster.client("get-id-value", "No::such_id")
    assert res.code == 1
    assert res.json() == {
        "errors": [{"error": "unknown id", "source": n} for n in NODES],
        "results": {},
    }


def test_management_ids_have_the_values_in_effect(cluster: Site) -> None:
    """Management:: settings exist on the nodes, with the values the daemons use."""

    def everywhere(ident: str) -> object:
        res = cluster.client("get-id-value", ident, check=True)
        values = res.json()["results"]
        assert sorted(values) == NODES, values
        assert len({repr(v) for v in values.values()}) == 1, values
        return values[NODES[0]]

    port = everywhere("Management::Controller::auto_assign_metrics_start_port")
    assert port == {"port": METRICS_START, "proto": "tcp"}
    assert everywhere("Management::Controller::name") == CONTROLLER_NAME
    assert everywhere("Management::Controller::listen_port") == f"{cluster.controller_port}/tcp"
    assert everywhere("Management::Agent::name") == LOCAL_AGENT
    assert everywhere("Management::Agent::controller") == {
        "address": "127.0.0.1",
        "bound_port": {"port": cluster.controller_port, "proto": "tcp"},
    }
    assert everywhere("Management::Agent::archive_dir") == str(cluster.root / "logs")
    assert everywhere("Management::Agent::archive_interval") == "1.0 hr"
    assert everywhere("Management::spool_dir") == str(cluster.spool_dir)
    assert everywhere("Management::role") == "Management::NODE"
    assert everywhere("Management::Controller::topic") == "zeek/management/controller"


def test_metrics_of_a_real_cluster(zeek: RealZeek, cluster: Site) -> None:
    """Issue 13: the agent's scrape shows the five real nodes RUNNING with their pids; the
    controller's /services.json lists their metrics ports, where Zeek's own telemetry
    answers."""
    settings = tomllib.loads((cluster.root / "settings.toml").read_text())
    ports = {role: settings[role]["metrics_port"] for role in ("controller", "agent")}
    rows = node_rows(all_running(cluster))
    samples = scrape(f"http://127.0.0.1:{ports['agent']}/metrics")
    for node in NODES:
        assert samples["zeek_mgmt_node_state"][(("node", node), ("state", "RUNNING"))] == 1
        assert samples["zeek_mgmt_node_pid"][(("node", node),)] == rows[node]["pid"]
    status, _, body = http_get(f"http://127.0.0.1:{ports['controller']}/services.json")
    assert status == 200
    targets = {g["labels"]["zeek_node"]: g["targets"][0] for g in json.loads(body)}
    assert sorted(targets) == NODES
    for node, target in targets.items():
        host, port = target.rsplit(":", 1)
        assert (host, int(port)) == (socket.gethostname(), rows[node]["metrics_port"])
        own = scrape(f"http://127.0.0.1:{port}/metrics")  # Zeek's telemetry endpoint
        assert any(dict(k).get("node") == node for k in own["zeek_version_info"])


def test_restart_named_then_all(cluster: Site) -> None:
    """restart logger gives the logger a new process; restart gives every node one.
    The agent does not dial the stopping nodes (no connection warnings)."""
    log_start = len(cluster.daemon_logs())
    before = pids(cluster.nodes_of(LOCAL_AGENT))
    res = cluster.client("restart", "logger", check=True, timeout=TIMEOUT)
    assert res.json() == {"errors": [], "results": {"logger": True}}
    after = pids(all_running(cluster))
    assert after["logger"] != before["logger"]
    assert {n: p for n, p in after.items() if n != "logger"} == {
        n: p for n, p in before.items() if n != "logger"
    }
    res = cluster.client("restart", check=True, timeout=TIMEOUT)
    assert res.json() == {"errors": [], "results": dict.fromkeys(NODES, True)}
    final = pids(all_running(cluster))
    assert all(final[n] != after[n] for n in NODES), (after, final)
    res = cluster.client("get-id-value", "Cluster::node", check=True)
    assert res.json()["results"] == {n: n for n in NODES}  # the new processes answer
    log = cluster.daemon_logs()[log_start:]
    assert "WARNING" not in log and "terminated by signal" not in log, log


def test_killed_node_is_revived(cluster: Site) -> None:
    """kill -9 of a worker: the agent starts a new process, RUNNING again; others untouched."""
    before = pids(cluster.nodes_of(LOCAL_AGENT))
    victim = before["worker-01"]
    assert victim is not None
    os.kill(victim, signal.SIGKILL)

    def revived() -> dict[str, int | None] | None:
        now = pids(cluster.nodes_of(LOCAL_AGENT))
        return now if now["worker-01"] not in (None, victim) else None

    after = wait_until(revived, "worker-01 revived", timeout=TIMEOUT, interval=0.2)
    all_running(cluster)
    assert {n: p for n, p in after.items() if n != "worker-01"} == {
        n: p for n, p in before.items() if n != "worker-01"
    }
    res = cluster.client("get-id-value", "Cluster::node", "worker-01", check=True)
    assert res.json()["results"] == {"worker-01": "worker-01"}


def test_rotation_into_the_queue_and_both_archivers(cluster: Site, tmp_path: Path) -> None:
    """The logger's rotated logs land in <spool>/log-queue with archiver names; the real
    zeek-archiver and ``zeek-mgmt archive`` turn the same queue into the same archive."""
    queue = cluster.spool_dir / "log-queue"

    def rotated() -> list[Path]:
        return sorted(p for p in queue.iterdir() if QUEUE_NAME.match(p.name))

    files = wait_until(rotated, "rotated logs in the queue", timeout=TIMEOUT, interval=0.2)
    assert all(QUEUE_NAME.match(p.name) for p in queue.iterdir()), sorted(queue.iterdir())
    trees = {}
    for which, argv in (
        ("zeek-archiver", [str(real_zeek().archiver)]),
        ("built-in", [sys.executable, "-m", "mgmt", "archive"]),
    ):
        q, a = tmp_path / which / "queue", tmp_path / which / "archive"
        q.mkdir(parents=True)
        for f in files:
            shutil.copy(f, q / f.name)
        proc = subprocess.run(
            [*argv, "-1", str(q), str(a)], capture_output=True, text=True, timeout=TIMEOUT
        )
        assert proc.returncode == 0, (which, proc.stdout, proc.stderr)
        assert list(q.iterdir()) == [], which
        trees[which] = {
            str(p.relative_to(a)): gzip.decompress(p.read_bytes())
            for p in a.rglob("*")
            if p.is_file()
        }
    assert trees["built-in"] == trees["zeek-archiver"]
    expected = {}
    for f in files:
        m = QUEUE_NAME.match(f.name)
        assert m is not None
        times = f"{m['ot'].replace('-', ':')}-{m['ct'].replace('-', ':')}"
        expected[f"{m['open']}/{m['path']}.{times}.log.gz"] = f.read_bytes()
    assert trees["zeek-archiver"] == expected
    assert all(ARCHIVE_NAME.match(name) for name in expected)
    assert all(content.startswith(b"#separator") for content in expected.values())


@pytest.mark.parametrize(
    ("management_scripts", "backend"), [(True, "broker"), (False, "broker"), (True, "zeromq")]
)
def test_node_script_and_settings_parse(
    zeek: RealZeek, tmp_path: Path, management_scripts: bool, backend: str
) -> None:
    """``zeek -a`` parses the node script and its generated settings (Management's and the
    backend's) as a cluster logger, with or without Zeek's Management scripts, without a
    message; strings with quotes and control characters stay strings."""
    here = ipaddress.IPv4Address("127.0.0.1")
    config = Configuration(
        "cfg",
        (Instance(LOCAL_AGENT, here),),
        (
            Node("manager", LOCAL_AGENT, ClusterRole.MANAGER, p=Port(2200)),
            Node("logger", LOCAL_AGENT, ClusterRole.LOGGER, p=Port(2201)),
        ),
    )
    (tmp_path / LAYOUT_FILE).write_text(layout_text(config))
    ms = ManagementSettings(
        agent=agent_settings(
            Path("/var/lib/zeek"),
            spool_dir=Path('/spool "x"\\'),
            name="agent-\n1",
            listen_address="::",
            controller=None,
            archive_logs=False,
            archive_interval=0.25,
            archive_dir=Path("/logs"),
        ),
        controller=controller_settings(
            Path("/var/lib/zeek"), name="controller-x", listen_port_websocket=0
        ),
        agent_listen_port=0,
        archive_cmd="'/opt/zeek/bin/zeek-archiver' -v",
    )
    settings = settings_text(ms, management_scripts=management_scripts)
    write_node_script(tmp_path, settings, backend_text(config, backend))
    zeekpath = subprocess.run(
        [str(zeek.zeek.with_name("zeek-config")), "--zeekpath"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    proc = subprocess.run(
        [str(zeek.zeek), "-a", BACKEND_SCRIPTS[backend], NODE_SCRIPT],
        cwd=tmp_path,
        env={"ZEEKPATH": f"{tmp_path}:{zeekpath}", "CLUSTER_NODE": "logger", "PATH": "/usr/bin"},
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert (proc.returncode, proc.stderr, proc.stdout) == (0, "", "")


# -- deployments that fail ----------------------------------------------------------------


@pytest.fixture(scope="module")
def scratch(zeek: RealZeek, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """A second site for deployments that fail: short request timeout and stop grace."""
    root = tmp_path_factory.mktemp("real-scratch")
    settings = {"agent": {"request_timeout": 6.0, "stop_grace": 2.0}, "controller": own_ports()}
    with real_site(root, zeek, **settings) as s:
        yield s


def test_bad_interface_fails_the_deploy_with_zeeks_pcap_error(scratch: Site) -> None:
    """A worker on a missing interface: exit 1, 'request timed out', the worker's
    success false with Zeek's pcap error as its stderr; the manager succeeds."""
    cfg = "[manager]\nrole = manager\n\n[worker-01]\nrole = worker\n"
    code, out = deploy(scratch, cfg + "interface = not-a-valid-interface\n")
    assert code == 1, out
    assert out["errors"] == ["request timed out"]
    nodes = out["results"]["nodes"]  # type: ignore[index]
    assert nodes["manager"] == {"instance": LOCAL_AGENT, "success": True}
    assert nodes["worker-01"] == {
        "instance": LOCAL_AGENT,
        "stderr": PCAP_ERROR,
        "stdout": "",
        "success": False,
    }
    rows = scratch.nodes_of(LOCAL_AGENT)
    assert rows["worker-01"]["state"] != "RUNNING"


def test_script_syntax_error_fails_the_deploy(scratch: Site) -> None:
    """A node script with a syntax error: exit 1, the node's stderr has Zeek's
    ``error in <file>, line N: syntax error``."""
    broken = write_script(
        scratch.root / "broken.zeek",
        'event zeek_init()\n\t{\n\tprint "missing semicolon"\n\t}\n',
    )
    code, out = deploy(scratch, f"[manager]\nrole = manager\nscripts = {broken}\n")
    assert code == 1, out
    manager = out["results"]["nodes"]["manager"]  # type: ignore[index]
    assert manager["success"] is False
    assert f'error in {broken}, line 4: syntax error, at or near "}}"' in manager["stderr"]
    assert scratch.nodes_of(LOCAL_AGENT)["manager"]["state"] != "RUNNING"


def test_print_then_block_shows_the_line_at_once(scratch: Site) -> None:
    """A node that prints and then loops forever in zeek_init: the line is in its stdout
    file while it runs (line-buffered output, as under Zeek's Supervisor)."""
    script = write_script(
        scratch.root / "print-block.zeek",
        'event zeek_init()\n\t{\n\tprint "zeek-mgmt probe line";\n'
        "\tlocal n = 0;\n\twhile ( T )\n\t\t++n;\n\t}\n",
    )
    scratch.write_cfg(f"[manager]\nrole = manager\nscripts = {script}\n")
    stdout = scratch.node_dir("manager") / "stdout"
    # The deployment times out (the node never gets past zeek_init); watch the file meanwhile.
    client = subprocess.Popen(
        scratch.client_argv("deploy-config", "cluster.cfg"),
        env=scratch.client_env(),
        cwd=scratch.cfg_dir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:

        def printed() -> int | None:
            rows = scratch.nodes_of(LOCAL_AGENT)
            pid = rows.get("manager", {}).get("pid")
            if pid and stdout.exists() and stdout.read_text() == "zeek-mgmt probe line\n":
                return int(pid)
            return None

        pid = wait_until(printed, "the probe line in stdout", timeout=TIMEOUT, interval=0.1)
        assert psutil.Process(pid).is_running()  # not flushed by an exit
        assert (scratch.node_dir("manager") / ".status").read_text().startswith("INITIALIZING")
    finally:
        assert client.wait(TIMEOUT) == 1


# -- stopping -----------------------------------------------------------------------------


@pytest.mark.parametrize("archiver", ["zeek-archiver", "built-in"])
def test_agent_archives_the_final_logs_when_it_stops(
    zeek: RealZeek, tmp_path: Path, archiver: str
) -> None:
    """Stopping zeek-mgmt run: the logger rotates its logs as it exits and the agent then
    archives the queue into <archive_dir>/<date>/<path>.<HH:MM:SS>-<HH:MM:SS>.log.gz."""
    cmd = {} if archiver == "zeek-archiver" else {"agent": {"archive_cmd": ""}}
    with real_site(tmp_path, zeek, controller=own_ports(), **cmd) as s:
        code, out = deploy(s, "[manager]\nrole = manager\n\n[logger]\nrole = logger\n")
        assert code == 0, out
        logger = s.node_dir("logger")

        def logs() -> set[str]:
            return {p.name[: -len(".log")] for p in logger.glob("[a-z]*.log")}

        written = wait_until(logs, "logs on the logger", timeout=TIMEOUT, interval=0.2)
        (run,) = s.daemons
        assert run.stop(TIMEOUT) == 0
        log = run.log()
    queue = s.spool_dir / "log-queue"
    assert list(queue.iterdir()) == []
    archived = sorted(
        str(p.relative_to(tmp_path / "logs")) for p in (tmp_path / "logs").rglob("*.gz")
    )
    assert all(ARCHIVE_NAME.match(name) for name in archived), archived
    assert written <= {name.split("/")[1].split(".")[0] for name in archived}, archived
    assert not list(logger.glob("[a-z]*.log"))  # rotated away at exit
    assert log.index("[logger] pid") < log.index("triggering log archival via")
    assert "terminated by signal" not in log  # nodes stopped on SIGTERM, none was killed
    assert (str(zeek.archiver) in log) == (archiver == "zeek-archiver")
