"""zeekctl's start order of a cluster's nodes, by role.

zeekctl starts the loggers, then the manager, then the proxies, then the workers, each
group once the previous one runs, and stops them in the reverse order. A node's *rank*
is its group's place in that order; nodes of other roles (``NONE``) come last. The
agent's supervisor follows the order (:mod:`mgmt.supervisor.order`); the controller
gives a deployment one request timeout per group it has (:func:`group_count`).

Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable

from mgmt.broker.records import ClusterRole

#: Roles in start order, as the lower-case names node specs carry.
START_ORDER = ("logger", "manager", "proxy", "worker")
#: The rank of every other role (started last, stopped first).
OTHER_RANK = len(START_ORDER)
#: The name of each rank's group, for logs.
GROUP_NAMES = ("loggers", "manager", "proxies", "workers", "other nodes")


def role_name(role: ClusterRole) -> str:
    """The role as node specs carry it: ``logger``, ..., ``none``."""
    return role.name.lower()


def rank(role: str) -> int:
    """A role's place in the start order (0 first); unknown roles rank last."""
    try:
        return START_ORDER.index(role)
    except ValueError:
        return OTHER_RANK


def group_count(roles: Iterable[ClusterRole]) -> int:
    """How many start groups nodes of these roles form (at least 1)."""
    return max(1, len({rank(role_name(r)) for r in roles}))
