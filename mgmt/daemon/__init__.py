"""What every daemon process needs around its service, and ``zeek-mgmt run``.

* :mod:`mgmt.daemon.driver` -- runs a pure state machine: steps, timers, signals.
* :mod:`mgmt.daemon.sdnotify` -- systemd readiness, status, watchdog.
* :mod:`mgmt.daemon.procname` -- kernel names and command lines as Zeek's.
* :mod:`mgmt.daemon.logsetup` -- logging set-up and stack dumps.
* :mod:`mgmt.daemon.fdlimit` -- the open-file limit.
* :mod:`mgmt.daemon.exitstatus` -- exit statuses (78: do not restart).
* :mod:`mgmt.daemon.run` -- ``zeek-mgmt run``, the controller + agent supervisor.
"""
