"""The start order policy: zeekctl's groups by role, each once the previous one runs."""

from __future__ import annotations

from mgmt.broker.records import ClusterRole
from mgmt.core.startorder import group_count, rank
from mgmt.supervisor.order import GroupOrder, Member, Release
from mgmt.typing import NodeName


def member(name: str, role: str, *, waiting: bool = False, busy: bool = False) -> Member:
    return Member(NodeName(name), rank(role), waiting, busy)


def test_groups_go_in_zeekctls_order_each_once_the_previous_is_not_busy() -> None:
    """Loggers first; the manager once no logger is starting; workers after proxies."""
    order = GroupOrder(reverse=False, timeout=10)
    nodes = {
        "w1": ("worker", True), "p": ("proxy", True), "m": ("manager", True),
        "l": ("logger", True), "w2": ("worker", True),
    }  # fmt: skip

    def members(busy: set[str] = frozenset()) -> list[Member]:  # type: ignore[assignment]
        return [
            member(n, role, waiting=waiting, busy=n in busy) for n, (role, waiting) in nodes.items()
        ]

    assert order.release(members(), 0.0) == [Release(("l",), "loggers")]
    nodes["l"] = ("logger", False)
    assert order.release(members({"l"}), 1.0) == []  # the logger is still starting
    assert order.release(members(), 2.0) == [Release(("m",), "manager")]
    nodes["m"] = ("manager", False)
    assert order.release(members(), 2.5) == [
        Release(("p",), "proxies"),
    ]  # the manager is not busy (RUNNING) any more, the proxy goes
    nodes["p"] = ("proxy", False)
    assert order.release(members(), 3.0) == [Release(("w1", "w2"), "workers")]


def test_a_group_goes_at_its_timeout_naming_whom_it_did_not_wait_for() -> None:
    """After the timeout the next group goes anyway; the release names the busy nodes."""
    order = GroupOrder(reverse=False, timeout=10)
    members = [member("l", "logger", busy=True), member("w", "worker", waiting=True)]
    assert order.release(members, 100.0) == []
    assert order.next_deadline() == 110.0
    assert order.release(members, 109.9) == []
    assert order.release(members, 110.0) == [Release(("w",), "workers", ("l",))]
    assert order.next_deadline() is None


def test_stop_order_is_the_reverse() -> None:
    """Stopping: workers first, loggers once the workers are gone."""
    order = GroupOrder(reverse=True, timeout=10)
    members = [member("l", "logger", waiting=True), member("w", "worker", waiting=True)]
    assert order.release(members, 0.0) == [Release(("w",), "workers")]
    members = [member("l", "logger", waiting=True), member("w", "worker", busy=True)]
    assert order.release(members, 1.0) == []  # the worker is still stopping
    members = [member("l", "logger", waiting=True), member("w", "worker")]
    assert order.release(members, 2.0) == [Release(("l",), "loggers")]


def test_group_count_counts_the_roles_present() -> None:
    """Deployments get one request timeout per start group."""
    roles = [ClusterRole.WORKER, ClusterRole.WORKER, ClusterRole.MANAGER]
    assert group_count(roles) == 2
    assert group_count([]) == 1
