"""What the agent's state machine learns from the supervisor and asks its service to do.

Inputs (:class:`NodeView`, :class:`ManagementProcess`) are what
:meth:`~mgmt.agent.state.AgentState.nodes_changed` and
:meth:`~mgmt.agent.state.AgentState.management_changed` take. The outputs, each an
:data:`Action`, the service (:mod:`mgmt.agent.service`) executes in order: :class:`Send`
an event to the controller, :class:`Launch` a configuration's local nodes,
:class:`RestartNodes`, :class:`Dispatch` to nodes, :class:`RunExtension`,
:class:`PersistConfig` and :class:`Log` a line.

This module is pure: no I/O, no asyncio.
"""

from __future__ import annotations

from mgmt.agent.extensions import ExtensionRequest
from mgmt.broker.directions import AgentToController
from mgmt.broker.records import Configuration, NodeOutputs, Role, State
from mgmt.core.frozen import frozen
from mgmt.core.logaction import Log

# --------------------------------------------------------------------------------------
# Inputs from the supervisor


@frozen
class NodeView:
    """What the supervisor knows about one local node."""

    name: str
    state: State
    pid: int | None = None
    outputs: NodeOutputs | None = None


@frozen
class ManagementProcess:
    """A management process shown in get-nodes (the controller under ``zeek-mgmt run``)."""

    name: str
    role: Role
    pid: int | None


# --------------------------------------------------------------------------------------
# Actions


@frozen
class Send:
    """Send an event to the controller on this agent's topic."""

    event: AgentToController


@frozen
class Launch:
    """Run exactly the local nodes of ``config`` (stopping any others)."""

    config: Configuration


@frozen
class RestartNodes:
    """Restart these nodes; report with :meth:`~mgmt.agent.state.AgentState.restart_done`."""

    reqid: str
    nodes: tuple[str, ...]


@frozen
class Dispatch:
    """Ask these running nodes over the node channel; report with
    :meth:`~mgmt.agent.state.AgentState.dispatch_done` (one Result per node)."""

    reqid: str
    action: tuple[str, ...]
    nodes: tuple[str, ...]


@frozen
class RunExtension:
    """Answer an extension request (:mod:`mgmt.agent.extensions`); report the results
    with :meth:`~mgmt.agent.state.AgentState.extension_done`."""

    reqid: str
    event: ExtensionRequest


@frozen
class PersistConfig:
    """Remember the configuration this agent runs (to recognise it after a restart); a
    failure is reported with :meth:`~mgmt.agent.state.AgentState.persisted`."""

    config: Configuration


Action = Send | Launch | RestartNodes | Dispatch | RunExtension | PersistConfig | Log
