"""Extension requests the controller answers by asking agents: one row per request.

Rules / theory of operation
---------------------------
Most of zeek-mgmt's extension requests (README, "API") are "ask the agents, gather their
results". None of them needs code of its own in the controller's state machine: a
:class:`FanOut` row says

* ``response`` -- the event that answers the client, ``(reqid, results)``;
* ``agent_request`` -- the agent event that carries the request, with the same
  arguments as the client's (the child request's id as ``reqid``);
* ``scope`` -- which agents it concerns (:class:`Scope`);
* ``local`` -- optionally, the controller's own results, which come first.

The state machine (``Kind.FANOUT`` in :mod:`mgmt.controller.state`) sends one child
request per agent concerned, waits for each with the request timeout, and answers with
the concatenated results: its own, then each agent's in the order they answered, then
one ``request timed out`` Result (``instance`` set) per agent that did not answer. An
instance the request concerns that is not connected gets ``instance not connected`` at
once. A feature adds its events to :mod:`mgmt.broker.extevents` and
:mod:`mgmt.broker.directions`, a row here, and its client request class to the
``_fan_out`` case of ``ControllerState.receive_client``.

This module is pure: no I/O, no asyncio.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeAlias

from mgmt.broker import extevents as xev
from mgmt.broker.data import BrokerSet
from mgmt.broker.directions import ClientExtensionRequest, ControllerToAgent, ControllerToClient
from mgmt.broker.records import Configuration, Instance, Result
from mgmt.controller.requests import NO_DEPLOYMENT, ControllerRequest, known_nodes
from mgmt.core.frozen import frozen
from mgmt.core.requests import Respond

if TYPE_CHECKING:
    from mgmt.controller.state import ControllerState


#: The client requests answered by a fan-out (each has a row in :data:`FANOUTS`).
FanOutRequest: TypeAlias = ClientExtensionRequest


class Scope(enum.Enum):
    """Which agents a fan-out request concerns."""

    #: Every agent connected now (that said hello), deployed or not.
    CONNECTED = "connected"
    #: The deployment's instances hosting the nodes the request's ``nodes`` argument
    #: names (every instance of the deployment when it names none). Unknown node names
    #: get ``unknown cluster node``; without a deployment: ``no active cluster deployment``.
    NODES = "nodes"
    #: The instances hosting nodes of the request's ``config`` argument.
    CONFIG = "config"


@frozen
class FanOut:
    """How the controller answers one extension request (see the module docstring)."""

    response: Respond[ControllerToClient]
    agent_request: Callable[..., ControllerToAgent]
    scope: Scope = Scope.CONNECTED
    local: Callable[[ControllerState, str], tuple[Result, ...]] | None = None


def targets(
    row: FanOut,
    req: ControllerRequest,
    args: dict[str, object],
    known: Mapping[str, Instance],
    deployed: Configuration | None,
    instances: Mapping[str, Instance],
) -> list[str]:
    """The instances a fan-out concerns, in name order; errors go to ``req``.

    Args:
        row: the request's row.
        req: the request (its results so far).
        args: the request's arguments; a ``NODES`` request's ``nodes`` become the
            deployed ones among them.
        known: the connected agents.
        deployed, instances: the deployed configuration and the instances it needs.
    """
    if row.scope is Scope.CONNECTED:
        if not known and row.local is None:
            req.results.append(Result(req.id, False, error="no instances connected"))
        return sorted(known)
    if row.scope is Scope.CONFIG:
        config = args["config"]
        assert isinstance(config, Configuration)
        return sorted({n.instance for n in config.nodes})
    # Scope.NODES: the deployment's instances hosting the named nodes (all if none).
    if deployed is None or not instances:
        req.results.append(Result(req.id, False, error=NO_DEPLOYMENT))
        return []
    nodes = args["nodes"]
    assert isinstance(nodes, BrokerSet)
    if not nodes:
        return sorted(instances)
    final = known_nodes(req, nodes, deployed)
    args["nodes"] = final
    hosts = {n.name: n.instance for n in deployed.nodes}
    return sorted({hosts[n] for n in final})


def controller_version(state: ControllerState, reqid: str) -> tuple[Result, ...]:
    """The controller's own ``get_version`` Result (none if its facts are not known)."""
    facts = state.facts
    if facts is None:
        return ()
    return (xev.payload_result(reqid, facts.version_payload(None), instance=facts.name),)


def controller_top(state: ControllerState, reqid: str) -> tuple[Result, ...]:
    """The controller's own ``top`` Result: its process, as its probe sees it."""
    facts, probe = state.facts, state.probe
    if facts is None or probe is None:
        return ()
    entry = {"node": None, "role": facts.role, "state": "RUNNING", **probe()}
    payload = {"now": entry.pop("now", None), "processes": [entry]}
    return (xev.payload_result(reqid, payload, instance=facts.name),)


#: The fan-out extension requests, by client request class.
FANOUTS: dict[type[Any], FanOut] = {
    xev.GetVersionRequest: FanOut(
        xev.GetVersionResponse, xev.AgentGetVersionRequest, local=controller_version
    ),
    # observation (issue 12)
    xev.GetNodeInfoRequest: FanOut(xev.GetNodeInfoResponse, xev.AgentGetNodeInfoRequest),
    xev.DiagRequest: FanOut(xev.DiagResponse, xev.AgentDiagRequest, Scope.NODES),
    xev.TopRequest: FanOut(xev.TopResponse, xev.AgentTopRequest, local=controller_top),
    xev.NetstatsRequest: FanOut(xev.NetstatsResponse, xev.AgentNetstatsRequest, Scope.NODES),
    # issue 13: `zeek-mgmt df`.
    xev.GetDiskUsageRequest: FanOut(xev.GetDiskUsageResponse, xev.AgentGetDiskUsageRequest),
    # stop/start, check (issue 11)
    xev.StopNodesRequest: FanOut(
        xev.StopNodesResponse, xev.AgentStopNodesRequest, scope=Scope.NODES
    ),
    xev.StartNodesRequest: FanOut(
        xev.StartNodesResponse, xev.AgentStartNodesRequest, scope=Scope.NODES
    ),
    xev.CheckRequest: FanOut(xev.CheckResponse, xev.AgentCheckRequest, scope=Scope.CONFIG),
}
