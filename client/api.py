"""An asyncio client for the Management framework's controller API.

Usage::

    async with ControllerClient("127.0.0.1", 2149, timeout=20) as ctl:
        for result in await ctl.get_nodes():
            ...

Theory of operation
-------------------
Peering follows zeek-client 1.5.0 (wire spec §9.2) so that servers see the same traffic
and operators the same errors: up to ``peering_attempts`` attempts *shared* by the
WebSocket connect and the ack read; a timed-out connect sleeps ``retry_delay`` and tries
again; any other failure is final. One deliberate difference: a *refused* connection
(nothing listens on the port) fails at once with :class:`ControllerRefused`, where
zeek-client retries it for ``peering_attempts`` x ``retry_delay`` seconds (10 s by
default) and then says ``timed out in connect()``; ``retry_refused=True`` restores
zeek-client's behaviour (for callers that start a controller and connect right away).
The connect and the ack read happen in one :func:`mgmt.transport.connect` call, so a
server that accepts but never acks costs one attempt per connection here (zeek-client
keeps re-reading on the same connection), and the failure reads ``... timed out in
connect()``.

Each request gets a fresh ``uuid1()`` id (zeek-client's choice) and is published on
``zeek/management/controller``; the response is the first event of the expected type
whose first argument is that id. Everything else -- other clients' traffic relayed by the
controller, unknown events, error messages -- is skipped. Several requests may be
outstanding at once.

The response timeout is zeek-client's: a per-read timeout, i.e. it restarts whenever
anything arrives on the connection (see wire spec §1.8).

zeek-mgmt's extension requests (``ZeekMgmt::Controller::API::...``, README "API") go
through :meth:`ControllerClient.extension`, which decodes the JSON payload of each
Result (:class:`~mgmt.broker.extevents.ExtensionResult`).

Failures raise :mod:`mgmt.exceptions` errors whose text is zeek-client's message:

* :class:`~mgmt.exceptions.HandshakeError` -- peering failed
  (``websocket connection to H:P timed out in connect()``, ...); a TLS mismatch (plaintext
  against a TLS port or the reverse) gets a hint appended to zeek-client's message;
  :class:`ControllerRefused` (a subclass) -- nothing listens on the port;
* :class:`~mgmt.exceptions.RequestTimeout` -- ``websocket connection to H:P timed out``;
* :class:`~mgmt.exceptions.SessionClosedError` -- the connection went away.
"""

from __future__ import annotations

import asyncio
import logging
import ssl as ssl_module
import uuid
from collections.abc import Iterable
from types import TracebackType
from typing import Any, Protocol, TypeVar

from websockets.exceptions import InvalidHandshake, InvalidURI

from mgmt.broker import events as ev
from mgmt.broker import extevents as xev
from mgmt.broker.data import BrokerSet
from mgmt.broker.extevents import ExtensionResult
from mgmt.broker.records import Configuration, Result
from mgmt.broker.session import EventReceived
from mgmt.core.topics import CONTROLLER_TOPIC
from mgmt.exceptions import (
    HandshakeError,
    InvalidState,
    RequestTimeout,
    SessionClosedError,
)
from mgmt.transport import Connection, connect

log = logging.getLogger("mgmt.client")


R = TypeVar("R")


class ControllerRefused(HandshakeError):
    """Nothing listens on the controller's port (the connection was refused)."""


def connect_hint(exc: BaseException, tls: bool) -> str:
    """A hint for the usual TLS mix-ups, to append to a failed connect's message ("" if
    none is plausible).

    A TLS port drops a plaintext client before any HTTP response; a plaintext port resets
    (or answers garbage to) a TLS handshake; a mutual-TLS port drops a client without a
    certificate just after the handshake (TLS 1.3).
    """
    if isinstance(exc, InvalidHandshake) and isinstance(exc.__cause__, EOFError):
        if tls:
            return (
                " (does the controller require a client certificate? then set "
                "ssl.certificate and ssl.keyfile)"
            )
        return " (is the controller's port TLS? then --set ssl.enable=true)"
    if tls and isinstance(exc, ConnectionResetError | ssl_module.SSLError):
        if not isinstance(exc, ssl_module.SSLCertVerificationError):
            return " (is the controller's port plaintext? then leave ssl.enable off)"
    return ""


class ResultsResponse(Protocol):
    """A response event carrying ``(reqid, results)``."""

    @property
    def results(self) -> tuple[Result, ...]: ...


RR = TypeVar("RR", bound=ResultsResponse)


def new_request_id() -> str:
    """A fresh request id, ``uuid1()`` like zeek-client's."""
    return str(uuid.uuid1())


