"""What the controller's state machine asks its service to do (its outputs).

The service (:mod:`mgmt.controller.service`) executes each action in order:
:class:`Publish` an event to the clients, :class:`SendToAgent`, :class:`Dial` /
:class:`StopDialing` an instance that listens, :class:`Persist` the configurations and
:class:`Log` a line. The state machine and its parts queue them in one :class:`Outbox`.

This module is pure: no I/O, no asyncio.
"""

from __future__ import annotations

from mgmt.broker.directions import ControllerToAgent, ControllerToClient
from mgmt.broker.records import Configuration
from mgmt.core.frozen import frozen
from mgmt.core.logaction import Level, Log


@frozen
class Publish:
    """Send an event to the clients (topic ``zeek/management/controller``)."""

    event: ControllerToClient


@frozen
class SendToAgent:
    """Send an event to the agent serving ``instance`` (dropped if it is not connected)."""

    instance: str
    event: ControllerToAgent


@frozen
class Dial:
    """Keep a connection to an agent that listens (``Instance.listen_port`` is set)."""

    instance: str
    host: str
    port: int


@frozen
class StopDialing:
    """Stop dialing an instance that is no longer part of the deployment."""

    instance: str


@frozen
class Persist:
    """Write staged/ready/deployed configurations durably, then report the outcome with
    :meth:`~mgmt.controller.state.ControllerState.persisted` before giving the machine
    any other input."""

    staged: Configuration | None
    ready: Configuration | None
    deployed: Configuration | None


Action = Publish | SendToAgent | Dial | StopDialing | Persist | Log


class Outbox:
    """The actions produced since they were last drained, in order."""

    def __init__(self) -> None:
        #: The actions queued, oldest first (one list for the outbox's whole life).
        self.queued: list[Action] = []

    def emit(self, action: Action) -> None:
        """Queue an action."""
        self.queued.append(action)

    def log(self, level: Level, message: str) -> None:
        """Queue a log line."""
        self.queued.append(Log(level, message))

    def publish(self, event: ControllerToClient) -> None:
        """Queue an event for the clients."""
        self.queued.append(Publish(event))

    def send(self, instance: str, event: ControllerToAgent) -> None:
        """Queue an event for the agent serving ``instance``."""
        self.queued.append(SendToAgent(instance, event))

    def drain(self) -> list[Action]:
        """The queued actions, in order; the outbox is empty afterwards."""
        out = self.queued.copy()
        self.queued.clear()
        return out
