"""zeek-mgmt: Zeek's Management framework (controller, agent, supervisor) in asyncio Python.

Layers (dependencies point down only; see ``shared/DESIGN.md``):

1. :mod:`mgmt.broker` -- pure Broker WebSocket JSON codec, messages, Management records.
2. Pure policies -- ``mgmt.controller.state``, ``mgmt.agent.state``, ``mgmt.supervisor.policy``.
3. I/O -- :mod:`mgmt.transport`, ``mgmt.supervisor.backend``, :mod:`mgmt.persist.statefile`.
4. Services -- the asyncio daemons.
5. Entry points -- :mod:`mgmt.cli`.
"""

__version__ = "0.1.0"
