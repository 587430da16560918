"""A bad node entry never takes an agent down (issue 10): hostile configurations through
the real zeek-client, raw frames on the controller's and the agent's ports, and hostile
state files, against real daemons.

The controller refuses at stage time what no agent can launch; an agent refuses such a
deployment on receipt (per node, changing nothing); an agent resuming such a saved
configuration starts, reports those nodes FAILED, and takes the next deployment.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import shutil
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
import websockets
from websockets.asyncio.client import ClientConnection

from mgmt.agent.service import STATE_KIND, STATE_SCHEMA
from mgmt.broker import events as ev
from mgmt.broker import messages as bm
from mgmt.broker.records import (
    ClusterRole,
    Configuration,
    Instance,
    Node,
    NodeStatus,
    Result,
    State,
)
from mgmt.core.topics import CONTROLLER_TOPIC
from mgmt.persist.configtoml import config_to_table
from mgmt.persist.statefile import save_toml
from tests.support.cli import run_zeek_client
from tests.support.controller_harness import (
    ApiClient,
    client_port,
    cluster_config,
    reqid,
    running_controller,
)
from tests.support.ports import port_open
from tests.support.reference import LOCAL_AGENT
from tests.support.sites import QUICKSTART_CFG, TIMEOUT, Site, one_process_per_node, site
from tests.support.waiting import wait_until

AGENT_TOPIC = f"zeek/management/agent/{LOCAL_AGENT}"
REFUSED = "refused, nothing changed: it has nodes this agent cannot launch"


# --------------------------------------------------------------------------------------
# The controller: the real zeek-client, and our API client for what zeek-client cannot send

#: (what, extra .cfg section, the controller's error). zeek-client's .ini parser passes
#: NUL bytes through, and an env entry "=x" has an empty variable name.
HOSTILE_CFGS = [
    (
        "NUL in an env value",
        "[worker-03]\nrole = worker\nenv = A=x\x00y\n",
        "node 'worker-03' has an invalid value for env variable 'A': it contains a NUL byte",
    ),
    (
        "empty env variable name",
        "[worker-03]\nrole = worker\nenv = =x\n",
        "node 'worker-03' has an invalid env variable name '': it is empty",
    ),
    (
        "NUL in the interface",
        "[worker-03]\nrole = worker\ninterface = l\x00o\n",
        "node 'worker-03' has an invalid interface 'l\\x00o': it contains a NUL byte",
    ),
    (
        "NUL in a script",
        "[worker-03]\nrole = worker\nscripts = a\x00.zeek\n",
        "node 'worker-03' has an invalid script 'a\\x00.zeek': it contains a NUL byte",
    ),
    (".hidden", "[.hidden]\nrole = worker\n", "node name '.hidden' is invalid: it starts with '.'"),
    (".bin", "[.bin]\nrole = worker\n", "node name '.bin' is invalid: it starts with '.'"),
    ("...", "[...]\nrole = worker\n", "node name '...' is invalid: it starts with '.'"),
    (
        "a name too long for a file name",
        f"[{'w' * 129}]\nrole = worker\n",
        f"node name '{'w' * 40}'... (129 characters) is invalid: it is longer than 128 bytes (129)",
    ),
]


@pytest.mark.asyncio
async def test_zeek_client_stage_and_deploy_of_hostile_configs_fail(tmp_path: Path) -> None:
    """stage-config and deploy-config of a configuration no agent can launch exit 1 with
    the controller's error naming node and field; the staged configuration stays."""
    cfgdir = tmp_path / "cfg"
    cfgdir.mkdir()
    (cfgdir / "good.cfg").write_text(QUICKSTART_CFG)
    async with running_controller(tmp_path / "state") as ctl:
        port = client_port(ctl)
        run = await run_zeek_client(port, "stage-config", "good.cfg", cwd=cfgdir)
        assert run.code == 0, run.stderr
        staged = (await run_zeek_client(port, "get-config", "--as-json")).json()
        for what, section, error in HOSTILE_CFGS:
            (cfgdir / "bad.cfg").write_text(f"{QUICKSTART_CFG}\n{section}")
            for command in ("stage-config", "deploy-config"):
                run = await run_zeek_client(port, command, "bad.cfg", cwd=cfgdir)
                assert (run.code, run.json()) == (1, {"errors": [error], "results": {}}), (
                    what,
                    command,
                    run,
                )
        assert (await run_zeek_client(port, "get-config", "--as-json")).json() == staged


def node(name: str, **fields: Any) -> Node:
    return Node(name, LOCAL_AGENT, ClusterRole.WORKER, **fields)


