"""The controller: Zeek's ``Management::Controller`` in Python.

* :mod:`mgmt.controller.validation` -- pure config validation and port assignment.
* :mod:`mgmt.controller.state` -- the pure state machine (behaviour.md §4).
* :mod:`mgmt.persist.controllerstore` -- persisted configurations.
* :mod:`mgmt.controller.service` -- the asyncio daemon.
* :mod:`mgmt.controller.main` -- ``zeek-mgmt controller``.
"""
