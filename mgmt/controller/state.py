"""The controller as a pure state machine (behaviour.md §2, §4).

Rules / theory of operation
---------------------------
:class:`ControllerState` holds what Zeek's ``controller/main.zeek`` keeps in globals, each
in a pure part of its own:

* ``agents`` (:class:`~mgmt.controller.instances.Instances`): ``instances``, ``known``
  and ``ready`` (``g_instances``, ``g_instances_known``, ``g_instances_ready``): the
  instances the deployment needs, the agents connected, the needed ones welcomed;
* ``configs`` (:class:`~mgmt.controller.configs.Configs`, ``g_configs``): the persisted
  staged / ready / deployed configurations, and the rule that nothing is acknowledged
  that was not persisted;
* ``deploys`` (:class:`~mgmt.controller.deploy.Deployments`): the deployment in
  progress (``g_config_reqid_pending``);
* ``requests`` (:class:`~mgmt.controller.requests.ControllerRequests`): every
  outstanding request with its deadline (``Management::Request``).

Inputs are methods named ``receive_*`` / ``agent_*`` / ``tick`` / ``persisted`` that take
``now`` (seconds, monotonic) from the caller; the machine dispatches them to its parts.
Outputs are drained with :meth:`actions`: the :mod:`mgmt.controller.actions` (publish to
clients, send to an agent, dial, persist, log), which every part queues in one
:class:`~mgmt.controller.actions.Outbox`. The inputs are typed by direction
(:mod:`mgmt.broker.directions`) and matched exhaustively.

zeek-mgmt's extension requests that ask the agents and gather their results are one
request kind, ``FANOUT``, whose rows are in :mod:`mgmt.controller.fanout`.

Persistence (:mod:`mgmt.controller.configs`): a change of the persisted configurations
emits :class:`Persist` and waits; the service reports the outcome with
:meth:`ControllerState.persisted` before it hands the machine any other input.

Like Zeek, internal events (``notify_agents_ready``) are queued and run after the current
input has been handled, so every input is processed to completion, in order.

Deliberate differences from Zeek (each fixes a quirk listed in behaviour.md §9):

* Q5 -- an instance whose connectivity changed is dropped *and re-added* in the same deploy.
* Q6 -- an internal redeploy computes instance changes from the config it deploys.
* Q7 -- ``get_id_value`` naming nodes before anything was deployed answers at once
  (``unknown cluster node``) instead of timing out.
* Requests to an agent go to that agent's connection only (Zeek's topic-prefix routing
  lets ``agent-a`` receive ``agent-ab``'s requests, Q13).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import fields
from typing import Any, assert_never

from mgmt.broker import events as ev
from mgmt.broker import extevents as xev
from mgmt.broker.data import BrokerSet
from mgmt.broker.directions import AgentToController, ClientToController, ControllerToClient
from mgmt.broker.records import Configuration, Instance, Result
from mgmt.controller import fanout, validation
from mgmt.controller.actions import Action as Action
from mgmt.controller.actions import Dial as Dial
from mgmt.controller.actions import Outbox
from mgmt.controller.actions import Persist as Persist
from mgmt.controller.actions import Publish as Publish
from mgmt.controller.actions import SendToAgent as SendToAgent
from mgmt.controller.actions import StopDialing as StopDialing
from mgmt.controller.configs import Configs
from mgmt.controller.deploy import Deployments
from mgmt.controller.fanout import FANOUTS, FanOut, FanOutRequest
from mgmt.controller.instances import Instances
from mgmt.controller.requests import (
    NO_DEPLOYMENT,
    ControllerRequest,
    ControllerRequests,
    Kind,
    known_nodes,
)
from mgmt.core.logaction import Level as Level
from mgmt.core.logaction import Log as Log
from mgmt.core.peertext import peer_text
from mgmt.core.requests import TIMED_OUT
from mgmt.core.version import ProcessFacts
from mgmt.exceptions import InvalidState
from mgmt.settings.model import ControllerSettings


def _new_id() -> str:
    return str(uuid.uuid4())


class ControllerState:
    """Zeek's controller logic without I/O. See the module docstring for the rules.

    Args:
        settings: the controller's settings; the state machine uses ``request_timeout``,
            ``listen_port`` and the auto-assignment switches (``controller/config.zeek``).
        staged, ready, deployed: configurations restored from disk.
        facts: this controller's process, for extension requests (``get_version``).
        probe: this controller's process figures now, for ``top`` (a dict of
            :class:`~mgmt.daemon.procstats.ProcessSampler`'s entry plus ``now``; the
            service passes a /proc reader); ``None``: the controller is not listed.
        new_id: request id generator (injectable for deterministic tests).
    """

    def __init__(
        self,
        settings: ControllerSettings,
        *,
        staged: Configuration | None = None,
        ready: Configuration | None = None,
        deployed: Configuration | None = None,
        facts: ProcessFacts | None = None,
        probe: Callable[[], dict[str, Any]] | None = None,
        new_id: Callable[[], str] = _new_id,
    ) -> None:
        self.settings, self.facts, self.probe = settings, facts, probe
        self._out = Outbox()
        self._actions = self._out.queued
        self._agents_ready_queued: list[frozenset[str]] = []
        self.agents = Instances(self._out.emit, self._welcome, self._agents_ready_queued.append)
        self.configs = Configs(self._out, (staged, ready, deployed))
        self.requests = ControllerRequests(settings.request_timeout, new_id)
        self.deploys = Deployments(self._out, self.requests, self.configs, self.agents)

    # -- outputs and views -----------------------------------------------------------

    def actions(self) -> list[Action]:
        """Drain the actions produced since the last call, in order."""
        return self._out.drain()

    def next_deadline(self) -> float | None:
        """When :meth:`tick` must next be called (the earliest request deadline)."""
        return self.requests.next_deadline()

    @property
    def instances(self) -> dict[str, Instance]:
        """The instances the current deployment needs (``g_instances``)."""
        return self.agents.instances

    @property
    def known(self) -> dict[str, Instance]:
        """The agents that said hello and are connected (``g_instances_known``)."""
        return self.agents.known

    @property
    def ready(self) -> set[str]:
        """The needed instances that accepted our welcome (``g_instances_ready``)."""
        return self.agents.ready

    @property
    def staged(self) -> Configuration | None:
        """The STAGED configuration (as the client sent it)."""
        return self.configs.staged

    @property
    def ready_config(self) -> Configuration | None:
        """The READY configuration (staged, with ports and hosts filled in)."""
        return self.configs.ready

    @property
    def deployed(self) -> Configuration | None:
        """The DEPLOYED configuration (the last deployment that was recorded)."""
        return self.configs.deployed

    @property
    def pending_deploy(self) -> str:
        """The id of the deployment in progress, "" if none."""
        return self.deploys.pending

    def _log(self, level: Level, message: str) -> None:
        self._out.log(level, message)

    def _publish(self, event: ControllerToClient) -> None:
        self._out.publish(event)

    def _create(self, reqid: str, kind: Kind, now: float) -> ControllerRequest:
        return self.requests.create(reqid, kind, now)

    def _finish(self, reqid: str) -> ControllerRequest | None:
        return self.requests.finish(reqid)

    def _child(self, parent: ControllerRequest, instance: str, now: float) -> str:
        return self.requests.child(parent, instance, now)

    def _respond(self, req: ControllerRequest) -> None:
        """Answer a request with its results so far, and forget it."""
        self._publish(self.requests.answer(req))

    def _run_internal_events(self, now: float) -> None:
        while self._agents_ready_queued:
            instances = self._agents_ready_queued.pop(0)
            self._log(Level.INFO, f"rx notify_agents_ready {peer_text(instances)}")
            self.deploys.agents_ready(now)

    def persisted(self, error: str | None, now: float) -> None:
        """The outcome of the last :class:`Persist`: ``None`` when it was written, else
        why not (e.g. ``<file>: cannot write: No space left on device``)."""
        self.configs.persisted(error, now)
        self._run_internal_events(now)

    # -- client requests ---------------------------------------------------------------

    def receive_client(self, event: ClientToController, now: float) -> None:
        """Handle one controller API request from a client."""
        match event:
            case ev.GetInstancesRequest(reqid=reqid):
                self._log(Level.INFO, f"rx get_instances_request {peer_text(reqid)}")
                data = tuple(self.known[name] for name in sorted(self.known))
                self._publish(ev.GetInstancesResponse(reqid, Result(reqid, True, data=data)))
            case ev.StageConfigurationRequest(reqid=reqid, config=config):
                self._stage(reqid, config)
            case ev.GetConfigurationRequest(reqid=reqid, deployed=deployed):
                self.configs.get(reqid, deployed)
            case ev.DeployRequest(reqid=reqid):
                self.deploys.request(reqid, now)
            case ev.GetNodesRequest(reqid=reqid):
                self._get_nodes(reqid, now)
            case ev.GetIdValueRequest(reqid=reqid, id=ident, nodes=nodes):
                self._get_id_value(reqid, ident, nodes, now)
            case ev.RestartRequest(reqid=reqid, nodes=nodes):
                self._restart(reqid, nodes, now)
            case ev.TestTimeoutRequest(reqid=reqid, with_state=with_state):
                self._log(
                    Level.INFO,
                    f"rx test_timeout_request {peer_text(reqid)} with_state={with_state}",
                )
                if with_state:
                    self._create(reqid, Kind.TEST, now)
            case (
                xev.GetVersionRequest()
                | xev.GetNodeInfoRequest()
                | xev.DiagRequest()
                | xev.TopRequest()
                | xev.NetstatsRequest()
                | xev.GetDiskUsageRequest()
                | xev.StopNodesRequest()
                | xev.StartNodesRequest()
            ):
                self._fan_out(event, FANOUTS[type(event)], now)
            case xev.CheckRequest(reqid=reqid, config=config):
                errors, ready = self._ready(config)
                if ready is None:
                    results = tuple(Result(reqid, False, error=e) for e in errors)
                    self._publish(xev.CheckResponse(reqid, results))
                else:
                    self._fan_out(xev.CheckRequest(reqid, ready), FANOUTS[type(event)], now)
                    self.requests.extend_check(reqid, ready, now)
            case _:
                assert_never(event)
        self._run_internal_events(now)

    def _stage(self, reqid: str, config: Configuration) -> None:
        self._log(
            Level.INFO,
            f"rx stage_configuration_request {peer_text(reqid)} (config {peer_text(config.id)})",
        )
        errors, ready = self._ready(config)
        if ready is None:
            results = tuple(Result(reqid, False, error=e) for e in errors)
            self._publish(ev.StageConfigurationResponse(reqid, results))
        else:
            self.configs.stage(reqid, config, ready)

    def _ready(self, config: Configuration) -> tuple[list[str], Configuration | None]:
        """:func:`~mgmt.controller.validation.make_ready`, logging each rejection."""
        errors, ready = validation.make_ready(config, self.settings, self.known)
        for err in errors:
            self._log(
                Level.INFO,
                f"configuration {peer_text(config.id)} rejected: {peer_text(err, 200)}",
            )
        return errors, ready

    def _welcome(self, name: str, now: float) -> None:
        reqid = self.requests.new_id()
        self._create(reqid, Kind.WELCOME, now).instance = name
        self._actions.append(SendToAgent(name, ev.AgentWelcomeRequest(reqid)))

    # -- queries fanned out to agents ---------------------------------------------------

    def _get_nodes(self, reqid: str, now: float) -> None:
        self._log(Level.INFO, f"rx get_nodes_request {peer_text(reqid)}")
        if not self.known:
            result = Result(reqid, False, error="no instances connected")
            self._publish(ev.GetNodesResponse(reqid, (result,)))
            return
        req = self._create(reqid, Kind.GET_NODES, now)
        for name in sorted(self.known):
            cid = self._child(req, name, now)
            self._actions.append(SendToAgent(name, ev.AgentGetNodesRequest(cid)))

    def _get_id_value(self, reqid: str, ident: str, nodes: BrokerSet, now: float) -> None:
        self._log(
            Level.INFO,
            f"rx get_id_value_request {peer_text(reqid)} {peer_text(ident)} "
            f"{peer_text(sorted(nodes))}",
        )
        if not self.instances:
            result = Result(reqid, False, error="no cluster deployed")
            self._publish(ev.GetIdValueResponse(reqid, (result,)))
            return
        req = self._create(reqid, Kind.ID_VALUE, now)
        final = known_nodes(req, nodes, self.deployed)
        if nodes and not final:
            self._respond(req)
            return
        action = ("get_id_value", ident)
        for name in sorted(self.instances):
            if name in self.ready:
                cid = self._child(req, name, now)
                self._actions.append(
                    SendToAgent(name, ev.AgentNodeDispatchRequest(cid, action, final))
                )

    def _restart(self, reqid: str, nodes: BrokerSet, now: float) -> None:
        self._log(Level.INFO, f"rx restart_request {peer_text(reqid)} {peer_text(sorted(nodes))}")
        req = self._create(reqid, Kind.RESTART, now)
        if not self.known:
            req.results.append(Result(reqid, False, error="no instances connected"))
            self._respond(req)
            return
        if self.deployed is None:
            req.results.append(Result(reqid, False, error=NO_DEPLOYMENT))
            self._respond(req)
            return
        final = known_nodes(req, nodes, self.deployed)
        if nodes and not final:
            self._respond(req)
            return
        for name in sorted(self.instances):
            if name in self.ready:
                cid = self._child(req, name, now)
                self._actions.append(SendToAgent(name, ev.AgentRestartRequest(cid, final)))
        # With no ready instance nothing was sent: like Zeek (§4.10 step 7) the request
        # then ends in "request timed out" rather than in an empty, successful answer.

    def _fan_out(self, event: FanOutRequest, row: FanOut, now: float) -> None:
        """An extension request answered by asking agents (mgmt.controller.fanout)."""
        self._log(Level.INFO, f"rx {type(event).__name__} {peer_text(event.reqid)}")
        req = self.requests.create(event.reqid, Kind.FANOUT, now, row.response)
        if row.local is not None:
            req.results.extend(row.local(self, req.id))
        args = {f.name: getattr(event, f.name) for f in fields(event)}
        for instance in fanout.targets(row, req, args, self.known, self.deployed, self.instances):
            if instance not in self.known:
                req.results.append(
                    Result(req.id, False, instance=instance, error="instance not connected")
                )
                continue
            args["reqid"] = self._child(req, instance, now)
            self._actions.append(SendToAgent(instance, row.agent_request(**args)))
        if not req.children:
            self._respond(req)

    # -- agent side ------------------------------------------------------------------------

    def agent_hello(
        self, hello: ev.NotifyAgentHello, host: str, port: int | None, now: float
    ) -> bool:
        """An agent announced itself on a connection from/to ``host``.

        Args:
            hello: the agent's ``notify_agent_hello``.
            host: the agent's address as seen on the connection.
            port: the agent's listening port when *we* dialed it, else ``None``.

        Returns:
            Whether the hello was accepted (the caller then binds the instance name to
            the connection).
        """
        accepted = self.agents.hello(hello, host, port, now)
        self._run_internal_events(now)
        return accepted

    def agent_lost(self, name: str, now: float) -> None:
        """The connection bound to instance ``name`` is gone (``Broker::peer_lost``)."""
        self.agents.lost(name)
        self._run_internal_events(now)

    def receive_agent(self, name: str, event: AgentToController, now: float) -> None:
        """Handle one agent API event from the agent bound to instance ``name``.

        Raises:
            InvalidState: ``event`` is a ``notify_agent_hello`` (use :meth:`agent_hello`).
        """
        match event:
            case ev.AgentWelcomeResponse(reqid=reqid, result=result):
                self._welcome_response(name, reqid, result)
            case ev.AgentDeployResponse(reqid=reqid, results=results):
                self._child_response(reqid, results, now)
            case ev.AgentGetNodesResponse(reqid=reqid, result=result):
                self._child_response(reqid, (result,), now)
            case ev.AgentNodeDispatchResponse(reqid=reqid, results=results):
                self._child_response(reqid, results, now)
            case ev.AgentRestartResponse(reqid=reqid, results=results):
                self._child_response(reqid, results, now)
            case (
                xev.AgentGetVersionResponse(reqid=reqid, results=results)
                | xev.AgentGetNodeInfoResponse(reqid=reqid, results=results)
                | xev.AgentDiagResponse(reqid=reqid, results=results)
                | xev.AgentTopResponse(reqid=reqid, results=results)
                | xev.AgentNetstatsResponse(reqid=reqid, results=results)
                | xev.AgentGetDiskUsageResponse(reqid=reqid, results=results)
                | xev.AgentStopNodesResponse(reqid=reqid, results=results)
                | xev.AgentStartNodesResponse(reqid=reqid, results=results)
                | xev.AgentCheckResponse(reqid=reqid, results=results)
            ):
                self._child_response(reqid, results, now)
            case ev.AgentStandbyResponse() | ev.NotifyChange() | ev.NotifyLog():
                pass
            case ev.NotifyError(instance=inst, msg=msg, node=node):
                self._log(
                    Level.WARNING,
                    f"instance {peer_text(inst)} reports error: {peer_text(msg, 200)}"
                    + (f" (node {peer_text(node)})" if node else ""),
                )
            case ev.NotifyAgentHello():
                raise InvalidState("notify_agent_hello goes to agent_hello()")
            case _:
                assert_never(event)
        self._run_internal_events(now)

    def _welcome_response(self, name: str, reqid: str, result: Result) -> None:
        if self._finish(reqid) is not None:
            self.agents.welcomed(name, result)

    def _child_response(self, reqid: str, results: tuple[Result, ...], now: float) -> None:
        child = self._finish(reqid)
        if child is None:
            return
        parent = self.requests.get(child.parent_id)
        if parent is None:
            return  # the parent timed out: Zeek drops the late answer too
        parent.results.extend(results)
        parent.children.pop(reqid, None)
        if parent.children:
            return
        # All children answered.
        if parent.kind is Kind.DEPLOY:
            self.deploys.done(parent)
        else:
            self._respond(parent)

    # -- time ------------------------------------------------------------------------------

    def tick(self, now: float) -> None:
        """Expire requests whose deadline passed (``request_expired``, §4.12)."""
        for req in self.requests.pop_expired(now):
            self._log(Level.INFO, f"request {peer_text(req.id)} timed out")
            timeout = Result(req.id, False, error=TIMED_OUT)
            match req.kind:
                case Kind.DEPLOY:
                    self.deploys.timed_out(req, timeout)
                case Kind.GET_NODES | Kind.ID_VALUE | Kind.RESTART:
                    req.results.append(timeout)  # one for the request, as Zeek
                    self._respond(req)
                case Kind.FANOUT:
                    # One per agent that did not answer, so the client knows which.
                    for cid, instance in sorted(req.children.items(), key=lambda c: c[1]):
                        self._finish(cid)
                        req.results.append(
                            Result(req.id, False, instance=instance, error=TIMED_OUT)
                        )
                    self._respond(req)
                case Kind.TEST:
                    self._publish(ev.TestTimeoutResponse(req.id, timeout))
                case Kind.CHILD | Kind.WELCOME:
                    pass  # nothing to answer: the parent request (if any) times out
                case _:
                    assert_never(req.kind)
        self._run_internal_events(now)

    def start(self, now: float) -> None:
        """Start-up (§4.1 step 5): redeploy a persisted DEPLOYED configuration."""
        deployed = self.deployed
        if deployed is None:
            return
        self.deploys.redeploy(
            now,
            lambda rid: (
                f"deploying persisted configuration {peer_text(deployed.id)}, request {rid}"
            ),
        )
        self.agents.check_ready()
        self._run_internal_events(now)
