"""zeekctl-style deployment with real Zeek: worker expansion (lb_procs on ``lo``),
``zeek-mgmt stop``/``start`` and ``check``.

One site (manager, logger, proxy and a worker section with ``lb_procs = 4``) is shared by
the tests; each first waits for the nodes it needs. Skipped without a Zeek (see
tests/support/real_zeek.py); failed instead under .ci/run.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import pairwise

import psutil
import pytest

from tests.support.cli import Run, ours, run_cmd_sync
from tests.support.real_zeek import TIMEOUT, RealZeek, own_ports, real_site, real_zeek
from tests.support.reference import LOCAL_AGENT
from tests.support.sites import Site, node_rows

pytestmark = pytest.mark.zeek

WORKERS = [f"worker-01-{i}" for i in range(1, 5)]
NODES = ["logger", "manager", "proxy", *WORKERS]
#: A four-process AF_Packet worker on lo, zeekctl style, pinned to CPUs 0 and 1 in turn.
CLUSTER_CFG = (
    "[manager]\nrole = manager\n\n"
    "[logger]\nrole = logger\n\n"
    "[proxy]\nrole = proxy\n\n"
    "[worker-01]\nrole = worker\ninterface = lo\nlb_procs = 4\nlb_method = af_packet\n"
    "pin_cpus = 0,1\naf_packet_fanout_id = 77\naf_packet_buffer_size = 16*1024*1024\n"
)


def mgmt(s: Site, *args: str) -> Run:
    """``zeek-mgmt <args>`` against the site's controller."""
    argv = ours(*args, "--controller", f"127.0.0.1:{s.ws_port}")
    return run_cmd_sync(argv, cwd=s.cfg_dir, env=s.client_env(), timeout=TIMEOUT)


@pytest.fixture(scope="module")
def zeek() -> RealZeek:
    """The real Zeek on PATH."""
    return real_zeek()


