"""The pure retention rules: which archived logs, crash and node directories go."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mgmt.agent.retention import (
    AgedEntry,
    ArchivedFile,
    DiskWatch,
    RetentionBounds,
    Space,
    expired_entries,
    plan_log_expiry,
)

DAY = 86400.0
NOW = 100 * DAY
TODAY = frozenset({"2026-12-07"})


def f(day: str, name: str, age_days: float, size: int = 100) -> ArchivedFile:
    return ArchivedFile(day, name, size, NOW - age_days * DAY)


ARCHIVE = [
    f("2026-12-01", "conn.00:00:00-01:00:00.log.gz", 6),
    f("2026-12-01", "dns.00:00:00-01:00:00.log.gz", 6),
    f("2026-12-04", "conn.00:00:00-01:00:00.log.gz", 3),
    f("2026-12-06", "conn.00:00:00-01:00:00.log.gz", 1),
    f("2026-12-07", "conn.00:00:00-01:00:00.log.gz", 0.1),
]


def names(files: tuple[ArchivedFile, ...]) -> list[str]:
    return [f"{x.day}/{x.name.split('.')[0]}" for x in files]


C1, D1, C4, C6 = "2026-12-01/conn", "2026-12-01/dns", "2026-12-04/conn", "2026-12-06/conn"
B = RetentionBounds


@pytest.mark.parametrize(
    ("bounds", "space", "by_age", "for_space"),
    [
        (B(), None, [], []),
        (B(expire_after=2 * DAY), None, [C1, D1, C4], []),
        (B(expire_after=2 * DAY, keep=("conn.*",)), None, [D1], []),
        (B(expire_after=5 * DAY, keep=("dns*",)), None, [C1], []),
        # 500 bytes in all, at most 300: the oldest day (200 bytes) goes.
        (B(max_size=300), None, [], [C1, D1]),
        # at most 150: every day but today, which is never touched.
        (B(max_size=150), None, [], [C1, D1, C4, C6]),
        # what age removes counts towards the size bound.
        (B(expire_after=5 * DAY, max_size=300), None, [C1, D1], []),
        # 10 % free wanted on 10000 bytes, 850 free: 150 more, the oldest day (200).
        (B(min_free_percent=10), Space(10000, 850), [], [C1, D1]),
        (B(min_free_percent=10), Space(10000, 1000), [], []),
        # kept files are never removed for space either.
        (B(keep=("conn*",), min_free_percent=50), Space(10000, 0), [], [D1]),
    ],
)
def test_plan_table(
    bounds: RetentionBounds, space: Space | None, by_age: list[str], for_space: list[str]
) -> None:
    """Age, keep_logs, size and free-space bounds choose the documented files, oldest first."""
    plan = plan_log_expiry(ARCHIVE, bounds, NOW, TODAY, space)
    assert names(plan.by_age) == by_age
    assert names(plan.for_space) == for_space


days = st.sampled_from(["2026-12-01", "2026-12-02", "2026-12-03", "2026-12-07"])
files = st.lists(
    st.builds(
        ArchivedFile,
        days,
        st.sampled_from(["conn.log.gz", "dns.log.gz", "x509.log.gz", "weird.log.gz"]),
        st.integers(0, 10_000),
        st.floats(NOW - 10 * DAY, NOW),
    ),
    unique_by=lambda a: (a.day, a.name),
)
bounds = st.builds(
    RetentionBounds,
    st.sampled_from([0.0, DAY, 3 * DAY]),
    st.sampled_from([(), ("conn*",), ("*",)]),
    st.integers(0, 20_000),
)


@given(files, bounds)
def test_plan_properties(archive: list[ArchivedFile], limits: RetentionBounds) -> None:
    """Never today's or a kept file, nothing twice; the size bound holds unless only
    protected files are left; older days go before younger ones."""
    plan = plan_log_expiry(archive, limits, NOW, TODAY)
    chosen = plan.files
    assert len(set(chosen)) == len(chosen)
    assert all(x.day not in TODAY for x in chosen)
    assert not any(x.name.startswith("conn") for x in chosen if "conn*" in limits.keep)
    assert not chosen or "*" not in limits.keep
    assert all(NOW - x.mtime > limits.expire_after > 0 for x in plan.by_age)
    left = [x for x in archive if x not in set(chosen)]
    if limits.max_size and sum(x.size for x in left) > limits.max_size:
        protected = [x for x in left if x.day in TODAY or "*" in limits.keep]
        protected += [x for x in left if "conn*" in limits.keep and x.name.startswith("conn")]
        assert set(left) <= set(protected)
    space_days = [x.day for x in plan.for_space]
    assert space_days == sorted(space_days)
    if plan.for_space:
        newest = max(space_days)
        removable_older = [
            x
            for x in left
            if x.day < newest and x.day not in TODAY
            and not any(x.name.startswith(p[:-1]) for p in limits.keep)
        ]  # fmt: skip
        assert removable_older == []


def test_expired_entries() -> None:
    """Entries older than the interval go, sorted; incomplete (.name) and protected stay;
    0 expires nothing."""
    entries = [
        AgedEntry("2026-12-01T00-00-00.000Z", NOW - 5 * DAY),
        AgedEntry("2026-12-06T00-00-00.000Z", NOW - DAY),
        AgedEntry(".2026-11-01T00-00-00.000Z", NOW - 30 * DAY),
        AgedEntry("worker-9", NOW - 30 * DAY),
    ]
    assert expired_entries(entries, 2 * DAY, NOW, protected=("worker-9",)) == (
        "2026-12-01T00-00-00.000Z",
    )
    assert expired_entries(entries, 0, NOW) == ()


def test_disk_watch_reports_each_crossing_once() -> None:
    """Low is reported when free space drops below the threshold, once; ok once when it
    recovers; a 0 threshold never reports."""
    watch = DiskWatch(5.0)
    seen = [watch.observe("/srv", p) for p in (50.0, 4.0, 3.0, 4.9, 6.0, 7.0, 1.0)]
    assert seen == [None, "disk-low", None, None, "disk-ok", None, "disk-low"]
    assert DiskWatch(0.0).observe("/srv", 0.0) is None
