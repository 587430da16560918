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

Metrics (issue 13, :mod:`mgmt.controller.metrics`): with ``metrics_port`` set, a
Prometheus endpoint (``/metrics``, and ``/services.json`` listing the deployed nodes'
metrics ports), bound with the other ports; client requests are timed from arrival to
the response published.

Shutdown (:meth:`ControllerService.request_shutdown`, SIGTERM, SIGINT) follows one path:
stop accepting, close peers (1001), stop dialers and the timer, in that order.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import ssl as ssl_module
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, assert_never

from mgmt.broker import events as ev
from mgmt.broker import extevents as xev
from mgmt.broker.deployrequest import DeployRequestEncoder
from mgmt.broker.directions import AGENT_TO_CONTROLLER, CLIENT_TO_CONTROLLER
from mgmt.broker.session import EventReceived, prefix_filter
from mgmt.controller import state as cs
from mgmt.core.peertext import peer_text
from mgmt.core.topics import AGENT_TOPIC_PREFIX, CONTROLLER_TOPIC, agent_topic
from mgmt.core.version import ProcessFacts
from mgmt.daemon.driver import MachineDriver, cancel_and_wait
from mgmt.daemon.procstats import ProcessSampler
from mgmt.exceptions import ListenError, StateStoreError
from mgmt.persist import curvekeys
from mgmt.persist.controllerstore import ConfigStore, SavedConfigs
from mgmt.persist.lock import InstanceLock
from mgmt.persist.statefile import remove_stale_temporaries
from mgmt.settings.model import ControllerSettings
from mgmt.settings.tls import ControllerTLS
from mgmt.transport import Connection, ReconnectingClient, Server

if TYPE_CHECKING:  # built only with a metrics port (prometheus_client is imported then)
    from prometheus_client import CollectorRegistry

    from mgmt.metrics.endpoint import MetricsEndpoint
    from mgmt.metrics.requests import RequestMetrics

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


