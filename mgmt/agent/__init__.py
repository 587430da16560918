"""The agent: Zeek's ``Management::Agent`` in Python.

* :mod:`mgmt.agent.layout` -- pure: cluster layout and node command lines (behaviour §8).
* :mod:`mgmt.agent.state` -- the pure state machine (behaviour §5), its inputs and actions
  in :mod:`~mgmt.agent.actions`.
* :mod:`mgmt.agent.service` -- the asyncio daemon, wiring one part per job:
  :mod:`~mgmt.agent.controllerlink` (the controller connections),
  :mod:`~mgmt.agent.nodes` (node specs and layout files),
  :mod:`~mgmt.agent.supervised` (the supervisor's nodes as the state machine sees them),
  :mod:`~mgmt.agent.nodechannel` (get-id-value to the nodes),
  :mod:`~mgmt.agent.archival` (the log archiver).
* :mod:`mgmt.agent.main` -- ``zeek-mgmt agent``.
"""

#: Set by ``zeek-mgmt run`` for its agent, so that get-nodes lists the controller: the
#: controller's name and the file holding its pid. Defined here, not in
#: :mod:`mgmt.agent.main`, so that ``zeek-mgmt run`` need not import the agent's code.
ENV_CONTROLLER_NAME = "ZEEK_MGMT_RUN_CONTROLLER_NAME"
ENV_CONTROLLER_PIDFILE = "ZEEK_MGMT_RUN_CONTROLLER_PIDFILE"