@pytest.fixture(scope="module")
def deployed(zeek: RealZeek, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """The shared site, its configuration deployed with zeek-mgmt deploy-config."""
    root = tmp_path_factory.mktemp("deploy")
    with real_site(root, zeek, controller=own_ports()) as s:
        s.write_cfg(CLUSTER_CFG)
        res = mgmt(s, "deploy-config", "cluster.cfg")
        assert res.code == 0, f"{res}\n{s.daemon_logs()}"
        yield s


def running(s: Site) -> dict[str, dict[str, object]]:
    """Wait until every node is RUNNING; the get-nodes rows by node."""
    rows = s.wait_states(LOCAL_AGENT, dict.fromkeys(NODES, "RUNNING"), timeout=TIMEOUT)
    return dict(node_rows(rows))


def test_lb_procs_worker_runs_as_four_pinned_af_packet_processes(deployed: Site) -> None:
    """A worker with lb_procs = 4 on lo runs as worker-01-1..4, each a zeek on
    af_packet::lo pinned to its CPU from pin_cpus, with the af_packet_* redefs applied."""
    nodes = running(deployed)
    assert sorted(nodes) == NODES
    for i, name in enumerate(WORKERS):
        proc = psutil.Process(nodes[name]["pid"])  # type: ignore[arg-type]
        assert proc.cpu_affinity() == [i % 2]
        assert proc.cmdline()[1:3] == ["-i", "af_packet::lo"]
    res = deployed.client("get-id-value", "AF_Packet::fanout_id", check=True)
    assert res.json()["results"] == {
        **dict.fromkeys(WORKERS, 77), "logger": 23, "manager": 23, "proxy": 23
    }  # fmt: skip
    res = deployed.client("get-id-value", "AF_Packet::buffer_size", "worker-01-3", check=True)
    assert res.json()["results"] == {"worker-01-3": 16 * 1024 * 1024}


def test_nodes_start_by_role_each_group_once_the_previous_runs(deployed: Site) -> None:
    """Ordered start: the agent logs loggers, manager, proxies, workers in turn, and each
    group's processes started after the previous group's were RUNNING (no group waited
    out its timeout)."""
    nodes = running(deployed)
    log = deployed.daemons[0].log()
    lines = [line for line in log.splitlines() if "mgmt.supervisor: starting " in line]
    assert [line.split("starting ", 1)[1] for line in lines] == [
        "loggers: logger",
        "manager: manager",
        "proxies: proxy",
        "workers: " + ", ".join(WORKERS),
    ], log
    assert "without waiting any longer" not in log
    started = {n: psutil.Process(r["pid"]).create_time() for n, r in nodes.items()}  # type: ignore[arg-type]
    groups = [["logger"], ["manager"], ["proxy"], WORKERS]
    for before, after in pairwise(groups):
        assert max(started[n] for n in before) < min(started[n] for n in after)


def test_stored_configuration_shows_the_expanded_nodes(deployed: Site) -> None:
    """get-config --deployed lists the expanded worker sections, not the lb_* keys."""
    res = deployed.client("get-config", "--deployed", check=True)
    assert "[worker-01-4]" in res.stdout
    assert "lb_procs" not in res.stdout
    assert "interface = af_packet::lo" in res.stdout


def test_unknown_key_fails_stage_config_naming_key_and_section(deployed: Site) -> None:
    """A misspelt key is an error naming key and section (exit 1); nothing is staged."""
    cfg = deployed.write_cfg(CLUSTER_CFG + "lb_prcs = 2\n", "typo.cfg")
    res = mgmt(deployed, "stage-config", str(cfg))
    assert res.code == 1
    assert 'invalid node "worker-01" configuration: unknown key lb_prcs' in res.stderr
    res = deployed.client("get-config", check=True)
    assert "[worker-01-1]" in res.stdout  # the staged configuration is unchanged


BROKEN_SCRIPT = 'event zeek_init()\n\t{\n\tprint "missing semicolon"\n\t}\n'


def test_check_reports_zeeks_error_with_file_and_line_and_deploy_check_deploys_nothing(
    deployed: Site,
) -> None:
    """zeek-mgmt check of a configuration whose proxy loads a broken script: the proxy
    fails with Zeek's own error (file and line), the others pass, exit 1; deploy-config
    --check of it deploys nothing (same processes, same deployed configuration)."""
    before = running(deployed)
    deployed_id = deployed.client("get-config", "--deployed", check=True).stdout
    broken = deployed.cfg_dir / "broken.zeek"
    broken.write_text(BROKEN_SCRIPT)
    cfg = CLUSTER_CFG.replace(
        "[proxy]\nrole = proxy\n", f"[proxy]\nrole = proxy\nscripts = {broken}\n"
    )
    path = deployed.write_cfg(cfg, "broken.cfg")
    res = mgmt(deployed, "check", str(path))
    assert res.code == 1, res
    out = res.json()
    assert out["results"] == {
        f"{LOCAL_AGENT}/{n}": {"check": "ok", "v": 1} for n in NODES if n != "proxy"
    }, res
    (error,) = out["errors"]
    assert error["source"] == f"{LOCAL_AGENT}/proxy"
    assert f"error in {broken}, line 4: syntax error" in error["error"]

    res = mgmt(deployed, "deploy-config", "--check", str(path))
    assert res.code == 1, res
    assert "check failed, not deploying" in res.stderr
    assert deployed.client("get-config", "--deployed", check=True).stdout == deployed_id
    assert {n: r["pid"] for n, r in running(deployed).items()} == {
        n: r["pid"] for n, r in before.items()
    }


def test_check_without_a_file_checks_the_staged_configuration(deployed: Site) -> None:
    """zeek-mgmt check alone checks the staged configuration: every node passes, exit 0."""
    res = mgmt(deployed, "check")
    assert res.code == 0, res
    assert res.json() == {
        "errors": [],
        "results": {f"{LOCAL_AGENT}/{n}": {"check": "ok", "v": 1} for n in NODES},
    }


def states(s: Site) -> dict[str, str]:
    """Each node's state from get-nodes."""
    return {n: str(r["state"]) for n, r in node_rows(s.get_nodes()[LOCAL_AGENT]).items()}


def test_stop_and_start_survive_redeploy_and_restart_of_controller_and_agent(
    deployed: Site,
) -> None:
    """zeek-mgmt stop worker-01-2 proxy: both STOPPED, the rest untouched; they stay
    stopped through a redeploy of the same configuration and a restart of zeek-mgmt run
    (controller and agent, whose shutdown stops the nodes in reverse start order);
    zeek-mgmt start brings them back."""
    before = running(deployed)
    res = mgmt(deployed, "stop", "worker-01-2", "proxy")
    assert res.code == 0, res
    assert res.json()["results"] == {
        f"{LOCAL_AGENT}/proxy": {"state": "STOPPED", "v": 1},
        f"{LOCAL_AGENT}/worker-01-2": {"state": "STOPPED", "v": 1},
    }
    held = {"proxy": "STOPPED", "worker-01-2": "STOPPED"}
    expected = {**dict.fromkeys(NODES, "RUNNING"), **held}
    assert states(deployed) == expected
    for name in ("proxy", "worker-01-2"):
        assert not psutil.pid_exists(before[name]["pid"])  # type: ignore[arg-type]

    res = mgmt(deployed, "deploy-config", "cluster.cfg")
    assert res.code == 0, res
    deployed.wait_states(LOCAL_AGENT, expected, timeout=TIMEOUT)

    deployed.stop_daemons()
    log = deployed.daemons[0].log()
    stops = [line.split("stopping ", 1)[1].split(":")[0] for line in log.splitlines()
             if "mgmt.supervisor: stopping " in line]  # fmt: skip
    assert stops == ["workers", "proxies", "manager", "loggers"], log  # reverse order
    deployed.start("run")
    deployed.wait_agents(LOCAL_AGENT, timeout=TIMEOUT)
    deployed.wait_states(LOCAL_AGENT, expected, timeout=TIMEOUT)

    res = mgmt(deployed, "start")
    assert res.code == 0, res
    assert res.json()["results"][f"{LOCAL_AGENT}/proxy"]["state"] in ("PENDING", "RUNNING")
    running(deployed)


def test_stop_of_an_unknown_node_is_an_error(deployed: Site) -> None:
    """zeek-mgmt stop of a node the deployment lacks fails with exit 1, naming it."""
    res = mgmt(deployed, "stop", "no-such-node")
    assert res.code == 1
    assert res.json() == {
        "errors": [{"error": "unknown cluster node", "source": "no-such-node"}],
        "results": {},
    }
    assert "STOPPED" not in set(states(deployed).values())
