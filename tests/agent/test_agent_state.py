"""Tests of the agent's pure state machine (mgmt.agent.state), driven with a fake clock."""

from __future__ import annotations

import dataclasses
import ipaddress
from pathlib import Path

import pytest

from mgmt.agent import state as ast
from mgmt.agent.extensions import EXTENSIONS, AgentExtension
from mgmt.agent.state import (
    AgentState,
    Dispatch,
    Launch,
    Log,
    ManagementProcess,
    NodeView,
    PersistConfig,
    RestartNodes,
    Send,
)
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
    Role,
    State,
)
from mgmt.core.requests import TIMED_OUT
from tests.support.fake_clock import FakeClock
from tests.support.settings import agent_settings

AGENT = "agent-test"
#: The agent's settings: the defaults (port 2151, dialing 127.0.0.1:2150), named AGENT.
SETTINGS = agent_settings(Path("/nonexistent"), name=AGENT, request_timeout=5.0)
#: An agent the controller dials.
LISTENING = dataclasses.replace(SETTINGS, controller=None)
R = State.RUNNING


def node(name: str, role: ClusterRole = ClusterRole.WORKER, instance: str = AGENT, **kw) -> Node:
    return Node(name, instance, role, **kw)


def quickstart(cid: str = "cfg-1", instance: str = AGENT) -> Configuration:
    return Configuration(
        cid,
        (Instance(instance, ipaddress.IPv4Address("127.0.0.1")),),
        (
            node("manager", ClusterRole.MANAGER, instance, p=Port(2200)),
            node("logger", ClusterRole.LOGGER, instance, p=Port(2201)),
            node("worker-01", instance=instance, interface="lo"),
            node("worker-02", instance=instance, interface="lo"),
        ),
    )


NAMES = ["logger", "manager", "worker-01", "worker-02"]


def sends(actions: list[ast.Action]) -> list[object]:
    return [a.event for a in actions if isinstance(a, Send)]


def only_send(actions: list[ast.Action]) -> object:
    events = sends(actions)
    assert len(events) == 1, actions
    return events[0]


def views(state: State = R, **overrides: State) -> list[NodeView]:
    return [
        NodeView(n, overrides.get(n.replace("-", "_"), state), pid=100 + i)
        for i, n in enumerate(NAMES)
    ]


def one_down(name: str, state: State, stderr: str) -> tuple[list[NodeView], NodeOutputs]:
    """A snapshot of RUNNING nodes but ``name``, which is ``state`` without a process and
    left ``stderr``; and those outputs."""
    outputs = NodeOutputs("", stderr)
    return [
        v if v.name != name else NodeView(name, state, None, outputs) for v in views(R)
    ], outputs


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def agent() -> AgentState:
    return AgentState(SETTINGS, agent_pid=42, endpoint_id="eid")


def deploy(agent: AgentState, clock: FakeClock, config: Configuration, reqid: str = "d1") -> list:
    agent.receive(ev.AgentDeployRequest(reqid, config, False), clock.now)
    return agent.actions()


# -- welcome, hello, standby ---------------------------------------------------------------


def test_welcome_is_answered_with_success(agent: AgentState, clock: FakeClock) -> None:
    """agent_welcome_request gets a success Result naming the instance (§5.12)."""
    agent.receive(ev.AgentWelcomeRequest("w1"), clock.now)
    assert only_send(agent.actions()) == ev.AgentWelcomeResponse(
        "w1", Result("w1", True, instance=AGENT)
    )


def test_hello_names_agent_and_connecting_flag() -> None:
    """notify_agent_hello carries name, endpoint id, whether we dial, API version 1."""
    dialing = AgentState(SETTINGS, endpoint_id="e1")
    listening = AgentState(LISTENING, endpoint_id="e2")
    assert dialing.hello() == ev.NotifyAgentHello(AGENT, "e1", True, 1)
    assert listening.hello() == ev.NotifyAgentHello(AGENT, "e2", False, 1)


def test_standby_launches_empty_config_and_answers(agent: AgentState, clock: FakeClock) -> None:
    """Standby stops every node (empty Launch), persists it, and answers at once."""
    deploy(agent, clock, quickstart())
    agent.receive(ev.AgentStandbyRequest(""), clock.now)
    actions = agent.actions()
    launches = [a for a in actions if isinstance(a, Launch)]
    assert len(launches) == 1 and launches[0].config.nodes == ()
    assert any(isinstance(a, PersistConfig) and a.config.nodes == () for a in actions)
    assert only_send(actions) == ev.AgentStandbyResponse("", Result("", True, instance=AGENT))
    assert agent.my_nodes() == []


