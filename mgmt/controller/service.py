"""The controller daemon: :class:`~mgmt.controller.state.ControllerState` wired to sockets.

Theory of operation
-------------------
Two WebSocket servers speak the same Broker JSON protocol with different roles:

* the **client port** (default 2149) accepts only controller API requests; responses are
  published on ``zeek/management/controller`` to every subscribed client and client
  messages are relayed to the other clients, as Zeek's hub does (so ``zeek-client
  monitor`` sees traffic). No server pings: zeek-client counts any frame as activity.
* the **agent port** (default 2150) accepts only agent API events. An agent connection is
  bound to an instance name by its ``notify_agent_hello``.

Like Zeek's controller, which subscribes to ``zeek/management/controller`` and
``zeek/management/agent``, each port handles events only on its API's topic prefix (client
requests on ``zeek/management/controller...``, agent events on
``zeek/management/agent...``); events on other topics are ignored (counted, logged at
debug). Both ports bound what one peer may cost (connections, send buffer, handshake
time: :mod:`mgmt.transport.limits`).

Instances whose configuration names ``host:port`` are dialed instead, by a
:class:`~mgmt.transport.ReconnectingClient` each, forever, with back-off.

Every input is handed to the pure state machine, then its actions are executed in order:
:class:`~mgmt.controller.state.Persist` writes ``controller.toml`` durably and reports the
outcome straight back (:meth:`~mgmt.controller.state.ControllerState.persisted`); only a
successful write lets the request that changed the configurations succeed, so an
acknowledged stage or deploy survives ``kill -9``, and one that could not be written
(disk full, read-only, out of file descriptors) is answered with an error and changes
nothing. One timer task calls ``tick()`` at the state's next deadline.

Start-up, in this order, so that a second controller on the same state directory or a
port in use changes nothing: take the state directory's controller lock
(:mod:`mgmt.persist.lock`), remove temporary files that a killed write left, read
``controller.toml``, bind both ports, and only then redeploy the persisted DEPLOYED.

Shutdown (:meth:`ControllerService.request_shutdown`, SIGTERM, SIGINT) follows one path:
stop accepting, close peers (1001), stop dialers and the timer, in that order.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl as ssl_module
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import assert_never

from mgmt.broker import events as ev
from mgmt.broker.deployrequest import DeployRequestEncoder
from mgmt.broker.directions import AGENT_TO_CONTROLLER, CLIENT_TO_CONTROLLER
from mgmt.broker.session import EventReceived, prefix_filter
from mgmt.controller import state as cs
from mgmt.core.peertext import peer_text
from mgmt.core.topics import AGENT_TOPIC_PREFIX, CONTROLLER_TOPIC, agent_topic
from mgmt.core.version import ProcessFacts
from mgmt.daemon.driver import MachineDriver, cancel_and_wait
from mgmt.exceptions import ListenError, StateStoreError
from mgmt.persist.controllerstore import ConfigStore, SavedConfigs
from mgmt.persist.lock import InstanceLock
from mgmt.persist.statefile import remove_stale_temporaries
from mgmt.transport import Connection, ReconnectingClient, Server
from mgmt.transport.limits import (
    DEFAULT_HANDSHAKE_TIMEOUT,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_SEND_BUFFER,
    DEFAULT_MAX_SIZE,
)

log = logging.getLogger("mgmt.controller")

_CLIENT_EVENTS = CLIENT_TO_CONTROLLER
_AGENT_EVENTS = AGENT_TO_CONTROLLER


def _tls_mode(ctx: ssl_module.SSLContext | None) -> str:
    """How a port serves, for the log: plaintext, TLS or mutual TLS."""
    if ctx is None:
        return "plaintext"
    if ctx.verify_mode is ssl_module.CERT_REQUIRED:
        return "TLS, client certificates required"
    return "TLS"


@dataclass(frozen=True, slots=True)
class ControllerConfig:
    """What the controller daemon needs to run (built from settings by ``main``)."""

    name: str
    state_dir: Path
    client_address: str = "0.0.0.0"
    #: The client port; ``None`` = do not listen, 0 = any free port (tests).
    client_port: int | None = 2149
    agent_address: str = "0.0.0.0"
    #: The agent port; ``None`` = do not listen, 0 = any free port (tests).
    agent_port: int | None = 2150
    options: cs.ControllerOptions = field(default_factory=cs.ControllerOptions)
    max_message_size: int = DEFAULT_MAX_SIZE
    #: Bytes that may wait to be sent to one peer before it is disconnected.
    max_send_buffer: int = DEFAULT_MAX_SEND_BUFFER
    #: Open connections per port; more are refused.
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    #: Seconds a new connection has for each of TLS, HTTP upgrade and subscriptions.
    handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT
    client_ssl: ssl_module.SSLContext | None = None
    agent_ssl: ssl_module.SSLContext | None = None
    dial_ssl: ssl_module.SSLContext | None = None
    version: str = "8.2.2"

    @property
    def work_dir(self) -> Path:
        """The controller's directory, ``<state>/nodes/<name>`` as in Zeek."""
        return self.state_dir / "nodes" / self.name