class ControllerClient:
    """A connection to a controller's client port.

    Args:
        host: the controller's address; an IPv6 address may be given with or without
            brackets (it appears in messages as given).
        port: the controller's WebSocket port (1-65535).
        ssl: a TLS context for ``wss://``, or ``None`` for plaintext.
        timeout: seconds to wait for a response, restarted by any inbound message;
            ``None`` waits forever.
        peering_attempts: total connect + ack attempts (zeek-client default 10).
        retry_delay: connect timeout and pause between attempts (default 1 s).
        retry_refused: retry refused connections too, as zeek-client does (default:
            fail at once with :class:`ControllerRefused`).

    Raises:
        ValueError: the port is out of range.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 2149,
        *,
        ssl: ssl_module.SSLContext | None = None,
        timeout: float | None = 20.0,
        peering_attempts: int = 10,
        retry_delay: float = 1.0,
        retry_refused: bool = False,
    ) -> None:
        if not 1 <= port <= 65535:
            raise ValueError(f"controller port number {port} outside valid range")
        self.host = host
        self.port = port
        self.ssl = ssl
        self.timeout = timeout
        self.peering_attempts = peering_attempts
        self.retry_delay = retry_delay
        self.retry_refused = retry_refused
        #: ``host:port`` as zeek-client writes it in messages.
        self.remote = f"{host}:{port}"
        urlhost = f"[{host}]" if ":" in host and not host.startswith("[") else host
        scheme = "wss" if ssl is not None else "ws"
        self.uri = f"{scheme}://{urlhost}:{port}/v1/messages/json"
        self._conn: Connection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._pending: dict[str, tuple[type, asyncio.Future[Any]]] = {}
        self._last_activity = 0.0
        self._inbox: asyncio.Queue[object] | None = None
        self._closed = False

    # -- lifecycle ---------------------------------------------------------------------

    async def __aenter__(self) -> ControllerClient:
        """Connect unless already connected."""
        if self._conn is None:
            await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def is_open(self) -> bool:
        """Whether requests can be sent."""
        return self._conn is not None and self._conn.is_open

    async def connect(self) -> None:
        """Connect and complete the Broker handshake (zeek-client's peering, §9.2).

        Raises:
            ControllerRefused: nothing listens on the port (unless ``retry_refused``).
            HandshakeError: peering failed; the message is zeek-client's, with a hint for
                a TLS mismatch.
            InvalidState: already connected.

        Cancellation: safe; a half-open connection is closed.
        """
        if self._conn is not None:
            raise InvalidState("already connected")
        log.info("connecting to controller %s", self.remote)
        attempts = self.peering_attempts
        while attempts > 0:
            attempts -= 1
            try:
                conn, reader = await connect(
                    self.uri,
                    (CONTROLLER_TOPIC,),
                    on_event=self._on_event,
                    open_timeout=self.retry_delay,
                    ping_interval=None,
                    ssl=self.ssl,
                )
            except ConnectionRefusedError as exc:
                if not self.retry_refused:
                    raise ControllerRefused(
                        f"connection refused: no controller at {self.remote}"
                    ) from exc
                log.debug("connection refused for controller %s", self.remote)
                await asyncio.sleep(self.retry_delay)
                continue
            except TimeoutError:
                log.debug("connection timed out for controller %s", self.remote)
                await asyncio.sleep(self.retry_delay)
                continue
            except HandshakeError as exc:
                raise HandshakeError(
                    f"protocol data error with controller {self.remote}: {exc}"
                ) from exc
            except (InvalidHandshake, InvalidURI, ssl_module.SSLError, OSError) as exc:
                raise HandshakeError(self._connect_failed(exc)) from exc
            # zeek-client counts the ack read as an attempt of its own; with none left it
            # gives up even though the ack is there.
            if attempts == 0:
                await conn.close()
                await reader
                raise HandshakeError(
                    f"websocket connection to {self.remote} timed out in handshake"
                )
            self._conn, self._reader = conn, reader
            self._last_activity = asyncio.get_running_loop().time()
            reader.add_done_callback(self._on_reader_done)
            log.info("peered with controller %s", self.remote)
            return
        raise HandshakeError(f"websocket connection to {self.remote} timed out in connect()")

    def _connect_failed(self, exc: BaseException) -> str:
        """zeek-client's message for a failed connect, with a hint for TLS mix-ups."""
        if isinstance(exc, InvalidHandshake | InvalidURI):
            what = "websocket error"
        elif isinstance(exc, ssl_module.SSLError):
            what = "socket TLS error"
        else:
            what = "socket error"
        text = str(exc) or (
            "connection reset by peer" if isinstance(exc, ConnectionResetError) else repr(exc)
        )
        hint = connect_hint(exc, self.ssl is not None)
        return f"{what} in connect() with controller {self.remote}: {text}{hint}"

    async def close(self) -> None:
        """Close the connection (idempotent). Pending requests fail with
        :class:`~mgmt.exceptions.SessionClosedError`."""
        conn, reader = self._conn, self._reader
        if conn is None or reader is None:
            return
        await conn.close()
        await reader

    # -- receiving -----------------------------------------------------------------------

    def _on_event(self, conn: Connection, received: EventReceived) -> None:
        self._last_activity = asyncio.get_running_loop().time()
        event = received.event
        reqid = getattr(event, "reqid", None)
        entry = self._pending.get(reqid) if isinstance(reqid, str) else None
        if entry is not None and isinstance(event, entry[0]) and not entry[1].done():
            entry[1].set_result(event)
        elif log.isEnabledFor(logging.DEBUG):
            log.debug("skipping event %s", ev.event_name(event))
        if self._inbox is not None:
            self._inbox.put_nowait(event)

    def _on_reader_done(self, task: asyncio.Task[None]) -> None:
        self._closed = True
        for _, fut in self._pending.values():
            if not fut.done():
                fut.set_exception(self._closed_error())
        if self._inbox is not None:
            self._inbox.put_nowait(_CLOSED)

    def _closed_error(self) -> SessionClosedError:
        return SessionClosedError(
            f"unexpected error with controller {self.remote}: connection closed"
        )

    async def _wait(self, fut: asyncio.Future[R]) -> R:
        # A per-read timeout: extend the deadline whenever something arrived meanwhile.
        loop = asyncio.get_running_loop()
        while True:
            if self.timeout is None:
                return await fut
            deadline = self._last_activity + self.timeout
            try:
                async with asyncio.timeout_at(deadline):
                    return await asyncio.shield(fut)
            except TimeoutError:
                if loop.time() >= self._last_activity + self.timeout:
                    raise RequestTimeout(
                        f"websocket connection to {self.remote} timed out"
                    ) from None

    async def receive(self) -> object:
        """The next event of any kind (for ``monitor``); events are only kept from the
        first call on.

        Raises:
            RequestTimeout: nothing arrived within ``timeout``.
            SessionClosedError: the connection is gone.
        """
        if self._inbox is None:
            self._inbox = asyncio.Queue()
            if self._closed:
                self._inbox.put_nowait(_CLOSED)
        try:
            async with asyncio.timeout(self.timeout):
                item = await self._inbox.get()
        except TimeoutError:
            raise RequestTimeout(f"websocket connection to {self.remote} timed out") from None
        if item is _CLOSED:
            self._inbox.put_nowait(_CLOSED)
            raise self._closed_error()
        return item

    # -- requests ------------------------------------------------------------------------

    async def request(self, event: Any, response_type: type[R]) -> R:
        """Send a request event (its ``reqid`` first argument is the id) and wait for
        the response of ``response_type`` with the same id.

        Raises:
            RequestTimeout: no response in time.
            SessionClosedError: the connection is gone (also before sending).

        Cancellation: safe; the pending entry is removed.
        """
        conn = self._conn
        if conn is None or self._closed or not conn.is_open:
            raise self._closed_error()
        reqid: str = event.reqid
        fut: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending[reqid] = (response_type, fut)
        try:
            conn.send_event(CONTROLLER_TOPIC, event)
            self._last_activity = asyncio.get_running_loop().time()
            log.debug("sent %s %s", ev.event_name(event), reqid)
            return await self._wait(fut)
        finally:
            self._pending.pop(reqid, None)
            if not fut.done():
                fut.cancel()

    async def get_instances(self) -> Result:
        """``get_instances_request``: one Result whose ``data`` is a vector of Instance
        records (decode with :func:`client.render.decode_instances`)."""
        resp = await self.request(ev.GetInstancesRequest(new_request_id()), ev.GetInstancesResponse)
        return resp.result

    async def stage_configuration(self, config: Configuration) -> tuple[Result, ...]:
        """``stage_configuration_request``: the results (one with the config id on
        success, one per validation error otherwise)."""
        resp = await self.request(
            ev.StageConfigurationRequest(new_request_id(), config),
            ev.StageConfigurationResponse,
        )
        return resp.results

    async def get_configuration(self, deployed: bool = False) -> Result:
        """``get_configuration_request``: a Result whose ``data`` is the Configuration
        (decode with :meth:`Configuration.from_value`)."""
        resp = await self.request(
            ev.GetConfigurationRequest(new_request_id(), deployed), ev.GetConfigurationResponse
        )
        return resp.result

    async def deploy(self) -> tuple[Result, ...]:
        """``deploy_request``: per-node results from the agents, then the config id."""
        resp = await self.request(ev.DeployRequest(new_request_id()), ev.DeployResponse)
        return resp.results

    async def get_nodes(self) -> tuple[Result, ...]:
        """``get_nodes_request``: one Result per agent, ``data`` a NodeStatus vector
        (decode with :func:`client.render.decode_node_statuses`)."""
        resp = await self.request(ev.GetNodesRequest(new_request_id()), ev.GetNodesResponse)
        return resp.results

    async def get_id_value(self, id: str, nodes: Iterable[str] = ()) -> tuple[Result, ...]:
        """``get_id_value_request``: one Result per node, ``data`` a JSON string."""
        resp = await self.request(
            ev.GetIdValueRequest(new_request_id(), id, BrokerSet(sorted(set(nodes)))),
            ev.GetIdValueResponse,
        )
        return resp.results

    async def restart(self, nodes: Iterable[str] = ()) -> tuple[Result, ...]:
        """``restart_request``: one Result per restarted node (empty ``nodes``: all)."""
        resp = await self.request(
            ev.RestartRequest(new_request_id(), BrokerSet(sorted(set(nodes)))),
            ev.RestartResponse,
        )
        return resp.results

    async def extension(self, event: Any, response_type: type[RR]) -> tuple[ExtensionResult, ...]:
        """Send an extension request (``ZeekMgmt::Controller::API::<name>_request``, its
        ``reqid`` first) and decode the payloads of its response's results, in order.

        Raises:
            RequestTimeout: no response in time (e.g. a controller without the
                extension ignores the request).
            SessionClosedError: the connection is gone.
        """
        resp = await self.request(event, response_type)
        return tuple(ExtensionResult.from_result(r) for r in resp.results)

    async def get_versions(self) -> tuple[ExtensionResult, ...]:
        """``get_version_request``: the controller's versions, then each connected
        agent's (README, "API")."""
        return await self.extension(xev.GetVersionRequest(new_request_id()), xev.GetVersionResponse)

    # observation (issue 12): README, "API"

    async def get_node_info(self) -> tuple[ExtensionResult, ...]:
        """``get_node_info_request``: restarts, uptime and last exit of every node."""
        req = xev.GetNodeInfoRequest(new_request_id())
        return await self.extension(req, xev.GetNodeInfoResponse)

    async def diag(self, nodes: Iterable[str] = ()) -> tuple[ExtensionResult, ...]:
        """``diag_request``: each node's crash evidence (all nodes when none named)."""
        req = xev.DiagRequest(new_request_id(), BrokerSet(nodes))
        return await self.extension(req, xev.DiagResponse)

    async def top(self) -> tuple[ExtensionResult, ...]:
        """``top_request``: the processes of the controller, the agents and the nodes."""
        return await self.extension(xev.TopRequest(new_request_id()), xev.TopResponse)

    async def netstats(self, nodes: Iterable[str] = ()) -> tuple[ExtensionResult, ...]:
        """``netstats_request``: packet counters of the nodes with an interface."""
        req = xev.NetstatsRequest(new_request_id(), BrokerSet(nodes))
        return await self.extension(req, xev.NetstatsResponse)

    async def get_disk_usage(self) -> tuple[ExtensionResult, ...]:
        """``get_disk_usage_request``: each connected agent's file systems (issue 13)."""
        return await self.extension(
            xev.GetDiskUsageRequest(new_request_id()), xev.GetDiskUsageResponse
        )

    async def stop_nodes(self, nodes: Iterable[str] = ()) -> tuple[ExtensionResult, ...]:
        """``stop_nodes_request`` (zeek-mgmt stop): one result per stopped node (empty
        ``nodes``: all), its payload ``{"state": ...}`` (README, "API")."""
        names = BrokerSet(sorted(set(nodes)))
        return await self.extension(
            xev.StopNodesRequest(new_request_id(), names), xev.StopNodesResponse
        )

    async def start_nodes(self, nodes: Iterable[str] = ()) -> tuple[ExtensionResult, ...]:
        """``start_nodes_request`` (zeek-mgmt start): as :meth:`stop_nodes`."""
        names = BrokerSet(sorted(set(nodes)))
        return await self.extension(
            xev.StartNodesRequest(new_request_id(), names), xev.StartNodesResponse
        )

    async def check(self, config: Configuration) -> tuple[ExtensionResult, ...]:
        """``check_request`` (zeek-mgmt check): one result per node of ``config``, each
        the outcome of its ``zeek -a`` (README, "API")."""
        return await self.extension(xev.CheckRequest(new_request_id(), config), xev.CheckResponse)

    async def test_timeout(self, with_state: bool = False) -> Result:
        """``test_timeout_request``. Without state the controller never answers, so this
        raises :class:`~mgmt.exceptions.RequestTimeout` (as intended by the test)."""
        resp = await self.request(
            ev.TestTimeoutRequest(new_request_id(), with_state), ev.TestTimeoutResponse
        )
        return resp.result


_CLOSED = object()
