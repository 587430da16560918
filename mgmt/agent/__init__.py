"""The agent: Zeek's ``Management::Agent`` in Python.

* :mod:`mgmt.agent.layout` -- pure: cluster layout and node command lines (behaviour §8).
* :mod:`mgmt.agent.state` -- the pure state machine (behaviour §5).
* :mod:`mgmt.agent.service` -- the asyncio daemon (controller link, supervisor, channels).
* :mod:`mgmt.agent.main` -- ``zeek-mgmt agent``.
"""
