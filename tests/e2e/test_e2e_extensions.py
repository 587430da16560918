"""End to end: zeek-mgmt's extension API (README, "API") with a real controller and real
agents (``python -m mgmt controller`` / ``agent``, the zeek double on PATH), and the real
``zeek-client`` beside it, which must not notice anything but its own traffic."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

from client.api import ControllerClient
from mgmt.broker.extevents import ExtensionResult
from tests.support.sites import CONTROLLER_NAME, TIMEOUT, Site, site
from tests.support.waiting import wait_until
from tests.zeekdouble.zeek import ZEEK_VERSION

AGENTS = ("agent-a", "agent-b")


def start_cluster(s: Site, tmp_path: Path, *controller_args: str) -> None:
    """A controller and two agents (own names, ports and state), both listed."""
    s.start("controller", *controller_args)
    s.start_agents(*AGENTS)


def get_versions(s: Site) -> subprocess.CompletedProcess[str]:
    """``zeek-mgmt get-versions`` against the site's controller."""
    return subprocess.run(
        [sys.executable, "-m", "mgmt", "get-versions", "--controller", f"127.0.0.1:{s.ws_port}"],
        env=s.client_env(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )


async def versions_of(s: Site) -> tuple[ExtensionResult, ...]:
    async with ControllerClient("127.0.0.1", s.ws_port, timeout=TIMEOUT) as ctl:
        return await ctl.get_versions()


def test_get_versions_names_the_controller_and_every_agent(tmp_path: Path) -> None:
    """get-versions prints one entry for the controller and one per connected agent, with
    their real pids, and each agent's Zeek version (the controller runs no Zeek)."""
    with site(tmp_path) as s:
        start_cluster(s, tmp_path)
        run = get_versions(s)
        assert run.returncode == 0, (run, s.daemon_logs())
        out = json.loads(run.stdout)
        assert out["errors"] == []
        assert sorted(out["results"]) == sorted([CONTROLLER_NAME, *AGENTS])
        pids = {d.name: d.pid for d in s.daemons}
        for name, entry in out["results"].items():
            role = "controller" if name == CONTROLLER_NAME else "agent"
            assert entry["v"] == 1 and entry["role"] == role and entry["name"] == name
            assert entry["pid"] == pids[name if role == "agent" else "controller"]
            assert entry["zeek"] == (ZEEK_VERSION if role == "agent" else None)
            assert entry["zeek_mgmt"] and entry["python"] and entry["started"] > 1_600_000_000


def test_zeek_client_ignores_extension_traffic(tmp_path: Path) -> None:
    """The real zeek-client, mid-request and in monitor, skips the extension events the
    controller publishes on its topic: its own answers and exit codes are unchanged."""
    with site(tmp_path) as s:
        start_cluster(s, tmp_path, "--request-timeout", "6")
        watched = tmp_path / "monitor.out", tmp_path / "monitor.err"
        with open(watched[0], "w") as out, open(watched[1], "w") as err:
            monitor = subprocess.Popen(
                s.client_argv("-vv", "monitor"),
                env={**s.client_env(), "PYTHONUNBUFFERED": "1"},  # lines as they come
                stdout=out,
                stderr=err,
            )
        # The monitor must be subscribed before any extension event is published.
        wait_until(lambda: "info: peered with controller" in watched[1].read_text(), what="monitor")
        waiting = subprocess.Popen(
            s.client_argv("-v", "test-timeout", "--with-state"),
            env=s.client_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            # Once the controller holds zeek-client's request, extension traffic flows
            # on the topic that zeek-client is reading.
            wait_until(lambda: "rx test_timeout_request" in s.daemon_logs(), what="request")
            # In-process, so that it surely ends before the controller's request timeout.
            versions = asyncio.run(versions_of(s))
            assert [v.success for v in versions] == [True, True, True]
            stdout, stderr = waiting.communicate(timeout=TIMEOUT)
            assert waiting.returncode == 0, (stdout, stderr)
            assert json.loads(stdout) == {"success": False, "error": "request timed out"}
            assert "ZeekMgmt::Controller::API::get_version_response" in stderr
            # monitor skipped the extension events and still reports what it knows.
            s.client("get-instances", check=True)
            wait_until(
                lambda: "get_instances_response" in watched[0].read_text(), what="monitor line"
            )
            assert monitor.poll() is None
        finally:
            monitor.terminate()
            waiting.kill()
            monitor.wait(timeout=TIMEOUT)
        assert "ZeekMgmt::Controller::API::get_version_request" in watched[1].read_text()
        assert "ZeekMgmt" not in watched[0].read_text()
