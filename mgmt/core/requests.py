"""Outstanding requests with deadlines: the one request table of controller and agent.

Rules / theory of operation
---------------------------
This mirrors Zeek's ``policy/frameworks/management/request.zeek``: a request is kept in
a table by its id from the moment it arrives until it is answered, and one that is not
answered within the role's request timeout expires with the error
``request timed out`` (:data:`TIMED_OUT`). Like Zeek's table, a request whose id is
already in use replaces the older entry.

Each role names its own kinds (an ``enum.Enum``) and the response event a kind is
answered with; the table only keeps requests and deadlines. It never reads a clock:
:meth:`RequestTable.create` and :meth:`RequestTable.pop_expired` take ``now``.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from mgmt.broker.records import Configuration, Result

#: The Management API version agents announce in ``notify_agent_hello``
#: (``Management::Agent::API::version``); the controller refuses any other.
API_VERSION = 1
#: The error of a request not answered in time (``Management::Request::request_expired``).
TIMED_OUT = "request timed out"

K = TypeVar("K", bound=enum.Enum)
E = TypeVar("E")

#: How a request is answered with its results: a response event class ``(reqid, results)``.
Respond = Callable[[str, tuple[Result, ...]], E]


@dataclass(slots=True)
class Request(Generic[K, E]):
    """One outstanding request (``Management::Request::Request``).

    The fields after ``results`` are each used by some kinds only, as Zeek's request
    record carries one optional state record per kind.
    """

    id: str
    kind: K
    deadline: float
    #: What the answer will carry so far.
    results: list[Result] = field(default_factory=list)
    #: The response event for requests answered with ``(reqid, results)``.
    response: Respond[E] | None = None
    #: Controller: the client request a child request was sent for.
    parent_id: str = ""
    #: Controller: the instance a child or welcome request went to.
    instance: str = ""
    #: Controller: child request id -> instance, for each child not answered yet.
    children: dict[str, str] = field(default_factory=dict)
    #: Agent: the nodes the request still waits for.
    pending: set[str] = field(default_factory=set)
    #: Deployments: the configuration, and whether the controller deploys it by itself
    #: (at start-up, when agents return) rather than for a client.
    config: Configuration | None = None
    internal: bool = False


class RequestTable(dict[str, Request[K, E]]):
    """The outstanding requests by id (``Management::Request::g_requests``).

    Args:
        timeout: seconds a request may stay unanswered.
    """

    def __init__(self, timeout: float) -> None:
        super().__init__()
        self.timeout = timeout

    def create(
        self, reqid: str, kind: K, now: float, response: Respond[E] | None = None
    ) -> Request[K, E]:
        """A new request expiring ``timeout`` seconds after ``now`` (replacing any
        request with the same id, as Zeek does)."""
        req: Request[K, E] = Request(reqid, kind, now + self.timeout, response=response)
        self[reqid] = req
        return req

    def finish(self, reqid: str) -> Request[K, E] | None:
        """Remove and return a request (``None`` if it is not, or no longer, there)."""
        return self.pop(reqid, None)

    def next_deadline(self) -> float | None:
        """The earliest deadline, if any request is outstanding."""
        return min((r.deadline for r in self.values()), default=None)

    def pop_expired(self, now: float) -> Iterator[Request[K, E]]:
        """Remove and yield, oldest first, each request whose deadline passed by ``now``.

        A request that handling an earlier one removed (or replaced) is skipped, so the
        caller may finish other requests while it handles one.
        """
        for req in [r for r in self.values() if r.deadline <= now]:
            if self.get(req.id) is req:
                del self[req.id]
                yield req
