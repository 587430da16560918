"""The controller as a pure state machine (behaviour.md §2, §4).

Rules / theory of operation
---------------------------
:class:`ControllerState` holds what Zeek's ``controller/main.zeek`` keeps in globals:

* ``instances`` (``g_instances``): the instances the current deployment needs;
* ``known`` (``g_instances_known``): every agent that said hello and is still connected;
* ``ready`` (``g_instances_ready``): instances in ``instances`` that accepted our welcome;
* ``staged`` / ``ready_config`` / ``deployed`` (``g_configs``): the persisted configs;
* ``pending_deploy`` (``g_config_reqid_pending``);
* ``requests``: every outstanding request with its deadline (``Management::Request``).

Inputs are methods named ``receive_*`` / ``agent_*`` / ``tick`` / ``persisted`` that take
``now`` (seconds, monotonic) from the caller; outputs are drained with :meth:`actions`:
:class:`Publish` (an event for clients on ``zeek/management/controller``),
:class:`SendToAgent`, :class:`Dial` / :class:`StopDialing` (instances the controller must
connect to), :class:`Persist` (write the configs) and :class:`Log`.

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
import ipaddress
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from mgmt.broker import events as ev
from mgmt.broker.data import BrokerSet, Port
from mgmt.broker.records import Configuration, Instance, Result
from mgmt.controller import validation
from mgmt.core import launchable
from mgmt.core.logaction import Level as Level
from mgmt.core.logaction import Log as Log
from mgmt.core.peertext import peer_text
from mgmt.exceptions import InvalidState
from mgmt.settings.model import ControllerSettings

CONTROLLER_TOPIC = "zeek/management/controller"
AGENT_TOPIC_PREFIX = "zeek/management/agent"
API_VERSION = 1

TIMED_OUT = "request timed out"
#: The error of a request whose change could not be written (followed by the reason).
PERSIST_FAILED = "could not persist configuration"
_UNSPECIFIED = ipaddress.IPv4Address("0.0.0.0")


def agent_topic(instance: str) -> str:
    """The topic an agent listens on (``zeek/management/agent/<name>``)."""
    return f"{AGENT_TOPIC_PREFIX}/{instance}"


# --------------------------------------------------------------------------------------
# Actions


@dataclass(frozen=True, slots=True)
class Publish:
    """Send an event to the clients (topic ``zeek/management/controller``)."""

    event: object


@dataclass(frozen=True, slots=True)
class SendToAgent:
    """Send an event to the agent serving ``instance`` (dropped if it is not connected)."""

    instance: str
    event: object


@dataclass(frozen=True, slots=True)
class Dial:
    """Keep a connection to an agent that listens (``Instance.listen_port`` is set)."""

    instance: str
    host: str
    port: int


@dataclass(frozen=True, slots=True)
class StopDialing:
    """Stop dialing an instance that is no longer part of the deployment."""

    instance: str


@dataclass(frozen=True, slots=True)
class Persist:
    """Write staged/ready/deployed configurations durably, then report the outcome with
    :meth:`ControllerState.persisted` before giving the machine any other input."""

    staged: Configuration | None
    ready: Configuration | None
    deployed: Configuration | None


Action = Publish | SendToAgent | Dial | StopDialing | Persist | Log


# --------------------------------------------------------------------------------------
# Requests


class Kind(enum.Enum):
    """What a request is for; decides how it completes and how it times out."""

    DEPLOY = "deploy"
    GET_NODES = "get_nodes"
    ID_VALUE = "get_id_value"
    RESTART = "restart"
    TEST = "test_timeout"
    CHILD = "child"  # a request we sent to one agent on behalf of a parent
    WELCOME = "welcome"


@dataclass(slots=True)
class Request:
    """One outstanding request (``Management::Request::Request``)."""

    id: str
    kind: Kind
    deadline: float
    parent_id: str = ""
    instance: str = ""
    results: list[Result] = field(default_factory=list)
    children: set[str] = field(default_factory=set)
    # DEPLOY
    config: Configuration | None = None
    internal: bool = False


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
        new_id: request id generator (injectable for deterministic tests).
    """

    def __init__(
        self,
        settings: ControllerSettings,
        *,
        staged: Configuration | None = None,
        ready: Configuration | None = None,
        deployed: Configuration | None = None,
        new_id: Callable[[], str] = _new_id,
    ) -> None:
        self.settings = settings
        self.staged = staged
        self.ready_config = ready
        self.deployed = deployed
        self.instances: dict[str, Instance] = {}
        self.known: dict[str, Instance] = {}
        self.ready: set[str] = set()
        self.pending_deploy = ""
        self.requests: dict[str, Request] = {}
        self._new_id = new_id
        self._actions: list[Action] = []
        self._agents_ready_queued: list[frozenset[str]] = []
        self._write: _Write | None = None

    # -- outputs ---------------------------------------------------------------------

    def actions(self) -> list[Action]:
        """Drain the actions produced since the last call, in order."""
        out, self._actions = self._actions, []
        return out

    def next_deadline(self) -> float | None:
        """When :meth:`tick` must next be called (the earliest request deadline)."""
        if not self.requests:
            return None
        return min(r.deadline for r in self.requests.values())

    def _log(self, level: Level, message: str) -> None:
        self._actions.append(Log(level, message))

    def _publish(self, event: object) -> None:
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

    def _create(self, reqid: str, kind: Kind, now: float, **kw: object) -> Request:
        req = Request(reqid, kind, now + self.settings.request_timeout, **kw)  # type: ignore[arg-type]
        self.requests[reqid] = req  # like Zeek, a duplicate id replaces the old entry
        return req

    def _finish(self, reqid: str) -> Request | None:
        return self.requests.pop(reqid, None)

    def _child(self, parent: Request, instance: str, now: float) -> str:
        cid = self._new_id()
        self._create(cid, Kind.CHILD, now, parent_id=parent.id, instance=instance)
        parent.children.add(cid)
        return cid

    def _run_internal_events(self, now: float) -> None:
        while self._agents_ready_queued:
            instances = self._agents_ready_queued.pop(0)
            self._notify_agents_ready(instances, now)

    # -- client requests ---------------------------------------------------------------

    def receive_client(self, event: object, now: float) -> None:
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
            case _:
                self._log(
                    Level.WARNING, f"ignoring unexpected client event {peer_text(event, 200)}"
                )
        self._run_internal_events(now)

    def _stage(self, reqid: str, config: Configuration) -> None:
        self._log(
            Level.INFO,
            f"rx stage_configuration_request {peer_text(reqid)} (config {peer_text(config.id)})",
        )
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
            results = tuple(Result(reqid, False, error=e) for e in errors)
            self._publish(ev.StageConfigurationResponse(reqid, results))
            return
        ready = validation.fill_instance_hosts(config, self.known)
        if opts.auto_assign_broker_ports:
            ready = validation.assign_broker_ports(ready, Port(opts.auto_assign_broker_start_port))
        if opts.auto_assign_metrics_ports:
            ready = validation.assign_metrics_ports(
                ready, Port(opts.auto_assign_metrics_start_port)
            )

        def staged(error: str | None, now: float) -> None:
            if error is None:
                result = Result(reqid, True, data=config.id)
            else:
                self._log(Level.INFO, f"configuration {peer_text(config.id)} not staged: {error}")
                result = Result(reqid, False, error=f"{PERSIST_FAILED}: {error}")
            self._publish(ev.StageConfigurationResponse(reqid, (result,)))

        self._persist((config, ready, self.deployed), staged)

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
            req = self._create(reqid, Kind.DEPLOY, now, config=config)
            self._deploy(req, now)
            self._check_instances_ready()

        # Writing the unchanged slots proves the state can be written before any agent
        # is told anything: a full or read-only disk fails the deploy with nothing changed.
        self._persist(self._slots(), writable)

    def _connectivity_changed(self, new: Instance) -> bool:
        old = self.instances.get(new.name)
        if old is None:
            return False
        if new.host != _UNSPECIFIED and new.host != old.host:
            return True
        return new.listen_port != old.listen_port

    def _deploy(self, req: Request, now: float) -> None:
        assert req.config is not None
        config = req.config
        self.pending_deploy = req.id
        wanted = {i.name: i for i in config.instances}
        current = set(self.instances)
        to_drop = current - set(wanted)
        to_add = set(wanted) - current
        for name in sorted(current & set(wanted)):
            if self._connectivity_changed(wanted[name]):
                # Zeek drops such an instance and forgets to re-add it (Q5); we re-add.
                to_drop.add(name)
                to_add.add(name)
        for name in sorted(to_drop):
            self._drop_instance(name)
        for name in sorted(to_add):
            self._add_instance(wanted[name], now)
        if not wanted:
            self._deploy_done(req)

    def _deploy_done(self, req: Request) -> None:
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

    def _log_deploy_outcome(self, req: Request, config: Configuration) -> None:
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

    def _add_instance(self, inst: Instance, now: float) -> None:
        self.instances[inst.name] = inst
        if inst.listen_port is not None:
            self._actions.append(Dial(inst.name, str(inst.host), inst.listen_port.number))
        seen = self.known.get(inst.name)
        if seen is None:
            self._log(Level.DEBUG, f"instance {peer_text(inst.name)} not known to us, skipping")
            return
        if inst.listen_port is None:
            self.instances[inst.name] = replace(inst, host=seen.host)
        self._welcome(inst.name, now)

    def _drop_instance(self, name: str) -> None:
        inst = self.instances.pop(name, None)
        if inst is None:
            return
        self.ready.discard(name)
        self._actions.append(SendToAgent(name, ev.AgentStandbyRequest("")))
        if inst.listen_port is not None:
            self._actions.append(StopDialing(name))
        self._log(Level.INFO, f"dropped instance {peer_text(name)}")

    def _welcome(self, name: str, now: float) -> None:
        reqid = self._new_id()
        self._create(reqid, Kind.WELCOME, now, instance=name)
        self._actions.append(SendToAgent(name, ev.AgentWelcomeRequest(reqid)))

    def _check_instances_ready(self) -> None:
        if set(self.instances) == self.ready:
            self._agents_ready_queued.append(frozenset(self.ready))

    def _notify_agents_ready(self, instances: frozenset[str], now: float) -> None:
        self._log(Level.INFO, f"rx notify_agents_ready {peer_text(instances)}")
        if not self.pending_deploy and self.deployed is not None:
            internal = self._create(
                self._new_id(), Kind.DEPLOY, now, config=self.deployed, internal=True
            )
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
        final: BrokerSet = BrokerSet()
        if nodes:
            known_nodes = self._deployed_node_names()
            final = BrokerSet(n for n in sorted(nodes) if n in known_nodes)
            for name in sorted(nodes):
                if name not in known_nodes:
                    req.results.append(
                        Result(reqid, False, error="unknown cluster node", node=name)
                    )
            if not final:
                self._publish(ev.GetIdValueResponse(reqid, tuple(req.results)))
                self._finish(reqid)
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
            self._respond_restart(req)
            return
        if self.deployed is None:
            req.results.append(Result(reqid, False, error="no active cluster deployment"))
            self._respond_restart(req)
            return
        final = nodes
        if nodes:
            known_nodes = self._deployed_node_names()
            final = BrokerSet(n for n in sorted(nodes) if n in known_nodes)
            for name in sorted(nodes):
                if name not in known_nodes:
                    req.results.append(
                        Result(reqid, False, error="unknown cluster node", node=name)
                    )
            if not final:
                self._respond_restart(req)
                return
        for name in sorted(self.instances):
            if name in self.ready:
                cid = self._child(req, name, now)
                self._actions.append(SendToAgent(name, ev.AgentRestartRequest(cid, final)))
        # With no ready instance nothing was sent: like Zeek (§4.10 step 7) the request
        # then ends in "request timed out" rather than in an empty, successful answer.

    def _respond_restart(self, req: Request) -> None:
        self._publish(ev.RestartResponse(req.id, tuple(req.results)))
        self._finish(req.id)

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
        name = hello.instance
        self._log(
            Level.INFO,
            f"rx notify_agent_hello {peer_text(name)} {peer_text(hello.id)} {hello.connecting}",
        )
        if hello.api_version != API_VERSION:
            self._log(
                Level.WARNING,
                f"instance {peer_text(name)}/{peer_text(hello.id)} has checked in with "
                f"incompatible API version {hello.api_version}",
            )
            self._drop_instance(name)
            self.known.pop(name, None)
            self._run_internal_events(now)
            return False
        try:
            addr = ipaddress.ip_address(host)
        except ValueError:
            addr = _UNSPECIFIED
        listen = Port(port) if port is not None else None
        self.known[name] = Instance(name, addr, listen)
        if name in self.instances and name not in self.ready:
            inst = self.instances[name]
            if inst.listen_port is None and addr != _UNSPECIFIED:
                self.instances[name] = replace(inst, host=addr)
            self._welcome(name, now)
        self._run_internal_events(now)
        return True

    def agent_lost(self, name: str, now: float) -> None:
        """The connection bound to instance ``name`` is gone (``Broker::peer_lost``)."""
        if name in self.known:
            self.known.pop(name, None)
            self.ready.discard(name)
            self._log(Level.INFO, f"dropped state for instance {peer_text(name)}")
        self._run_internal_events(now)

    def receive_agent(self, name: str, event: object, now: float) -> None:
        """Handle one agent API event from the agent bound to instance ``name``."""
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
            case ev.AgentStandbyResponse() | ev.NotifyChange() | ev.NotifyLog():
                pass
            case ev.NotifyError(instance=inst, msg=msg, node=node):
                self._log(
                    Level.WARNING,
                    f"instance {peer_text(inst)} reports error: {peer_text(msg, 200)}"
                    + (f" (node {peer_text(node)})" if node else ""),
                )
            case _:
                self._log(Level.WARNING, f"ignoring unexpected agent event {peer_text(event, 200)}")
        self._run_internal_events(now)

    def _welcome_response(self, name: str, reqid: str, result: Result) -> None:
        if self._finish(reqid) is None:
            return
        instance = result.instance or name
        if not result.success or instance not in self.instances:
            self._actions.append(SendToAgent(name, ev.AgentStandbyRequest("")))
            return
        self.ready.add(instance)
        self._log(Level.INFO, f"instance {peer_text(instance)} ready")
        self._check_instances_ready()

    def _child_response(self, reqid: str, results: tuple[Result, ...], now: float) -> None:
        child = self._finish(reqid)
        if child is None:
            return
        parent = self.requests.get(child.parent_id)
        if parent is None:
            return  # the parent timed out: Zeek drops the late answer too
        parent.results.extend(results)
        parent.children.discard(reqid)
        if parent.children:
            return
        self._complete(parent)

    def _complete(self, req: Request) -> None:
        """All children of ``req`` answered."""
        results = tuple(req.results)
        if req.kind is Kind.DEPLOY:
            self._deploy_done(req)
            return
        if req.kind is Kind.GET_NODES:
            self._publish(ev.GetNodesResponse(req.id, results))
        elif req.kind is Kind.ID_VALUE:
            self._publish(ev.GetIdValueResponse(req.id, results))
        elif req.kind is Kind.RESTART:
            self._publish(ev.RestartResponse(req.id, results))
        self._finish(req.id)

    # -- time ------------------------------------------------------------------------------

    def tick(self, now: float) -> None:
        """Expire requests whose deadline passed (``request_expired``, §4.12)."""
        expired = [r for r in self.requests.values() if r.deadline <= now]
        for req in expired:
            if self.requests.get(req.id) is not req:
                continue
            self._finish(req.id)
            self._log(Level.INFO, f"request {peer_text(req.id)} timed out")
            timeout = Result(req.id, False, error=TIMED_OUT)
            if req.kind is Kind.DEPLOY:
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
                    self._publish(ev.DeployResponse(req.id, tuple(req.results)))
            elif req.kind is Kind.GET_NODES:
                req.results.append(timeout)
                self._publish(ev.GetNodesResponse(req.id, tuple(req.results)))
            elif req.kind is Kind.ID_VALUE:
                req.results.append(timeout)
                self._publish(ev.GetIdValueResponse(req.id, tuple(req.results)))
            elif req.kind is Kind.RESTART:
                req.results.append(timeout)
                self._publish(ev.RestartResponse(req.id, tuple(req.results)))
            elif req.kind is Kind.TEST:
                self._publish(ev.TestTimeoutResponse(req.id, timeout))
        self._run_internal_events(now)

    def start(self, now: float) -> None:
        """Start-up (§4.1 step 5): redeploy a persisted DEPLOYED configuration."""
        if self.deployed is not None:
            req = self._create(
                self._new_id(), Kind.DEPLOY, now, config=self.deployed, internal=True
            )
            self._log(
                Level.INFO,
                f"deploying persisted configuration {peer_text(self.deployed.id)}, "
                f"request {req.id}",
            )
            self._deploy(req, now)
            self._check_instances_ready()
            self._run_internal_events(now)
