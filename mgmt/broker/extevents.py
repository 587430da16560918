"""zeek-mgmt's extension API: events in our own namespace, ``ZeekMgmt::``.

zeek-client's v1 API (``Management::...``, :mod:`mgmt.broker.events`) stays exactly as
Zeek defines it. What it cannot carry travels in these events, registered in the same
catalogue and shaped like Zeek's (README, "API"):

* clients <-> controller: ``ZeekMgmt::Controller::API::<name>_request(reqid, ...)`` and
  ``..._response(reqid, results)`` on ``zeek/management/controller`` (zeek-client skips
  events it does not know);
* controller <-> agents: ``ZeekMgmt::Agent::API::<name>_request(reqid, ...)`` on the
  agent's topic, ``..._response(reqid, results)`` back on the same topic, as the v1
  agent events travel.

A response's ``results`` is a ``Management::ResultVec``. Extension payloads travel in
``Result.data`` as a Broker ``string`` holding a compact JSON object with a ``"v"``
(schema version) member: :func:`payload_result` writes one, :func:`payload_of` reads it
and :class:`ExtensionResult` is a Result with its payload read.
A peer that does not know an event of this namespace ignores it (a debug log line, no
Broker error): see :func:`is_extension_event`.

This module is pure: no I/O, no asyncio.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import field
from typing import Any

from mgmt.broker.events import Reqid, ReqidConfig, ReqidNodes, ReqidResults, _event
from mgmt.broker.records import Result
from mgmt.core.frozen import frozen
from mgmt.exceptions import DecodeError

#: Every extension event's name starts with this.
NAMESPACE = "ZeekMgmt::"
CONTROLLER_EXT_API = NAMESPACE + "Controller::API::"
AGENT_EXT_API = NAMESPACE + "Agent::API::"

#: The ``"v"`` of the payloads this version writes.
PAYLOAD_VERSION = 1

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode


def is_extension_event(name: str) -> bool:
    """Whether an event name is in zeek-mgmt's own namespace (unknown ones are ignored)."""
    return name.startswith(NAMESPACE)


def payload_result(
    reqid: str,
    payload: Mapping[str, Any],
    *,
    instance: str | None = None,
    node: str | None = None,
) -> Result:
    """A successful Result whose ``data`` is ``payload`` as compact JSON, with ``"v"``."""
    return Result(
        reqid, True, instance=instance, node=node, data=_dumps({"v": PAYLOAD_VERSION, **payload})
    )


