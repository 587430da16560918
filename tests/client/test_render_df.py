"""``zeek-mgmt df``'s table: zeekctl's ``df`` layout, errors on stderr and exit 1."""

from __future__ import annotations

from client.render import render_df
from mgmt.broker.extevents import ExtensionResult

GIB = 1024**3


def fs(mount: str, size: int, used: int, avail: int) -> dict[str, object]:
    return {"fs": mount, "dirs": {"state_dir": mount}, "size": size, "used": used, "avail": avail}


def test_table_as_zeekctl() -> None:
    """Header and rows in zeekctl's columns and units (capacity = percent used); an agent
    that failed is an error line and exit 1, the others are still shown."""
    results = (
        ExtensionResult("agent-a", None, True, None, {"v": 1, "filesystems": [
            fs("/", 252 * GIB, 56 * GIB, 79 * GIB),
            fs("/srv", 10 * 1024**2, 512, 0),
        ]}),
        ExtensionResult("agent-b", None, False, "request timed out", None),
    )  # fmt: skip
    out = render_df(results)
    assert out.text == (
        f"{'':46}total  avail  capacity\n"
        f"{'agent-a':>28}  {'/':>15}  252G    79G   41.5 %\n"
        f"{'agent-a':>28}  {'/srv':>15}   10M      0   100.0%\n"
    )
    assert out.exit_code == 1
    assert [d.message for d in out.diagnostics] == ["df failed on agent-b: request timed out"]
