"""What the controller's state machine asks its service to do (its outputs).

The service (:mod:`mgmt.controller.service`) executes each action in order:
:class:`Publish` an event to the clients, :class:`SendToAgent`, :class:`Dial` /
:class:`StopDialing` an instance that listens, :class:`Persist` the configurations and
:class:`Log` a line.

This module is pure: no I/O, no asyncio.
"""

from __future__ import annotations

from dataclasses import dataclass

from mgmt.broker.directions import ControllerToAgent, ControllerToClient
from mgmt.broker.records import Configuration
from mgmt.core.logaction import Log


@dataclass(frozen=True, slots=True)
class Publish:
    """Send an event to the clients (topic ``zeek/management/controller``)."""

    event: ControllerToClient


@dataclass(frozen=True, slots=True)
class SendToAgent:
    """Send an event to the agent serving ``instance`` (dropped if it is not connected)."""

    instance: str
    event: ControllerToAgent


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
    :meth:`~mgmt.controller.state.ControllerState.persisted` before giving the machine
    any other input."""

    staged: Configuration | None
    ready: Configuration | None
    deployed: Configuration | None


Action = Publish | SendToAgent | Dial | StopDialing | Persist | Log