def test_event_of_another_direction_is_a_bug(agent: AgentState, clock: FakeClock) -> None:
    """receive() takes controller -> agent events only (the port's accept filter refuses
    the others): any other event is a programming error, and nothing is sent."""
    with pytest.raises(AssertionError):
        agent.receive(ev.NotifyAgentHello("x", "y", True, 1), clock.now)  # type: ignore[arg-type]
    assert sends(agent.actions()) == []


# -- deploy ---------------------------------------------------------------------------------


def test_deploy_launches_persists_then_waits_for_running(
    agent: AgentState, clock: FakeClock
) -> None:
    """A deploy persists and launches the config, and answers once all nodes run (§5.5)."""
    config = quickstart()
    actions = deploy(agent, clock, config)
    kinds = [type(a) for a in actions if not isinstance(a, Log)]
    assert kinds == [PersistConfig, Launch]  # persisted before anything is launched
    assert sends(actions) == []
    # One request timeout per start group (logger, manager, workers: ordered start).
    assert agent.next_deadline() == clock.now + 5.0 * 3

    agent.nodes_changed(views(State.PENDING), clock.advance(0.1))
    assert sends(agent.actions()) == []
    agent.nodes_changed(views(R, worker_02=State.PENDING), clock.advance(0.1))
    assert sends(agent.actions()) == []
    agent.nodes_changed(views(R), clock.advance(0.1))
    response = only_send(agent.actions())
    assert response == ev.AgentDeployResponse(
        "d1", tuple(Result("d1", True, instance=AGENT, node=n) for n in NAMES)
    )
    assert agent.next_deadline() is None
    assert agent.pending_deploy == ""


def test_deploy_response_reports_state_that_cannot_be_persisted(
    agent: AgentState, clock: FakeClock
) -> None:
    """While the service reports persistence errors, a deploy's response carries each as
    an instance-level failure after the node results; once written again, none."""
    problems = ("could not persist configuration: agent.toml: cannot write: Is a directory",)
    deploy(agent, clock, quickstart())
    agent.persisted(problems, clock.now)
    agent.nodes_changed(views(R), clock.advance(0.1))
    response = only_send(agent.actions())
    assert response == ev.AgentDeployResponse(
        "d1",
        tuple(Result("d1", True, instance=AGENT, node=n) for n in NAMES)
        + (Result("d1", False, instance=AGENT, error=problems[0]),),
    )
    agent.persisted((), clock.now)
    deploy(agent, clock, quickstart("cfg-2"), "d2")
    agent.nodes_changed(views(R), clock.advance(0.1))
    assert all(r.success for r in only_send(agent.actions()).results)


def test_deploy_of_running_config_id_is_noop(agent: AgentState, clock: FakeClock) -> None:
    """Redeploying the running config id answers node-less success, launches nothing (Q3)."""
    config = quickstart()
    deploy(agent, clock, config)
    agent.nodes_changed(views(R), clock.now)
    agent.actions()
    actions = deploy(agent, clock, config, "d2")
    assert not any(isinstance(a, Launch | PersistConfig) for a in actions)
    assert only_send(actions) == ev.AgentDeployResponse("d2", (Result("d2", True, instance=AGENT),))


def test_forced_deploy_of_same_id_launches_again(agent: AgentState, clock: FakeClock) -> None:
    """force=T redeploys even the running configuration id."""
    config = quickstart()
    deploy(agent, clock, config)
    agent.receive(ev.AgentDeployRequest("d2", config, True), clock.now)
    assert any(isinstance(a, Launch) for a in agent.actions())


def test_restored_config_is_recognised_after_restart(clock: FakeClock) -> None:
    """An agent restored with its saved config treats a redeploy of it as already running."""
    config = quickstart()
    agent = AgentState(SETTINGS, config=config)
    actions = deploy(agent, clock, config)
    assert not any(isinstance(a, Launch) for a in actions)
    assert only_send(actions) == ev.AgentDeployResponse("d1", (Result("d1", True, instance=AGENT),))


