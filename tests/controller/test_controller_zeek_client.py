"""End to end: the real zeek-client CLI against a live controller and fake agents.

Outputs are compared with the captures of real Zeek 8.2.2 in
``tests/data/zeek-8.2.2`` after normalising ids (and the capture host's agent
name). The controller runs in-process with a 1 s request timeout, so timeouts are quick.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from mgmt.broker import events as ev
from mgmt.broker.records import NodeOutputs
from tests.support.cli import Run, run_zeek_client
from tests.support.controller_harness import (
    ApiClient,
    agent_uri,
    client_port,
    cluster_config,
    reqid,
    running_controller,
)
from tests.support.fake_agent import FakeAgent, fake_agents
from tests.support.reference import CONFIGS, LOCAL_AGENT, normalise, reference_output
from tests.support.waiting import MS, wait_until_async

BAD_INTERFACE_STDERR = (
    "fatal error: problem with interface not-a-valid-interface "
    "(pcap_error: No such device exists (pcap_activate))"
)


@pytest.fixture
def cfgdir(tmp_path: Path) -> Path:
    """The reference configs, with the capture host's agent name replaced by ours."""
    out = tmp_path / "cfg"
    out.mkdir()
    configs = sorted(CONFIGS.glob("*.cfg"))
    assert configs, f"no reference configs in {CONFIGS} (see tests/data/README.md)"
    for cfg in configs:
        (out / cfg.name).write_text(cfg.read_text().replace("agent-vm", LOCAL_AGENT))
    return out


def test_a_missing_capture_fails_the_test() -> None:
    """Parity data lives in the repository; a missing capture is an error, never a skip."""
    with pytest.raises(AssertionError, match="reference capture missing: .*tests/data/zeek"):
        reference_output("no-such-command")
    assert (CONFIGS / "cluster.cfg").is_file()


def assert_matches_reference(run: Run, name: str) -> None:
    """Exit code and stdout equal the Zeek 8.2.2 capture (ids normalised)."""
    ref = reference_output(name)
    assert (run.code, normalise(run.stdout)) == (ref.code, normalise(ref.stdout)), run.stderr


def full_agent() -> FakeAgent:
    """A fake local agent that knows the identifiers used by the reference captures."""
    return FakeAgent(
        LOCAL_AGENT,
        id_values={
            "LogAscii::use_json": "false",
            "Cluster::node": {n: json.dumps(n) for n in ("manager", "logger", "worker-01")}
            | {"worker-02": '"worker-02"'},
        },
    )


@pytest.mark.asyncio
async def test_nothing_staged_nothing_connected(tmp_path: Path, cfgdir: Path) -> None:
    """With no config and no agent every command gives Zeek's error and exit code."""
    async with running_controller(tmp_path) as ctl:
        port = client_port(ctl)

        run = await run_zeek_client(port, "get-instances")
        assert (run.code, json.loads(run.stdout)) == (0, {})

        assert_matches_reference(
            await run_zeek_client(port, "get-config"), "get-config_nothing_staged_yet"
        )
        run = await run_zeek_client(port, "get-config")
        assert run.stderr == "error: no staged configuration available\n"
        run = await run_zeek_client(port, "get-config", "--deployed")
        assert_matches_reference(run, "get-config_--deployed_before_deploy")
        assert run.stderr == "error: no deployed configuration available\n"

        run = await run_zeek_client(port, "deploy")
        assert (run.code, run.json()) == (
            1,
            {"errors": ["no configuration available to deploy"], "results": {}},
        )
        run = await run_zeek_client(port, "get-nodes")
        assert (run.code, run.json()) == (
            1,
            {"errors": [{"error": "no instances connected", "source": None}], "results": {}},
        )
        run = await run_zeek_client(port, "get-id-value", "LogAscii::use_json")
        assert (run.code, run.json()) == (
            1,
            {"errors": [{"error": "no cluster deployed", "source": None}], "results": {}},
        )
        run = await run_zeek_client(port, "restart")
        assert (run.code, run.json()) == (
            1,
            {"errors": [{"error": "no instances connected", "source": None}], "results": {}},
        )


