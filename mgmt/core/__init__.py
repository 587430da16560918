"""Pure pieces the daemons' state machines share: no I/O, no clocks, no asyncio.

* :mod:`mgmt.core.launchable` -- what a node entry must be for an agent to launch it
  (names, values); the one check the controller and the agents apply.
* :mod:`mgmt.core.logaction` -- the ``Log`` action pure machines emit instead of logging.
* :mod:`mgmt.core.peertext` -- peer-supplied strings, shortened and escaped for logs.
"""
