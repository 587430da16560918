"""The agent as a pure state machine (behaviour.md §5).

Rules / theory of operation
---------------------------
:class:`AgentState` answers the controller's agent API events. It does not start
processes: it asks for that with actions, and learns how the nodes are doing from
:meth:`AgentState.nodes_changed` snapshots the supervisor produces.

Inputs: :meth:`receive` (an agent API event from the controller), :meth:`nodes_changed`,
:meth:`management_changed` (the other management processes, for get-nodes),
:meth:`restart_done`, :meth:`dispatch_done`, :meth:`extension_done`, :meth:`persisted`,
:meth:`tick` -- all take ``now``.
Outputs (:mod:`mgmt.agent.actions`, the inputs' types there too), drained with
:meth:`actions`: :class:`Send` (an event to the controller),
:class:`Launch` (make the supervisor run exactly this configuration's local nodes),
:class:`RestartNodes`, :class:`Dispatch` (ask nodes over the node channel),
:class:`RunExtension` (an extension request the service answers),
:class:`PersistConfig` and :class:`Log`.

Requests live in one :class:`~mgmt.core.requests.RequestTable`. zeek-mgmt's extension
requests (``ZeekMgmt::Agent::API::...``) are answered by their row in
:mod:`mgmt.agent.extensions`: here when the answer is pure, otherwise through a
:class:`RunExtension` action whose results come back with :meth:`extension_done` (or
``request timed out`` at the request timeout).

The service must apply a :class:`Launch` before it feeds the next snapshot, so that a
snapshot never describes the previous generation of nodes as the new one.

Deliberate differences from Zeek's agent:

* Readiness is the node's ``.status`` saying RUNNING (zeekctl style), not a Broker hello.
* Q2: a configuration with nodes elsewhere but none here is answered at once with a
  node-less success, instead of a ``request timed out`` after 5 s.
* Q9: no stray second ``deploy_response`` for zero-node configurations or standby.
* Q10: a failed node's outputs are those of its current run, never stale ones.
* Q11: node states are live (PENDING, RUNNING, STOPPED, CRASHED, FAILED).
* A deploy is answered as soon as every local node is RUNNING or FAILED (the supervisor
  gave up on it), not only at the timeout; FAILED nodes get ``success=F`` with outputs.
  With ``ordered_start`` the timeout is one request timeout per start group.
* Dispatches time out per node (``request timed out``) at the agent's request timeout.
* While the agent cannot write its state (``agent.toml`` after a :class:`PersistConfig`,
  or the supervisor's node table), as the service reports with :meth:`persisted`, every
  deploy response it sends carries one instance-level failure per problem (e.g. ``could
  not persist configuration: <reason>``), so that zeek-client shows it and exits 1. The
  nodes are deployed all the same: they run, but an agent restart would not find them.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TypeAlias, assert_never

from mgmt.agent.actions import Action as Action
from mgmt.agent.actions import Dispatch as Dispatch
from mgmt.agent.actions import Launch as Launch
from mgmt.agent.actions import ManagementProcess as ManagementProcess
from mgmt.agent.actions import NodeView as NodeView
from mgmt.agent.actions import PersistConfig as PersistConfig
from mgmt.agent.actions import RestartNodes as RestartNodes
from mgmt.agent.actions import RunExtension as RunExtension
from mgmt.agent.actions import Send as Send
from mgmt.agent.extensions import EXTENSIONS, ExtensionRequest
from mgmt.broker import events as ev
from mgmt.broker import extevents as xev
from mgmt.broker.data import BrokerSet, Port
from mgmt.broker.directions import AgentToController, ControllerToAgent
from mgmt.broker.records import (
    ClusterRole,
    Configuration,
    NodeOutputs,
    NodeStatus,
    Result,
    Role,
    State,
)
from mgmt.core import launchable, startorder
from mgmt.core.launchable import quote
from mgmt.core.logaction import Level as Level
from mgmt.core.logaction import Log as Log
from mgmt.core.peertext import peer_text
from mgmt.core.requests import API_VERSION, TIMED_OUT, Request, RequestTable, Respond
from mgmt.settings.model import AgentSettings

#: Errors in deploy responses while ``agent.toml`` / the node table cannot be written.
CONFIG_NOT_PERSISTED = "could not persist configuration"
NODES_NOT_PERSISTED = "could not persist node table"


class Kind(enum.Enum):
    """What an outstanding request is for."""

    DEPLOY = "deploy"
    RESTART = "restart"
    DISPATCH = "dispatch"
    EXTENSION = "extension"  # answered by the service (RunExtension)


#: One outstanding request from the controller.
AgentRequest: TypeAlias = Request[Kind, AgentToController]

#: The response event of each kind (EXTENSION: its row's).
RESPONSES: dict[Kind, Respond[AgentToController]] = {
    Kind.DEPLOY: ev.AgentDeployResponse,
    Kind.RESTART: ev.AgentRestartResponse,
    Kind.DISPATCH: ev.AgentNodeDispatchResponse,
}


class AgentState:
    """Zeek's agent logic without I/O. See the module docstring.

    Args:
        settings: the agent's settings; the state machine uses its name, listen port,
            whether it dials the controller (``controller``) and ``request_timeout``.
        config: the configuration restored from disk (after a restart), if any.
        agent_pid: our own pid, shown in get-nodes.
        endpoint_id: our id in ``notify_agent_hello``.
    """

    def __init__(
        self,
        settings: AgentSettings,
        *,
        config: Configuration | None = None,
        agent_pid: int | None = None,
        endpoint_id: str | None = None,
        new_id: Callable[[], str] = lambda: str(uuid.uuid4()),
    ) -> None:
        self.settings = settings
        self.name = settings.name
        #: Our port as get-nodes shows it (``None``: we do not listen).
        self.listen_port = Port(settings.listen_port) if settings.listen_port else None
        #: Whether we dial the controller (else it dials us).
        self.dials_controller = settings.controller is not None
        # Like Zeek's g_config: a fresh random id never matches an incoming config.
        self.config = config or Configuration()
        self.agent_pid = agent_pid
        #: Other management processes listed in get-nodes (see :meth:`management_changed`).
        self.management: tuple[ManagementProcess, ...] = ()
        self.endpoint_id = endpoint_id or str(uuid.uuid4())
        self.nodes: dict[str, NodeView] = {}
        self.requests: RequestTable[Kind, AgentToController] = RequestTable(
            settings.request_timeout
        )
        self.pending_deploy = ""
        #: What cannot be written at the moment (see :meth:`persisted`).
        self.persist_errors: tuple[str, ...] = ()
        self._new_id = new_id
        self._actions: list[Action] = []

    # -- plumbing -----------------------------------------------------------------------

    def actions(self) -> list[Action]:
        """Drain the actions produced since the last call, in order."""
        out, self._actions = self._actions, []
        return out

    def next_deadline(self) -> float | None:
        """When :meth:`tick` must next be called."""
        return self.requests.next_deadline()

    def _send(self, event: AgentToController) -> None:
        self._actions.append(Send(event))

    def _log(self, level: Level, message: str) -> None:
        self._actions.append(Log(level, message))

    def _create(self, reqid: str, kind: Kind, now: float) -> AgentRequest:
        return self.requests.create(reqid, kind, now, RESPONSES.get(kind))

    def _respond(self, req: AgentRequest) -> None:
        """Answer a request with its results so far, and forget it."""
        self.requests.finish(req.id)
        assert req.response is not None
        self._send(req.response(req.id, tuple(req.results)))

    def my_nodes(self) -> list[str]:
        """Names of this agent's nodes in the current configuration, sorted."""
        return sorted(n.name for n in self.config.nodes if n.instance == self.name)

    def hello(self) -> ev.NotifyAgentHello:
        """The ``notify_agent_hello`` to send whenever a controller connection opens."""
        return ev.NotifyAgentHello(self.name, self.endpoint_id, self.dials_controller, API_VERSION)

    # -- controller requests --------------------------------------------------------------

    def receive(self, event: ControllerToAgent, now: float) -> None:
        """Handle one agent API event from the controller."""
        match event:
            case ev.AgentWelcomeRequest(reqid=reqid):
                self._log(Level.INFO, f"rx agent_welcome_request {peer_text(reqid)}")
                self._send(ev.AgentWelcomeResponse(reqid, Result(reqid, True, instance=self.name)))
            case ev.AgentStandbyRequest(reqid=reqid):
                self._log(Level.INFO, f"rx agent_standby_request {peer_text(reqid)}")
                self._adopt(Configuration())
                self._send(ev.AgentStandbyResponse(reqid, Result(reqid, True, instance=self.name)))
            case ev.AgentDeployRequest(reqid=reqid, config=config, force=force):
                self._deploy(reqid, config, force, now)
            case ev.AgentGetNodesRequest(reqid=reqid):
                self._log(Level.DEBUG, f"rx get_nodes_request {peer_text(reqid)}")
                result = Result(reqid, True, instance=self.name, data=self.node_statuses())
                self._send(ev.AgentGetNodesResponse(reqid, result))
            case ev.AgentRestartRequest(reqid=reqid, nodes=nodes):
                self._restart(reqid, nodes, now)
            case ev.AgentNodeDispatchRequest(reqid=reqid, action=action, nodes=nodes):
                self._dispatch(reqid, action, nodes, now)
            case (
                xev.AgentGetVersionRequest()
                | xev.AgentGetNodeInfoRequest()
                | xev.AgentDiagRequest()
                | xev.AgentTopRequest()
                | xev.AgentNetstatsRequest()
                | xev.AgentGetDiskUsageRequest()
                | xev.AgentStopNodesRequest()
                | xev.AgentStartNodesRequest()
                | xev.AgentCheckRequest()
            ):
                self._extension(event, now)
            case xev.AgentClusterKeysRequest():
                pass  # node set-up input: the service gives it to NodeSetup, not to us
            case _:
                assert_never(event)

    def _adopt(self, config: Configuration) -> None:
        self.config = config
        # Views of the previous generation must not count for the new one.
        self.nodes = {}
        self._actions.append(PersistConfig(config))
        self._actions.append(Launch(config))

    def _deploy(self, reqid: str, config: Configuration, force: bool, now: float) -> None:
        self._log(Level.INFO, f"rx deploy_request {peer_text(reqid)} config {peer_text(config.id)}")
        problems = launchable.problems(config)
        if problems:
            self._refuse(reqid, config, problems)
            return
        if config.id == self.config.id and not force:
            self._log(Level.INFO, f"already running config {peer_text(config.id)}")
            self._send(ev.AgentDeployResponse(reqid, (Result(reqid, True, instance=self.name),)))
            return
        self._adopt(config)
        mine = self.my_nodes()
        if not mine:
            self._send(ev.AgentDeployResponse(reqid, (Result(reqid, True, instance=self.name),)))
            return
        req = self._create(reqid, Kind.DEPLOY, now)
        if self.settings.ordered_start:
            # Groups start one after the other: one request timeout for each.
            groups = startorder.group_count(n.role for n in self.config.nodes_of(self.name))
            req.deadline = now + self.requests.timeout * groups
        req.pending = set(mine)
        self.pending_deploy = reqid
        self._check_deploy()

    def _refuse(
        self, reqid: str, config: Configuration, problems: list[launchable.Problem]
    ) -> None:
        """Answer a deployment we cannot launch with its problems; change nothing.

        The controller checks this at stage time, but our port may be reached by others.
        A problem about a node is that node's result, its text also as the node's stderr
        (the only part of a node result zeek-client shows); the others are node-less
        errors, preceded by one saying that nothing changed.
        """
        self._log(
            Level.WARNING,
            f"refusing configuration {quote(config.id)}: {len(problems)} problems, "
            f"first: {problems[0].text}",
        )
        results = [
            Result(
                reqid,
                False,
                instance=self.name,
                error=f"configuration {quote(config.id)} refused, nothing changed: "
                "it has nodes this agent cannot launch",
            )
        ]
        for problem in problems:
            outputs = None if problem.node is None else NodeOutputs("", problem.text)
            results.append(
                Result(
                    reqid,
                    False,
                    instance=self.name,
                    error=problem.text,
                    node=problem.node,
                    data=outputs,
                )
            )
        self._send(ev.AgentDeployResponse(reqid, tuple(results)))

    def _node_result(self, reqid: str, name: str) -> Result:
        view = self.nodes.get(name)
        # STOPPED: held by zeek-mgmt stop, as asked (a deployed node is never STOPPED
        # otherwise: the supervisor shows it PENDING until it starts).
        if view is not None and view.state in (State.RUNNING, State.STOPPED):
            return Result(reqid, True, instance=self.name, node=name)
        outputs = view.outputs if view is not None else None
        return Result(reqid, False, instance=self.name, node=name, data=outputs)

    def _check_deploy(self) -> None:
        req = self.requests.get(self.pending_deploy)
        if req is None:
            return
        # A node is done when it runs, or when it FAILED: the supervisor gave up on it
        # (e.g. its directory cannot be created), so waiting for the timeout would only
        # delay the same answer; or when it stays STOPPED (held by zeek-mgmt stop).
        done = (State.RUNNING, State.FAILED, State.STOPPED)
        req.pending = {
            n for n in req.pending if n not in self.nodes or self.nodes[n].state not in done
        }
        if not req.pending:
            self._finish_deploy(req, timed_out=False)

    def _finish_deploy(self, req: AgentRequest, *, timed_out: bool) -> None:
        self.requests.finish(req.id)
        if self.pending_deploy == req.id:
            self.pending_deploy = ""
        results: list[Result] = []
        if timed_out:
            results.append(self._failed(req.id, TIMED_OUT))
        results += [self._node_result(req.id, name) for name in self.my_nodes()]
        results += [self._failed(req.id, error) for error in self.persist_errors]
        self._send(ev.AgentDeployResponse(req.id, tuple(results)))

    def _select(self, nodes: BrokerSet) -> tuple[str, ...]:
        mine = self.my_nodes()
        if nodes:
            return tuple(n for n in mine if n in nodes)
        return tuple(mine)

    def _restart(self, reqid: str, nodes: BrokerSet, now: float) -> None:
        self._log(Level.INFO, f"rx restart_request {peer_text(reqid)} {peer_text(sorted(nodes))}")
        final = self._select(nodes)
        if not final:
            self._send(ev.AgentRestartResponse(reqid, ()))
            return
        req = self._create(reqid, Kind.RESTART, now)
        req.pending = set(final)
        self._actions.append(RestartNodes(reqid, final))

    def restart_done(self, reqid: str, outcome: Mapping[str, bool], now: float) -> None:
        """The supervisor restarted (or failed to restart) the nodes of a request."""
        req = self.requests.get(reqid)
        if req is None:
            return
        for name in sorted(outcome):
            if outcome[name]:
                req.results.append(Result(reqid, True, instance=self.name, node=name))
            else:
                req.results.append(self._failed(reqid, f"could not restart node {name}", name))
        self._respond(req)

    def _failed(self, reqid: str, error: str, node: str | None = None) -> Result:
        """A failure of this agent (or of one of its nodes)."""
        return Result(reqid, False, instance=self.name, node=node, error=error)

    def _dispatch(self, reqid: str, action: tuple[str, ...], nodes: BrokerSet, now: float) -> None:
        self._log(
            Level.DEBUG,
            f"rx node_dispatch_request {peer_text(reqid)} {peer_text(action)} "
            f"{peer_text(sorted(nodes))}",
        )
        final = self._select(nodes)
        if not final:
            self._send(ev.AgentNodeDispatchResponse(reqid, ()))
            return
        req = self._create(reqid, Kind.DISPATCH, now)
        running = []
        for name in final:
            view = self.nodes.get(name)
            if view is None or view.state is not State.RUNNING:
                error = f"cluster node {name} not in running state"
                req.results.append(self._failed(reqid, error, name))
            else:
                running.append(name)
        if not running:
            self._respond(req)
            return
        req.pending = set(running)
        self._actions.append(Dispatch(reqid, action, tuple(running)))

    def dispatch_done(self, reqid: str, results: Iterable[Result], now: float) -> None:
        """Node answers for a dispatch arrived (any subset; duplicates are ignored)."""
        req = self.requests.get(reqid)
        if req is None:
            return
        for result in results:
            if result.node is None or result.node not in req.pending:
                continue
            req.pending.discard(result.node)
            req.results.append(result.with_changes(instance=self.name))
        if not req.pending:
            self._respond(req)

    def _extension(self, event: ExtensionRequest, now: float) -> None:
        """An extension request (mgmt.agent.extensions): answered here when its answer
        is pure, else by the service (RunExtension, then extension_done)."""
        self._log(Level.DEBUG, f"rx {type(event).__name__} {peer_text(event.reqid)}")
        row = EXTENSIONS[type(event)]
        if row.answer is not None:
            self._send(row.response(event.reqid, row.answer(self, event)))
            return
        req = self._create(event.reqid, Kind.EXTENSION, now)
        req.response = row.response
        if isinstance(event, xev.AgentCheckRequest):
            # One zeek -a per node (a few at once): one request timeout per node.
            nodes = len(event.config.nodes_of(self.name))
            req.deadline = now + self.requests.timeout * max(1, nodes)
        self._actions.append(RunExtension(event.reqid, event))

    def extension_done(self, reqid: str, results: Iterable[Result], now: float) -> None:
        """The service's answer to a :class:`RunExtension` (dropped once timed out).

        Results without an ``instance`` get this agent's name.
        """
        req = self.requests.get(reqid)
        if req is None or req.kind is not Kind.EXTENSION:
            return
        req.results += [r if r.instance else r.with_changes(instance=self.name) for r in results]
        self._respond(req)

    def persisted(self, errors: Sequence[str], now: float) -> None:
        """Which state files cannot be written now (empty: all written), each as the
        error deploy responses carry, e.g. ``could not persist configuration: <reason>``.
        """
        self.persist_errors = tuple(errors)

    def management_changed(self, processes: Iterable[ManagementProcess], now: float) -> None:
        """The other management processes on this host, as get-nodes lists them (the
        controller, when it runs beside us under ``zeek-mgmt run``)."""
        self.management = tuple(processes)

    # -- supervisor observations -----------------------------------------------------

    def nodes_changed(self, views: Iterable[NodeView], now: float) -> None:
        """The supervisor's current view of the local nodes."""
        mine = set(self.my_nodes())
        self.nodes = {v.name: v for v in views if v.name in mine}
        self._check_deploy()

    def node_statuses(self) -> tuple[NodeStatus, ...]:
        """The get-nodes rows: management processes, this agent, then its nodes.

        Zeek quirk kept for output parity (Q1): a co-located controller is reported with
        the *agent's* listening port.
        """
        rows: list[NodeStatus] = []
        for proc in self.management:
            port = self.listen_port if proc.role is Role.CONTROLLER else None
            rows.append(
                NodeStatus(proc.name, State.RUNNING, proc.role, ClusterRole.NONE, proc.pid, port)
            )
        agent_port = None if self.dials_controller else self.listen_port
        rows.append(
            NodeStatus(
                self.name, State.RUNNING, Role.AGENT, ClusterRole.NONE, self.agent_pid, agent_port
            )
        )
        for node in sorted(self.config.nodes, key=lambda n: n.name):
            if node.instance != self.name:
                continue
            view = self.nodes.get(node.name)
            rows.append(
                NodeStatus(
                    node.name,
                    view.state if view is not None else State.PENDING,
                    Role.NONE,
                    node.role,
                    view.pid if view is not None else None,
                    node.p,
                    node.metrics_port,
                )
            )
        return tuple(rows)

    # -- time --------------------------------------------------------------------------

    def tick(self, now: float) -> None:
        """Expire requests whose deadline passed."""
        for req in self.requests.pop_expired(now):
            self._log(Level.INFO, f"request {peer_text(req.id)} timed out")
            match req.kind:
                case Kind.DEPLOY:
                    self._finish_deploy(req, timed_out=True)
                case Kind.RESTART | Kind.EXTENSION:
                    req.results.append(self._failed(req.id, TIMED_OUT))
                    self._respond(req)
                case Kind.DISPATCH:
                    for name in sorted(req.pending):
                        req.results.append(self._failed(req.id, TIMED_OUT, name))
                    self._respond(req)
                case _:
                    assert_never(req.kind)