def with_nodes(base: Configuration, *nodes: Node) -> Configuration:
    return Configuration(str(uuid.uuid4()), base.instances, (*base.nodes, *nodes))


@pytest.mark.asyncio
async def test_api_stage_of_values_zeek_client_cannot_send_fails(tmp_path: Path) -> None:
    """Through the API (as a hostile peer would): '=' in an env variable name, a NUL byte
    in an instance name, a control character in the configuration id are refused."""
    base = cluster_config(LOCAL_AGENT)
    bad_instance = Configuration("c-inst", (*base.instances, Instance("x\x00")), base.nodes)
    cases = [
        (
            with_nodes(base, node("worker-09", env={"A=B": "1"})),
            ["node 'worker-09' has an invalid env variable name 'A=B': it contains '='"],
        ),
        (bad_instance, ["instance name 'x\\x00' is invalid: it contains a NUL byte"]),
        (
            Configuration("c\n1", base.instances, base.nodes),
            ["configuration id 'c\\n1' is invalid: it contains a control character"],
        ),
    ]
    async with running_controller(tmp_path) as ctl:
        client = await ApiClient.open(client_port(ctl))
        try:
            for config, errors in cases:
                rid = reqid()
                resp = await client.request(ev.StageConfigurationRequest(rid, config))
                assert resp.results == tuple(Result(rid, False, error=e) for e in errors)
            resp = await client.request(ev.GetConfigurationRequest(reqid(), False))
            assert resp.result.error == "no staged configuration available"
        finally:
            await client.close()


@pytest.mark.asyncio
async def test_raw_frame_with_a_lone_surrogate_is_refused_and_answered(tmp_path: Path) -> None:
    """A stage request holding a string that is not valid Unicode (a JSON "\\ud800"
    escape, which could never be echoed back as UTF-8) gets Broker's decode error, as
    Zeek's JSON parser refuses it; the connection and the controller keep serving."""
    config = with_nodes(cluster_config(LOCAL_AGENT), node("worker-09", scripts=("x",)))
    payload = ev.event_to_json(ev.StageConfigurationRequest("r-\ud800", config))
    text = json.dumps({"type": "data-message", "topic": CONTROLLER_TOPIC, **payload})
    async with running_controller(tmp_path) as ctl:
        async with websockets.connect(f"ws://127.0.0.1:{client_port(ctl)}/v1/messages/json") as ws:
            await ws.send(json.dumps([CONTROLLER_TOPIC]))
            await ws.recv()  # the ack
            await ws.send(text)
            async with asyncio.timeout(TIMEOUT):
                error = bm.parse_message(await ws.recv())
            assert error == bm.ErrorMessage(bm.DESERIALIZATION_FAILED, bm.CTX_BAD_JSON)
            request = ev.event_to_json(ev.GetInstancesRequest("r-2"))
            frame = {"type": "data-message", "topic": CONTROLLER_TOPIC, **request}
            await ws.send(json.dumps(frame))
            await next_event(ws, ev.GetInstancesResponse, "r-2")
        run = await run_zeek_client(client_port(ctl), "get-instances")
        assert run.code == 0, run.stderr


# --------------------------------------------------------------------------------------
# The agent's own port


async def next_event(ws: ClientConnection, kind: type, rid: str) -> Any:
    """The first event of type ``kind`` answering ``rid`` (others are skipped)."""
    async with asyncio.timeout(TIMEOUT):
        while True:
            msg = bm.parse_message(await ws.recv())
            if isinstance(msg, bm.DataMessage):
                event = ev.event_from_json(msg.payload)
                if isinstance(event, kind) and getattr(event, "reqid", None) == rid:
                    return event