@pytest.mark.asyncio
async def test_stage_config_validation_matches_reference(tmp_path: Path, cfgdir: Path) -> None:
    """stage-config of the reference configs gives Zeek's outputs, in the capture's order."""
    async with running_controller(tmp_path) as ctl:
        port = client_port(ctl)

        async def stage(cfg: str) -> Run:
            return await run_zeek_client(port, "stage-config", cfg, cwd=cfgdir)

        for cfg in ("dup-port", "unknown-role", "undeclared-instance"):
            assert_matches_reference(await stage(f"{cfg}.cfg"), f"stage-config_{cfg}.cfg_invalid")
        # A rejected config changes nothing.
        run = await run_zeek_client(port, "get-config")
        assert run.code == 1 and "no staged configuration available" in run.stderr

        for cfg in ("unknown-instance", "name-collision", "agent-port-conflict"):
            assert_matches_reference(await stage(f"{cfg}.cfg"), f"stage-config_{cfg}.cfg_invalid")
        assert_matches_reference(
            await stage("controller-port-conflict.cfg"),
            "stage-config_controller-port-conflict.cfg_invalid",
        )
        run = await stage("duplicate-section.cfg")
        assert run.code == 1 and "DuplicateSectionError" in run.stderr
        assert_matches_reference(await stage("empty.cfg"), "stage-config_empty.cfg_invalid")
        run = await stage("does-not-exist.cfg")
        assert run.code == 1
        assert run.stderr == reference_output("stage-config_does-not-exist.cfg").stderr
        # The last good one (empty.cfg) is what get-config shows.
        assert_matches_reference(
            await run_zeek_client(port, "get-config"), "get-config_after_invalid_stage_attempts"
        )


@pytest.mark.asyncio
async def test_full_session_with_one_agent(tmp_path: Path, cfgdir: Path) -> None:
    """The reference session: stage, get-config, deploy, get-nodes, get-id-value, restart."""
    async with running_controller(tmp_path) as ctl, fake_agents(full_agent()) as (agent,):
        port = client_port(ctl)
        await agent.dial(agent_uri(ctl))
        await wait_until_async(lambda: LOCAL_AGENT in ctl._state.known, what="hello")

        assert_matches_reference(await run_zeek_client(port, "get-instances"), "get-instances")
        run = await run_zeek_client(port, "get-nodes")
        assert run.code == 0
        assert run.json() == {
            "errors": [],
            "results": {
                LOCAL_AGENT: {
                    LOCAL_AGENT: {
                        "cluster_role": None,
                        "mgmt_role": "AGENT",
                        "pid": agent.pid,
                        "state": "RUNNING",
                    }
                }
            },
        }

        assert_matches_reference(
            await run_zeek_client(port, "stage-config", "cluster.cfg", cwd=cfgdir),
            "stage-config_cluster.cfg",
        )
        assert_matches_reference(await run_zeek_client(port, "get-config"), "get-config")
        assert_matches_reference(
            await run_zeek_client(port, "get-config", "--as-json"), "get-config_--as-json"
        )
        assert_matches_reference(await run_zeek_client(port, "deploy"), "deploy")
        # Deployed = READY: ports 2200/2201 and metrics 9000..9003 assigned, host filled in.
        assert_matches_reference(
            await run_zeek_client(port, "get-config", "--deployed"), "get-config_--deployed"
        )
        assert_matches_reference(
            await run_zeek_client(port, "get-config", "--deployed", "--as-json"),
            "get-config_--deployed_--as-json",
        )
        # The staged config is still exactly what the client sent.
        assert_matches_reference(await run_zeek_client(port, "get-config"), "get-config")

        run = await run_zeek_client(port, "get-nodes")
        ref = json.loads(normalise(reference_output("get-nodes").stdout))
        got = run.json()
        for rows in (ref["results"][LOCAL_AGENT], got["results"][LOCAL_AGENT]):
            rows.pop("controller-vm", None)  # the fake agent has no co-located controller
            for row in rows.values():
                row.pop("pid")
        assert (run.code, got) == (0, ref)

        for args, name in (
            (("LogAscii::use_json",), "get-id-value_LogAscii__use_json"),
            (("Cluster::node", "manager", "logger"), "get-id-value_Cluster__node_manager_logger"),
            (("No::such_id",), "get-id-value_No__such_id"),
        ):
            assert_matches_reference(await run_zeek_client(port, "get-id-value", *args), name)
        run = await run_zeek_client(port, "get-id-value", "LogAscii::use_json", "manager", "nope")
        assert (run.code, run.json()) == (
            1,
            {
                "errors": [{"error": "unknown cluster node", "source": "nope"}],
                "results": {"manager": False},
            },
        )

        for args, name in (
            ((), "restart"),
            (("manager",), "restart_manager"),
            (("no-such-node",), "restart_no-such-node"),
            (("manager", "no-such-node"), "restart_manager_no-such-node"),
        ):
            assert_matches_reference(await run_zeek_client(port, "restart", *args), name)
        assert agent.count(type(agent.received[0])) >= 1

        # Redeploying the same config id restarts nothing: node-less agent results.
        run = await run_zeek_client(port, "deploy")
        assert run.code == 0
        assert normalise(run.stdout) == normalise(
            json.dumps({"errors": [], "results": {"id": "x" * 36}}, indent=2) + "\n"
        ).replace("x" * 36, "<id>")


