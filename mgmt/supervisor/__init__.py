"""Process supervision of Zeek cluster nodes, zeekctl style (no Zeek Supervisor).

The package is split three ways (STYLE guideline 10):

* :mod:`mgmt.supervisor.policy` -- pure: the per-node state machine (start, ready, exit,
  stop escalation, revival back-off). No clocks, no processes; ``now`` is an argument.
* :mod:`mgmt.supervisor.backend` -- the OS seam: spawn through a ``zeek.<node>`` symlink,
  signal, reap only our own children, adopt foreign pids safely; one-shot commands (the
  agent's archiver) in their own process group.
* :mod:`mgmt.supervisor.nodefiles` -- a node's ``stdout``, ``stderr`` and ``.status``.
* :mod:`mgmt.persist.nodetable` -- the adoption table, an atomic TOML file.
* :mod:`mgmt.supervisor.driver` -- the asyncio driver, :class:`NodeDriver` (the task
  that steps every node), with :mod:`~mgmt.supervisor.node` (one node's record: policy,
  process, bookkeeping) and :mod:`~mgmt.supervisor.exitwatch` (waking the driver on a
  process exit, by pidfd).
* :mod:`mgmt.supervisor.service` -- :class:`SupervisorService`, the command surface on
  the driver: adoption, deploy, restart, stop, queries, shutdown.

This ``__init__`` deliberately imports nothing, so that importing the pure policy does not
pull in asyncio, os or psutil. Import from the submodules.
"""