class AgentPeer:
    """A raw Broker WebSocket peer on an agent's port, like a controller (or anyone)."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws

    @classmethod
    async def open(cls, port: int) -> AgentPeer:
        ws = await websockets.connect(f"ws://127.0.0.1:{port}/v1/messages/json", max_size=None)
        await ws.send(json.dumps([AGENT_TOPIC]))
        ack = json.loads(await ws.recv())
        assert ack["type"] == "ack", ack
        return cls(ws)

    async def request(self, event: Any, kind: type) -> Any:
        # ensure_ascii: a lone surrogate travels as a JSON escape, as a peer can send it.
        payload = ev.event_to_json(event)
        await self.ws.send(json.dumps({"type": "data-message", "topic": AGENT_TOPIC, **payload}))
        return await next_event(self.ws, kind, event.reqid)

    async def deploy(self, config: Configuration) -> tuple[Result, ...]:
        rid = reqid()
        resp = await self.request(ev.AgentDeployRequest(rid, config, False), ev.AgentDeployResponse)
        return resp.results  # type: ignore[no-any-return]

    async def states(self) -> dict[str, State]:
        rid = reqid()
        resp = await self.request(ev.AgentGetNodesRequest(rid), ev.AgentGetNodesResponse)
        rows = [NodeStatus.from_value(v) for v in resp.result.data]
        return {r.node: r.state for r in rows if r.cluster_role is not ClusterRole.NONE}

    async def close(self) -> None:
        await self.ws.close()


def good_config(*workers: str) -> Configuration:
    nodes = [Node("manager", LOCAL_AGENT, ClusterRole.MANAGER), *(node(w) for w in workers)]
    return Configuration(
        str(uuid.uuid4()),
        (Instance(LOCAL_AGENT, ipaddress.IPv4Address("127.0.0.1")),),
        tuple(nodes),
    )


#: (what, the hostile node(s), the node and the start of its error).
HOSTILE_NODES = [
    ("'=' in an env variable name", [node("w-x", env={"A=B": "1"})], "w-x", "node 'w-x' has"),
    ("NUL in an env value", [node("w-x", env={"A": "\x00"})], "w-x", "node 'w-x' has"),
    ("NUL in the interface", [node("w-x", interface="l\x00o")], "w-x", "node 'w-x' has"),
    ("NUL in a script", [node("w-x", scripts=("\x00",))], "w-x", "node 'w-x' has"),
    (".bin", [node(".bin")], ".bin", "node name '.bin' is invalid"),
    ("...", [node("...")], "...", "node name '...' is invalid"),
    (".hidden", [node(".hidden")], ".hidden", "node name '.hidden' is invalid"),
    ("slash", [node("a/b")], "a/b", "node name 'a/b' is invalid"),
    ("too long", [node("w" * 200)], "w" * 200, "node name 'wwww"),
    ("twice the same name", [node("w-x"), node("w-x")], "w-x", "multiple nodes named 'w-x'"),
]


def assert_refused(results: Iterable[Result], name: str, error: str) -> None:
    first, *rest = results
    assert not first.success and first.node is None and REFUSED in (first.error or ""), first
    mine = [r for r in rest if r.node == name]
    assert mine and all(not r.success for r in rest), rest
    assert mine[0].error is not None and mine[0].error.startswith(error), mine
    assert mine[0].instance == LOCAL_AGENT


async def deploy_and_wait(peer: AgentPeer, config: Configuration) -> None:
    results = await peer.deploy(config)
    assert all(r.success for r in results), results


def test_hostile_deploys_on_the_agent_port_are_refused_per_node(tmp_path: Path) -> None:
    """Raw deploy requests with nodes no process can be made of are answered with a
    per-node error; the agent stays up, its running nodes keep their pids, and the next
    good deployment works."""
    with site(tmp_path) as s:
        agent = s.start("agent")
        wait_until(lambda: port_open(s.agent_port), what="agent port")

        async def scenario() -> None:
            peer = await AgentPeer.open(s.agent_port)
            try:
                await deploy_and_wait(peer, good_config("worker-01"))
                pids = one_process_per_node(s, ["manager", "worker-01"])
                for what, nodes, name, error in HOSTILE_NODES:
                    results = await peer.deploy(with_nodes(good_config("worker-01"), *nodes))
                    try:
                        assert_refused(results, name, error)
                    except AssertionError as exc:
                        raise AssertionError(f"{what}: {exc}") from None
                    assert agent.alive(), what
                # Not valid Unicode: refused by the codec (Broker's decode error).
                lone = with_nodes(good_config("worker-01"), node("w-x", scripts=("\ud800",)))
                payload = ev.event_to_json(ev.AgentDeployRequest(reqid(), lone, False))
                await peer.ws.send(
                    json.dumps({"type": "data-message", "topic": AGENT_TOPIC, **payload})
                )
                async with asyncio.timeout(TIMEOUT):
                    error = bm.parse_message(await peer.ws.recv())
                assert error == bm.ErrorMessage(bm.DESERIALIZATION_FAILED, bm.CTX_BAD_JSON)
                assert one_process_per_node(s, ["manager", "worker-01"]) == pids
                assert await peer.states() == {"manager": State.RUNNING, "worker-01": State.RUNNING}
                await deploy_and_wait(peer, good_config("worker-01", "worker-02"))
                one_process_per_node(s, ["manager", "worker-01", "worker-02"])
            finally:
                await peer.close()

        asyncio.run(scenario())
        assert "Traceback" not in agent.log(), agent.log()


# --------------------------------------------------------------------------------------
# A saved configuration or node table the agent cannot launch


def write_hostile_state(s: Site, good: Configuration) -> Configuration:
    """Save a configuration with good and impossible nodes as the agent's, and a node
    table with an impossible row; return that configuration."""
    saved = with_nodes(
        good,
        node(".hidden"),
        node("worker-nul", env={"A": "x\x00y"}),
        node("worker-eq", env={"A=B": "1"}),
    )
    work = s.state_dir / "nodes" / LOCAL_AGENT
    save_toml(work / "agent.toml", STATE_KIND, STATE_SCHEMA, {"config": config_to_table(saved)})
    (work / "nodes.toml").write_text(
        "schema_version = 1\n"
        "[nodes.'.hidden']\nintent = 'run'\nargv = ['zeek']\ncwd = '/'\ncurrent = true\n"
        "env = {}\n"
    )
    return saved


BAD_NODES = {"worker-nul", "worker-eq", ".hidden"}


def test_agent_starts_with_a_saved_config_it_cannot_launch(tmp_path: Path) -> None:
    """An agent whose saved configuration and node table hold impossible nodes starts,
    runs the good nodes, reports the others FAILED (get-nodes) with the reason in its
    log, and the next deploy-config works."""
    with site(tmp_path) as s:
        write_hostile_state(s, good_config("worker-01"))
        s.start("controller")
        agent = s.start("agent")
        s.wait_agents(LOCAL_AGENT)
        want = {"manager": "RUNNING", "worker-01": "RUNNING"} | dict.fromkeys(BAD_NODES, "FAILED")
        s.wait_states(LOCAL_AGENT, want)
        log = agent.log()
        assert "node 'worker-eq' not launched: node 'worker-eq' has an invalid env variable" in log
        assert "dropping node '.hidden'" in log

        s.write_cfg(QUICKSTART_CFG)
        res = s.client("deploy-config", "cluster.cfg")
        assert res.code == 0, f"{res}\n{s.daemon_logs()}"
        rows = s.wait_states(LOCAL_AGENT, dict.fromkeys(["manager", "logger"], "RUNNING"))
        assert not BAD_NODES & set(rows)
        assert agent.alive()


# --------------------------------------------------------------------------------------
# With the real Zeek


@pytest.mark.zeek
def test_real_zeek_nodes_survive_hostile_deploys_and_state(tmp_path: Path) -> None:
    """With real Zeek nodes: a hostile raw deployment leaves them running with the same
    pids; an agent restarted on a hostile saved configuration adopts them and reports
    the impossible nodes FAILED."""
    zeek = shutil.which("zeek")
    if zeek is None:
        pytest.skip("no zeek on PATH")
    path = f"{Path(zeek).parent}:{os.environ.get('PATH', os.defpath)}"
    with site(tmp_path, PATH=path) as s:
        agent = s.start("agent")
        wait_until(lambda: port_open(s.agent_port), what="agent port")
        good = good_config()

        async def deploy_then_attack() -> dict[str, int]:
            peer = await AgentPeer.open(s.agent_port)
            try:
                await deploy_and_wait(peer, good)
                pids = one_process_per_node(s, ["manager"])
                results = await peer.deploy(
                    with_nodes(good, node(".bin"), node("w", env={"": "x"}))
                )
                assert_refused(results, ".bin", "node name '.bin' is invalid")
                assert one_process_per_node(s, ["manager"]) == pids
                return pids
            finally:
                await peer.close()

        pids = asyncio.run(deploy_then_attack())
        agent.kill()  # as after a crash: the nodes live on, the state stays
        # Bad nodes named after "manager": node channel ports are numbered by name, so
        # the manager's spec, and with it its process, stays the same.
        saved = with_nodes(
            good, node("worker-nul", env={"A": "\x00"}), node("worker-eq", env={"A=B": "1"})
        )
        work = s.state_dir / "nodes" / LOCAL_AGENT
        save_toml(work / "agent.toml", STATE_KIND, STATE_SCHEMA, {"config": config_to_table(saved)})
        agent = s.start("agent")
        wait_until(lambda: port_open(s.agent_port), what="agent port again")

        async def check() -> None:
            peer = await AgentPeer.open(s.agent_port)
            try:
                want = {
                    "manager": State.RUNNING,
                    "worker-nul": State.FAILED,
                    "worker-eq": State.FAILED,
                }

                async with asyncio.timeout(TIMEOUT):
                    # Polled: the agent announces no state changes on its own port.
                    for _ in iter(int, 1):
                        if await peer.states() == want:
                            break
                        await asyncio.sleep(0.1)
            finally:
                await peer.close()

        asyncio.run(check())
        assert one_process_per_node(s, ["manager"]) == pids
        assert agent.alive()