@pytest.mark.asyncio
async def test_deploy_with_failed_node_then_good_config(tmp_path: Path, cfgdir: Path) -> None:
    """A node failing its deploy shows its stdout/stderr and exits 1; then deploy-config works."""
    agent = full_agent()
    agent.failures["worker-02"] = NodeOutputs("", BAD_INTERFACE_STDERR)
    async with running_controller(tmp_path) as ctl, fake_agents(agent):
        port = client_port(ctl)
        await agent.dial(agent_uri(ctl))
        await wait_until_async(lambda: LOCAL_AGENT in ctl._state.known, what="hello")

        run = await run_zeek_client(port, "deploy-config", "bad-interface.cfg", cwd=cfgdir)
        ref = json.loads(normalise(reference_output("deploy-config_bad-interface.cfg").stdout))
        # Zeek's agent also timed out waiting for worker-02 (behaviour Q2/§5.5); ours answers
        # as soon as the node failed, so only the per-node part is the same.
        ref["errors"] = []
        assert (run.code, json.loads(normalise(run.stdout))) == (1, ref)

        # The failed attempt still counts as deployed (behaviour §4.6.4).
        run = await run_zeek_client(port, "get-config", "--deployed", "--as-json")
        assert {n["name"] for n in run.json()["nodes"]} >= {"worker-02"}

        agent.failures.clear()  # "fix the interface"

        assert_matches_reference(
            await run_zeek_client(port, "deploy-config", "cluster.cfg", cwd=cfgdir),
            "deploy-config_cluster.cfg_after_bad-interface",
        )


@pytest.mark.asyncio
async def test_stage_failure_in_deploy_config_prints_stage_json(
    tmp_path: Path, cfgdir: Path
) -> None:
    """deploy-config with an invalid config prints the stage errors and does not deploy."""
    async with running_controller(tmp_path) as ctl:
        run = await run_zeek_client(client_port(ctl), "deploy-config", "dup-port.cfg", cwd=cfgdir)
        assert_matches_reference(run, "stage-config_dup-port.cfg_invalid")
        assert ctl._state.pending_deploy == "" and ctl._state.deployed is None


@pytest.mark.asyncio
async def test_missing_agent_times_out(tmp_path: Path, cfgdir: Path) -> None:
    """Without the config's agent, deploy, get-id-value and restart answer 'request timed out'."""
    async with running_controller(tmp_path) as ctl:
        port = client_port(ctl)
        await run_zeek_client(port, "stage-config", "cluster.cfg", cwd=cfgdir)
        run = await run_zeek_client(port, "deploy")
        assert (run.code, run.json()) == (1, {"errors": ["request timed out"], "results": {}})
        assert ctl._state.deployed is None  # a timed-out deploy is not DEPLOYED

        # The instance set switched already, nothing is deployed: naming nodes answers at
        # once (Zeek would time out, quirk Q7); asking all nodes times out.
        run = await run_zeek_client(port, "get-id-value", "LogAscii::use_json", "manager")
        assert (run.code, run.json()) == (
            1,
            {"errors": [{"error": "unknown cluster node", "source": "manager"}], "results": {}},
        )
        run = await run_zeek_client(port, "get-id-value", "LogAscii::use_json")
        assert (run.code, run.json()) == (
            1,
            {"errors": [{"error": "request timed out", "source": None}], "results": {}},
        )


