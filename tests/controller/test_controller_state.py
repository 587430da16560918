"""The controller's pure state machine (behaviour §4), driven with a fake clock.

No sockets, no event loop: inputs are method calls with ``now``, outputs are actions.
"""

from __future__ import annotations

import ipaddress
import itertools
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mgmt.broker import events as ev
from mgmt.broker import extevents as xev
from mgmt.broker.data import BrokerSet, Port
from mgmt.broker.records import (
    ClusterRole,
    Configuration,
    Instance,
    Node,
    NodeOutputs,
    Result,
)
from mgmt.controller import state as cs
from mgmt.controller.fanout import FanOut, Scope
from mgmt.controller.state import ControllerState
from mgmt.core import startorder
from mgmt.core.version import ProcessFacts
from tests.support.settings import controller_settings

TIMEOUT = 10.0
SETTINGS = controller_settings(Path("/nonexistent"), request_timeout=TIMEOUT)


class Harness:
    """A ControllerState with deterministic ids, a clock, and action helpers."""

    def __init__(self, **kw: Any) -> None:
        counter = itertools.count(1)
        self.now = 100.0
        self.state = ControllerState(SETTINGS, new_id=lambda: f"id-{next(counter)}", **kw)
        self.log: list[cs.Action] = []
        #: Every Log action, in order (take() leaves them out).
        self.logs: list[cs.Log] = []
        #: What writing the next Persist reports (None: it worked).
        self.persist_error: str | None = None

    def take(self) -> list[cs.Action]:
        """The actions since the last call (no Logs); each Persist is answered like the
        service does, with :attr:`persist_error`."""
        acts: list[cs.Action] = []
        while batch := self.state.actions():
            for action in batch:
                if isinstance(action, cs.Log):
                    self.logs.append(action)
                else:
                    acts.append(action)
                if isinstance(action, cs.Persist):
                    self.state.persisted(self.persist_error, self.now)
        self.log.extend(acts)
        return acts

    def client(self, event: Any) -> list[cs.Action]:
        self.state.receive_client(event, self.now)
        return self.take()

    def agent(self, name: str, event: Any) -> list[cs.Action]:
        self.state.receive_agent(name, event, self.now)
        return self.take()

    def hello(
        self, name: str, host: str = "127.0.0.1", port: int | None = None, api: int = 1
    ) -> list[cs.Action]:
        self.accepted = self.state.agent_hello(
            ev.NotifyAgentHello(name, f"ep-{name}", port is None, api), host, port, self.now
        )
        return self.take()

    def lost(self, name: str) -> list[cs.Action]:
        self.state.agent_lost(name, self.now)
        return self.take()

    def tick(self, advance: float) -> list[cs.Action]:
        self.now += advance
        self.state.tick(self.now)
        return self.take()

    # -- agents answering --------------------------------------------------------------

    def sent(self, acts: list[cs.Action], kind: type) -> list[tuple[str, Any]]:
        return [
            (a.instance, a.event)
            for a in acts
            if isinstance(a, cs.SendToAgent) and isinstance(a.event, kind)
        ]

    def welcome_all(self, acts: list[cs.Action]) -> list[cs.Action]:
        """Every welcome request in ``acts`` is accepted; returns the actions that follow."""
        out: list[cs.Action] = []
        for name, req in self.sent(acts, ev.AgentWelcomeRequest):
            out += self.agent(
                name, ev.AgentWelcomeResponse(req.reqid, Result(req.reqid, True, instance=name))
            )
        return out

    def deploy_ok(self, acts: list[cs.Action]) -> list[cs.Action]:
        """Every agent deploy request in ``acts`` succeeds for each of its nodes."""
        out: list[cs.Action] = []
        for name, req in self.sent(acts, ev.AgentDeployRequest):
            results = tuple(
                Result(req.reqid, True, instance=name, node=n.name)
                for n in req.config.nodes_of(name)
            ) or (Result(req.reqid, True, instance=name),)
            out += self.agent(name, ev.AgentDeployResponse(req.reqid, results))
        return out


def published(acts: list[cs.Action]) -> list[Any]:
    return [a.event for a in acts if isinstance(a, cs.Publish)]


def one_published(acts: list[cs.Action], kind: type) -> Any:
    events = [e for e in published(acts) if isinstance(e, kind)]
    assert len(events) == 1, acts
    return events[0]


def cfg(*instances: str | Instance, nodes_per: int = 2, cid: str = "cfg-1") -> Configuration:
    insts = tuple(i if isinstance(i, Instance) else Instance(i) for i in instances)
    nodes = []
    for i in insts:
        nodes.append(
            Node(f"{i.name}-m", i.name, ClusterRole.MANAGER if not nodes else ClusterRole.LOGGER)
        )
        nodes += [Node(f"{i.name}-w{j}", i.name, ClusterRole.WORKER) for j in range(1, nodes_per)]
    return Configuration(cid, insts, tuple(nodes))


