"""The I/O layer for the Broker WebSocket protocol: asyncio over ``websockets``.

* :mod:`mgmt.transport.connection` -- :class:`Connection`: one peer, its reader and
  writer, the one send path.
* :mod:`mgmt.transport.server` -- :class:`Server`: one port, bounded accepting, publish
  and relay.
* :mod:`mgmt.transport.client` -- :func:`connect` and :class:`ReconnectingClient`.
* :mod:`mgmt.transport.limits` -- what one peer may cost (defaults) and log throttling.
* :mod:`mgmt.transport.backoff` -- pure reconnect delays and failure classification.
"""

from mgmt.transport.client import ReconnectingClient, connect
from mgmt.transport.connection import Connection
from mgmt.transport.server import Server

__all__ = ["Connection", "ReconnectingClient", "Server", "connect"]