@pytest.mark.asyncio
async def test_restart_without_deployment(tmp_path: Path) -> None:
    """restart with an agent connected but nothing deployed: 'no active cluster deployment'."""
    async with running_controller(tmp_path) as ctl, fake_agents(FakeAgent("agent-x")) as (a,):
        await a.dial(agent_uri(ctl))
        await wait_until_async(lambda: "agent-x" in ctl._state.known, what="hello")
        run = await run_zeek_client(client_port(ctl), "restart")
        assert (run.code, run.json()) == (
            1,
            {"errors": [{"error": "no active cluster deployment", "source": None}], "results": {}},
        )


@pytest.mark.asyncio
async def test_restart_with_deployed_agent_gone_times_out(tmp_path: Path) -> None:
    """restart while the deployed agent is away (another is connected) times out, like Zeek."""

    a, b = FakeAgent("agent-a"), FakeAgent("agent-b")
    async with running_controller(tmp_path) as ctl, fake_agents(a, b):
        await a.dial(agent_uri(ctl))
        await b.dial(agent_uri(ctl))
        await wait_until_async(lambda: len(ctl._state.known) == 2, what="hellos")
        client = await ApiClient.open(client_port(ctl))
        try:
            rid = reqid()
            await client.request(ev.StageConfigurationRequest(rid, cluster_config("agent-a")))
            resp = await client.request(ev.DeployRequest(reqid()))
            assert all(r.success for r in resp.results)
        finally:
            await client.close()
        await a.stop()
        await wait_until_async(lambda: "agent-a" not in ctl._state.known, what="agent-a gone")
        run = await run_zeek_client(client_port(ctl), "restart")
        assert (run.code, run.json()) == (
            1,
            {"errors": [{"error": "request timed out", "source": None}], "results": {}},
        )


@pytest.mark.asyncio
async def test_test_timeout(tmp_path: Path) -> None:
    """test-timeout --with-state gets the timeout result; without state no answer ever."""
    async with running_controller(tmp_path) as ctl:
        port = client_port(ctl)
        assert_matches_reference(
            await run_zeek_client(port, "test-timeout", "--with-state"),
            "test-timeout_--with-state",
        )
        run = await run_zeek_client(port, "--set", "client.request_timeout_secs=2", "test-timeout")
        assert run.code == 1
        assert run.stdout == ""
        assert run.stderr == (
            f"error: no response received: websocket connection to 127.0.0.1:{port} timed out\n"
        )


@pytest.mark.asyncio
async def test_get_instances_with_dialed_agent(tmp_path: Path) -> None:
    """An instance given as host:port is dialed; get-instances shows its host and port."""
    agent = FakeAgent("agent-remote")
    async with running_controller(tmp_path) as ctl, fake_agents(agent):
        agent_port = await agent.serve()
        cfg = tmp_path / "remote.cfg"
        cfg.write_text(
            f"[instances]\nagent-remote = 127.0.0.1:{agent_port}\n\n"
            "[manager]\ninstance = agent-remote\nrole = manager\n"
        )
        port = client_port(ctl)
        run = await run_zeek_client(port, "deploy-config", str(cfg))
        assert run.code == 0, run.stdout + run.stderr
        assert run.json()["results"]["nodes"] == {
            "manager": {"instance": "agent-remote", "success": True}
        }
        run = await run_zeek_client(port, "get-instances")
        assert (run.code, run.json()) == (
            0,
            {"agent-remote": {"host": "127.0.0.1", "port": agent_port}},
        )
        run = await run_zeek_client(port, "get-config", "--deployed")
        assert f"agent-remote = 127.0.0.1:{agent_port}\n" in run.stdout


# --------------------------------------------------------------------------------------
# Agent tracking (behaviour §4.3)


@pytest.mark.asyncio
async def test_agent_connecting_after_deploy_request_is_welcomed(tmp_path: Path) -> None:
    """An agent that connects after the deploy was requested is welcomed; the deploy completes."""

    agent = FakeAgent("agent-late")
    async with running_controller(tmp_path, request_timeout=5.0) as ctl, fake_agents(agent):
        client = await ApiClient.open(client_port(ctl))
        try:
            config = cluster_config("agent-late")
            await client.request(ev.StageConfigurationRequest(reqid(), config))
            pending = client.send(ev.DeployRequest(reqid()))
            await wait_until_async(lambda: ctl._state.pending_deploy != "", what="deploy pending")
            assert not pending.done()
            await agent.dial(agent_uri(ctl))
            resp = await asyncio.wait_for(pending, 5000 * MS)
        finally:
            await client.close()
    assert agent.count(ev.AgentWelcomeRequest) == 1
    assert [r.node for r in resp.results] == ["logger", "manager", "worker-01", "worker-02", None]
    assert all(r.success for r in resp.results)
    assert resp.results[-1].data == config.id and resp.results[-1].instance is None


