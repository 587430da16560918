"""The agent's extension requests (``ZeekMgmt::Agent::API::...``): one row per request.

Rules / theory of operation
---------------------------
A row (:class:`AgentExtension`) names the response event and, when the answer needs
nothing but the agent's state, a pure ``answer`` function: the state machine then answers
at once. A row without ``answer`` is answered by the service: the state machine records
the request (it expires with ``request timed out``) and emits
:class:`~mgmt.agent.state.RunExtension`; the service computes the results (reading
``/proc``, running a program, stopping nodes, ...) and reports them with
:meth:`~mgmt.agent.state.AgentState.extension_done`. Its handlers are in
:mod:`mgmt.agent.extactions`.

A feature adds its events to :mod:`mgmt.broker.extevents`, a row here, its request class
to :data:`mgmt.broker.directions.AgentExtensionRequest` and to the extension case of
``AgentState.receive``, and (for a row without ``answer``) a handler in
:mod:`mgmt.agent.extactions`.

This module is pure: no I/O, no asyncio.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeAlias

from mgmt.broker import extevents as xev
from mgmt.broker.directions import AgentExtensionRequest, AgentToController
from mgmt.broker.records import Result
from mgmt.core.frozen import frozen
from mgmt.core.requests import Respond

if TYPE_CHECKING:
    from mgmt.agent.state import AgentState

#: The extension requests an agent answers (each has a row in :data:`EXTENSIONS`).
ExtensionRequest: TypeAlias = AgentExtensionRequest


@frozen
class AgentExtension:
    """How the agent answers one extension request (see the module docstring)."""

    response: Respond[AgentToController]
    #: The results from the agent's state alone; ``None``: the service answers.
    answer: Callable[[AgentState, Any], tuple[Result, ...]] | None = None


#: The extension requests, by request class.
EXTENSIONS: dict[type[Any], AgentExtension] = {
    # The Zeek version needs running `zeek --version` once: the service answers.
    xev.AgentGetVersionRequest: AgentExtension(xev.AgentGetVersionResponse),
    # observation (issue 12): the supervisor's records, crash directories, /proc
    xev.AgentGetNodeInfoRequest: AgentExtension(xev.AgentGetNodeInfoResponse),
    xev.AgentDiagRequest: AgentExtension(xev.AgentDiagResponse),
    xev.AgentTopRequest: AgentExtension(xev.AgentTopResponse),
    xev.AgentNetstatsRequest: AgentExtension(xev.AgentNetstatsResponse),
    # issue 13, `zeek-mgmt df`: statvfs of the agent's directories (the service answers).
    xev.AgentGetDiskUsageRequest: AgentExtension(xev.AgentGetDiskUsageResponse),
    # stop/start (issue 11): the service stops or starts the nodes and waits for them.
    xev.AgentStopNodesRequest: AgentExtension(xev.AgentStopNodesResponse),
    xev.AgentStartNodesRequest: AgentExtension(xev.AgentStartNodesResponse),
    # check (issue 11): the service runs zeek -a for each node (mgmt.agent.configcheck).
    xev.AgentCheckRequest: AgentExtension(xev.AgentCheckResponse),
}
