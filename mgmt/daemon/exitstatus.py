"""Exit statuses of the daemons, and how ``zeek-mgmt run`` and systemd read them.

* 0: stopped on request (SIGTERM/SIGINT).
* 1: an unexpected error (Python's status for an uncaught exception, i.e. a bug) or a
  crash; a restart may well get past it, so ``zeek-mgmt run`` and the systemd units
  (``Restart=on-failure``) restart the daemon.
* :data:`EXIT_FATAL` (78, ``EX_CONFIG`` of sysexits.h): a start-up error that a restart
  cannot fix: invalid settings, a corrupt state file, a state directory locked by another
  instance, a listening port that cannot be bound. The daemon exits before it touched any
  node or state file. ``zeek-mgmt run`` does not restart such a child (it stops the other
  one and exits with this status too), and the units say ``RestartPreventExitStatus=78``.
"""

from __future__ import annotations

import sys

#: A start-up error that a restart cannot fix (see the module docstring).
EXIT_FATAL = 78


def start_up_failed(role: str, message: str) -> int:
    """Print ``zeek-mgmt <role>: error: <message>`` on stderr; returns :data:`EXIT_FATAL`."""
    print(f"zeek-mgmt {role}: error: {message}", file=sys.stderr)
    return EXIT_FATAL
