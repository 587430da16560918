"""Which events travel which way: the Management API per direction, v1 and extensions.

Each direction is a union type, so that the state machines ``match`` on it exhaustively
(``typing.assert_never``), and a tuple of its classes for the ports' ``accept`` filters
(an event of another direction is refused with ``failed to create Zeek event``).

This module is pure: no I/O, no asyncio.
"""

from __future__ import annotations

from typing import TypeAlias, get_args

from mgmt.broker import events as ev
from mgmt.broker import extevents as xev

#: The extension requests a client sends (zeek-mgmt's own, README "API"); the
#: controller answers each by asking the agents (:mod:`mgmt.controller.fanout`).
ClientExtensionRequest: TypeAlias = (
    xev.GetVersionRequest
    # observation (issue 12)
    | xev.GetNodeInfoRequest
    | xev.DiagRequest
    | xev.TopRequest
    | xev.NetstatsRequest
    | xev.GetDiskUsageRequest  # issue 13
    # stop/start, check (issue 11)
    | xev.StopNodesRequest
    | xev.StartNodesRequest
    | xev.CheckRequest
)

#: The extension requests the controller passes on to agents, one per
#: :data:`ClientExtensionRequest` (:mod:`mgmt.agent.extensions`).
AgentExtensionRequest: TypeAlias = (
    xev.AgentGetVersionRequest
    # observation (issue 12)
    | xev.AgentGetNodeInfoRequest
    | xev.AgentDiagRequest
    | xev.AgentTopRequest
    | xev.AgentNetstatsRequest
    | xev.AgentGetDiskUsageRequest  # issue 13
    # stop/start, check (issue 11)
    | xev.AgentStopNodesRequest
    | xev.AgentStartNodesRequest
    | xev.AgentCheckRequest
)

#: Clients -> controller (the controller's client port accepts only these).
ClientToController: TypeAlias = (
    ev.GetInstancesRequest
    | ev.StageConfigurationRequest
    | ev.GetConfigurationRequest
    | ev.DeployRequest
    | ev.GetNodesRequest
    | ev.GetIdValueRequest
    | ev.RestartRequest
    | ev.TestTimeoutRequest
    | ClientExtensionRequest
)

#: Controller -> clients (published on the controller's topic).
ControllerToClient: TypeAlias = (
    ev.GetInstancesResponse
    | ev.StageConfigurationResponse
    | ev.GetConfigurationResponse
    | ev.DeployResponse
    | ev.GetNodesResponse
    | ev.GetIdValueResponse
    | ev.RestartResponse
    | ev.TestTimeoutResponse
    | xev.GetVersionResponse
    # observation (issue 12)
    | xev.GetNodeInfoResponse
    | xev.DiagResponse
    | xev.TopResponse
    | xev.NetstatsResponse
    | xev.GetDiskUsageResponse  # issue 13
    # stop/start, check (issue 11)
    | xev.StopNodesResponse
    | xev.StartNodesResponse
    | xev.CheckResponse
)

#: Controller -> agents (an agent accepts only these).
ControllerToAgent: TypeAlias = (
    ev.AgentDeployRequest
    | ev.AgentGetNodesRequest
    | ev.AgentNodeDispatchRequest
    | ev.AgentWelcomeRequest
    | ev.AgentStandbyRequest
    | ev.AgentRestartRequest
    | AgentExtensionRequest
    # cluster backends (issue 14)
    | xev.AgentClusterKeysRequest
)

#: Agents -> controller (the controller's agent port accepts only these).
AgentToController: TypeAlias = (
    ev.AgentDeployResponse
    | ev.AgentGetNodesResponse
    | ev.AgentNodeDispatchResponse
    | ev.AgentWelcomeResponse
    | ev.AgentStandbyResponse
    | ev.AgentRestartResponse
    | ev.NotifyAgentHello
    | ev.NotifyChange
    | ev.NotifyError
    | ev.NotifyLog
    | xev.AgentGetVersionResponse
    # observation (issue 12)
    | xev.AgentGetNodeInfoResponse
    | xev.AgentDiagResponse
    | xev.AgentTopResponse
    | xev.AgentNetstatsResponse
    | xev.AgentGetDiskUsageResponse  # issue 13
    # stop/start, check (issue 11)
    | xev.AgentStopNodesResponse
    | xev.AgentStartNodesResponse
    | xev.AgentCheckResponse
)

#: The node channel: agent -> node and node -> agent.
AgentToNode: TypeAlias = ev.NodeDispatchRequest
NodeToAgent: TypeAlias = ev.NodeDispatchResponse

CLIENT_TO_CONTROLLER: tuple[type, ...] = get_args(ClientToController)
CONTROLLER_TO_CLIENT: tuple[type, ...] = get_args(ControllerToClient)
CONTROLLER_TO_AGENT: tuple[type, ...] = get_args(ControllerToAgent)
AGENT_TO_CONTROLLER: tuple[type, ...] = get_args(AgentToController)
