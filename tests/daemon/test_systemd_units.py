"""The systemd units in ``systemd/``: ``systemd-analyze verify`` and the choices they document."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from mgmt.daemon.exitstatus import EXIT_FATAL
from tests.paths import REPO_ROOT
from tests.support.cli import RUN_TIMEOUT

UNITS = ("zeek-mgmt-controller.service", "zeek-mgmt-agent.service")


def _unit(name: str) -> dict[str, list[str]]:
    """``key -> values`` of a unit's [Service] and [Unit] sections (repeated keys kept)."""
    values: dict[str, list[str]] = {}
    section = ""
    for line in (REPO_ROOT / "systemd" / name).read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        values.setdefault(f"{section}.{key}", []).append(value)
    return values


def _verify(name: str, tmp_path: Path, extra: str = "") -> subprocess.CompletedProcess[str]:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (Debian package 'systemd')")
    # verify checks that ExecStart's program exists; point it at a stand-in executable.
    exe = tmp_path / "zeek-mgmt"
    exe.write_text("#!/bin/sh\nexit 0\n")
    exe.chmod(0o755)
    text = (REPO_ROOT / "systemd" / name).read_text()
    assert "\nExecStart=zeek-mgmt " in text
    text = text.replace("\nExecStart=zeek-mgmt ", f"\nExecStart={exe} ") + extra
    (tmp_path / name).write_text(text)
    return subprocess.run(
        [analyze, "verify", "--man=no", str(tmp_path / name)],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
    )


@pytest.mark.parametrize("name", UNITS)
def test_systemd_analyze_verify(name: str, tmp_path: Path) -> None:
    """systemd-analyze verify accepts the unit without a single warning."""
    proc = _verify(name, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip() == "", proc.stderr


def test_verify_reports_a_misspelt_key(tmp_path: Path) -> None:
    """The check above can fail: verify warns about an unknown key (while exiting 0)."""
    proc = _verify(UNITS[0], tmp_path, extra="KilMode=process\n")
    assert "Unknown key 'KilMode'" in proc.stderr


@pytest.mark.parametrize("name", UNITS)
def test_common_service_settings(name: str) -> None:
    """Both units: Type=notify, restart on failure (not after a fatal start-up error) with a
    start limit, state dir, watchdog."""
    u = _unit(name)
    assert u["Service.Type"] == ["notify"]
    assert u["Service.Restart"] == ["on-failure"]
    assert u["Service.RestartPreventExitStatus"] == [str(EXIT_FATAL)]
    assert "Unit.StartLimitBurst" in u and "Unit.StartLimitIntervalSec" in u
    assert u["Service.StateDirectory"] == ["zeek-mgmt"]
    assert u["Service.ProtectSystem"] == ["strict"]
    assert "Service.WatchdogSec" in u
    role = name.split("-")[2].split(".")[0]
    assert u["Service.ExecStart"] == [f"zeek-mgmt {role}"]


def test_controller_has_no_capabilities() -> None:
    """The controller runs with an empty capability set and only IP and unix sockets."""
    u = _unit("zeek-mgmt-controller.service")
    assert u["Service.CapabilityBoundingSet"] == [""]
    assert u["Service.NoNewPrivileges"] == ["yes"]
    assert u["Service.RestrictAddressFamilies"] == ["AF_INET AF_INET6 AF_UNIX"]


def test_agent_keeps_nodes_and_capture_capabilities() -> None:
    """The agent: KillMode=process (nodes survive an agent restart), ambient capture caps,
    packet sockets allowed, stop timeout longer than the default node stop grace (26 s)."""
    u = _unit("zeek-mgmt-agent.service")
    assert u["Service.KillMode"] == ["process"]
    caps = {"CAP_NET_RAW", "CAP_NET_ADMIN"}
    assert set(u["Service.AmbientCapabilities"][0].split()) == caps
    assert set(u["Service.CapabilityBoundingSet"][0].split()) == caps
    assert "AF_PACKET" in u["Service.RestrictAddressFamilies"][0].split()
    assert int(u["Service.TimeoutStopSec"][0].rstrip("s")) > 26
