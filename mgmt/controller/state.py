"""The controller as a pure state machine (behaviour.md §2, §4).

Rules / theory of operation
---------------------------
:class:`ControllerState` holds what Zeek's ``controller/main.zeek`` keeps in globals:

* ``agents`` (:class:`~mgmt.controller.instances.Instances`): ``instances``, ``known``
  and ``ready`` (``g_instances``, ``g_instances_known``, ``g_instances_ready``): the
  instances the deployment needs, the agents connected, the needed ones welcomed;
* ``staged`` / ``ready_config`` / ``deployed`` (``g_configs``): the persisted configs;
* ``pending_deploy`` (``g_config_reqid_pending``);
* ``requests``: every outstanding request with its deadline (``Management::Request``).

Inputs are methods named ``receive_*`` / ``agent_*`` / ``tick`` / ``persisted`` that take
``now`` (seconds, monotonic) from the caller; outputs are drained with :meth:`actions`:
the :mod:`mgmt.controller.actions` (publish to clients, send to an agent, dial, persist,
log). The inputs are typed by direction (:mod:`mgmt.broker.directions`) and matched
exhaustively.

Requests live in one :class:`~mgmt.core.requests.RequestTable`; each kind that is answered
with a result vector names its response event in :data:`RESPONSES`. zeek-mgmt's extension
requests that ask the agents and gather their results are one kind, ``FANOUT``, whose
rows are in :mod:`mgmt.controller.fanout`.

Persistence: nothing is acknowledged that was not persisted. A change of the persisted
configurations (a stage, a completed deploy) is *tentative*: the machine emits
:class:`Persist` with the new slots and does not apply or answer yet. The service writes
them and reports the outcome with :meth:`ControllerState.persisted` before it hands the
machine any other input. Only when the write succeeded do the slots change and the
request get its success; otherwise the previous slots stay (in memory as on disk) and the
request fails with ``could not persist configuration: <reason>``. A deploy also writes the
unchanged slots before it tells any agent anything, so a state directory that cannot be
written fails the deploy before the cluster changes; should the final write fail anyway
(the disk filled up meanwhile), the deploy answers with the agents' results plus that
error, and DEPLOYED stays the previous configuration: that is the one get-config
``--deployed`` shows and the one redeployed at start-up and when agents reconnect.

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

import enum
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any, TypeAlias, assert_never

from mgmt.broker import events as ev
from mgmt.broker import extevents as xev
from mgmt.broker.data import BrokerSet, Port
from mgmt.broker.directions import AgentToController, ClientToController, ControllerToClient
from mgmt.broker.records import Configuration, Instance, Result
from mgmt.controller import validation
from mgmt.controller.actions import Action as Action
from mgmt.controller.actions import Dial as Dial
from mgmt.controller.actions import Persist as Persist
from mgmt.controller.actions import Publish as Publish
from mgmt.controller.actions import SendToAgent as SendToAgent
from mgmt.controller.actions import StopDialing as StopDialing
from mgmt.controller.fanout import FANOUTS, FanOut, FanOutRequest, Scope
from mgmt.controller.instances import Instances
from mgmt.core import launchable, startorder
from mgmt.core.logaction import Level as Level
from mgmt.core.logaction import Log as Log
from mgmt.core.peertext import peer_text
from mgmt.core.requests import TIMED_OUT, Request, RequestTable, Respond
from mgmt.core.version import ProcessFacts
from mgmt.exceptions import InvalidState
from mgmt.settings.model import ControllerSettings

#: The error of a request whose change could not be written (followed by the reason).
PERSIST_FAILED = "could not persist configuration"
#: The error of a request about nodes when nothing is deployed (Zeek's restart).
NO_DEPLOYMENT = "no active cluster deployment"


# --------------------------------------------------------------------------------------
# Requests


class Kind(enum.Enum):
    """What a request is for; decides how it completes and how it times out."""

    DEPLOY = "deploy"
    GET_NODES = "get_nodes"
    ID_VALUE = "get_id_value"
    RESTART = "restart"
    TEST = "test_timeout"
    FANOUT = "fanout"  # an extension request asking agents (mgmt.controller.fanout)
    CHILD = "child"  # a request we sent to one agent on behalf of a parent
    WELCOME = "welcome"


#: One outstanding request of the controller.
ControllerRequest: TypeAlias = Request[Kind, ControllerToClient]

#: The response event of each kind answered with ``(reqid, results)`` (FANOUT: its row).
RESPONSES: dict[Kind, Respond[ControllerToClient]] = {
    Kind.DEPLOY: ev.DeployResponse,
    Kind.GET_NODES: ev.GetNodesResponse,
    Kind.ID_VALUE: ev.GetIdValueResponse,
    Kind.RESTART: ev.RestartResponse,
}


def _new_id() -> str:
    return str(uuid.uuid4())


#: The three persisted slots: staged, ready, deployed.
Slots = tuple[Configuration | None, Configuration | None, Configuration | None]


@dataclass(frozen=True, slots=True)
class _Write:
    """A :class:`Persist` whose outcome is not reported yet."""

    slots: Slots
    #: Continues the request: called with ``None`` (written) or the reason, and ``now``.
    then: Callable[[str | None, float], None]


# --------------------------------------------------------------------------------------
# The state machine


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
        self.settings = settings
        self.staged = staged
        self.ready_config = ready
        self.deployed = deployed
        self.facts = facts
        self.probe = probe
        self._actions: list[Action] = []
        self._agents_ready_queued: list[frozenset[str]] = []
        #: The agents: needed, connected, ready (g_instances, _known, _ready).
        self.agents = Instances(self._emit, self._welcome, self._agents_ready_queued.append)
        self.pending_deploy = ""
        self.requests: RequestTable[Kind, ControllerToClient] = RequestTable(
            self.settings.request_timeout
        )
        self._new_id = new_id
        self._write: _Write | None = None
        self._last_deploy_groups: tuple[Configuration, int] | None = None

    # -- outputs ---------------------------------------------------------------------

    def actions(self) -> list[Action]:
        """Drain the actions produced since the last call, in order."""
        out, self._actions = self._actions, []
        return out

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

    def _emit(self, action: Action) -> None:
        self._actions.append(action)

    def _log(self, level: Level, message: str) -> None:
        self._actions.append(Log(level, message))

    def _publish(self, event: ControllerToClient) -> None:
        self._actions.append(Publish(event))

    def _slots(self) -> Slots:
        return (self.staged, self.ready_config, self.deployed)

    def _persist(self, slots: Slots, then: Callable[[str | None, float], None]) -> None:
        """Ask for ``slots`` to be written; ``then`` continues once :meth:`persisted` says
        how it went (the slots are adopted first if it worked)."""
        if self._write is not None:
            raise InvalidState("a Persist is still waiting for persisted()")
        self._write = _Write(slots, then)
        self._actions.append(Persist(*slots))

    def persisted(self, error: str | None, now: float) -> None:
        """The outcome of the last :class:`Persist`: ``None`` when it was written, else
        why not (e.g. ``<file>: cannot write: No space left on device``)."""
        write, self._write = self._write, None
        if write is None:
            self._log(Level.WARNING, "persisted() without a pending Persist; ignored")
            return
        if error is None:
            self.staged, self.ready_config, self.deployed = write.slots
        write.then(error, now)
        self._run_internal_events(now)

    def _create(self, reqid: str, kind: Kind, now: float) -> ControllerRequest:
        return self.requests.create(reqid, kind, now, RESPONSES.get(kind))

    def _finish(self, reqid: str) -> ControllerRequest | None:
        return self.requests.finish(reqid)

    def _child(self, parent: ControllerRequest, instance: str, now: float) -> str:
        cid = self._new_id()
        child = self._create(cid, Kind.CHILD, now)
        child.parent_id, child.instance = parent.id, instance
        if parent.kind is Kind.DEPLOY and parent.config is not None:
            child.deadline = now + self._deploy_timeout(parent.config)
        parent.children[cid] = instance
        return cid

    def _respond(self, req: ControllerRequest) -> None:
        """Answer a request with its results so far, and forget it."""
        self._finish(req.id)
        assert req.response is not None
        self._publish(req.response(req.id, tuple(req.results)))

    def _run_internal_events(self, now: float) -> None:
        while self._agents_ready_queued:
            instances = self._agents_ready_queued.pop(0)
            self._notify_agents_ready(instances, now)

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
                self._get_configuration(reqid, deployed)
            case ev.DeployRequest(reqid=reqid):
                self._deploy_request(reqid, now)
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
                    self._extend_check(reqid, ready, now)
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
            return

        def staged(error: str | None, now: float) -> None:
            if error is None:
                result = Result(reqid, True, data=config.id)
            else:
                self._log(Level.INFO, f"configuration {peer_text(config.id)} not staged: {error}")
                result = Result(reqid, False, error=f"{PERSIST_FAILED}: {error}")
            self._publish(ev.StageConfigurationResponse(reqid, (result,)))

        self._persist((config, ready, self.deployed), staged)

    def _ready(self, config: Configuration) -> tuple[list[str], Configuration | None]:
        """Validate a configuration as staging does; its errors, or the configuration
        ready to deploy (instance hosts filled in, ports assigned as configured)."""
        opts = self.settings
        errors = validation.validate(
            config,
            controller_port=Port(opts.listen_port) if opts.listen_port else None,
            auto_assign_broker_ports=opts.auto_assign_broker_ports,
        )
        if errors:
            for err in errors:
                self._log(
                    Level.INFO,
                    f"configuration {peer_text(config.id)} rejected: {peer_text(err, 200)}",
                )
            return errors, None
        ready = validation.fill_instance_hosts(config, self.known)
        if opts.auto_assign_broker_ports:
            ready = validation.assign_broker_ports(ready, Port(opts.auto_assign_broker_start_port))
        if opts.auto_assign_metrics_ports:
            ready = validation.assign_metrics_ports(
                ready, Port(opts.auto_assign_metrics_start_port)
            )
        return [], ready

    def _extend_check(self, reqid: str, config: Configuration, now: float) -> None:
        """An agent checks its nodes one ``zeek -a`` after the other (or a few at once):
        a check waits one request timeout per node of the busiest instance."""
        req = self.requests.get(reqid)
        if req is None:
            return
        per_instance = Counter(n.instance for n in config.nodes)
        deadline = now + self.requests.timeout * max([1, *per_instance.values()])
        for rid in (reqid, *req.children):
            if (r := self.requests.get(rid)) is not None:
                r.deadline = deadline

    def _get_configuration(self, reqid: str, deployed: bool) -> None:
        self._log(
            Level.INFO, f"rx get_configuration_request {peer_text(reqid)} deployed={deployed}"
        )
        config = self.deployed if deployed else self.staged
        if config is None:
            which = "deployed" if deployed else "staged"
            result = Result(reqid, False, error=f"no {which} configuration available")
        else:
            result = Result(reqid, True, data=config)
        self._publish(ev.GetConfigurationResponse(reqid, result))

    # -- deployment ---------------------------------------------------------------------

    def _deploy_request(self, reqid: str, now: float) -> None:
        self._log(Level.INFO, f"rx deploy_request {peer_text(reqid)}")
        if self.ready_config is None:
            result = Result(reqid, False, error="no configuration available to deploy")
            self._publish(ev.DeployResponse(reqid, (result,)))
            return
        if self.pending_deploy:
            result = Result(
                reqid, False, error=f"earlier deployment {self.pending_deploy} still pending"
            )
            self._publish(ev.DeployResponse(reqid, (result,)))
            return
        config = self.ready_config
        # Staging checked this, but a configuration restored from an older version's
        # state file may hold what no agent can launch: refuse it the same way.
        problems = launchable.problems(config)
        if problems:
            for problem in problems:
                self._log(Level.INFO, f"not deploying {peer_text(config.id)}: {problem.text}")
            results = tuple(Result(reqid, False, error=p.text) for p in problems)
            self._publish(ev.DeployResponse(reqid, results))
            return

        def writable(error: str | None, now: float) -> None:
            if error is not None:
                self._log(Level.INFO, f"deployment {peer_text(reqid)} not started: {error}")
                result = Result(reqid, False, error=f"{PERSIST_FAILED}: {error}")
                self._publish(ev.DeployResponse(reqid, (result,)))
                return
            req = self._new_deploy(reqid, config, now)
            self._deploy(req, now)
            self.agents.check_ready()

        # Writing the unchanged slots proves the state can be written before any agent
        # is told anything: a full or read-only disk fails the deploy with nothing changed.
        self._persist(self._slots(), writable)

    def _new_deploy(
        self, reqid: str, config: Configuration, now: float, *, internal: bool = False
    ) -> ControllerRequest:
        req = self._create(reqid, Kind.DEPLOY, now)
        req.config, req.internal = config, internal
        req.deadline = now + self._deploy_timeout(config)
        return req

    def _deploy_timeout(self, config: Configuration) -> float:
        """Agents may start nodes group by group (ordered start): a deployment gets one
        request timeout per start group its nodes form. (Asked once per agent of a
        deployment: the last configuration's group count is kept.)"""
        last = self._last_deploy_groups
        if last is None or last[0] is not config:
            last = self._last_deploy_groups = (
                config,
                startorder.group_count(n.role for n in config.nodes),
            )
        return self.requests.timeout * last[1]

    def _deploy(self, req: ControllerRequest, now: float) -> None:
        assert req.config is not None
        config = req.config
        self.pending_deploy = req.id
        self.agents.deploy({i.name: i for i in config.instances}, now)
        if not config.instances:
            self._deploy_done(req)

    def _deploy_done(self, req: ControllerRequest) -> None:
        config = req.config
        assert config is not None
        self.pending_deploy = ""
        self._finish(req.id)

        def recorded(error: str | None) -> None:
            if error is None:
                self._log_deploy_outcome(req, config)
                req.results.append(Result(req.id, True, data=config.id))
            else:
                req.results.append(Result(req.id, False, error=f"{PERSIST_FAILED}: {error}"))
                self._log(
                    Level.WARNING,
                    f"deployment {peer_text(req.id)} of configuration "
                    f"{peer_text(config.id)} not recorded: {error}",
                )
            if not req.internal:
                self._publish(ev.DeployResponse(req.id, tuple(req.results)))

        if config is self.deployed:
            recorded(None)  # a redeployment: nothing new to write
        else:
            self._persist(
                (self.staged, self.ready_config, config), lambda error, _now: recorded(error)
            )

    def _log_deploy_outcome(self, req: ControllerRequest, config: Configuration) -> None:
        """INFO when every node started; WARNING naming what failed otherwise (the
        response still carries the configuration id, as Zeek's does)."""
        failed = sorted(r.node for r in req.results if not r.success and r.node)
        errors = [r.error for r in req.results if not r.success and not r.node]
        if not failed and not errors:
            self._log(
                Level.INFO,
                f"deployed configuration {peer_text(config.id)} (request {peer_text(req.id)})",
            )
            return
        parts = []
        if failed:
            parts.append(f"{len(failed)} of {len(config.nodes)} nodes failed {peer_text(failed)}")
        if errors:
            plural = "s" if len(errors) != 1 else ""
            parts.append(f"{len(errors)} instance error{plural} {peer_text(errors)}")
        self._log(
            Level.WARNING,
            f"deployment {peer_text(req.id)} of configuration {peer_text(config.id)}: "
            + ", ".join(parts),
        )

    def _welcome(self, name: str, now: float) -> None:
        reqid = self._new_id()
        self._create(reqid, Kind.WELCOME, now).instance = name
        self._actions.append(SendToAgent(name, ev.AgentWelcomeRequest(reqid)))

    def _notify_agents_ready(self, instances: frozenset[str], now: float) -> None:
        self._log(Level.INFO, f"rx notify_agents_ready {peer_text(instances)}")
        if not self.pending_deploy and self.deployed is not None:
            internal = self._new_deploy(self._new_id(), self.deployed, now, internal=True)
            self._log(Level.INFO, f"no deployment in progress, triggering via {internal.id}")
            self._deploy(internal, now)
            if not self.instances:
                return
        pending = self.requests.get(self.pending_deploy)
        if pending is None or pending.kind is not Kind.DEPLOY or pending.config is None:
            return
        for name in sorted(self.instances):
            if name in self.ready:
                cid = self._child(pending, name, now)
                self._actions.append(
                    SendToAgent(name, ev.AgentDeployRequest(cid, pending.config, False))
                )

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

    def _deployed_node_names(self) -> set[str]:
        return {n.name for n in self.deployed.nodes} if self.deployed is not None else set()

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
        final = self._known_nodes(req, nodes)
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
        final = self._known_nodes(req, nodes)
        if nodes and not final:
            self._respond(req)
            return
        for name in sorted(self.instances):
            if name in self.ready:
                cid = self._child(req, name, now)
                self._actions.append(SendToAgent(name, ev.AgentRestartRequest(cid, final)))
        # With no ready instance nothing was sent: like Zeek (§4.10 step 7) the request
        # then ends in "request timed out" rather than in an empty, successful answer.

    def _known_nodes(self, req: ControllerRequest, nodes: BrokerSet) -> BrokerSet:
        """The deployed nodes among ``nodes``; each other one gets ``unknown cluster
        node`` in ``req``'s results (Zeek's get_id_value and restart)."""
        known = self._deployed_node_names()
        for name in sorted(nodes):
            if name not in known:
                req.results.append(Result(req.id, False, error="unknown cluster node", node=name))
        return BrokerSet(n for n in sorted(nodes) if n in known)

    # -- extension requests fanned out to agents ------------------------------------------

    def _fan_out(self, event: FanOutRequest, row: FanOut, now: float) -> None:
        """An extension request answered by asking agents (mgmt.controller.fanout)."""
        self._log(Level.INFO, f"rx {type(event).__name__} {peer_text(event.reqid)}")
        req = self._create(event.reqid, Kind.FANOUT, now)
        req.response = row.response
        if row.local is not None:
            req.results.extend(row.local(self, req.id))
        args = {f.name: getattr(event, f.name) for f in fields(event)}
        for instance in self._fan_out_targets(req, row, args):
            if instance not in self.known:
                req.results.append(
                    Result(req.id, False, instance=instance, error="instance not connected")
                )
                continue
            args["reqid"] = self._child(req, instance, now)
            self._actions.append(SendToAgent(instance, row.agent_request(**args)))
        if not req.children:
            self._respond(req)

    def _fan_out_targets(
        self, req: ControllerRequest, row: FanOut, args: dict[str, object]
    ) -> list[str]:
        """The instances a fan-out concerns, in name order; errors go to ``req``."""
        if row.scope is Scope.CONNECTED:
            if not self.known and row.local is None:
                req.results.append(Result(req.id, False, error="no instances connected"))
            return sorted(self.known)
        if row.scope is Scope.CONFIG:
            config = args["config"]
            assert isinstance(config, Configuration)
            return sorted({n.instance for n in config.nodes})
        # Scope.NODES: the deployment's instances hosting the named nodes (all if none).
        if self.deployed is None or not self.instances:
            req.results.append(Result(req.id, False, error=NO_DEPLOYMENT))
            return []
        nodes = args["nodes"]
        assert isinstance(nodes, BrokerSet)
        if not nodes:
            return sorted(self.instances)
        final = self._known_nodes(req, nodes)
        args["nodes"] = final
        hosts = {n.name: n.instance for n in self.deployed.nodes}
        return sorted({hosts[n] for n in final})

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
            self._deploy_done(parent)
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
                    if self.pending_deploy == req.id:
                        self.pending_deploy = ""
                    missing = sorted(set(self.instances) - self.ready)
                    if missing:
                        self._log(
                            Level.WARNING,
                            f"deployment {peer_text(req.id)} timed out waiting for "
                            f"instances: {', '.join(peer_text(m) for m in missing)}",
                        )
                    req.results.append(timeout)
                    if not req.internal:
                        self._respond(req)
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
        if self.deployed is not None:
            req = self._new_deploy(self._new_id(), self.deployed, now, internal=True)
            self._log(
                Level.INFO,
                f"deploying persisted configuration {peer_text(self.deployed.id)}, "
                f"request {req.id}",
            )
            self._deploy(req, now)
            self.agents.check_ready()
            self._run_internal_events(now)
