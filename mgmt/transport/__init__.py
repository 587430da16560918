"""The I/O layer for the Broker WebSocket protocol: asyncio over ``websockets``.

* :mod:`mgmt.transport.backoff` -- pure reconnect delays and failure classification.
* :mod:`mgmt.transport.connection` -- :class:`Connection`, :class:`Server`, :func:`connect`,
  :class:`ReconnectingClient`.
"""

from mgmt.transport.connection import (
    Connection,
    ReconnectingClient,
    Server,
    connect,
)

__all__ = ["Connection", "ReconnectingClient", "Server", "connect"]
