"""The client CLI's extras (status, deploy-config --wait), monitor, and stderr handling.

Our CLI runs as a child process (``python -m mgmt``) against an in-process controller with
a fake agent.
"""

from __future__ import annotations

import asyncio
import importlib
import json
from pathlib import Path

import pytest

from client import COMMANDS as CLIENT_COMMANDS
from client import ZEEK_CLIENT_COMMANDS
from client.api import ControllerClient
from mgmt.cli import SUBCOMMANDS, build_parser
from tests.support.cli import STATUS_HEADER, cli_env, ours, run_cmd, zeek_client
from tests.support.controller_harness import Cluster, running_cluster
from tests.support.reference import CONFIGS, LOCAL_AGENT

CLUSTER_CFG = str(CONFIGS / "cluster.cfg")


def at(cluster: Cluster) -> list[str]:
    return ["--controller", f"127.0.0.1:{cluster.port}"]


def test_every_client_command_is_registered() -> None:
    """zeek-client's commands (as its own parser lists them; its show-settings is our
    client-settings) are zeek-mgmt subcommands in client.commands, the extras in
    client.extcommands, each with zeek-client's options."""
    zc_cli = pytest.importorskip("zeekclient.cli")
    (commands,) = [
        a.choices for a in zc_cli.create_parser()._actions if isinstance(a.choices, dict)
    ]
    theirs = {"client-settings" if name == "show-settings" else name for name in commands}
    assert theirs == ZEEK_CLIENT_COMMANDS
    for name, _ in CLIENT_COMMANDS:
        module = "client.commands" if name in theirs else "client.extcommands"
        attribute = name.replace("-", "_")
        assert SUBCOMMANDS[name][0] == f"{module}:{attribute}"
        assert callable(getattr(importlib.import_module(module), attribute).run)
    args = build_parser("get-nodes").parse_args(
        ["get-nodes", "--controller", "h:1", "--set", "a.b=c", "-vv", "-c", "f"]
    )
    assert (args.controller, args.set, args.verbose, args.configfile) == ("h:1", ["a.b=c"], 2, "f")


@pytest.mark.asyncio
async def test_status_table_and_exit_codes(tmp_path: Path) -> None:
    """status: a table of every node; exit 0 when all RUNNING, 1 otherwise."""
    async with running_cluster(tmp_path) as cluster:
        agent = await cluster.add_agent()
        staged = await run_cmd(ours("deploy-config", CLUSTER_CFG, *at(cluster)))
        assert staged.code == 0, staged
        run = await run_cmd(ours("status", *at(cluster)))
        assert run.code == 0, run
        lines = run.stdout.splitlines()
        assert lines[0].split() == STATUS_HEADER.split()
        rows = {line.split()[1]: line.split() for line in lines[1:]}
        assert set(rows) == {LOCAL_AGENT, "logger", "manager", "worker-01", "worker-02"}
        assert rows["manager"][:4] == [LOCAL_AGENT, "manager", "manager", "RUNNING"]
        # restarts, uptime, last exit: from the get_node_info extension (the fake agent's
        # nodes started 75 s ago); the agent itself has none
        assert rows["manager"][-3:] == ["0", "1m15s", "-"]
        assert rows[LOCAL_AGENT][-3:] == ["-", "-", "-"]
        assert rows["manager"][5] == "2200" and rows["manager"][6] == "9000"

        agent.crashed.add("worker-02")
        run = await run_cmd(ours("status", *at(cluster)))
        assert run.code == 1
        assert "CRASHED" in run.stdout


@pytest.mark.asyncio
async def test_status_errors(tmp_path: Path) -> None:
    """status exits 1 with the controller's error when no agent is connected, and when
    the controller cannot be reached."""
    async with running_cluster(tmp_path) as cluster:
        run = await run_cmd(ours("status", *at(cluster)))
        assert run.code == 1
        assert run.stderr == "error: controller: no instances connected\n"
        port = cluster.port
    run = await run_cmd(
        ours(
            "status",
            "--controller",
            f"127.0.0.1:{port}",
            "--set",
            "client.peering_attempts=1",
            "--set",
            "client.peering_retry_delay_secs=0.05",
        )
    )
    assert run.code == 1 and run.stderr.startswith("error: connection refused: no controller")


@pytest.mark.asyncio
async def test_deploy_config_wait_until_running(tmp_path: Path) -> None:
    """--wait prints a line per node state change on stderr and exits 0 once all run."""
    async with running_cluster(tmp_path) as cluster:
        await cluster.add_agent(pending_polls=2)
        run = await run_cmd(
            ours("deploy-config", CLUSTER_CFG, "--wait", "--wait-interval", "0.05", *at(cluster))
        )
        assert run.code == 0, run
        deploy = json.loads(run.stdout)
        assert deploy["errors"] == [] and set(deploy["results"]["nodes"]) == {
            "logger",
            "manager",
            "worker-01",
            "worker-02",
        }
        lines = run.stderr.splitlines()
        for node in ("logger", "manager", "worker-01", "worker-02"):
            assert f"{node} on {LOCAL_AGENT}: PENDING" in lines
            assert f"{node} on {LOCAL_AGENT}: PENDING -> RUNNING" in lines
        assert len(lines) == 8


