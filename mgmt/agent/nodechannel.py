"""The agent's side of the node channel: one persistent WebSocket client per running node.

Theory of operation
-------------------
Each node the agent starts loads ``zeek-mgmt-node.zeek``, which makes it listen on
``127.0.0.1:<port>`` (Zeek's ``Cluster::listen_websocket``, Broker WebSocket JSON v1)
and subscribe to ``zeek/management/node/<name>``. Zeek's agent would reach its nodes
over Broker; we reach each node over its own loopback port (DESIGN.md, Nodes).

* :class:`NodeChannel` keeps one connection to one node *process* up (a
  :class:`~mgmt.transport.ReconnectingClient` subscribed to
  ``zeek/management/node/<name>/response``) and matches
  ``Management::Node::API::node_dispatch_response`` events to outstanding requests by
  request id. Keeping the connection open saves a TCP + WebSocket handshake per
  get-id-value.
* :class:`NodeChannels` owns the channels of all nodes. The agent calls
  :meth:`NodeChannels.update` with the nodes that are RUNNING (name -> port and pid) after
  every supervisor change: a node that became RUNNING gets a channel, a node that stopped,
  crashed or runs a new process (restart: new pid) loses its channel, and requests
  waiting on it are answered at once with Zeek's ``cluster node <name> not in running
  state``.
* :meth:`NodeChannels.ask` sends one ``node_dispatch_request(<fresh id>, action,
  {name})`` per node, in parallel (again while no answer came: on ZeroMQ the proxy may
  drop the first), and returns one :class:`Result` per node. A node that
  does not answer within the timeout (its channel never came up, e.g. Zeek < 7.2) gets
  ``request timed out``, as the agent's own request timer would give it.

Naming the node in the request's ``nodes`` set matters: Broker subscriptions are string
prefixes, so node ``worker-1`` also receives what is published for ``worker-10``, and a
Zeek node stays silent when ``nodes`` names others only (behaviour.md §7).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

from mgmt.broker import events as ev
from mgmt.broker.data import BrokerSet
from mgmt.broker.records import Result
from mgmt.broker.session import EventReceived
from mgmt.core.frozen import frozen
from mgmt.core.requests import TIMED_OUT
from mgmt.core.topics import node_response_topic, node_topic
from mgmt.daemon.driver import cancel_and_wait
from mgmt.transport import Connection, ReconnectingClient
from mgmt.transport.backoff import backoff

log = logging.getLogger("mgmt.agent")


def not_running(reqid: str, name: str) -> Result:
    """Zeek's agent-side error for a node that is not RUNNING (behaviour.md §5.10)."""
    return Result(reqid, False, node=name, error=f"cluster node {name} not in running state")


def unreachable(reqid: str, name: str) -> Result:
    """The error for a RUNNING node without a channel: a ZeroMQ logger (no WebSocket server
    of its own) on a host where no other node of the agent runs one to relay through."""
    return Result(
        reqid,
        False,
        node=name,
        error=f"cluster node {name} cannot be reached: no other node on its host relays to it",
    )


def _channel_backoff() -> Iterator[float]:
    # A node's channel comes up in zeek_init, before the node reports RUNNING, so the
    # first attempt normally succeeds; retry quickly, but never more often than 5 s later.
    return backoff(initial=0.05, factor=2.0, maximum=5.0)


#: Seconds before a dispatch without an answer is sent again, doubling up to the maximum.
RESEND_INITIAL = 0.5
RESEND_MAXIMUM = 4.0


@frozen
class NodeProcess:
    """What identifies one running node process to the channel layer."""

    port: int
    pid: int | None


def relay_for(
    pid: int | None, relays: Sequence[NodeProcess], kept: NodeProcess | None
) -> NodeProcess | None:
    """The port through which to reach the relayed node process ``pid``: the one its
    channel uses now (``kept``) while that port's node is among the RUNNING ``relays``
    (also for a new process of the relayed node), else the first of them (``None`` if
    there is none).

    A relay is kept, not replaced by a "better" one that comes up later: moving a
    channel means a new WebSocket client on another node, and on ZeroMQ a client that
    is closed while the proxy is still learning the restarted cluster's subscriptions
    can leave the relayed node's answers undelivered for many seconds (seen with Zeek
    8.2.2 when a restart of all nodes brought the manager up after the proxy: the
    logger's channel moved from the proxy to the manager 21 ms after it opened, and no
    answer came through the manager for ~20 s).
    """
    if kept is not None and any(r.port == kept.port for r in relays):
        return NodeProcess(kept.port, pid)
    return NodeProcess(relays[0].port, pid) if relays else None


