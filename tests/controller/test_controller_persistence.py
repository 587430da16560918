"""Persistence and lifecycle: restarts, kill -9 mid-burst, corrupt state, clean shutdown."""

from __future__ import annotations

import asyncio
import itertools
import random
import signal
from dataclasses import dataclass
from pathlib import Path

import pytest
import websockets

from mgmt.broker import events as ev
from mgmt.broker.data import Port
from mgmt.broker.records import Configuration
from mgmt.exceptions import InvalidState
from mgmt.persist.controllerstore import ConfigStore
from tests.support.cli import run_zeek_client
from tests.support.controller_harness import (
    ApiClient,
    ControllerProcess,
    agent_uri,
    client_port,
    cluster_config,
    reqid,
    running_controller,
)
from tests.support.fake_agent import FakeAgent, fake_agents
from tests.support.waiting import MS, wait_until_async


def config_id(response: ev.GetConfigurationResponse) -> str:
    """The id of the configuration in a get_configuration_response."""
    assert response.result.success, response.result.error
    return Configuration.from_value(response.result.data).id


@pytest.mark.asyncio
async def test_configs_survive_restart(tmp_path: Path) -> None:
    """Staged and deployed configs survive a SIGTERM restart; deployed is redeployed at start."""
    agent = FakeAgent("agent-a")
    async with ControllerProcess(tmp_path / "state") as proc, fake_agents(agent):
        await agent.dial(agent_uri(proc.agent_port))
        client = await ApiClient.open(proc.client_port)
        deployed = cluster_config("agent-a")
        staged = cluster_config("agent-a", workers=3)
        try:
            await client.request(ev.StageConfigurationRequest(reqid(), deployed))
            resp = await client.request(ev.DeployRequest(reqid()))
            assert all(r.success for r in resp.results)
            await client.request(ev.StageConfigurationRequest(reqid(), staged))
        finally:
            await client.close()
        before = {
            flag: await run_zeek_client(proc.client_port, "get-config", *flag, "--as-json")
            for flag in ((), ("--deployed",))
        }

        await proc.restart()
        for flag, run in before.items():
            again = await run_zeek_client(proc.client_port, "get-config", *flag, "--as-json")
            assert (again.code, again.json()) == (0, run.json())
        assert before[()].json()["id"] == staged.id
        assert before[("--deployed",)].json()["id"] == deployed.id
        # The restarted controller redeploys DEPLOYED once the agent is back.
        last = await agent.wait_received(ev.AgentDeployRequest, 2)
        assert last.config.id == deployed.id
        # READY survived too: deploy without re-staging deploys the staged config.
        run = await run_zeek_client(proc.client_port, "deploy")
        assert (run.code, run.json()["results"]["id"]) == (0, staged.id)


@dataclass
class Burst:
    """What the controller acknowledged, and what was in flight, during a request burst."""

    acked_stage: str | None = None
    acked_deploy: str | None = None
    in_flight_stage: str | None = None
    in_flight_deploy: str | None = None

    def stage_candidates(self) -> set[str | None]:
        return {self.acked_stage, self.in_flight_stage} - {None}

    def deploy_candidates(self) -> set[str | None]:
        return {self.acked_deploy, self.in_flight_deploy} - {None}


async def burst(client: ApiClient, track: Burst) -> None:
    """Stage (and every second time deploy) new configs one after the other, forever."""
    for i in itertools.count(1):
        cfg = cluster_config("agent-a", workers=1 + i % 5)
        track.in_flight_stage = cfg.id
        await client.request(ev.StageConfigurationRequest(reqid(), cfg))
        track.acked_stage, track.in_flight_stage = cfg.id, None
        if i % 2 == 0:
            track.in_flight_deploy = cfg.id
            resp = await client.request(ev.DeployRequest(reqid()))
            last = resp.results[-1]
            if last.success and last.node is None and last.instance is None:
                track.acked_deploy = last.data
            track.in_flight_deploy = None


