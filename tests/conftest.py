"""Project-wide pytest hooks.

When ``ZEEK_MGMT_REQUIRE_ZEEK=1`` (``.ci/run`` sets it after installing Zeek), a test
marked ``zeek`` that skips, for whatever reason, is reported as failed: CI must never
pass with the real-Zeek tests silently skipped.

Hypothesis runs without its wall-clock checks (per-example deadline, "input generation is
slow"): on a loaded 2-core CI machine they fail on timing, not on a property. The number
of examples and the properties are unchanged.
"""

from __future__ import annotations

import os
from collections.abc import Generator

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "zeek-mgmt",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile("zeek-mgmt")

#: tests.support.real_zeek.REQUIRE_ENV (not imported: conftest stays free of the e2e helpers).
REQUIRE_ENV = "ZEEK_MGMT_REQUIRE_ZEEK"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, None]:
    """Turn the skip of a ``zeek`` test into a failure when real Zeek is required."""
    outcome = yield
    report: pytest.TestReport = outcome.get_result()  # type: ignore[attr-defined]
    if (
        report.skipped
        and not hasattr(report, "wasxfail")
        and item.get_closest_marker("zeek") is not None
        and os.environ.get(REQUIRE_ENV) == "1"
    ):
        longrepr = report.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        report.outcome = "failed"
        report.longrepr = f"zeek test skipped although {REQUIRE_ENV}=1: {reason}"
