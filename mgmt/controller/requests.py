"""The controller's requests: their kinds, how each is answered, and their deadlines.

Rules / theory of operation
---------------------------
Every request the controller keeps waits in one :class:`ControllerRequests` table (a
:class:`~mgmt.core.requests.RequestTable`, Zeek's ``Management::Request::g_requests``):
the clients' requests, the *child* request sent to each agent on a client request's
behalf (``Kind.CHILD``: its answer goes into its parent's results), and the welcomes
sent to agents. Each kind answered with a result vector names its response event in
:data:`RESPONSES` (a fan-out extension request names its own, from its row in
:mod:`mgmt.controller.fanout`).

Deadlines: a request expires one request timeout after it arrived, except

* a deployment, and each of its children: one request timeout per start group its nodes
  form (:func:`~mgmt.core.startorder.group_count`), as agents start nodes group by group;
* a check: one request timeout per node of its busiest instance, as an agent checks its
  nodes one ``zeek -a`` after the other (or a few at once).

Requests naming nodes (get_id_value, restart, the extension requests of scope
``NODES``) answer each name not in the deployment with ``unknown cluster node``
(:func:`known_nodes`).

This module is pure: no I/O, no asyncio.
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Callable
from typing import TypeAlias

from mgmt.broker import events as ev
from mgmt.broker.data import BrokerSet
from mgmt.broker.directions import ControllerToClient
from mgmt.broker.records import Configuration, Result
from mgmt.core import startorder
from mgmt.core.requests import Request, RequestTable, Respond


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


class ControllerRequests(RequestTable[Kind, ControllerToClient]):
    """The controller's outstanding requests (see the module docstring).

    Args:
        timeout: the request timeout (seconds).
        new_id: the id generator for the requests the controller sends itself.
    """

    def __init__(self, timeout: float, new_id: Callable[[], str]) -> None:
        super().__init__(timeout)
        self.new_id = new_id
        #: The last deployed configuration and its start-group count: asked once per
        #: child of a deployment (200 agents x 4,000 nodes walked every role 200 times).
        self._last_groups: tuple[Configuration, int] | None = None

    def create(
        self,
        reqid: str,
        kind: Kind,
        now: float,
        response: Respond[ControllerToClient] | None = None,
    ) -> ControllerRequest:
        """A new request, answered with its kind's response event unless ``response``
        names another."""
        return super().create(reqid, kind, now, response or RESPONSES.get(kind))

    def deploy(
        self, reqid: str, config: Configuration, now: float, *, internal: bool = False
    ) -> ControllerRequest:
        """A new deployment of ``config``; ``internal``: the controller's own (at
        start-up, when agents return), answered to nobody."""
        req = self.create(reqid, Kind.DEPLOY, now)
        req.config, req.internal = config, internal
        req.deadline = now + self.deploy_timeout(config)
        return req

    def deploy_timeout(self, config: Configuration) -> float:
        """A deployment's time: one request timeout per start group its nodes form."""
        last = self._last_groups
        if last is None or last[0] is not config:
            groups = startorder.group_count(n.role for n in config.nodes)
            last = self._last_groups = (config, groups)
        return self.timeout * last[1]

    def child(self, parent: ControllerRequest, instance: str, now: float) -> str:
        """A new request to ``instance`` on behalf of ``parent``; returns its id."""
        cid = self.new_id()
        child = self.create(cid, Kind.CHILD, now)
        child.parent_id, child.instance = parent.id, instance
        if parent.kind is Kind.DEPLOY and parent.config is not None:
            child.deadline = now + self.deploy_timeout(parent.config)
        parent.children[cid] = instance
        return cid

    def extend_check(self, reqid: str, config: Configuration, now: float) -> None:
        """Give a check (and its children) one request timeout per node of the busiest
        instance of ``config``."""
        req = self.get(reqid)
        if req is None:
            return
        per_instance = Counter(n.instance for n in config.nodes)
        deadline = now + self.timeout * max([1, *per_instance.values()])
        for rid in (reqid, *req.children):
            if (r := self.get(rid)) is not None:
                r.deadline = deadline

    def answer(self, req: ControllerRequest) -> ControllerToClient:
        """Forget ``req``; its response event with its results so far."""
        self.finish(req.id)
        assert req.response is not None
        return req.response(req.id, tuple(req.results))


# --------------------------------------------------------------------------------------
# Requests about nodes

#: The error of a request about nodes when nothing is deployed (Zeek's restart).
NO_DEPLOYMENT = "no active cluster deployment"


def known_nodes(
    req: ControllerRequest, nodes: BrokerSet, deployed: Configuration | None
) -> BrokerSet:
    """The ``deployed`` nodes among ``nodes``; each other one gets ``unknown cluster
    node`` in ``req``'s results (Zeek's get_id_value and restart)."""
    known = {n.name for n in deployed.nodes} if deployed is not None else set()
    for name in sorted(nodes):
        if name not in known:
            req.results.append(Result(req.id, False, error="unknown cluster node", node=name))
    return BrokerSet(n for n in sorted(nodes) if n in known)