def test_deploy_without_local_nodes_answers_at_once(agent: AgentState, clock: FakeClock) -> None:
    """Nodes only on other instances: immediate node-less success, no 5 s timeout (Q2)."""
    actions = deploy(agent, clock, quickstart(instance="agent-other"))
    assert any(isinstance(a, Launch) for a in actions)
    assert only_send(actions) == ev.AgentDeployResponse("d1", (Result("d1", True, instance=AGENT),))
    assert agent.requests == {}


def test_empty_config_answers_once_without_stray_timeout(
    agent: AgentState, clock: FakeClock
) -> None:
    """A zero-node config is answered once; no second 'timed out' response follows (Q9)."""
    actions = deploy(agent, clock, Configuration("empty"))
    assert len(sends(actions)) == 1
    agent.tick(clock.advance(60))
    assert sends(agent.actions()) == []


def test_deploy_timeout_reports_failed_nodes_with_outputs(
    agent: AgentState, clock: FakeClock
) -> None:
    """At the deadline (one request timeout per start group): a 'request timed out'
    Result, then per-node results with outputs."""
    deploy(agent, clock, quickstart())
    snapshot, outputs = one_down(
        "worker-02", State.CRASHED, "fatal error: problem with interface lo"
    )
    agent.nodes_changed(snapshot, clock.advance(1))
    agent.tick(clock.advance(5.0 * 3 - 1.1))  # 3 groups: 14.9 s, not yet
    assert sends(agent.actions()) == []
    agent.tick(clock.advance(0.1))
    response = only_send(agent.actions())
    assert isinstance(response, ev.AgentDeployResponse)
    assert response.results[0] == Result("d1", False, instance=AGENT, error=TIMED_OUT)
    by_node = {r.node: r for r in response.results[1:]}
    assert sorted(by_node) == NAMES
    assert by_node["worker-02"] == Result(
        "d1", False, instance=AGENT, node="worker-02", data=outputs
    )
    assert all(by_node[n].success for n in NAMES[:3])
    assert agent.requests == {} and agent.pending_deploy == ""


def test_failed_node_completes_deploy_before_timeout(agent: AgentState, clock: FakeClock) -> None:
    """A FAILED node (the supervisor gave up) ends the deploy at once with its outputs."""
    deploy(agent, clock, quickstart())
    stderr = "cannot start node worker-01: cannot create directory"
    snapshot, outputs = one_down("worker-01", State.FAILED, stderr)
    agent.nodes_changed(snapshot, clock.advance(0.5))
    response = only_send(agent.actions())
    assert isinstance(response, ev.AgentDeployResponse)
    assert [r.error for r in response.results] == [None] * 4  # no timeout entry
    failed = [r for r in response.results if not r.success]
    assert failed == [Result("d1", False, instance=AGENT, node="worker-01", data=outputs)]


def test_crashed_node_keeps_deploy_pending(agent: AgentState, clock: FakeClock) -> None:
    """A CRASHED node may still come up after revival: the deploy keeps waiting."""
    deploy(agent, clock, quickstart())
    agent.nodes_changed(views(R, manager=State.CRASHED), clock.advance(0.5))
    assert sends(agent.actions()) == []
    agent.nodes_changed(views(R), clock.advance(1.0))
    response = only_send(agent.actions())
    assert isinstance(response, ev.AgentDeployResponse)
    assert all(r.success for r in response.results)


def test_new_deploy_ignores_views_of_previous_generation(
    agent: AgentState, clock: FakeClock
) -> None:
    """After a new deploy, RUNNING views from before do not count until re-reported."""
    deploy(agent, clock, quickstart("a"))
    agent.nodes_changed(views(R), clock.now)
    agent.actions()
    deploy(agent, clock, quickstart("b"), "d2")
    assert agent.nodes == {}
    agent.tick(clock.advance(1))
    assert sends(agent.actions()) == []


def test_views_of_unknown_nodes_are_ignored(agent: AgentState, clock: FakeClock) -> None:
    """Snapshots only count for nodes of this agent in the current configuration."""
    deploy(agent, clock, quickstart())
    agent.nodes_changed([*views(R), NodeView("stranger", R, 7)], clock.now)
    assert "stranger" not in agent.nodes
    assert isinstance(only_send(agent.actions()), ev.AgentDeployResponse)


