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


def run_script(script: str, args: list[str], **env: str) -> dict[str, object]:
    """Run ``script`` in a fresh interpreter with ``ARGS`` (and ``env``); its JSON output."""
    out = subprocess.run(
        [sys.executable, "-c", script],
        env={"PYTHONPATH": str(REPO_ROOT), "MARK": "kept", "ARGS": json.dumps(args), **env},
        capture_output=True,
        text=True,
        check=True,
        timeout=30_000 * MS,
    ).stdout
    result: dict[str, object] = json.loads(out)
    return result


def show_title(args: list[str]) -> dict[str, object]:
    return run_script(_SHOW, args)


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


_ROOM = """
import json, os, sys
from mgmt.daemon import procname
if os.environ.get("REFUSE_MOVE"):  # a kernel without PR_SET_MM_MAP, or one that refuses it
    procname._set_mm_map = lambda args: False
args = json.loads(os.environ["ARGS"])
procname.make_title_room(procname.title_length("zeek.ctl-with-a-long-name", args))
procname.set_process_title("zeek.ctl-with-a-long-name", args)
raw = open("/proc/self/cmdline", "rb").read()
print(json.dumps({
    "argv": [a.decode() for a in raw.rstrip(b"\\0").split(b"\\0")],
    "env": b"MARK=kept" in open("/proc/self/environ", "rb").read(),
    "reexecuted": procname.TITLE_ROOM_XOPTION in sys._xoptions,
}))
"""


def titled_with_room(args: list[str], **env: str) -> dict[str, object]:
    return run_script(_ROOM, args, **env)


def test_made_room_fits_a_title_longer_than_the_command_line() -> None:
    """make_title_room (what run does for its forked children): the whole title, and the
    environment stays readable."""
    args = ["agent", "--set", "x" * 1000]
    got = titled_with_room(args)
    assert got["argv"] == ["zeek.ctl-with-a-long-name", "zeek-mgmt", *args]
    assert got["env"] is True


def test_where_the_command_line_cannot_move_room_is_made_by_reexecuting() -> None:
    """When the kernel refuses to move the command line, the process re-executes itself
    once with a padded one, and the whole title fits the same."""
    args = ["agent", "--set", "x" * 1000]
    got = titled_with_room(args, REFUSE_MOVE="1")
    assert got == {
        "argv": ["zeek.ctl-with-a-long-name", "zeek-mgmt", *args],
        "env": True,
        "reexecuted": True,
    }