@pytest.mark.asyncio
@pytest.mark.parametrize("rounds", [3, pytest.param(20, marks=pytest.mark.slow)])
async def test_kill_9_during_burst_leaves_one_complete_version(tmp_path: Path, rounds: int) -> None:
    """After kill -9 amid stage/deploy requests the state holds an acked or in-flight config,
    and the restarted controller has removed the interrupted write's temporary file."""
    rng = random.Random(rounds)
    proc = ControllerProcess(tmp_path / "state")
    agent = FakeAgent("agent-a")
    track = Burst()
    deploys_acked = 0
    #: The temporary file the last kill interrupted (the restarted controller's own writes
    #: may have one of their own meanwhile: its reconnecting agent triggers a redeploy).
    interrupted: list[Path] = []
    try:
        async with fake_agents(agent):
            for _round in range(rounds):
                proc.start()
                await proc.wait_listening()
                assert [t for t in interrupted if t.exists()] == []
                if agent._client is None:
                    await agent.dial(agent_uri(proc.agent_port), wait=False)
                client = await ApiClient.open(proc.client_port)
                # The restarted controller shows one of the candidates of the last round.
                shown = await client.request(ev.GetConfigurationRequest(reqid(), False))
                if track.acked_stage is not None:
                    assert config_id(shown) in track.stage_candidates()
                    track.acked_stage = config_id(shown)
                shown = await client.request(ev.GetConfigurationRequest(reqid(), True))
                if track.acked_deploy is not None:
                    assert config_id(shown) in track.deploy_candidates()
                    track.acked_deploy = config_id(shown)
                await wait_until_async(lambda: agent.connected, what="agent reconnected")

                before = track.acked_deploy
                task = asyncio.create_task(burst(client, track))
                await asyncio.sleep(rng.uniform(0.05, 0.3))
                proc.kill(signal.SIGKILL)
                with pytest.raises((ConnectionError, InvalidState)):
                    await asyncio.wait_for(task, 5000 * MS)
                await client.close()
                deploys_acked += track.acked_deploy != before

                # The file on disk parses and holds one complete version.
                saved = ConfigStore(proc.state_file).load()
                assert saved.staged is not None and saved.staged.id in track.stage_candidates()
                assert saved.ready is not None and saved.ready.id == saved.staged.id
                if track.acked_deploy is not None:
                    assert saved.deployed is not None
                    assert saved.deployed.id in track.deploy_candidates()
                interrupted = list(proc.state_file.parent.glob("*.tmp"))
                assert len(interrupted) <= 1  # at most the interrupted write's temp file
    finally:
        proc.stop()
    assert deploys_acked > 0


def test_corrupt_state_file_is_reported_and_left_alone(tmp_path: Path) -> None:
    """A corrupt controller.toml makes the daemon exit non-zero naming the file; it is unchanged."""
    proc = ControllerProcess(tmp_path / "state")
    proc.state_file.parent.mkdir(parents=True)
    for content in (
        b'kind = "zeek-mgmt-controller"\nschema_version = 1\n[staged\n',
        b"\x00\xff garbage",
    ):
        proc.state_file.write_bytes(content)
        result = proc.run_to_end()
        assert result.code != 0
        assert str(proc.state_file) in result.stderr
        assert "corrupt" in result.stderr
        assert proc.state_file.read_bytes() == content


def test_state_file_with_bad_config_is_reported(tmp_path: Path) -> None:
    """Valid TOML with a broken configuration table is reported as corrupt, not ignored."""
    proc = ControllerProcess(tmp_path / "state")
    proc.state_file.parent.mkdir(parents=True)
    content = (
        b'kind = "zeek-mgmt-controller"\nschema_version = 1\n'
        b'[staged]\nid = "x"\nnodes = [{name = "m"}]\n'
    )
    proc.state_file.write_bytes(content)
    result = proc.run_to_end()
    assert result.code != 0
    assert str(proc.state_file) in result.stderr and "[staged]" in result.stderr
    assert proc.state_file.read_bytes() == content


@pytest.mark.asyncio
async def test_shutdown_leaves_no_task_behind(tmp_path: Path) -> None:
    """request_shutdown() ends run() with peers of every kind connected and no task left."""
    baseline = asyncio.all_tasks()
    listening = FakeAgent("agent-srv")
    dialing = FakeAgent("agent-dial")
    async with fake_agents(listening, dialing):
        port = await listening.serve()
        async with running_controller(tmp_path) as ctl:
            await dialing.dial(agent_uri(ctl))
            client = await ApiClient.open(client_port(ctl))
            config = cluster_config("agent-srv", host="127.0.0.1", listen_port=port)
            await client.request(ev.StageConfigurationRequest(reqid(), config))
            await client.request(ev.DeployRequest(reqid()))
            assert ctl._dialers
            # A peer that upgraded but never sends its handshake, and one mid-request.
            idle = await websockets.connect(f"ws://127.0.0.1:{client_port(ctl)}/v1/messages/json")
            pending = client.send(ev.TestTimeoutRequest(reqid(), True))
            await wait_until_async(
                lambda: len(ctl._state.requests) == 1, what="pending test request"
            )
        # running_controller waited for run() to return (10 s cap).
        # The pending request's connection was closed by the shutdown.
        assert isinstance(pending.exception(), ConnectionError)
        await client.close()
        await idle.close()
    left = asyncio.all_tasks() - baseline - {asyncio.current_task()}
    assert not left, left


def test_store_reuses_text_across_slots_and_round_trips(tmp_path: Path) -> None:
    """Saving the same objects under other slots (a deploy) writes what load() reads back."""
    from mgmt.controller import validation
    from mgmt.persist.controllerstore import SavedConfigs

    store = ConfigStore(tmp_path / "controller.toml")
    staged = cluster_config("agent-a")
    ready = validation.assign_broker_ports(staged, Port(2200))
    for saved in (
        SavedConfigs(staged, ready, None),
        SavedConfigs(staged, ready, ready),  # deploy: READY object becomes DEPLOYED
        SavedConfigs(cluster_config("agent-b"), ready, ready),
        SavedConfigs(None, None, ready),
    ):
        store.save(saved)
        assert ConfigStore(store.path).load() == saved
    text = store.path.read_text()
    assert text.startswith('kind = "zeek-mgmt-controller"\nschema_version = 1\n')
    assert "zeek_mgmt_slot" not in text and "[deployed]" in text