def test_deploy_that_cannot_be_launched_is_refused_and_changes_nothing(
    agent: AgentState, clock: FakeClock
) -> None:
    """A deployment with nodes no process can be made of is answered at once, per node,
    with the reason (also as the node's stderr); the running configuration stays."""
    deploy(agent, clock, quickstart("good"))
    agent.nodes_changed(views(), clock.now)
    agent.actions()
    bad = quickstart("bad")
    bad = Configuration(
        "bad",
        bad.instances,
        (
            *bad.nodes[:3],
            node("worker-02", env={"A=B": "x"}),
            node(".bin"),
        ),
    )
    actions = deploy(agent, clock, bad, "d2")
    assert not [a for a in actions if isinstance(a, (Launch, PersistConfig))]
    env_err = "node 'worker-02' has an invalid env variable name 'A=B': it contains '='"
    name_err = "node name '.bin' is invalid: it starts with '.'"
    assert only_send(actions) == ev.AgentDeployResponse(
        "d2",
        (
            Result(
                "d2",
                False,
                instance=AGENT,
                error="configuration 'bad' refused, nothing changed: "
                "it has nodes this agent cannot launch",
            ),
            Result("d2", False, AGENT, NodeOutputs("", env_err), error=env_err, node="worker-02"),
            Result("d2", False, AGENT, NodeOutputs("", name_err), error=name_err, node=".bin"),
        ),
    )
    assert agent.config.id == "good"
    assert [row.state for row in agent.node_statuses()[1:]] == [R, R, R, R]
    assert agent.requests == {}


# -- get-nodes ------------------------------------------------------------------------------


def test_get_nodes_lists_management_processes_and_live_states(clock: FakeClock) -> None:
    """get-nodes: controller (with the agent's port, Q1), agent, then nodes with pids/ports."""
    agent = AgentState(SETTINGS, agent_pid=42)
    agent.management_changed([ManagementProcess("controller-x", Role.CONTROLLER, 41)], clock.now)
    config = quickstart()
    config = Configuration(
        config.id,
        config.instances,
        (
            *config.nodes[:2],
            config.nodes[2].with_changes(metrics_port=Port(9002)),
            node("remote", instance="agent-other"),
        ),
    )
    deploy(agent, clock, config)
    agent.nodes_changed(
        [NodeView("manager", R, 7), NodeView("worker-01", State.CRASHED, None)], clock.now
    )
    agent.actions()
    agent.receive(ev.AgentGetNodesRequest("g1"), clock.now)
    response = only_send(agent.actions())
    assert isinstance(response, ev.AgentGetNodesResponse)
    assert response.result.success and response.result.instance == AGENT
    rows = {r.node: r for r in response.result.data}
    assert list(rows) == ["controller-x", AGENT, "logger", "manager", "worker-01"]
    assert rows["controller-x"].mgmt_role is Role.CONTROLLER
    assert rows["controller-x"].p == Port(2151) and rows["controller-x"].pid == 41
    assert rows[AGENT].mgmt_role is Role.AGENT and rows[AGENT].pid == 42
    assert rows[AGENT].p is None  # we dial the controller
    assert (rows["manager"].state, rows["manager"].pid) == (R, 7)
    assert rows["manager"].p == Port(2200)
    assert rows["manager"].cluster_role is ClusterRole.MANAGER
    assert (rows["logger"].state, rows["logger"].pid) == (State.PENDING, None)
    assert rows["worker-01"].state is State.CRASHED
    assert rows["worker-01"].metrics_port == Port(9002)


def test_listening_agent_shows_its_port(clock: FakeClock) -> None:
    """An agent the controller dials reports its own listening port in get-nodes."""
    agent = AgentState(LISTENING)
    (row,) = agent.node_statuses()
    assert row.p == Port(2151) and row.state is R


# -- restart --------------------------------------------------------------------------------


def test_restart_all_asks_supervisor_and_reports(agent: AgentState, clock: FakeClock) -> None:
    """restart with no names restarts every local node; outcomes become Results (§5.11)."""
    deploy(agent, clock, quickstart())
    agent.actions()
    agent.receive(ev.AgentRestartRequest("r1", BrokerSet()), clock.now)
    (action,) = [a for a in agent.actions() if isinstance(a, RestartNodes)]
    assert action == RestartNodes("r1", tuple(NAMES))
    agent.restart_done("r1", {"manager": True, "logger": False}, clock.advance(1))
    response = only_send(agent.actions())
    assert response == ev.AgentRestartResponse(
        "r1",
        (
            Result(
                "r1", False, instance=AGENT, node="logger", error="could not restart node logger"
            ),
            Result("r1", True, instance=AGENT, node="manager"),
        ),
    )
    agent.restart_done("r1", {"manager": True}, clock.now)  # late duplicate: ignored
    assert sends(agent.actions()) == []