class ControllerService(MachineDriver):
    """The controller daemon.

    Args:
        config: addresses, ports, directories and behaviour options.
        clock: monotonic clock (injectable for tests).
    """

    def __init__(
        self, config: ControllerConfig, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.config = config
        super().__init__(clock)
        self.store = ConfigStore(config.work_dir / "controller.toml")
        self.lock = InstanceLock(config.state_dir, "controller")
        self.state: cs.ControllerState | None = None
        self.client_server: Server | None = None
        self.agent_server: Server | None = None
        self._links: dict[str, Connection] = {}
        self._dialers: dict[str, tuple[ReconnectingClient, asyncio.Task[None]]] = {}
        self._deploy_encoder = DeployRequestEncoder()
        self.started = asyncio.Event()

    # -- lifecycle ---------------------------------------------------------------------

    def load(self) -> None:
        """Read persisted configurations; raises StateStoreError for a corrupt file.

        Removes the temporary files of interrupted writes first when the instance lock
        is held (:meth:`run` takes it).
        """
        if self.lock.held:
            remove_stale_temporaries(self.store.path.parent, (self.store.path.name,))
        saved = self.store.load()
        self.state = cs.ControllerState(
            self.config.options,
            staged=saved.staged,
            ready=saved.ready,
            deployed=saved.deployed,
            facts=ProcessFacts("controller", self.config.name, os.getpid(), time.time()),
        )

    async def run(self, *, install_signals: bool = False) -> None:
        """Serve until :meth:`request_shutdown` is called.

        Raises:
            InstanceLocked: another controller uses the state directory (nothing done).
            StateStoreError: the state file is corrupt (before anything listens).
            ListenError: a port cannot be bound (nothing deployed).
        """
        self.lock.acquire()
        try:
            await self._serve(install_signals)
        finally:
            self.lock.release()

    async def _serve(self, install_signals: bool) -> None:
        if self.state is None:
            self.load()
        assert self.state is not None
        cfg = self.config
        self.client_server = (
            None
            if cfg.client_port is None
            else Server(
                cfg.client_address,
                cfg.client_port,
                on_event=self._on_client_event,
                accept=lambda e: isinstance(e, _CLIENT_EVENTS),
                topics=prefix_filter(CONTROLLER_TOPIC),
                relay=True,
                version=cfg.version,
                max_size=cfg.max_message_size,
                max_send_buffer=cfg.max_send_buffer,
                max_connections=cfg.max_connections,
                handshake_timeout=cfg.handshake_timeout,
                ping_interval=None,
                ssl=cfg.client_ssl,
            )
        )
        self.agent_server = (
            None
            if cfg.agent_port is None
            else Server(
                cfg.agent_address,
                cfg.agent_port,
                on_event=self._on_agent_event,
                on_close=self._on_agent_closed,
                accept=lambda e: isinstance(e, _AGENT_EVENTS),
                topics=prefix_filter(AGENT_TOPIC_PREFIX),
                version=cfg.version,
                max_size=cfg.max_message_size,
                max_send_buffer=cfg.max_send_buffer,
                max_connections=cfg.max_connections,
                handshake_timeout=cfg.handshake_timeout,
                ping_interval=20.0,
                ssl=cfg.agent_ssl,
            )
        )
        loop = asyncio.get_running_loop()
        try:
            for server in (self.client_server, self.agent_server):
                if server is not None:
                    try:
                        await server.start()
                    except OSError as exc:
                        raise ListenError(
                            f"{server.host}:{server.port}", exc.strerror or str(exc)
                        ) from exc
            self._write_pid()
            if install_signals:
                self._handle_signals(loop)
            log.info(
                "controller %s is live, pid %d, %s, %s",
                cfg.name,
                os.getpid(),
                "no websocket port"
                if self.client_server is None
                else f"websocket port {cfg.client_address}:{self.client_server.port}"
                f" ({_tls_mode(cfg.client_ssl)})",
                "no agent port"
                if self.agent_server is None
                else f"agent port {cfg.agent_address}:{self.agent_server.port}"
                f" ({_tls_mode(cfg.agent_ssl)})",
            )
            self._step(lambda now: self._state.start(now))
            self.started.set()
            await self._timer_loop()
        finally:
            self._restore_signals(loop)
            await self._close()

    def _write_pid(self) -> None:
        """Let a co-located agent show our pid in get-nodes (``zeek-mgmt run``)."""
        work_dir = self.config.work_dir
        try:
            work_dir.mkdir(parents=True, exist_ok=True)
            (work_dir / ".pid").write_text(f"{os.getpid()}\n")
        except OSError as exc:
            log.warning("cannot write %s: %s", work_dir / ".pid", exc.strerror or exc)

    async def _close(self) -> None:
        # Ordered shutdown: stop accepting and close peers, then dialers, then timers.
        for server in (self.client_server, self.agent_server):
            if server is not None:
                await server.close()
        await cancel_and_wait([task for _, task in self._dialers.values()])
        self._dialers.clear()
        log.info("controller %s stopped", self.config.name)

    # -- driving the state machine -------------------------------------------------------

    @property
    def _state(self) -> cs.ControllerState:
        assert self.state is not None
        return self.state

    def _machine(self) -> cs.ControllerState:
        return self._state

    def _execute(self, action: cs.Action) -> None:
        match action:
            case cs.Publish(event=event):
                if self.client_server is not None:
                    self.client_server.publish(CONTROLLER_TOPIC, event)
            case cs.SendToAgent(instance=name, event=event):
                conn = self._links.get(name)
                if conn is None or not conn.is_open:
                    log.debug(
                        "instance %s not connected, dropping %s",
                        peer_text(name),
                        type(event).__name__,
                    )
                    return
                topic = agent_topic(name)
                if isinstance(event, ev.AgentDeployRequest):
                    conn.send_fragments(self._deploy_encoder.fragments(topic, event))
                else:
                    conn.send_event(topic, event)
            case cs.Persist(staged=staged, ready=ready, deployed=deployed):
                error = None
                try:
                    self.store.save(SavedConfigs(staged, ready, deployed))
                except StateStoreError as exc:
                    log.warning("could not persist configurations: %s", exc)
                    error = str(exc)
                self._state.persisted(error, self._clock())
            case cs.Dial(instance=name, host=host, port=port):
                self._dial(name, host, port)
            case cs.StopDialing(instance=name):
                entry = self._dialers.pop(name, None)
                if entry is not None:
                    entry[1].cancel()
            case cs.Log(level=level, message=message):
                log.log(int(level), "%s", message)
            case _:
                assert_never(action)

    # -- client port ---------------------------------------------------------------------

    def _on_client_event(self, conn: Connection, received: EventReceived) -> None:
        self._step(lambda now: self._state.receive_client(received.event, now))

    # -- agents ----------------------------------------------------------------------------

    def _on_agent_event(self, conn: Connection, received: EventReceived) -> None:
        self._agent_event(conn, received, dialed_port=None)

    def _agent_event(
        self, conn: Connection, received: EventReceived, dialed_port: int | None
    ) -> None:
        event = received.event
        if isinstance(event, ev.NotifyAgentHello):

            def hello(now: float) -> None:
                if self._state.agent_hello(event, conn.remote[0], dialed_port, now):
                    old = self._links.get(event.instance)
                    if old is not None and old is not conn and old.is_open:
                        log.warning(
                            "instance %s connected again from %s; dropping the older "
                            "connection from %s",
                            peer_text(event.instance),
                            conn.name,
                            old.name,
                        )
                        old.tag = None
                        old.abort(1008, "replaced by a newer connection")
                    conn.tag = event.instance
                    self._links[event.instance] = conn

            self._step(hello)
            return
        name = conn.tag
        if name is None:
            log.warning(
                "%s sent %s before notify_agent_hello; ignored", conn.name, type(event).__name__
            )
            return
        self._step(lambda now: self._state.receive_agent(name, event, now))

    def _on_agent_closed(self, conn: Connection) -> None:
        name = conn.tag
        if name is None or self._links.get(name) is not conn:
            return
        del self._links[name]
        self._step(lambda now: self._state.agent_lost(name, now))

    def _dial(self, name: str, host: str, port: int) -> None:
        if name in self._dialers:
            return
        hostpart = f"[{host}]" if ":" in host else host
        scheme = "wss" if self.config.dial_ssl is not None else "ws"
        uri = f"{scheme}://{hostpart}:{port}/v1/messages/json"

        def on_event(conn: Connection, received: EventReceived) -> None:
            self._agent_event(conn, received, dialed_port=port)

        client = ReconnectingClient(
            uri,
            (AGENT_TOPIC_PREFIX,),
            on_event=on_event,
            on_close=self._on_agent_closed,
            accept=lambda e: isinstance(e, _AGENT_EVENTS),
            max_size=self.config.max_message_size,
            max_send_buffer=self.config.max_send_buffer,
            ssl=self.config.dial_ssl,
        )
        task = asyncio.get_running_loop().create_task(client.run(), name=f"dial-{name}")
        self._dialers[name] = (client, task)
        log.info("dialing instance %s at %s", peer_text(name), uri)
