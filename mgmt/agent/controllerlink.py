"""The agent's link to its controller: its own port, and the controller it dials.

By default the agent dials the controller's agent port and keeps redialing with back-off
forever; it also serves its own port (default 2151) for a controller that dials it.
Whenever a controller connection opens, the agent says ``notify_agent_hello``. Events
go to every open controller connection. Like Zeek's agent (subscribed to
``zeek/management/agent/<name>``), the agent handles events only on its own topic,
exactly: not even ``<topic>x``, which Broker's prefix match would deliver (a request for
agent ``<name>x``, Q13); others are ignored (counted, logged at debug).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from mgmt.broker import events as ev
from mgmt.broker.directions import CONTROLLER_TO_AGENT, AgentToController, ControllerToAgent
from mgmt.broker.session import EventReceived
from mgmt.core.topics import agent_topic
from mgmt.daemon.driver import cancel_and_wait
from mgmt.exceptions import ListenError
from mgmt.settings.model import AgentSettings
from mgmt.settings.tls import AgentTLS
from mgmt.transport import Connection, ReconnectingClient, Server

log = logging.getLogger("mgmt.agent")


class ControllerLink:
    """The agent's controller connections (see the module docstring).

    Args:
        settings: the agent's settings (name, port, controller, bounds).
        tls: the TLS contexts for our port and for dialing.
        on_event: called with each controller event on our topic.
        hello: the ``notify_agent_hello`` to send when a connection opens.
    """

    def __init__(
        self,
        settings: AgentSettings,
        tls: AgentTLS,
        *,
        on_event: Callable[[ControllerToAgent], None],
        hello: Callable[[], ev.NotifyAgentHello],
    ) -> None:
        self.settings = settings
        self.tls = tls
        self._on_event = on_event
        self._hello = hello
        #: This agent's topic, ``zeek/management/agent/<name>``.
        self.topic = agent_topic(settings.name)
        self.server: Server | None = None
        self.client: ReconnectingClient | None = None
        self._dialer: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        """Our port in effect: the one bound, else the configured one (0: none)."""
        return self.server.port if self.server is not None else self.settings.listen_port

    async def listen(self) -> None:
        """Bind our port, unless it is 0 (Zeek's ``0/unknown``: do not listen).

        Raises:
            ListenError: the port cannot be bound.
        """
        cfg = self.settings
        if not cfg.listen_port:
            return
        self.server = Server(
            cfg.listen_address,
            cfg.listen_port,
            on_event=self._received,
            on_open=self._opened,
            accept=lambda e: isinstance(e, CONTROLLER_TO_AGENT),
            topics=self._handles_topic,
            **cfg.server_limits(),
            ping_interval=20.0,
            ssl=self.tls.server_ssl,
        )
        try:
            await self.server.start()
        except OSError as exc:
            raise ListenError(
                f"{cfg.listen_address}:{cfg.listen_port}", exc.strerror or str(exc)
            ) from exc

    def dial(self) -> None:
        """Start dialing the controller, if we dial one (forever, until :meth:`close`)."""
        cfg = self.settings
        if cfg.controller is None or self._dialer is not None:
            return
        scheme = "ws" if self.tls.dial_ssl is None else "wss"
        self.client = ReconnectingClient(
            f"{scheme}://{cfg.controller}/v1/messages/json",
            (self.topic,),
            on_event=self._received,
            on_open=self._opened,
            accept=lambda e: isinstance(e, CONTROLLER_TO_AGENT),
            handles=self._handles_topic,
            max_size=cfg.max_message_size,
            max_send_buffer=cfg.max_send_buffer,
            ssl=self.tls.dial_ssl,
        )
        self._dialer = asyncio.get_running_loop().create_task(
            self.client.run(), name="dial-controller"
        )

    def describe(self) -> str:
        """Where we listen and whom we dial, for the log."""
        listening = (
            "no listening port"
            if self.server is None
            else f"listening on {self.settings.listen_address}:{self.server.port}"
        )
        controller = self.settings.controller
        return f"{listening}, controller {'dials us' if controller is None else controller}"

    def send(self, event: AgentToController) -> None:
        """Send ``event`` on our topic to every open controller connection."""
        sent = 0
        if self.client is not None and self.client.send_event(self.topic, event):
            sent += 1
        if self.server is not None:
            sent += self.server.publish(self.topic, event)
        if not sent:
            log.debug("no controller connected, dropping %s", type(event).__name__)

    async def close(self) -> None:
        """Stop accepting, close the connections to our port, stop dialing."""
        if self.server is not None:
            await self.server.close()
        if self._dialer is not None:
            await cancel_and_wait((self._dialer,))

    def _opened(self, conn: Connection) -> None:
        conn.send_event(self.topic, self._hello())

    def _handles_topic(self, topic: str) -> bool:
        return topic == self.topic

    def _received(self, conn: Connection, received: EventReceived) -> None:
        self._on_event(received.event)