def test_restart_of_foreign_nodes_answers_empty(agent: AgentState, clock: FakeClock) -> None:
    """Naming only nodes this agent does not run gives an empty restart_response."""
    deploy(agent, clock, quickstart())
    agent.actions()
    agent.receive(ev.AgentRestartRequest("r1", BrokerSet(["nope"])), clock.now)
    actions = agent.actions()
    assert not any(isinstance(a, RestartNodes) for a in actions)
    assert only_send(actions) == ev.AgentRestartResponse("r1", ())


def test_restart_selects_named_nodes_only(agent: AgentState, clock: FakeClock) -> None:
    """restart manager only restarts the manager."""
    deploy(agent, clock, quickstart())
    agent.actions()
    agent.receive(ev.AgentRestartRequest("r1", BrokerSet(["manager", "nope"])), clock.now)
    assert RestartNodes("r1", ("manager",)) in agent.actions()


def test_restart_timeout_appends_timeout_result(agent: AgentState, clock: FakeClock) -> None:
    """A restart not done by the deadline answers with a 'request timed out' Result."""
    deploy(agent, clock, quickstart())
    agent.nodes_changed(views(R), clock.now)
    agent.actions()
    agent.receive(ev.AgentRestartRequest("r1", BrokerSet(["manager"])), clock.now)
    agent.actions()
    agent.tick(clock.advance(5))
    assert only_send(agent.actions()) == ev.AgentRestartResponse(
        "r1", (Result("r1", False, instance=AGENT, error=TIMED_OUT),)
    )


# -- dispatch -------------------------------------------------------------------------------


def test_dispatch_to_non_running_nodes_fails_per_node(agent: AgentState, clock: FakeClock) -> None:
    """Nodes not RUNNING get 'cluster node <n> not in running state' at once (§5.10)."""
    deploy(agent, clock, quickstart())
    agent.nodes_changed(views(State.PENDING), clock.now)
    agent.actions()
    agent.receive(
        ev.AgentNodeDispatchRequest("q1", ("get_id_value", "x"), BrokerSet(["manager"])),
        clock.now,
    )
    assert only_send(agent.actions()) == ev.AgentNodeDispatchResponse(
        "q1",
        (
            Result(
                "q1",
                False,
                instance=AGENT,
                node="manager",
                error="cluster node manager not in running state",
            ),
        ),
    )


def test_dispatch_collects_node_answers(agent: AgentState, clock: FakeClock) -> None:
    """Running nodes are asked; answers are stamped with the instance; duplicates ignored."""
    deploy(agent, clock, quickstart())
    agent.nodes_changed(views(R, logger=State.CRASHED), clock.now)
    agent.actions()
    agent.receive(ev.AgentNodeDispatchRequest("q1", ("get_id_value", "x"), BrokerSet()), clock.now)
    (dispatch,) = [a for a in agent.actions() if isinstance(a, Dispatch)]
    assert dispatch == Dispatch("q1", ("get_id_value", "x"), ("manager", "worker-01", "worker-02"))
    agent.dispatch_done("q1", [Result("q1", True, node="manager", data="1")], clock.now)
    agent.dispatch_done("q1", [Result("q1", True, node="manager", data="dup")], clock.now)
    assert sends(agent.actions()) == []
    agent.dispatch_done(
        "q1",
        [Result("q1", True, node="worker-01", data="2"), Result("q1", True, node="worker-02")],
        clock.now,
    )
    response = only_send(agent.actions())
    assert isinstance(response, ev.AgentNodeDispatchResponse)
    assert [(r.node, r.success, r.instance) for r in response.results] == [
        ("logger", False, AGENT),
        ("manager", True, AGENT),
        ("worker-01", True, AGENT),
        ("worker-02", True, AGENT),
    ]
    assert response.results[1].data == "1"


def test_dispatch_times_out_per_silent_node(agent: AgentState, clock: FakeClock) -> None:
    """Nodes that do not answer by the deadline get 'request timed out' each."""
    deploy(agent, clock, quickstart())
    agent.nodes_changed(views(R), clock.now)
    agent.actions()
    agent.receive(
        ev.AgentNodeDispatchRequest("q1", ("get_id_value", "x"), BrokerSet(["manager", "logger"])),
        clock.now,
    )
    agent.actions()
    agent.dispatch_done("q1", [Result("q1", True, node="logger")], clock.advance(1))
    agent.tick(clock.advance(4))
    response = only_send(agent.actions())
    assert isinstance(response, ev.AgentNodeDispatchResponse)
    assert response.results[-1] == Result(
        "q1", False, instance=AGENT, node="manager", error=TIMED_OUT
    )