class ControllerService(MachineDriver[cs.ControllerState]):
    """The controller daemon.

    Args:
        settings: the controller's settings.
        tls: the TLS contexts built from them (default: plaintext everywhere).
        clock: monotonic clock (injectable for tests).
        ephemeral_ports: listen on ports the OS picks instead of the configured ones
            (tests); a port configured as 0 is still not listened on.
    """

    def __init__(
        self,
        settings: ControllerSettings,
        *,
        tls: ControllerTLS | None = None,
        clock: Callable[[], float] = time.monotonic,
        ephemeral_ports: bool = False,
    ) -> None:
        self.settings = settings
        self.tls = tls or ControllerTLS()
        super().__init__(clock)
        self._ephemeral_ports = ephemeral_ports
        self.store = ConfigStore(settings.work_dir / "controller.toml")
        self.lock = InstanceLock(settings.state_dir, "controller")
        #: This process's figures for top.
        self._sampler = ProcessSampler()
        self.client_server: Server | None = None
        self.agent_server: Server | None = None
        self._links: dict[str, Connection] = {}
        self._dialers: dict[str, tuple[ReconnectingClient, asyncio.Task[None]]] = {}
        self._deploy_encoder = DeployRequestEncoder()
        #: The ZeroMQ CURVE keys (JSON) sent with each deployment; "" until first needed.
        self._curve_json = ""
        self.started = asyncio.Event()
        #: Request metrics and their endpoint, only with a metrics port: without one
        #: prometheus_client is not even imported (~15 % of a daemon's import time).
        self.request_metrics: RequestMetrics | None = None
        self.metrics: MetricsEndpoint | None = None
        self.registry: CollectorRegistry | None = None
        if settings.metrics_port:
            from mgmt.controller.metrics import controller_registry

            self.registry, self.request_metrics = controller_registry(lambda: self.state)

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
            self.settings,
            staged=saved.staged,
            ready=saved.ready,
            deployed=saved.deployed,
            facts=ProcessFacts("controller", self.settings.name, os.getpid(), time.time()),
            probe=lambda: {"now": time.time(), **self._sampler.sample(os.getpid())},
        )

    async def run(self) -> None:
        """Serve until :meth:`request_shutdown` is called.

        Raises:
            InstanceLocked: another controller uses the state directory (nothing done).
            StateStoreError: the state file is corrupt (before anything listens).
            ListenError: a port cannot be bound (nothing deployed).
        """
        self.lock.acquire()
        try:
            await self._serve()
        finally:
            self.lock.release()

    async def _serve(self) -> None:
        if self.state is None:
            self.load()
        assert self.state is not None
        cfg, tls = self.settings, self.tls
        # Port 0 in settings means "do not listen" (Zeek's 0/unknown).
        self.client_server = (
            None
            if not cfg.listen_port_websocket
            else Server(
                cfg.listen_address_websocket,
                self._port(cfg.listen_port_websocket),
                on_event=self._on_client_event,
                accept=lambda e: isinstance(e, _CLIENT_EVENTS),
                topics=prefix_filter(CONTROLLER_TOPIC),
                relay=True,
                **cfg.server_limits(),
                ping_interval=None,
                ssl=tls.client_ssl,
            )
        )
        self.agent_server = (
            None
            if not cfg.listen_port
            else Server(
                cfg.listen_address,
                self._port(cfg.listen_port),
                on_event=self._on_agent_event,
                on_close=self._on_agent_closed,
                accept=lambda e: isinstance(e, _AGENT_EVENTS),
                topics=prefix_filter(AGENT_TOPIC_PREFIX),
                **cfg.server_limits(),
                ping_interval=20.0,
                ssl=tls.agent_ssl,
            )
        )
        if self.registry is not None:  # a metrics port is set
            from mgmt.metrics.endpoint import MetricsEndpoint

            self.metrics = MetricsEndpoint(
                cfg.metrics_address,
                self._port(cfg.metrics_port),
                self.registry,
                {"/services.json": self.service_discovery},
            )
        try:
            for server in (self.client_server, self.agent_server, self.metrics):
                if server is not None:
                    try:
                        await server.start()
                    except OSError as exc:
                        raise ListenError(
                            f"{server.host}:{server.port}", exc.strerror or str(exc)
                        ) from exc
            self._write_pid()
            log.info(
                "controller %s is live, pid %d, %s, %s",
                cfg.name,
                os.getpid(),
                "no websocket port"
                if self.client_server is None
                else f"websocket port {self.client_server.host}:{self.client_server.port}"
                f" ({_tls_mode(tls.client_ssl)})",
                "no agent port"
                if self.agent_server is None
                else f"agent port {self.agent_server.host}:{self.agent_server.port}"
                f" ({_tls_mode(tls.agent_ssl)})",
            )
            self._step(lambda now: self._state.start(now))
            self.started.set()
            await self._timer_loop()
        finally:
            await self._close()

    def _port(self, configured: int) -> int:
        return 0 if self._ephemeral_ports else configured

    def _write_pid(self) -> None:
        """Let a co-located agent show our pid in get-nodes (``zeek-mgmt run``)."""
        work_dir = self.settings.work_dir
        try:
            work_dir.mkdir(parents=True, exist_ok=True)
            (work_dir / ".pid").write_text(f"{os.getpid()}\n")
        except OSError as exc:
            log.warning("cannot write %s: %s", work_dir / ".pid", exc.strerror or exc)

    async def _close(self) -> None:
        # Ordered shutdown: stop accepting and close peers, then dialers, then timers.
        for server in (self.client_server, self.agent_server, self.metrics):
            if server is not None:
                await server.close()
        await cancel_and_wait([task for _, task in self._dialers.values()])
        self._dialers.clear()
        log.info("controller %s stopped", self.settings.name)

    def _curve_keys(self) -> str | None:
        """The CURVE keys' JSON, generated and saved on first use (issue 14); ``None``
        (and a warning) if they can be neither read nor created."""
        if not self._curve_json:
            try:
                keys = curvekeys.load_or_create(self.settings.work_dir / curvekeys.FILE_NAME)
            except StateStoreError as exc:
                log.warning("no ZeroMQ CURVE keys for the nodes: %s", exc)
                return None
            self._curve_json = keys.to_json()
        return self._curve_json

    # -- driving the state machine -------------------------------------------------------

    def _execute(self, action: cs.Action) -> None:
        match action:
            case cs.Publish(event=event):
                if self.request_metrics is not None:
                    self.request_metrics.answered(event, self._clock())
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
                    keys = self._curve_keys()
                    if keys is not None:  # the nodes' ZeroMQ CURVE keys come first
                        conn.send_event(topic, xev.AgentClusterKeysRequest(event.reqid, keys))
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

    def service_discovery(self) -> list[dict[str, object]]:
        """The ``/services.json`` document (:func:`mgmt.controller.metrics.service_discovery`)."""
        state = self._state
        from mgmt.controller.metrics import service_discovery

        return service_discovery(state.deployed, state.known, socket.gethostname())

    # -- client port ---------------------------------------------------------------------

    def _on_client_event(self, conn: Connection, received: EventReceived) -> None:
        if self.request_metrics is not None:
            self.request_metrics.received(received.event, self._clock())
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
        scheme = "wss" if self.tls.dial_ssl is not None else "ws"
        uri = f"{scheme}://{hostpart}:{port}/v1/messages/json"

        def on_event(conn: Connection, received: EventReceived) -> None:
            self._agent_event(conn, received, dialed_port=port)

        client = ReconnectingClient(
            uri,
            (AGENT_TOPIC_PREFIX,),
            on_event=on_event,
            on_close=self._on_agent_closed,
            accept=lambda e: isinstance(e, _AGENT_EVENTS),
            max_size=self.settings.max_message_size,
            max_send_buffer=self.settings.max_send_buffer,
            ssl=self.tls.dial_ssl,
        )
        task = asyncio.get_running_loop().create_task(client.run(), name=f"dial-{name}")
        self._dialers[name] = (client, task)
        log.info("dialing instance %s at %s", peer_text(name), uri)