class NodeChannel:
    """A persistent connection to one node process's WebSocket channel.

    Args:
        name: the node's name (``Cluster::node``).
        port: its channel port on ``host``.
        host: where the node listens (always loopback for nodes the agent starts).
        delays: reconnect back-off factory.
        open_timeout: seconds for one connection attempt.
    """

    def __init__(
        self,
        name: str,
        port: int,
        *,
        host: str = "127.0.0.1",
        delays: Callable[[], Iterator[float]] = _channel_backoff,
        open_timeout: float = 5.0,
    ) -> None:
        self.name = name
        self.port = port
        self.uri = f"ws://{host}:{port}/v1/messages/json"
        self._pending: dict[str, asyncio.Future[Result]] = {}
        self._closed = asyncio.Event()
        self.client = ReconnectingClient(
            self.uri,
            (node_response_topic(name),),
            on_event=self._on_event,
            on_close=self._on_close,
            accept=lambda e: isinstance(e, ev.NodeDispatchResponse),
            delays=delays,
            open_timeout=open_timeout,
        )

    @property
    def connected(self) -> bool:
        """Whether the channel is up right now."""
        return self.client.connected.is_set()

    async def run(self) -> None:
        """Keep the connection up until cancelled (then close it and fail waiters)."""
        try:
            await self.client.run()
        finally:
            self._closed.set()
            self._fail_pending()

    def _on_event(self, conn: Connection, received: EventReceived) -> None:
        event = received.event
        if not isinstance(event, ev.NodeDispatchResponse):
            return
        waiter = self._pending.pop(event.reqid, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(event.result)

    def _on_close(self, conn: Connection) -> None:
        # The node went away (crash, restart, stop): whatever it was asked is lost.
        self._fail_pending()

    def _fail_pending(self) -> None:
        pending, self._pending = self._pending, {}
        for waiter in pending.values():
            if not waiter.done():
                waiter.set_exception(ConnectionError("node channel closed"))

    async def _connected_or_closed(self) -> None:
        waits = [
            asyncio.ensure_future(self.client.connected.wait()),
            asyncio.ensure_future(self._closed.wait()),
        ]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()

    async def ask(self, reqid: str, action: tuple[str, ...], limit: float) -> Result:
        """Dispatch ``action`` to this node and return its Result (never raises).

        Args:
            reqid: the agent-level request id, used in error results.
            action: e.g. ``("get_id_value", "LogAscii::use_json")``.
            limit: seconds to wait for the connection and the answer together.

        Returns:
            The node's Result (its ``reqid`` is the node-level request id, as in Zeek), or
            ``request timed out`` / ``cluster node <name> not in running state``.

        Cancellation: safe; the request is forgotten.
        """
        child = str(uuid.uuid4())
        waiter: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        try:
            async with asyncio.timeout(limit):
                while True:
                    if self._closed.is_set():
                        return not_running(reqid, self.name)
                    if not self.client.connected.is_set():
                        await self._connected_or_closed()
                        continue
                    self._pending[child] = waiter
                    request = ev.NodeDispatchRequest(child, action, BrokerSet([self.name]))
                    if self.client.send_event(node_topic(self.name), request):
                        break
                    # Lost between the wait and the send: wait for the next connection.
                    self._pending.pop(child, None)
                    await asyncio.sleep(0.01)
                result = await self._answer(waiter, request)
        except TimeoutError:
            return Result(reqid, False, node=self.name, error=TIMED_OUT)
        except ConnectionError:
            return not_running(reqid, self.name)
        finally:
            self._pending.pop(child, None)
        return result if result.node == self.name else result.with_changes(node=self.name)

    async def _answer(
        self, waiter: asyncio.Future[Result], request: ev.NodeDispatchRequest
    ) -> Result:
        """The answer to ``request``, sent again after 0.5 s, 1 s, 2 s, 4 s, 4 s, ... while
        none came (the caller's deadline ends it).

        On ZeroMQ every message passes the manager's XPUB/XSUB proxy, which drops what is
        published before the subscriber's subscription reached it: the request to a node
        that has just started, or its answer to a channel that has just connected. A
        dispatch only reads (``get_id_value``), so a repeated one does no harm; the first
        answer wins and later ones find no waiter.
        """
        delay = RESEND_INITIAL
        while True:
            try:
                return await asyncio.wait_for(asyncio.shield(waiter), delay)
            except TimeoutError:
                log.debug(
                    "= node channel %s: no answer after %.1f s, asking again", self.name, delay
                )
                self.client.send_event(node_topic(self.name), request)
                delay = min(delay * 2, RESEND_MAXIMUM)


class NodeChannels:
    """The channels of all running nodes of one agent.

    Args:
        timeout: seconds a node has to answer one dispatch.
        channel_factory: builds a channel (tests may point it elsewhere).
    """

    def __init__(
        self,
        *,
        timeout: float = 5.0,
        channel_factory: Callable[[str, int], NodeChannel] = NodeChannel,
    ) -> None:
        self.timeout = timeout
        self._factory = channel_factory
        self._channels: dict[str, tuple[NodeProcess, NodeChannel, asyncio.Task[None]]] = {}
        #: Channels being torn down (a strong reference until their task ends).
        self._stopping: set[asyncio.Task[None]] = set()
        #: Set by :meth:`close`: no new channels (the agent is stopping its nodes).
        self._closed = False
        #: RUNNING nodes without a way to reach them (see :func:`unreachable`).
        self._unreachable: set[str] = set()

    def __contains__(self, name: object) -> bool:
        return name in self._channels

    def channel(self, name: str) -> NodeChannel | None:
        """The current channel of a node, if it has one."""
        entry = self._channels.get(name)
        return entry[1] if entry is not None else None

    def processes(self) -> dict[str, NodeProcess]:
        """The node process each channel is for (name -> port and pid)."""
        return {name: entry[0] for name, entry in self._channels.items()}

    def update(self, running: Mapping[str, NodeProcess | None]) -> None:
        """Make the channels match the RUNNING nodes (name -> port and pid; ``None``: a
        RUNNING node nothing can reach, see :func:`unreachable`).

        Channels of nodes that are gone or run another process are torn down; new
        RUNNING nodes get a channel. Idempotent; must be called from the event loop.
        After :meth:`close` it does nothing: nodes being stopped are not dialed again.
        """
        if self._closed:
            return
        self._unreachable = {name for name, proc in running.items() if proc is None}
        for name in list(self._channels):
            current, _, _ = self._channels[name]
            if running.get(name) != current:
                self._stop(name)
        for name, proc in running.items():
            if proc is not None and name not in self._channels:
                chan = self._factory(name, proc.port)
                task = asyncio.get_running_loop().create_task(
                    chan.run(), name=f"node-channel-{name}"
                )
                self._channels[name] = (proc, chan, task)
                log.debug("= node channel %s: %s (pid %s)", name, chan.uri, proc.pid)

    def _stop(self, name: str) -> None:
        _, _, task = self._channels.pop(name)
        log.debug("= node channel %s: closed", name)
        task.cancel()
        self._stopping.add(task)
        task.add_done_callback(self._stopping.discard)

    async def ask(self, reqid: str, action: tuple[str, ...], names: Iterable[str]) -> list[Result]:
        """Dispatch ``action`` to each named node in parallel; one Result per node.

        A node without a channel (not RUNNING) gets ``cluster node <name> not in running
        state``. Never raises.
        """
        names = tuple(names)

        async def one(name: str) -> Result:
            chan = self.channel(name)
            if chan is None:
                return (
                    unreachable(reqid, name)
                    if name in self._unreachable
                    else not_running(reqid, name)
                )
            return await chan.ask(reqid, action, self.timeout)

        return list(await asyncio.gather(*(one(n) for n in names)))

    async def close(self) -> None:
        """Tear every channel down and wait for them; open no new ones. Idempotent."""
        self._closed = True
        tasks = [entry[2] for entry in self._channels.values()] + list(self._stopping)
        self._channels.clear()
        await cancel_and_wait(tasks)