@pytest.mark.asyncio
async def test_reconnecting_agent_gets_deployed_config_again(tmp_path: Path) -> None:
    """An agent that reconnects is sent the DEPLOYED config again and answers 'already running'."""

    agent = FakeAgent("agent-a")
    async with running_controller(tmp_path) as ctl, fake_agents(agent):
        await agent.dial(agent_uri(ctl))
        client = await ApiClient.open(client_port(ctl))
        try:
            config = cluster_config("agent-a")
            await client.request(ev.StageConfigurationRequest(reqid(), config))
            resp = await client.request(ev.DeployRequest(reqid()))
            assert all(r.success for r in resp.results)
        finally:
            await client.close()
        deployed = ctl._state.deployed
        sent: list[object] = []
        original = agent.answer

        def recording_answer(event: object) -> object:
            reply = original(event)
            sent.append(reply)
            return reply

        agent.answer = recording_answer  # type: ignore[method-assign]
        await agent.drop_connection()
        redeploy = await agent.wait_received(ev.AgentDeployRequest, 2)
        await wait_until_async(lambda: ctl._state.pending_deploy == "", what="redeploy done")
        assert agent.hellos == 2 and agent.count(ev.AgentWelcomeRequest) == 2
        assert redeploy.config == deployed and redeploy.force is False
        reply = [r for r in sent if isinstance(r, ev.AgentDeployResponse)][-1]
        assert [(r.success, r.node) for r in reply.results] == [(True, None)]
        assert ctl._state.deployed == deployed
        # It still works from a client's point of view.
        run = await run_zeek_client(client_port(ctl), "get-nodes")
        assert run.code == 0 and "worker-02" in run.json()["results"]["agent-a"]


@pytest.mark.asyncio
async def test_listening_agent_is_dialed_and_redialed_after_restart(tmp_path: Path) -> None:
    """An instance with host:port is dialed by the controller and dialed again after it restarts."""

    agent = FakeAgent("agent-srv")
    async with running_controller(tmp_path) as ctl, fake_agents(agent):
        port = await agent.serve()
        config = cluster_config("agent-srv", host="127.0.0.1", listen_port=port)
        client = await ApiClient.open(client_port(ctl))
        try:
            await client.request(ev.StageConfigurationRequest(reqid(), config))
            resp = await client.request(ev.DeployRequest(reqid()))
            assert [r.success for r in resp.results] == [True] * 5
            assert ctl._state.known["agent-srv"].listen_port == config.instances[0].listen_port

            await agent.stop()  # the agent process "restarts" on the same port
            await wait_until_async(lambda: "agent-srv" not in ctl._state.known, what="agent lost")
            again = FakeAgent("agent-srv")
            async with fake_agents(again):
                await again.serve(port)
                await again.wait_received(ev.AgentDeployRequest)
                await wait_until_async(
                    lambda: ctl._state.pending_deploy == "", what="redeploy done"
                )
                assert again.config is not None and again.config.id == config.id
                run = await run_zeek_client(client_port(ctl), "get-instances")
                assert run.json() == {"agent-srv": {"host": "127.0.0.1", "port": port}}
        finally:
            await client.close()


@pytest.mark.asyncio
async def test_duplicate_agent_connection_replaces_the_older(tmp_path: Path) -> None:
    """A second connection saying hello for the same instance replaces the first."""
    first, second = FakeAgent("agent-dup"), FakeAgent("agent-dup")
    async with running_controller(tmp_path) as ctl, fake_agents(first, second):
        await first.dial(agent_uri(ctl))
        await wait_until_async(lambda: "agent-dup" in ctl._state.known, what="hello")
        link = ctl._links["agent-dup"]
        await second.dial(agent_uri(ctl))
        await wait_until_async(lambda: ctl._links["agent-dup"] is not link, what="replacement")
        await wait_until_async(lambda: not link.is_open, what="old link closed")
        assert "agent-dup" in ctl._state.known
        run = await run_zeek_client(client_port(ctl), "get-instances")
        assert run.json() == {"agent-dup": {"host": "127.0.0.1"}}
