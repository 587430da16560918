"""A daemon's open-file limit: raised at start-up, and checked against its connection limits.

Every peer connection costs a file descriptor. The soft ``RLIMIT_NOFILE`` is often 1024
while the hard limit is much higher (systemd: 524288), so at start-up a daemon raises the
soft limit to the hard one, as Zeek does (``maximize_num_fds()`` in ``src/File.cc``: not
when the hard limit is unlimited). If the limit is still too small for ``max_connections``
on each listening port plus :data:`RESERVE`, a warning says so: then ``accept()`` may run
out of descriptors before the connection limit refuses anyone (it is handled, see
:mod:`mgmt.transport.connection`, but the operator should raise ``LimitNOFILE=``).
"""

from __future__ import annotations

import logging
import resource

log = logging.getLogger("mgmt")

#: Descriptors a daemon needs besides its listening ports' connections: logs, state files,
#: the event loop, dialed connections, an agent's node channels and child pipes.
RESERVE = 64


def raise_fd_limit() -> int:
    """Raise the soft open-file limit to the hard limit; return the soft limit in effect
    (``resource.RLIM_INFINITY`` for none)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft == hard:
        return soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError) as exc:
        log.warning("cannot raise the open file limit from %d to %d: %s", soft, hard, exc)
        return soft
    log.debug("raised the open file limit from %d to %d", soft, hard)
    return hard


def check_fd_budget(limit: int, ports: int, max_connections: int) -> bool:
    """Warn when ``limit`` descriptors cannot hold ``max_connections`` on each of ``ports``
    listening ports plus :data:`RESERVE`; return whether they can."""
    need = ports * max_connections + RESERVE
    if limit == resource.RLIM_INFINITY or need <= limit:
        return True
    log.warning(
        "the open file limit (%d) is below the %d that max_connections = %d on %d port(s) "
        "needs: connections may fail with 'too many open files' before the limit refuses "
        "them; raise LimitNOFILE= (ulimit -n) or lower max_connections",
        limit,
        need,
        max_connections,
        ports,
    )
    return False