def stage(h: Harness, config: Configuration) -> list[cs.Action]:
    acts = h.client(ev.StageConfigurationRequest("stage", config))
    assert one_published(acts, ev.StageConfigurationResponse).results[0].success
    return acts


def deploy_ready(h: Harness, config: Configuration) -> ev.DeployResponse:
    """Stage + deploy with all agents already connected; everyone succeeds."""
    stage(h, config)
    acts = h.client(ev.DeployRequest("dep"))
    acts += h.welcome_all(acts)
    acts += h.deploy_ok(acts)
    return one_published(acts, ev.DeployResponse)


# --------------------------------------------------------------------------------------


def test_pure_module_imports_no_io() -> None:
    """state and validation import neither asyncio nor sockets (pure layer)."""
    code = (
        "import sys, mgmt.controller.state, mgmt.controller.validation;"
        "bad = {'asyncio', 'socket', 'websockets', 'psutil'} & set(sys.modules);"
        "sys.exit(sorted(bad) if bad else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_stage_persists_before_answering() -> None:
    """A valid stage stores STAGED as sent, READY with ports, and persists before the response."""
    h = Harness()
    h.hello("a", "10.1.2.3")
    config = cfg("a")
    acts = stage(h, config)
    kinds = [type(a) for a in acts]
    assert kinds == [cs.Persist, cs.Publish]
    assert h.state.staged == config
    ready = h.state.ready_config
    assert ready is not None and str(ready.instances[0].host) == "10.1.2.3"
    assert [n.p for n in ready.nodes if n.role is not ClusterRole.WORKER] == [Port(2200)]
    assert h.state.deployed is None


FULL = "controller.toml: cannot write: No space left on device"


def test_stage_that_cannot_be_persisted_fails_and_changes_nothing() -> None:
    """A stage whose Persist fails answers 'could not persist configuration: <why>' and
    leaves STAGED and READY as they were; the next stage that can be written works."""
    h = Harness()
    first = cfg("a", cid="first")
    stage(h, first)
    staged, ready = h.state.staged, h.state.ready_config
    h.persist_error = FULL
    acts = h.client(ev.StageConfigurationRequest("s2", cfg("a", nodes_per=3, cid="second")))
    assert [type(a) for a in acts] == [cs.Persist, cs.Publish]
    assert one_published(acts, ev.StageConfigurationResponse).results == (
        Result("s2", False, error=f"could not persist configuration: {FULL}"),
    )
    assert (h.state.staged, h.state.ready_config) == (staged, ready)
    h.persist_error = None
    stage(h, cfg("a", nodes_per=3, cid="second"))
    assert h.state.staged is not None and h.state.staged.id == "second"


def test_deploy_that_cannot_be_persisted_fails_before_any_agent_hears_of_it() -> None:
    """A deploy first writes the (unchanged) state; when that fails it answers the error
    and neither welcomes nor deploys to any agent."""
    h = Harness()
    h.hello("a")
    stage(h, cfg("a"))
    h.persist_error = FULL
    acts = h.client(ev.DeployRequest("d1"))
    assert [type(a) for a in acts] == [cs.Persist, cs.Publish]
    assert one_published(acts, ev.DeployResponse).results == (
        Result("d1", False, error=f"could not persist configuration: {FULL}"),
    )
    assert h.state.deployed is None and h.state.pending_deploy == "" and not h.state.requests
    assert h.state.instances == {}


def test_deploy_whose_outcome_cannot_be_recorded_keeps_the_previous_deployed() -> None:
    """When the write at the end of a deploy fails (the disk filled meanwhile), the
    response has the agents' results plus the error, and DEPLOYED stays the previous."""
    h = Harness()
    h.hello("a")
    deploy_ready(h, cfg("a", cid="old"))
    old = h.state.deployed
    stage(h, cfg("a", nodes_per=3, cid="new"))
    acts = h.client(ev.DeployRequest("d2"))  # the first write works ...
    h.persist_error = FULL  # ... the one recording the outcome does not
    acts = h.deploy_ok(acts)
    results = one_published(acts, ev.DeployResponse).results
    assert all(r.success for r in results[:-1]) and len(results) == 4
    assert results[-1] == Result("d2", False, error=f"could not persist configuration: {FULL}")
    assert h.state.deployed is old and h.state.pending_deploy == "" and not h.state.requests


def test_persisted_without_a_pending_persist_is_ignored() -> None:
    """A stray persisted() report changes nothing and only logs a warning."""
    h = Harness()
    stage(h, cfg("a"))
    staged = h.state.staged
    h.state.persisted("x", h.now)
    acts = h.state.actions()
    assert [type(a) for a in acts] == [cs.Log] and acts[0].level is cs.Level.WARNING
    assert h.state.staged is staged


def test_stage_invalid_changes_nothing() -> None:
    """A rejected stage answers the sorted errors and neither stores nor persists."""
    h = Harness()
    good = cfg("a")
    stage(h, good)
    bad = Configuration(
        "bad",
        (Instance("a"),),
        (Node("x", "nope", ClusterRole.WORKER), Node("a", "a", ClusterRole.WORKER)),
    )
    acts = h.client(ev.StageConfigurationRequest("r2", bad))
    assert [type(a) for a in acts] == [cs.Publish]
    resp = one_published(acts, ev.StageConfigurationResponse)
    assert [(r.success, r.error, r.instance, r.node) for r in resp.results] == [
        (False, "node 'x' has undeclared instance name 'nope'", None, None),
        (False, "node and instance names collide: a", None, None),
    ]
    assert h.state.staged == good


@pytest.mark.parametrize("deployed", [False, True])
def test_get_configuration_missing(deployed: bool) -> None:
    """Asking for a missing slot gives Zeek's error text."""
    h = Harness()
    resp = one_published(
        h.client(ev.GetConfigurationRequest("r", deployed)), ev.GetConfigurationResponse
    )
    which = "deployed" if deployed else "staged"
    assert resp.result == Result("r", False, error=f"no {which} configuration available")


def test_get_instances_sorted_with_ports_only_when_dialed() -> None:
    """get_instances lists known agents by name; listen_port only for dialed ones."""
    h = Harness()
    h.hello("b", "10.0.0.2")
    h.hello("a", "10.0.0.1", port=2151)
    resp = one_published(h.client(ev.GetInstancesRequest("r")), ev.GetInstancesResponse)
    assert resp.result.data == (
        Instance("a", ipaddress.ip_address("10.0.0.1"), Port(2151)),
        Instance("b", ipaddress.ip_address("10.0.0.2")),
    )


def test_deploy_fan_out_and_aggregation() -> None:
    """Deploy waits for all welcomes, sends READY to each agent, aggregates, then persists."""
    h = Harness()
    h.hello("a")
    h.hello("b")
    config = cfg("a", "b")
    stage(h, config)
    acts = h.client(ev.DeployRequest("dep"))
    assert sorted(n for n, _ in h.sent(acts, ev.AgentWelcomeRequest)) == ["a", "b"]
    assert not published(acts) and h.state.pending_deploy == "dep"

    welcome_a = [a for a in acts if isinstance(a, cs.SendToAgent) and a.instance == "a"]
    welcome_b = [a for a in acts if isinstance(a, cs.SendToAgent) and a.instance == "b"]
    assert not h.sent(h.welcome_all(welcome_a), ev.AgentDeployRequest)  # b is not ready yet
    acts = h.welcome_all(welcome_b)
    deploys = h.sent(acts, ev.AgentDeployRequest)
    assert sorted(n for n, _ in deploys) == ["a", "b"]
    assert all(r.config == h.state.ready_config and r.force is False for _, r in deploys)
    assert len({r.reqid for _, r in deploys}) == 2  # one child request each

    (na, ra), (nb, rb) = deploys
    failed = Result(rb.reqid, False, instance=nb, data=NodeOutputs("out", "err"), node=f"{nb}-w1")
    acts = h.agent(
        na, ev.AgentDeployResponse(ra.reqid, (Result(ra.reqid, True, instance=na, node=f"{na}-m"),))
    )
    assert not published(acts)
    acts = h.agent(nb, ev.AgentDeployResponse(rb.reqid, (failed,)))
    assert [type(a) for a in acts] == [cs.Persist, cs.Publish]
    resp = one_published(acts, ev.DeployResponse)
    assert resp.results == (
        Result(ra.reqid, True, instance=na, node=f"{na}-m"),
        failed,
        Result("dep", True, data="cfg-1"),
    )
    # A failed node still counts: the attempt is DEPLOYED (§4.6.4).
    assert h.state.deployed == h.state.ready_config and h.state.pending_deploy == ""
    assert not h.state.requests


def _deploy_logs(h: Harness) -> list[tuple[cs.Level, str]]:
    return [
        (log.level, log.message)
        for log in h.logs
        if "deployed configuration" in log.message or log.message.startswith("deployment ")
    ]


def test_deploy_logs_its_outcome() -> None:
    """A deployment is logged at INFO when every node started, at WARNING with the count
    and names of failed nodes (and instance errors) otherwise."""
    h = Harness()
    h.hello("a")
    h.hello("b")
    deploy_ready(h, cfg("a", "b"))
    assert _deploy_logs(h) == [(cs.Level.INFO, "deployed configuration cfg-1 (request dep)")]

    h.logs.clear()
    stage(h, cfg("a", "b", cid="cfg-2"))
    acts = h.client(ev.DeployRequest("dep-2"))
    acts += h.welcome_all(acts)
    for name, req in h.sent(acts, ev.AgentDeployRequest):
        results = tuple(
            Result(req.reqid, name == "a", instance=name, node=n.name)
            for n in req.config.nodes_of(name)
        ) + ((Result(req.reqid, False, instance=name, error="disk full"),) if name == "b" else ())
        h.agent(name, ev.AgentDeployResponse(req.reqid, results))
    assert _deploy_logs(h) == [
        (
            cs.Level.WARNING,
            "deployment dep-2 of configuration cfg-2: 2 of 4 nodes failed "
            "['b-m', 'b-w1'], 1 instance error ['disk full']",
        )
    ]


def test_deploy_entry_errors() -> None:
    """No READY config, or a deployment already pending, is refused at once."""
    h = Harness()
    resp = one_published(h.client(ev.DeployRequest("d1")), ev.DeployResponse)
    assert resp.results == (Result("d1", False, error="no configuration available to deploy"),)
    stage(h, cfg("a"))
    assert not published(h.client(ev.DeployRequest("d2")))  # waits for agent a
    resp = one_published(h.client(ev.DeployRequest("d3")), ev.DeployResponse)
    assert resp.results == (Result("d3", False, error="earlier deployment d2 still pending"),)


def test_deploy_of_a_restored_config_no_agent_can_launch_is_refused() -> None:
    """A READY configuration from an older state file with a node no agent can launch is
    not deployed: the answer names the problem and nothing is sent to an agent."""
    good = cfg("a", cid="restored")
    bad = Configuration(
        good.id, good.instances, (*good.nodes, Node(".bin", "a", ClusterRole.WORKER))
    )
    h = Harness(staged=bad, ready=bad)
    acts = h.client(ev.DeployRequest("d1"))
    assert one_published(acts, ev.DeployResponse).results == (
        Result("d1", False, error="node name '.bin' is invalid: it starts with '.'"),
    )
    assert not h.sent(acts, ev.AgentDeployRequest) and h.state.pending_deploy == ""
    assert h.state.deployed is None


def test_deploy_of_empty_config_completes_at_once() -> None:
    """A config without instances is deployed immediately with just the id result."""
    h = Harness()
    stage(h, Configuration("empty"))
    acts = h.client(ev.DeployRequest("d"))
    assert one_published(acts, ev.DeployResponse).results == (Result("d", True, data="empty"),)
    assert h.state.deployed == Configuration("empty")


def test_deploy_timeout_keeps_old_deployed_then_redeploys_it() -> None:
    """A timed-out deploy keeps DEPLOYED; the old config comes back later (Q4). Its
    timeout is one request timeout per start group (ordered start)."""
    h = Harness()
    h.hello("a")
    old = cfg("a", cid="old")
    deploy_ready(h, old)
    new = cfg("a", "b", cid="new")
    stage(h, new)
    acts = h.client(ev.DeployRequest("d2"))
    acts += h.welcome_all(acts)  # a is ready, b never connects
    assert not published(acts)
    timeout = TIMEOUT * startorder.group_count(n.role for n in new.nodes)
    assert timeout == TIMEOUT * 3
    assert h.state.next_deadline() == pytest.approx(h.now + timeout)
    assert not h.tick(timeout - 0.1)
    acts = h.tick(0.1)
    resp = one_published(acts, ev.DeployResponse)
    assert resp.results == (Result("d2", False, error="request timed out"),)
    assert h.state.deployed is not None and h.state.deployed.id == "old"
    assert h.state.pending_deploy == "" and set(h.state.instances) == {"a", "b"}

    # b shows up later: everyone is ready, nothing pending -> internal redeploy of "old",
    # which drops b again (Q6 fixed: computed from the config being deployed).
    acts = h.welcome_all(h.hello("b"))
    deploys = h.sent(acts, ev.AgentDeployRequest)
    assert [(n, r.config.id) for n, r in deploys] == [("a", "old")]
    assert ("b", ev.AgentStandbyRequest("")) in [
        (a.instance, a.event) for a in acts if isinstance(a, cs.SendToAgent)
    ]
    acts = h.deploy_ok(acts)
    assert not published(acts)  # internal: no client response
    assert h.state.pending_deploy == "" and set(h.state.instances) == {"a"}


def test_agent_reconnect_triggers_redeploy_of_deployed() -> None:
    """An agent that reconnects is welcomed and sent DEPLOYED again (internal, unanswered)."""
    h = Harness()
    h.hello("a")
    h.hello("b")
    deploy_ready(h, cfg("a", "b"))
    deployed = h.state.deployed
    h.lost("a")
    assert "a" not in h.state.known and "a" not in h.state.ready and "a" in h.state.instances
    acts = h.hello("a")
    assert [n for n, _ in h.sent(acts, ev.AgentWelcomeRequest)] == ["a"]
    acts = h.welcome_all(acts)
    deploys = h.sent(acts, ev.AgentDeployRequest)
    assert sorted(n for n, _ in deploys) == ["a", "b"]  # like Zeek, every ready agent
    assert all(r.config == deployed for _, r in deploys)
    # Agents already running this config id answer node-less success.
    acts = []
    for name, req in deploys:
        acts += h.agent(
            name, ev.AgentDeployResponse(req.reqid, (Result(req.reqid, True, instance=name),))
        )
    assert not published(acts)
    assert acts == []  # the same DEPLOYED: nothing to write again
    assert h.state.deployed == deployed and h.state.pending_deploy == "" and not h.state.requests


def test_connectivity_change_drops_and_readds_instance() -> None:
    """Q5 fixed: an instance whose listen port changed is dropped, re-dialed and re-added."""
    h = Harness()
    a1 = Instance("a", ipaddress.ip_address("10.0.0.1"), Port(2151))
    acts = stage(h, cfg(a1, cid="c1"))
    acts = h.client(ev.DeployRequest("d1"))
    assert cs.Dial("a", "10.0.0.1", 2151) in acts
    h.deploy_ok(h.welcome_all(h.hello("a", "10.0.0.1", port=2151)))
    assert h.state.deployed is not None

    a2 = Instance("a", ipaddress.ip_address("10.0.0.1"), Port(2152))
    stage(h, cfg(a2, cid="c2"))
    acts = h.client(ev.DeployRequest("d2"))
    kinds = [(type(a).__name__, getattr(a, "instance", None)) for a in acts]
    assert kinds[:4] == [
        ("Persist", None),  # the state can be written: go ahead
        ("SendToAgent", "a"),
        ("StopDialing", "a"),
        ("Dial", "a"),
    ]
    assert cs.Dial("a", "10.0.0.1", 2152) in acts
    assert "a" in h.state.instances  # Zeek would forget to re-add it
    h.lost("a")
    acts = h.welcome_all(h.hello("a", "10.0.0.1", port=2152))
    resp = one_published(h.deploy_ok(acts), ev.DeployResponse)
    assert resp.results[-1] == Result("d2", True, data="c2")


def test_dropped_instance_gets_standby() -> None:
    """An instance not in the new config is sent standby and forgotten (but stays known)."""
    h = Harness()
    h.hello("a")
    h.hello("b")
    deploy_ready(h, cfg("a", "b", cid="c1"))
    stage(h, cfg("a", cid="c2"))
    acts = h.client(ev.DeployRequest("d2"))
    assert ("b", ev.AgentStandbyRequest("")) in h.sent(acts, ev.AgentStandbyRequest)
    assert set(h.state.instances) == {"a"} and "b" in h.state.known
    assert one_published(h.deploy_ok(acts), ev.DeployResponse).results[-1].data == "c2"


def test_welcome_failure_and_bad_api_version() -> None:
    """A failed welcome gets standby; an incompatible hello is refused and forgotten."""
    h = Harness()
    h.hello("a")
    stage(h, cfg("a"))
    acts = h.client(ev.DeployRequest("d"))
    ((_, req),) = h.sent(acts, ev.AgentWelcomeRequest)
    acts = h.agent("a", ev.AgentWelcomeResponse(req.reqid, Result(req.reqid, False, instance="a")))
    assert h.sent(acts, ev.AgentStandbyRequest) == [("a", ev.AgentStandbyRequest(""))]
    assert "a" not in h.state.ready

    acts = h.hello("a", api=2)
    assert h.accepted is False and h.sent(acts, ev.AgentStandbyRequest)
    assert "a" not in h.state.known and "a" not in h.state.instances
    # An unknown (e.g. expired) welcome id is ignored.
    assert h.agent("a", ev.AgentWelcomeResponse("nope", Result("nope", True, instance="a"))) == []


def test_get_nodes_fans_out_to_all_known_and_times_out_partially() -> None:
    """get_nodes asks every known agent (config or not); on timeout answers what arrived."""
    h = Harness()
    assert one_published(h.client(ev.GetNodesRequest("g0")), ev.GetNodesResponse).results == (
        Result("g0", False, error="no instances connected"),
    )
    h.hello("a")
    h.hello("b")
    acts = h.client(ev.GetNodesRequest("g1"))
    reqs = dict(h.sent(acts, ev.AgentGetNodesRequest))
    assert sorted(reqs) == ["a", "b"]
    res_a = Result(reqs["a"].reqid, True, instance="a", data=())
    assert not published(h.agent("a", ev.AgentGetNodesResponse(reqs["a"].reqid, res_a)))
    resp = one_published(h.tick(TIMEOUT), ev.GetNodesResponse)
    assert resp.results == (res_a, Result("g1", False, error="request timed out"))
    # b's late answer goes nowhere.
    assert h.agent("b", ev.AgentGetNodesResponse(reqs["b"].reqid, res_a)) == []


def test_get_id_value() -> None:
    """Unknown nodes are reported by the controller; known ones are asked of ready agents."""
    h = Harness()
    resp = one_published(
        h.client(ev.GetIdValueRequest("i0", "x", BrokerSet())), ev.GetIdValueResponse
    )
    assert resp.results == (Result("i0", False, error="no cluster deployed"),)
    h.hello("a")
    h.hello("b")
    deploy_ready(h, cfg("a", "b"))
    acts = h.client(ev.GetIdValueRequest("i1", "x", BrokerSet(["a-m", "zzz"])))
    reqs = h.sent(acts, ev.AgentNodeDispatchRequest)
    assert [(n, r.action, set(r.nodes)) for n, r in reqs] == [
        ("a", ("get_id_value", "x"), {"a-m"}),
        ("b", ("get_id_value", "x"), {"a-m"}),
    ]
    h.agent(
        "a",
        ev.AgentNodeDispatchResponse(reqs[0][1].reqid, (Result("n", True, "a", "1", node="a-m"),)),
    )
    acts = h.agent("b", ev.AgentNodeDispatchResponse(reqs[1][1].reqid, ()))
    resp = one_published(acts, ev.GetIdValueResponse)
    assert resp.results == (
        Result("i1", False, error="unknown cluster node", node="zzz"),
        Result("n", True, "a", "1", node="a-m"),
    )


def test_get_id_value_naming_nodes_before_any_deploy_answers_at_once() -> None:
    """Q7 fixed: nodes named while nothing is DEPLOYED are unknown at once, no 10 s wait."""
    h = Harness()
    stage(h, cfg("a"))
    h.client(ev.DeployRequest("d"))  # g_instances now has "a", DEPLOYED is still empty
    acts = h.client(ev.GetIdValueRequest("i", "x", BrokerSet(["a-m"])))
    assert one_published(acts, ev.GetIdValueResponse).results == (
        Result("i", False, error="unknown cluster node", node="a-m"),
    )


def test_restart() -> None:
    """restart checks agents and deployment, reports unknown nodes, sends the known ones."""
    h = Harness()
    assert one_published(
        h.client(ev.RestartRequest("r0", BrokerSet())), ev.RestartResponse
    ).results == (Result("r0", False, error="no instances connected"),)
    h.hello("a")
    assert one_published(
        h.client(ev.RestartRequest("r1", BrokerSet())), ev.RestartResponse
    ).results == (Result("r1", False, error="no active cluster deployment"),)
    deploy_ready(h, cfg("a"))
    acts = h.client(ev.RestartRequest("r2", BrokerSet(["nope"])))
    assert one_published(acts, ev.RestartResponse).results == (
        Result("r2", False, error="unknown cluster node", node="nope"),
    )
    acts = h.client(ev.RestartRequest("r3", BrokerSet(["a-m", "nope"])))
    ((name, req),) = h.sent(acts, ev.AgentRestartRequest)
    assert set(req.nodes) == {"a-m"}
    ok = Result(req.reqid, True, instance="a", node="a-m")
    resp = one_published(
        h.agent("a", ev.AgentRestartResponse(req.reqid, (ok,))), ev.RestartResponse
    )
    assert resp.results == (Result("r3", False, error="unknown cluster node", node="nope"), ok)


def test_restart_with_no_ready_instance_times_out() -> None:
    """With the deployed agent away (another one known), restart ends in 'request timed out'."""
    h = Harness()
    h.hello("a")
    h.hello("b")
    deploy_ready(h, cfg("a"))
    h.lost("a")
    assert not published(h.client(ev.RestartRequest("r", BrokerSet())))
    resp = one_published(h.tick(TIMEOUT), ev.RestartResponse)
    assert resp.results == (Result("r", False, error="request timed out"),)


@pytest.mark.parametrize("with_state", [True, False])
def test_test_timeout(with_state: bool) -> None:
    """test_timeout answers only with state, at its deadline; never without."""
    h = Harness()
    assert not h.client(ev.TestTimeoutRequest("t", with_state))
    assert not h.tick(TIMEOUT - 1)
    acts = h.tick(1)
    if with_state:
        assert published(acts) == [
            ev.TestTimeoutResponse("t", Result("t", False, error="request timed out"))
        ]
    else:
        assert acts == [] and h.state.next_deadline() is None


def test_start_redeploys_persisted_config() -> None:
    """At start a persisted DEPLOYED config is redeployed internally once its agents are ready."""
    deployed = cfg("a", cid="persisted")
    h = Harness(staged=deployed, ready=deployed, deployed=deployed)
    h.state.start(h.now)
    assert h.take() == [] and h.state.pending_deploy != ""
    # A client deploy meanwhile is refused, like Zeek during its first ~10 s.
    resp = one_published(h.client(ev.DeployRequest("d")), ev.DeployResponse)
    assert resp.results[0].error == f"earlier deployment {h.state.pending_deploy} still pending"
    acts = h.welcome_all(h.hello("a"))
    ((_, req),) = h.sent(acts, ev.AgentDeployRequest)
    assert req.config == deployed
    acts = h.deploy_ok(acts)
    assert not published(acts) and h.state.pending_deploy == ""


def test_notify_error_and_stray_responses_are_ignored() -> None:
    """notify_* events and stray responses change nothing and publish nothing."""
    h = Harness()
    h.hello("a")
    before = (dict(h.state.known), dict(h.state.requests))
    for event in (
        ev.NotifyError("a", "boom", "w1"),
        ev.NotifyLog("a", "msg"),
        ev.AgentStandbyResponse("", Result("", True, instance="a")),
        ev.AgentDeployResponse("unknown", ()),
    ):
        assert h.agent("a", event) == []
    assert (dict(h.state.known), dict(h.state.requests)) == before


# -- extension requests fanned out to agents (mgmt.controller.fanout) ---------------------

FACTS = ProcessFacts("controller", "ctl", 7, 1_700_000_000.5)


def agent_version(reqid: str, name: str) -> xev.AgentGetVersionResponse:
    payload = {"role": "agent", "name": name}
    return xev.AgentGetVersionResponse(reqid, (xev.payload_result(reqid, payload, instance=name),))


def test_get_version_answers_for_the_controller_then_each_agent() -> None:
    """get_version: the controller's own Result first, then one per connected agent in
    the order they answer; the agents get the request under child ids."""
    h = Harness(facts=FACTS)
    h.hello("b")
    h.hello("a")
    acts = h.client(xev.GetVersionRequest("v1"))
    asked = h.sent(acts, xev.AgentGetVersionRequest)
    assert [name for name, _ in asked] == ["a", "b"] and not published(acts)
    assert {req.reqid for _, req in asked}.isdisjoint({"v1"})
    assert h.agent("b", agent_version(asked[1][1].reqid, "b")) == []
    resp = one_published(
        h.agent("a", agent_version(asked[0][1].reqid, "a")), xev.GetVersionResponse
    )
    assert [(r.instance, r.success) for r in resp.results] == [
        ("ctl", True),
        ("b", True),
        ("a", True),
    ]
    assert [xev.payload_of(r)["name"] for r in resp.results] == ["ctl", "b", "a"]
    assert xev.payload_of(resp.results[0]) == {
        "v": 1,
        "role": "controller",
        "name": "ctl",
        "zeek_mgmt": FACTS.zeek_mgmt,
        "python": FACTS.python,
        "pid": 7,
        "started": 1_700_000_000,
        "zeek": None,
    }
    assert not h.state.requests


def test_get_version_times_out_per_agent() -> None:
    """An agent that does not answer within the request timeout gets its own 'request
    timed out' Result (instance set); its late answer is dropped."""
    h = Harness(facts=FACTS)
    for name in ("a", "b", "c"):
        h.hello(name)
    acts = h.client(xev.GetVersionRequest("v1"))
    asked = dict(h.sent(acts, xev.AgentGetVersionRequest))
    h.agent("b", agent_version(asked["b"].reqid, "b"))
    assert h.tick(TIMEOUT - 0.1) == []
    resp = one_published(h.tick(0.1), xev.GetVersionResponse)
    assert [(r.instance, r.success, r.error) for r in resp.results] == [
        ("ctl", True, None),
        ("b", True, None),
        ("a", False, "request timed out"),
        ("c", False, "request timed out"),
    ]
    assert not h.state.requests
    assert h.agent("a", agent_version(asked["a"].reqid, "a")) == []


def test_get_version_without_agents_answers_at_once() -> None:
    """With no agent connected, the controller's own Result is the whole answer."""
    h = Harness(facts=FACTS)
    resp = one_published(h.client(xev.GetVersionRequest("v1")), xev.GetVersionResponse)
    assert [r.instance for r in resp.results] == ["ctl"] and not h.state.requests


# A node-scoped row, standing in for any feature's: restart's events have the shape.
NODES_ROW = FanOut(ev.RestartResponse, ev.AgentRestartRequest, Scope.NODES)
NodesRequest, NodesResponse = ev.AgentRestartRequest, ev.RestartResponse


def fan_out(h: Harness, nodes: set[str]) -> list[cs.Action]:
    request = ev.RestartRequest("n1", BrokerSet(sorted(nodes)))
    h.state._fan_out(request, NODES_ROW, h.now)  # type: ignore[arg-type]
    return h.take()


def test_node_scope_asks_the_instances_hosting_the_named_nodes() -> None:
    """A node-scoped fan-out goes to the deployment's instances hosting the named nodes
    (with the known names only), reports unknown names, and answers once they did."""
    h = Harness()
    h.hello("a")
    h.hello("b")
    deploy_ready(h, cfg("a", "b"))
    acts = fan_out(h, {"b-w1", "nope"})
    ((name, req),) = h.sent(acts, NodesRequest)
    assert name == "b" and req.nodes == BrokerSet(["b-w1"]) and not published(acts)
    done = Result(req.reqid, True, instance="b", node="b-w1")
    resp = one_published(h.agent("b", ev.AgentRestartResponse(req.reqid, (done,))), NodesResponse)
    assert [(r.node, r.success, r.error) for r in resp.results] == [
        ("nope", False, "unknown cluster node"),
        ("b-w1", True, None),
    ]


def test_node_scope_without_names_asks_every_instance_and_flags_lost_ones() -> None:
    """Naming no node asks every instance of the deployment; one that is not connected
    gets 'instance not connected' at once instead of a timeout."""
    h = Harness()
    h.hello("a")
    h.hello("b")
    deploy_ready(h, cfg("a", "b"))
    h.lost("b")
    acts = fan_out(h, set())
    assert [name for name, _ in h.sent(acts, NodesRequest)] == ["a"]
    resp = one_published(h.tick(TIMEOUT), NodesResponse)
    assert [(r.instance, r.error) for r in resp.results] == [
        ("b", "instance not connected"),
        ("a", "request timed out"),
    ]


def test_node_scope_without_a_deployment_fails_at_once() -> None:
    """Without a deployment a node-scoped fan-out answers 'no active cluster deployment'."""
    h = Harness()
    h.hello("a")
    resp = one_published(fan_out(h, {"x"}), NodesResponse)
    assert [(r.success, r.error) for r in resp.results] == [(False, "no active cluster deployment")]


def test_check_of_an_invalid_config_answers_at_once_with_its_errors() -> None:
    """check validates as staging does: an invalid configuration is answered at once,
    one Result per error, and no agent is asked."""
    h = Harness()
    h.hello("a")
    bad = Configuration("bad", (Instance("a"),), (Node("m", "nowhere", ClusterRole.MANAGER),))
    acts = h.client(xev.CheckRequest("c1", bad))
    resp = one_published(acts, xev.CheckResponse)
    assert resp.results and all(not r.success and r.error for r in resp.results)
    assert h.sent(acts, xev.AgentCheckRequest) == [] and not h.state.requests


def test_check_asks_each_hosting_instance_and_waits_one_timeout_per_node() -> None:
    """check sends each instance hosting nodes the ready configuration (ports
    assigned) and waits one request timeout per node of the busiest instance."""
    h = Harness()
    h.hello("a")
    h.hello("b")
    acts = h.client(xev.CheckRequest("c1", cfg("a", "b", nodes_per=3)))
    asked = dict(h.sent(acts, xev.AgentCheckRequest))
    assert sorted(asked) == ["a", "b"] and not published(acts)
    manager = next(n for n in asked["a"].config.nodes if n.role is ClusterRole.MANAGER)
    assert manager.p is not None  # made ready as for staging
    assert h.state.next_deadline() == pytest.approx(h.now + 3 * TIMEOUT)
    assert h.tick(3 * TIMEOUT - 0.1) == []
    ok = Result(asked["a"].reqid, True, instance="a")
    assert h.agent("a", xev.AgentCheckResponse(asked["a"].reqid, (ok,))) == []
    resp = one_published(h.tick(0.1), xev.CheckResponse)
    assert [(r.instance, r.success, r.error) for r in resp.results] == [
        ("a", True, None),
        ("b", False, "request timed out"),
    ]