def payload_of(result: Result) -> dict[str, Any]:
    """The JSON object a Result's ``data`` carries.

    Raises:
        DecodeError: ``data`` is not a string holding a JSON object.
    """
    data = result.data
    if not isinstance(data, str):
        raise DecodeError("data", "expected a string holding a JSON object")
    try:
        value = json.loads(data)
    except ValueError as exc:
        raise DecodeError("data", f"invalid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise DecodeError("data", "expected a JSON object")
    return value


@frozen
class ExtensionResult:
    """One Result of an extension response, with its JSON payload decoded.

    Attributes:
        instance, node: who answered (the controller's own Results name the controller).
        success: whether it worked, and the payload was a JSON object.
        error: why not (the Result's error, or why its payload could not be read).
        payload: the payload (a dict with ``"v"``), ``None`` on failure.
    """

    instance: str | None
    node: str | None
    success: bool
    error: str | None
    payload: dict[str, Any] | None

    @classmethod
    def from_result(cls, result: Result) -> ExtensionResult:
        """Decode one Result of an extension response."""
        if not result.success:
            return cls(result.instance, result.node, False, result.error or "failed", None)
        try:
            payload = payload_of(result)
        except DecodeError as exc:
            return cls(result.instance, result.node, False, f"invalid payload: {exc}", None)
        return cls(result.instance, result.node, True, None, payload)


# --------------------------------------------------------------------------------------
# get_version (since 0.1.0): versions and process facts of the controller and each agent.
# The controller answers with one Result for itself, then one per connected agent; the
# payload is the dict of mgmt.core.version_payload (README, "API").


@_event(CONTROLLER_EXT_API + "get_version_request")
class GetVersionRequest(Reqid): ...


@_event(CONTROLLER_EXT_API + "get_version_response")
class GetVersionResponse(ReqidResults): ...


@_event(AGENT_EXT_API + "get_version_request")
class AgentGetVersionRequest(Reqid): ...


@_event(AGENT_EXT_API + "get_version_response")
class AgentGetVersionResponse(ReqidResults): ...


# --------------------------------------------------------------------------------------
# Observation (issue 12, since 0.2.0): node_info (status), diag, top, netstats.
# node_info and top ask every connected agent (top: the controller's own processes
# first); diag and netstats the instances hosting the named nodes (all when none).
# Payloads: README, "API".


@_event(CONTROLLER_EXT_API + "get_node_info_request")
class GetNodeInfoRequest(Reqid): ...


@_event(CONTROLLER_EXT_API + "get_node_info_response")
class GetNodeInfoResponse(ReqidResults): ...


@_event(AGENT_EXT_API + "get_node_info_request")
class AgentGetNodeInfoRequest(Reqid): ...


@_event(AGENT_EXT_API + "get_node_info_response")
class AgentGetNodeInfoResponse(ReqidResults): ...


@_event(CONTROLLER_EXT_API + "diag_request")
class DiagRequest(ReqidNodes): ...


@_event(CONTROLLER_EXT_API + "diag_response")
class DiagResponse(ReqidResults): ...


@_event(AGENT_EXT_API + "diag_request")
class AgentDiagRequest(ReqidNodes): ...


@_event(AGENT_EXT_API + "diag_response")
class AgentDiagResponse(ReqidResults): ...


@_event(CONTROLLER_EXT_API + "top_request")
class TopRequest(Reqid): ...


@_event(CONTROLLER_EXT_API + "top_response")
class TopResponse(ReqidResults): ...


@_event(AGENT_EXT_API + "top_request")
class AgentTopRequest(Reqid): ...


@_event(AGENT_EXT_API + "top_response")
class AgentTopResponse(ReqidResults): ...


@_event(CONTROLLER_EXT_API + "netstats_request")
class NetstatsRequest(ReqidNodes): ...


@_event(CONTROLLER_EXT_API + "netstats_response")
class NetstatsResponse(ReqidResults): ...


@_event(AGENT_EXT_API + "netstats_request")
class AgentNetstatsRequest(ReqidNodes): ...


@_event(AGENT_EXT_API + "netstats_response")
class AgentNetstatsResponse(ReqidResults): ...


# --------------------------------------------------------------------------------------
# get_disk_usage (since 0.2.0, issue 13; `zeek-mgmt df`): the file systems of each
# connected agent's state, spool and archive directories, one Result per agent with the
# payload {"filesystems": [...]} (README, "API").


@_event(CONTROLLER_EXT_API + "get_disk_usage_request")
class GetDiskUsageRequest(Reqid): ...


@_event(CONTROLLER_EXT_API + "get_disk_usage_response")
class GetDiskUsageResponse(ReqidResults): ...


@_event(AGENT_EXT_API + "get_disk_usage_request")
class AgentGetDiskUsageRequest(Reqid): ...


@_event(AGENT_EXT_API + "get_disk_usage_response")
class AgentGetDiskUsageResponse(ReqidResults): ...


# --------------------------------------------------------------------------------------
# cluster_keys (since 0.2.0, issue 14): the ZeroMQ CURVE keys the controller keeps, sent
# to an agent right before each deploy_request, on the same connection. ``keys`` is the
# JSON of mgmt.core.curve.CurveKeys. No response: the deploy_response that follows says
# whether the deployment worked (an agent that does not know the event ignores it).


@_event(AGENT_EXT_API + "cluster_keys_request")
class AgentClusterKeysRequest:
    reqid: str
    keys: str = field(repr=False)


# --------------------------------------------------------------------------------------
# stop_nodes / start_nodes (since 0.2.0, issue 11): zeek-mgmt stop/start [NODES]. The
# nodes (all of the deployment's when empty) stop and stay stopped across agent and
# controller restarts and redeploys of an unchanged node, until started. One Result per
# node, payload {"state": <Management::State name after the request>} (README, "API").


@_event(CONTROLLER_EXT_API + "stop_nodes_request")
class StopNodesRequest(ReqidNodes): ...


@_event(CONTROLLER_EXT_API + "stop_nodes_response")
class StopNodesResponse(ReqidResults): ...


@_event(CONTROLLER_EXT_API + "start_nodes_request")
class StartNodesRequest(ReqidNodes): ...


@_event(CONTROLLER_EXT_API + "start_nodes_response")
class StartNodesResponse(ReqidResults): ...


@_event(AGENT_EXT_API + "stop_nodes_request")
class AgentStopNodesRequest(ReqidNodes): ...


@_event(AGENT_EXT_API + "stop_nodes_response")
class AgentStopNodesResponse(ReqidResults): ...


@_event(AGENT_EXT_API + "start_nodes_request")
class AgentStartNodesRequest(ReqidNodes): ...


@_event(AGENT_EXT_API + "start_nodes_response")
class AgentStartNodesResponse(ReqidResults): ...


# --------------------------------------------------------------------------------------
# check (since 0.2.0, issue 11): zeek-mgmt check [CONFIG]. Each agent runs its nodes of
# the configuration (made ready as for staging: ports, hosts) in Zeek's parse-only mode
# (zeek -a). One Result per node: payload {"check": "ok"}, or success F with Zeek's
# output as the error (README, "API").


@_event(CONTROLLER_EXT_API + "check_request")
class CheckRequest(ReqidConfig): ...


@_event(CONTROLLER_EXT_API + "check_response")
class CheckResponse(ReqidResults): ...


@_event(AGENT_EXT_API + "check_request")
class AgentCheckRequest(ReqidConfig): ...


@_event(AGENT_EXT_API + "check_response")
class AgentCheckResponse(ReqidResults): ...
