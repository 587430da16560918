"""Ordered start and stop of the nodes: which waiting group goes next (a pure policy).

Rules / theory of operation
---------------------------
zeekctl starts loggers, then the manager, then proxies, then workers, each group once
the previous one runs; it stops them in the reverse order (:mod:`mgmt.core.startorder`
ranks the roles). The supervisor's driver (:mod:`mgmt.supervisor.driver`) keeps nodes
*waiting* (held back from a start, or queued for a stop) and asks a :class:`GroupOrder`
at each step which of them may go now, describing every node as a :class:`Member`:

* a waiting group goes when no *busy* node ranks before it: for a start, no node of an
  earlier group is PENDING or CRASHED (started, not RUNNING yet); for a stop, no node of
  a later group is STOPPING. FAILED and STOPPED nodes never hold anyone up;
* or once it has waited ``timeout`` seconds since it became the next group to go; the
  :class:`Release` then names the busy nodes it did not wait for (the driver logs them
  and notes them on those nodes).

Several groups may go in one step (e.g. empty ranks, or nobody busy). The policy never
reads a clock: :meth:`GroupOrder.release` takes ``now``, :meth:`GroupOrder.next_deadline`
says when a timeout falls due.

This module is pure: no I/O, no asyncio.
"""

from __future__ import annotations

from collections.abc import Iterable

from mgmt.core.frozen import frozen
from mgmt.core.startorder import GROUP_NAMES
from mgmt.typing import NodeName


@frozen
class Member:
    """One node as the order sees it.

    Attributes:
        name: the node.
        rank: its group's place in the start order (:func:`mgmt.core.startorder.rank`).
        waiting: it waits for its turn (to start, or to be stopped).
        busy: it holds later groups up (starting: PENDING or CRASHED; stopping: STOPPING).
    """

    name: NodeName
    rank: int
    waiting: bool
    busy: bool


@frozen
class Release:
    """A group that may go now.

    Attributes:
        names: its waiting nodes, sorted.
        group: its name for logs (``workers``).
        overdue: the busy nodes it did not wait for (its timeout passed), sorted; empty
            when it went in order.
    """

    names: tuple[NodeName, ...]
    group: str
    overdue: tuple[NodeName, ...] = ()


class GroupOrder:
    """The order of one direction (see the module docstring).

    Args:
        reverse: ``False`` for starts (lowest rank first), ``True`` for stops.
        timeout: seconds a group waits for the busy nodes ahead of it.
    """

    def __init__(self, *, reverse: bool, timeout: float) -> None:
        self.reverse = reverse
        self.timeout = timeout
        #: The rank that goes next, and since when it waits (``now`` of that step).
        self._next: int | None = None
        self._since = 0.0

    def _ahead(self, busy: Member, rank: int) -> bool:
        return busy.rank > rank if self.reverse else busy.rank < rank

    def release(self, members: Iterable[Member], now: float) -> list[Release]:
        """The groups that may go now, in order (empty when none may)."""
        members = list(members)
        waiting = [m for m in members if m.waiting]
        busy = [m for m in members if m.busy and not m.waiting]
        out: list[Release] = []
        while waiting:
            pick = max if self.reverse else min
            rank = pick(m.rank for m in waiting)
            if rank != self._next:
                self._next, self._since = rank, now
            blocking = sorted(m.name for m in busy if self._ahead(m, rank))
            if blocking and now - self._since < self.timeout:
                return out
            group = [m for m in waiting if m.rank == rank]
            out.append(
                Release(tuple(sorted(m.name for m in group)), GROUP_NAMES[rank], tuple(blocking))
            )
            waiting = [m for m in waiting if m.rank != rank]
            busy += group
            self._next = None
        self._next = None
        return out

    def next_deadline(self) -> float | None:
        """When the group that goes next stops waiting, if one waits."""
        return None if self._next is None else self._since + self.timeout
