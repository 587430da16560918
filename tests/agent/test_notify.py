"""The notification hook: notify_cmd runs without a shell, with the event in ZEEK_MGMT_*
variables, under a time limit; its failures are logged and never raised."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import textwrap
from pathlib import Path

import pytest

from mgmt.agent.notify import Notifier, NotifyEvent, from_node_event, notify
from mgmt.settings.model import AgentSettings
from mgmt.settings.sources import load_settings
from mgmt.supervisor.nodeevents import NodeEvent
from mgmt.supervisor.policy import ExitStatus
from tests.support.programs import write_executable
from tests.support.settings import ENV, HOST, agent_settings
from tests.support.waiting import TIMEOUT

HOOK = """\
#!{python}
import json, os, sys, time
if os.environ.get("ZEEK_MGMT_NODE") == "slow":
    time.sleep(60)
with open(sys.argv[1], "a") as f:
    env = {{k: v for k, v in os.environ.items() if k.startswith("ZEEK_MGMT_")}}
    f.write(json.dumps({{"argv": sys.argv[1:], "env": env}}) + "\\n")
print("hook says hi")
sys.exit(3 if os.environ.get("ZEEK_MGMT_NODE") == "bad" else 0)
"""


@pytest.fixture
def hook(tmp_path: Path) -> Path:
    return write_executable(tmp_path / "hook", HOOK.format(python=sys.executable))


def calls(out: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []


@pytest.mark.asyncio
async def test_hook_gets_the_event_in_its_environment(tmp_path: Path, hook: Path) -> None:
    """An array runs as argv; the event arrives as ZEEK_MGMT_EVENT/NODE/TEXT/... ."""
    out = tmp_path / "calls"
    settings = agent_settings(tmp_path, notify_cmd=(str(hook), str(out)), name="agent-a")
    crash = NodeEvent(
        "crashed",
        "worker-01",  # type: ignore[arg-type]
        1767225296.789,
        pid=42,
        exit_status=ExitStatus(signal=9),
        restarts=0,
        crash_dir=tmp_path / "crash" / "x",
    )
    assert await notify(settings, from_node_event("agent-a", crash))
    (call,) = calls(out)
    assert call["argv"] == [str(out)]
    assert call["env"] == {
        "ZEEK_MGMT_EVENT": "crashed",
        "ZEEK_MGMT_NODE": "worker-01",
        "ZEEK_MGMT_INSTANCE": "agent-a",
        "ZEEK_MGMT_TEXT": "worker-01 on agent-a crashed: killed by SIGKILL (pid 42); "
        "it will be revived",
        "ZEEK_MGMT_TIME": "1767225296.789",
        "ZEEK_MGMT_PID": "42",
        "ZEEK_MGMT_EXIT": "killed by SIGKILL",
        "ZEEK_MGMT_EXIT_SIGNAL": "9",
        "ZEEK_MGMT_RESTARTS": "0",
        "ZEEK_MGMT_CRASH_DIR": str(tmp_path / "crash" / "x"),
    }


@pytest.mark.asyncio
async def test_a_string_is_split_not_given_to_a_shell_unless_asked(
    tmp_path: Path, hook: Path
) -> None:
    """A string is split into words (a ';' is an argument); notify_shell runs /bin/sh -c."""
    out = tmp_path / "calls"
    plain = agent_settings(tmp_path, notify_cmd=f"{hook} {out} ';' 'two words'")
    assert await notify(plain, NotifyEvent("disk-low", "", "disk low"))
    assert calls(out)[0]["argv"] == [str(out), ";", "two words"]
    shell = agent_settings(
        tmp_path, notify_cmd=f'{hook} {out} "$ZEEK_MGMT_EVENT"', notify_shell=True
    )
    assert await notify(shell, NotifyEvent("disk-ok", "", "disk fine"))
    assert calls(out)[1]["argv"] == [str(out), "disk-ok"]


@pytest.mark.asyncio
async def test_failures_are_logged_never_raised(
    tmp_path: Path, hook: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A missing program, a non-zero exit and a hook over its time limit (killed) are
    WARNINGs; notify returns False."""
    caplog.set_level(logging.WARNING, "mgmt.agent")
    out = tmp_path / "calls"
    missing = agent_settings(tmp_path, notify_cmd=(str(tmp_path / "nope"),))
    assert not await notify(missing, NotifyEvent("failed", "w", "x"))
    failing = agent_settings(tmp_path, notify_cmd=(str(hook), str(out)))
    assert not await notify(failing, NotifyEvent("crashed", "bad", "x"))
    slow = agent_settings(tmp_path, notify_cmd=(str(hook), str(out)), notify_timeout=0.3)
    async with asyncio.timeout(TIMEOUT):
        assert not await notify(slow, NotifyEvent("crashed", "slow", "x"))
    messages = [r.getMessage() for r in caplog.records]
    assert messages[0].startswith("notify_cmd for failed w: cannot run ")
    assert messages[1] == "notify_cmd for crashed bad: exit status 3: hook says hi"
    assert messages[2] == "notify_cmd for crashed slow: no exit within 0.3 s, killed"


@pytest.mark.asyncio
async def test_notifier_runs_events_in_order(tmp_path: Path, hook: Path) -> None:
    """Posted events run one at a time, in the order posted; close waits for them."""
    out = tmp_path / "calls"
    notifier = Notifier(agent_settings(tmp_path, notify_cmd=(str(hook), str(out))))
    for kind in ("crashed", "recovered", "crashed"):
        notifier.post(NotifyEvent(kind, "worker-01", kind))
    await notifier.close(grace=TIMEOUT)
    assert [c["env"]["ZEEK_MGMT_EVENT"] for c in calls(out)] == [  # type: ignore[index]
        "crashed",
        "recovered",
        "crashed",
    ]


def test_notify_settings_from_toml(tmp_path: Path) -> None:
    """notify_cmd takes an array or a string; an unsplittable string is refused."""
    good = tmp_path / "good.toml"
    good.write_text(
        textwrap.dedent("""\
        [agent]
        notify_cmd = ["/usr/local/bin/page", "--team", "nsm"]
        notify_timeout = 5
        crash_keep = 3
        max_restarts = 10
        """)
    )
    settings, _ = load_settings("agent", config_path=str(good), env=ENV, flags={}, host=HOST)
    assert isinstance(settings, AgentSettings)
    assert settings.notify_cmd == ("/usr/local/bin/page", "--team", "nsm")
    assert (settings.notify_timeout, settings.crash_keep, settings.max_restarts) == (5, 3, 10)
    bad = tmp_path / "bad.toml"
    bad.write_text('[agent]\nnotify_cmd = "mail -s \'unclosed"\n')
    with pytest.raises(Exception, match="notify_cmd"):
        load_settings("agent", config_path=str(bad), env=ENV, flags={}, host=HOST)
