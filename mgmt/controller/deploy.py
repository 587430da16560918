"""Deployments: a client's deploy_request, and the controller's own redeployments.

Rules / theory of operation
---------------------------
:class:`Deployments` runs what Zeek's controller does around ``g_config_reqid_pending``
(behaviour.md §4.6, §4.7): one deployment at a time; it makes the configuration's
instances the needed ones (:class:`~mgmt.controller.instances.Instances`), and once every
needed instance is ready (``notify_agents_ready``) sends each an
``agent_deploy_request`` as a child request. When all children answered, the
deployment is recorded as DEPLOYED and the client gets the agents' results plus the
configuration id.

Persistence (:mod:`mgmt.controller.configs`): a deploy first writes the unchanged slots,
so a state directory that cannot be written fails the deploy before the cluster changes;
should the final write fail anyway (the disk filled up meanwhile), the deploy answers
with the agents' results plus that error, and DEPLOYED stays the previous configuration:
that is the one get-config ``--deployed`` shows and the one redeployed at start-up and
when agents reconnect (an *internal* deployment, answered to nobody).

Q6 (behaviour.md §9): an internal redeploy computes instance changes from the
configuration it deploys.

This module is pure: no I/O, no asyncio.
"""

from __future__ import annotations

from collections.abc import Callable

from mgmt.broker import events as ev
from mgmt.broker.records import Configuration, Result
from mgmt.controller.actions import Outbox
from mgmt.controller.configs import PERSIST_FAILED, Configs
from mgmt.controller.instances import Instances
from mgmt.controller.requests import ControllerRequest, ControllerRequests, Kind
from mgmt.core import launchable
from mgmt.core.logaction import Level
from mgmt.core.peertext import peer_text


class Deployments:
    """The deployment in progress, if any (see the module docstring).

    Args:
        out: where the actions go.
        requests: the controller's request table (deployments and their children).
        configs: the persisted configurations.
        agents: the controller's instances.
    """

    def __init__(
        self, out: Outbox, requests: ControllerRequests, configs: Configs, agents: Instances
    ) -> None:
        self._out = out
        self._requests = requests
        self._configs = configs
        self._agents = agents
        #: The id of the deployment in progress, "" if none (``g_config_reqid_pending``).
        self.pending = ""

    def request(self, reqid: str, now: float) -> None:
        """A client's ``deploy_request``: deploy the READY configuration."""
        self._out.log(Level.INFO, f"rx deploy_request {peer_text(reqid)}")
        config = self._configs.ready
        if config is None:
            self._refuse(reqid, "no configuration available to deploy")
            return
        if self.pending:
            self._refuse(reqid, f"earlier deployment {self.pending} still pending")
            return
        # Staging checked this, but a configuration restored from an older version's
        # state file may hold what no agent can launch: refuse it the same way.
        problems = launchable.problems(config)
        if problems:
            for problem in problems:
                self._out.log(Level.INFO, f"not deploying {peer_text(config.id)}: {problem.text}")
            results = tuple(Result(reqid, False, error=p.text) for p in problems)
            self._out.publish(ev.DeployResponse(reqid, results))
            return

        def writable(error: str | None, now: float) -> None:
            if error is not None:
                self._out.log(Level.INFO, f"deployment {peer_text(reqid)} not started: {error}")
                self._refuse(reqid, f"{PERSIST_FAILED}: {error}")
                return
            self._run(self._requests.deploy(reqid, config, now), now)
            self._agents.check_ready()

        # Writing the unchanged slots proves the state can be written before any agent
        # is told anything: a full or read-only disk fails the deploy with nothing changed.
        self._configs.persist(self._configs.slots(), writable)

    def _refuse(self, reqid: str, error: str) -> None:
        self._out.publish(ev.DeployResponse(reqid, (Result(reqid, False, error=error),)))

    def redeploy(self, now: float, says: Callable[[str], str]) -> ControllerRequest | None:
        """Start an internal deployment of the DEPLOYED configuration, if there is one,
        logging ``says(<request id>)`` first; its request."""
        deployed = self._configs.deployed
        if deployed is None:
            return None
        req = self._requests.deploy(self._requests.new_id(), deployed, now, internal=True)
        self._out.log(Level.INFO, says(req.id))
        self._run(req, now)
        return req

    def _run(self, req: ControllerRequest, now: float) -> None:
        """Make ``req``'s configuration the pending one and its instances the needed ones."""
        assert req.config is not None
        config = req.config
        self.pending = req.id
        self._agents.deploy({i.name: i for i in config.instances}, now)
        if not config.instances:
            self.done(req)

    def agents_ready(self, now: float) -> None:
        """Every needed instance is ready: send the pending deployment to each (with none
        pending, redeploy DEPLOYED first)."""
        if not self.pending:
            internal = self.redeploy(
                now, lambda rid: f"no deployment in progress, triggering via {rid}"
            )
            if internal is not None and not self._agents.instances:
                return
        pending = self._requests.get(self.pending)
        if pending is None or pending.kind is not Kind.DEPLOY or pending.config is None:
            return
        for name in sorted(self._agents.instances):
            if name in self._agents.ready:
                cid = self._requests.child(pending, name, now)
                self._out.send(name, ev.AgentDeployRequest(cid, pending.config, False))

    def done(self, req: ControllerRequest) -> None:
        """Every agent answered ``req``: record the configuration as DEPLOYED, answer."""
        config = req.config
        assert config is not None
        self.pending = ""
        self._requests.finish(req.id)

        def recorded(error: str | None) -> None:
            if error is None:
                self._log_outcome(req, config)
                req.results.append(Result(req.id, True, data=config.id))
            else:
                req.results.append(Result(req.id, False, error=f"{PERSIST_FAILED}: {error}"))
                self._out.log(
                    Level.WARNING,
                    f"deployment {peer_text(req.id)} of configuration "
                    f"{peer_text(config.id)} not recorded: {error}",
                )
            if not req.internal:
                self._out.publish(ev.DeployResponse(req.id, tuple(req.results)))

        configs = self._configs
        if config is configs.deployed:
            recorded(None)  # a redeployment: nothing new to write
        else:
            configs.persist(
                (configs.staged, configs.ready, config), lambda error, _now: recorded(error)
            )

    def timed_out(self, req: ControllerRequest, timeout: Result) -> None:
        """``req`` expired (the table dropped it): answer with what arrived, and why."""
        if self.pending == req.id:
            self.pending = ""
        missing = sorted(set(self._agents.instances) - self._agents.ready)
        if missing:
            self._out.log(
                Level.WARNING,
                f"deployment {peer_text(req.id)} timed out waiting for "
                f"instances: {', '.join(peer_text(m) for m in missing)}",
            )
        req.results.append(timeout)
        if not req.internal:
            self._out.publish(self._requests.answer(req))

    def _log_outcome(self, req: ControllerRequest, config: Configuration) -> None:
        """INFO when every node started; WARNING naming what failed otherwise (the
        response still carries the configuration id, as Zeek's does)."""
        failed = sorted(r.node for r in req.results if not r.success and r.node)
        errors = [r.error for r in req.results if not r.success and not r.node]
        if not failed and not errors:
            self._out.log(
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
        self._out.log(
            Level.WARNING,
            f"deployment {peer_text(req.id)} of configuration {peer_text(config.id)}: "
            + ", ".join(parts),
        )