@pytest.mark.asyncio
async def test_deploy_config_wait_failures(tmp_path: Path) -> None:
    """--wait exits 1 when a node crashes, or when the wait times out; -q hides progress."""
    async with running_cluster(tmp_path) as cluster:
        agent = await cluster.add_agent(pending_polls=1, crashed={"worker-02"})
        run = await run_cmd(
            ours("deploy-config", CLUSTER_CFG, "--wait", "--wait-interval", "0.05", *at(cluster))
        )
        assert run.code == 1
        assert f"worker-02 on {LOCAL_AGENT}: CRASHED" in run.stderr
        assert run.stderr.endswith("error: nodes failed: worker-02\n")

        agent.crashed.clear()
        agent.pending_polls = 10**6
        run = await run_cmd(
            ours(
                "deploy-config",
                CLUSTER_CFG,
                "--wait",
                "--wait-timeout",
                "0.3",
                "--wait-interval",
                "0.05",
                "-q",
                *at(cluster),
            )
        )
        assert run.code == 1 and run.stderr == ""
        assert json.loads(run.stdout)["errors"] == []


@pytest.mark.asyncio
async def test_deploy_config_wait_skipped_when_deploy_fails(tmp_path: Path) -> None:
    """A failed deploy is reported as usual and not waited for."""
    async with running_cluster(tmp_path) as cluster:
        await cluster.add_agent(bad_interfaces=frozenset({"not-a-valid-interface"}))
        run = await run_cmd(
            ours("deploy-config", str(CONFIGS / "bad-interface.cfg"), "--wait", *at(cluster))
        )
        assert run.code == 1 and run.stderr == ""
        assert json.loads(run.stdout)["results"]["nodes"]["worker-02"]["success"] is False


async def _start_monitor(argv: list[str]) -> asyncio.subprocess.Process:
    """Start a monitor (with -vv in argv) and return once it logged that it peered."""
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=cli_env()
    )
    assert proc.stderr is not None
    async with asyncio.timeout(10):
        while True:
            line = await proc.stderr.readline()
            assert line, "monitor exited before peering"
            if b"info: peered with controller" in line:
                return proc


@pytest.mark.asyncio
async def test_monitor_lines_match_zeek_client(tmp_path: Path) -> None:
    """monitor prints the events it sees exactly like zeek-client's monitor."""
    zc = zeek_client()
    if zc is None:
        pytest.skip("zeek-client 1.5.0 is not installed")
    async with running_cluster(tmp_path) as cluster:
        # zeek-client takes its options before the command, we take them after it.
        procs = [
            await _start_monitor([zc, "-vv", *at(cluster), "monitor"]),
            await _start_monitor(ours("monitor", "-vv", *at(cluster))),
        ]
        try:
            async with ControllerClient("127.0.0.1", cluster.port) as ctl:
                await ctl.get_instances()
            lines = []
            async with asyncio.timeout(10):
                for proc in procs:
                    assert proc.stdout is not None
                    lines.append([await proc.stdout.readline(), await proc.stdout.readline()])
        finally:
            for proc in procs:
                proc.kill()
                await proc.wait()
    expected = [
        b'received "Management::Controller::API::get_instances_request('
        b"reqid: <class 'zeekclient.brokertypes.String'>)\"\n",
        b'received "Management::Controller::API::get_instances_response('
        b"reqid: <class 'zeekclient.brokertypes.String'>, "
        b"result: <class 'zeekclient.brokertypes.Vector'>)\"\n",
    ]
    assert lines == [expected, expected]


@pytest.mark.asyncio
async def test_warnings_follow_verbosity(tmp_path: Path) -> None:
    """Warnings show with -v only, in zeek-client's format; -q silences errors too."""
    cfg = tmp_path / "warn.cfg"
    cfg.write_text("[manager]\nrole = manager\nstate = STOPPED\n[w]\nrole = frob\n")
    quiet = await run_cmd(ours("stage-config", str(cfg), "-q"))
    assert quiet.code == 1 and quiet.stderr == ""
    normal = await run_cmd(ours("stage-config", str(cfg)))
    assert normal.stderr == (
        'error: invalid node "w" configuration: role "frob" is invalid\n'
        "error: configuration has errors, not sending\n"
    )
    verbose = await run_cmd(ours("stage-config", str(cfg), "-v"))
    expected = (
        'warning: ignoring node "manager" state "STOPPED" in configuration\n'
        "warning: ignoring unexpected keys: state\n" + normal.stderr
    )
    assert verbose.stderr == expected
    zc = zeek_client()
    if zc is not None:
        theirs = await run_cmd([zc, "-v", "stage-config", str(cfg)])
        assert (theirs.code, theirs.stderr) == (verbose.code, verbose.stderr)


@pytest.mark.asyncio
async def test_bad_settings_are_errors(tmp_path: Path) -> None:
    """Bad --set items are reported; unusable values and ports fail with exit 1."""
    run = await run_cmd(ours("client-settings", "--set", "oops"))
    assert run.code == 0
    assert run.stderr == 'error: config item "oops" invalid. Please use <section.key>=<val>.\n'
    run = await run_cmd(ours("get-nodes", "--controller", "127.0.0.1:99999"))
    assert (run.code, run.stderr) == (
        1,
        "error: cannot configure connection to 127.0.0.1:99999: "
        "controller port number 99999 outside valid range\n",
    )
    run = await run_cmd(ours("get-nodes", "--set", "client.verbosity=lots"))
    assert run.code == 1 and "client.verbosity" in run.stderr
