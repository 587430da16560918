"""Process titles: the command line a daemon shows (``set_process_title``)."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.paths import REPO_ROOT
from tests.support.waiting import MS

_SHOW = """
import json, os
from mgmt.daemon.procname import set_process_title
set_process_title("zeek.ctl-with-a-long-name", json.loads(os.environ["ARGS"]))
raw = open("/proc/self/cmdline", "rb").read()
env = open("/proc/self/environ", "rb").read()
print(json.dumps({
    "argv": [a.decode() for a in raw.rstrip(b"\\0").split(b"\\0")],
    "comm": open("/proc/self/comm").read().strip(),
    "env": b"MARK=kept" in env,
    "spt": "SPT_NOENV" in os.environ,
}))
"""


def show_title(args: list[str]) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-c", _SHOW],
        env={"PYTHONPATH": str(REPO_ROOT), "MARK": "kept", "ARGS": json.dumps(args)},
        capture_output=True,
        text=True,
        check=True,
        timeout=30_000 * MS,
    ).stdout
    result: dict[str, object] = json.loads(out)
    return result


def test_title_is_an_argv_led_by_the_zeek_name() -> None:
    """The command line becomes name, zeek-mgmt, args (a word with a space stays one arg)."""
    got = show_title(["controller", "--state-dir", "/srv/my state"])
    assert got["argv"] == [
        "zeek.ctl-with-a-long-name", "zeek-mgmt", "controller", "--state-dir", "/srv/my state"
    ]  # fmt: skip
    assert got["comm"] == "zeek.ctl-with-a"  # the kernel keeps 15 bytes
    assert got["env"] is True and got["spt"] is False  # environment untouched


def test_words_that_do_not_fit_are_left_out() -> None:
    """The title never outgrows the original command line: trailing words are dropped whole."""
    got = show_title(["agent", "x" * (len(_SHOW) + 1000)])
    assert got["argv"] == ["zeek.ctl-with-a-long-name", "zeek-mgmt", "agent"]
