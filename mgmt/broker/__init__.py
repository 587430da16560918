"""The Broker WebSocket JSON protocol, without I/O.

* :mod:`mgmt.broker.data` -- the 15 Broker data types and their JSON form.
* :mod:`mgmt.broker.records` -- Management records and enums.
* :mod:`mgmt.broker.events` -- Zeek events and the Management API catalogue.
* :mod:`mgmt.broker.messages` -- handshake, ack, error and data messages.
* :mod:`mgmt.broker.session` -- sans-I/O connection state machines.

Nothing here imports asyncio, sockets, or reads clocks (enforced by ``ruff.toml`` in this
directory and by ``tests/core/test_purity.py``).
"""