def test_dispatch_to_no_node_of_ours_answers_empty(agent: AgentState, clock: FakeClock) -> None:
    """A dispatch naming no node of this agent answers an empty vector."""
    agent.receive(ev.AgentNodeDispatchRequest("q1", ("get_id_value", "x"), BrokerSet()), clock.now)
    assert only_send(agent.actions()) == ev.AgentNodeDispatchResponse("q1", ())


# -- timers ---------------------------------------------------------------------------------


def test_next_deadline_is_earliest_request(agent: AgentState, clock: FakeClock) -> None:
    """next_deadline is the earliest outstanding request's deadline, None when idle."""
    assert agent.next_deadline() is None
    deploy(agent, clock, quickstart())
    assert agent.next_deadline() == clock.now + 5.0 * 3  # one timeout per start group
    clock.advance(2)
    agent.receive(ev.AgentRestartRequest("r1", BrokerSet()), clock.now)
    assert agent.next_deadline() == clock.now + 5.0  # the restart's comes first
    agent.tick(clock.now)  # before any deadline: nothing happens
    assert sends(agent.actions()) == []


# -- extension requests (mgmt.agent.extensions) ---------------------------------------------


def test_check_request_waits_one_request_timeout_per_local_node(
    agent: AgentState, clock: FakeClock
) -> None:
    """A check runs zeek -a for each local node: its deadline grows with their number."""
    config = quickstart()
    agent.receive(xev.AgentCheckRequest("c1", config), clock.now)
    (action,) = [a for a in agent.actions() if not isinstance(a, Log)]
    assert action == ast.RunExtension("c1", xev.AgentCheckRequest("c1", config))
    assert agent.next_deadline() == clock.now + 5.0 * len(config.nodes_of(AGENT))


def test_extension_request_is_answered_through_the_service(
    agent: AgentState, clock: FakeClock
) -> None:
    """get_version asks the service (RunExtension) and answers with its results, naming
    this agent where a Result does not."""
    agent.receive(xev.AgentGetVersionRequest("x1"), clock.now)
    (action,) = [a for a in agent.actions() if not isinstance(a, Log)]
    assert action == ast.RunExtension("x1", xev.AgentGetVersionRequest("x1"))
    agent.extension_done("x1", [xev.payload_result("x1", {"role": "agent"})], clock.now)
    response = only_send(agent.actions())
    assert isinstance(response, xev.AgentGetVersionResponse)
    (result,) = response.results
    assert result.instance == AGENT and xev.payload_of(result) == {"v": 1, "role": "agent"}
    assert agent.requests == {}


def test_extension_request_times_out(agent: AgentState, clock: FakeClock) -> None:
    """An extension the service does not answer in time gets 'request timed out'; a late
    answer is dropped."""
    agent.receive(xev.AgentGetVersionRequest("x1"), clock.now)
    agent.actions()
    agent.tick(clock.advance(4.9))
    assert sends(agent.actions()) == []
    agent.tick(clock.advance(0.1))
    assert only_send(agent.actions()) == xev.AgentGetVersionResponse(
        "x1", (Result("x1", False, instance=AGENT, error=TIMED_OUT),)
    )
    agent.extension_done("x1", [Result("x1", True)], clock.now)
    assert sends(agent.actions()) == []


def test_pure_extension_rows_answer_at_once(
    agent: AgentState, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A row with a pure answer is answered by the state machine itself, at once."""

    def answer(state: AgentState, event: xev.AgentGetVersionRequest) -> tuple[Result, ...]:
        return (Result(event.reqid, True, instance=state.name, data="pure"),)

    row = AgentExtension(xev.AgentGetVersionResponse, answer)
    monkeypatch.setitem(EXTENSIONS, xev.AgentGetVersionRequest, row)
    agent.receive(xev.AgentGetVersionRequest("x1"), clock.now)
    assert only_send(agent.actions()) == xev.AgentGetVersionResponse(
        "x1", (Result("x1", True, instance=AGENT, data="pure"),)
    )
    assert agent.requests == {}
