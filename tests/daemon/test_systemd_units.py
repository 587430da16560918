"""The systemd units: the templates (package data, linked from ``systemd/``), what
``zeek-mgmt systemd install`` writes from them, ``systemd-analyze verify`` on both, and the
choices they document."""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mgmt.daemon.exitstatus import EXIT_FATAL
from mgmt.install.systemd import Installation, render, under_home
from tests.paths import REPO_ROOT
from tests.support.cli import RUN_TIMEOUT
from tests.support.programs import write_executable

UNITS = ("zeek-mgmt-controller.service", "zeek-mgmt-agent.service")
TEMPLATES = REPO_ROOT / "mgmt" / "install" / "units"


def _parse(text: str) -> dict[str, list[str]]:
    """``section.key -> values`` of a unit (repeated keys kept)."""
    values: dict[str, list[str]] = {}
    section = ""
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        values.setdefault(f"{section}.{key}", []).append(value)
    return values


def _unit(name: str) -> dict[str, list[str]]:
    """A template, parsed."""
    return _parse((TEMPLATES / name).read_text())


def _analyze() -> str:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (Debian package 'systemd')")
    return analyze


def _verify_file(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_analyze(), "verify", "--man=no", str(path)],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
    )


def _verify(name: str, tmp_path: Path, extra: str = "") -> subprocess.CompletedProcess[str]:
    """verify a template, its ExecStart pointed at a stand-in (verify checks that the
    program exists; /usr/local/bin/zeek-mgmt need not)."""
    _analyze()
    exe = write_executable(tmp_path / "zeek-mgmt", "#!/bin/sh\nexit 0\n")
    text = (TEMPLATES / name).read_text()
    assert "\nExecStart=/usr/local/bin/zeek-mgmt " in text
    text = text.replace("\nExecStart=/usr/local/bin/zeek-mgmt ", f"\nExecStart={exe} ") + extra
    (tmp_path / name).write_text(text)
    return _verify_file(tmp_path / name)


@pytest.mark.parametrize("name", UNITS)
def test_systemd_analyze_verify(name: str, tmp_path: Path) -> None:
    """systemd-analyze verify accepts the template without a single warning."""
    proc = _verify(name, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip() == "", proc.stderr


def install(tmp_path: Path, *args: str, argv0: list[str] | None = None) -> Path:
    """Run ``zeek-mgmt systemd install --prefix <tmp>/units ARGS``; returns the prefix."""
    prefix = tmp_path / "units"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZEEK_")}
    proc = subprocess.run(
        [*(argv0 or [sys.executable, "-m", "mgmt"]), "systemd", "install", "--prefix",
         str(prefix), *args],
        env={**env, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return prefix


@pytest.mark.parametrize("user", [None, "zeek"])
def test_installed_units_pass_verify(user: str | None, tmp_path: Path) -> None:
    """What systemd install writes, for root and for --user zeek (verify does not need the
    account to exist), passes systemd-analyze verify without a warning."""
    _analyze()
    prefix = install(tmp_path, *(["--user", user] if user else []))
    for name in UNITS:
        unit = _parse((prefix / name).read_text())
        assert unit.get("Service.User") == ([user] if user else None)
        proc = _verify_file(prefix / name)
        assert (proc.returncode, proc.stderr.strip()) == (0, ""), proc.stderr


def test_install_names_the_running_executable(tmp_path: Path) -> None:
    """ExecStart= is the absolute path of the zeek-mgmt that ran the command (a venv's is
    not on systemd's search path), with the role; the files are mode 0644."""
    script = tmp_path / "venv" / "bin" / "zeek-mgmt"
    script.parent.mkdir(parents=True)
    # What pip writes for the console script.
    write_executable(
        script, f"#!{sys.executable}\nimport sys\nfrom mgmt.cli import main\nsys.exit(main())\n"
    )
    prefix = install(tmp_path, argv0=[str(script)])
    for name, role in zip(UNITS, ("controller", "agent"), strict=True):
        assert _parse((prefix / name).read_text())["Service.ExecStart"] == [f"{script} {role}"]
        assert (prefix / name).stat().st_mode & 0o777 == 0o644


def test_install_as_an_existing_user_takes_its_group(tmp_path: Path) -> None:
    """--user USER writes User= and that user's primary group; the agent keeps its ambient
    capture capabilities; --role writes one unit only."""
    try:
        entry = pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no 'nobody' account")
    group = grp.getgrgid(entry.pw_gid).gr_name
    prefix = install(tmp_path, "--user", "nobody", "--role", "agent")
    assert not (prefix / UNITS[0]).exists()
    agent = _parse((prefix / UNITS[1]).read_text())
    assert (agent["Service.User"], agent["Service.Group"]) == (["nobody"], [group])
    caps = {"CAP_NET_RAW", "CAP_NET_ADMIN"}
    assert set(agent["Service.AmbientCapabilities"][0].split()) == caps


def test_protect_home_follows_the_installation() -> None:
    """A zeek-mgmt (or venv, or Python) under a home directory gets ProtectHome=read-only
    in the controller (yes would hide it); elsewhere the template's yes stays."""
    assert under_home(["/home/alice/venv/bin/zeek-mgmt", "/usr/bin/python3"]) == [
        "/home/alice/venv/bin/zeek-mgmt"
    ]
    assert under_home(["/homework/x", "/rooted", "/opt/venv"]) == []
    inside = Installation(["/home/alice/venv/bin/zeek-mgmt"], home_paths=["/home/alice/venv"])
    outside = Installation(["/opt/zeek-mgmt/bin/zeek-mgmt"])
    assert _parse(render("controller", inside))["Service.ProtectHome"] == ["read-only"]
    assert _parse(render("controller", outside))["Service.ProtectHome"] == ["yes"]
    assert _parse(render("agent", outside))["Service.ProtectHome"] == ["read-only"]


def test_install_puts_the_zeek_found_on_the_units_path() -> None:
    """The Zeek on PATH at install time: its bin directory first on the units' PATH, and
    its directories writable unless the template lists them already."""
    dirs = ["/srv/zeek/var/lib", "/srv/zeek/spool", "/srv/zeek/logs"]
    inst = Installation(["/x/zeek-mgmt"], zeek="/srv/zeek/bin/zeek", zeek_dirs=dirs)
    unit = _parse(render("agent", inst))
    assert unit["Service.Environment"] == [
        "PATH=/srv/zeek/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin"
    ]
    assert "-/srv/zeek/var/lib -/srv/zeek/spool -/srv/zeek/logs" in unit["Service.ReadWritePaths"]
    usual = ["/opt/zeek/var/lib", "/opt/zeek/spool", "/opt/zeek/logs"]
    inst = Installation(["/x/zeek-mgmt"], zeek="/opt/zeek/bin/zeek", zeek_dirs=usual)
    assert len(_parse(render("agent", inst))["Service.ReadWritePaths"]) == 2  # the template's


def test_repository_units_are_the_package_templates() -> None:
    """systemd/ in the repository links to the package data (one source), which the
    wheel ships."""
    for name in UNITS:
        assert (REPO_ROOT / "systemd" / name).resolve() == (TEMPLATES / name).resolve()
    assert '"install/units/*.service"' in (REPO_ROOT / "pyproject.toml").read_text()


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
    assert u["Service.ExecStart"] == [f"/usr/local/bin/zeek-mgmt {role}"]
    assert u["Unit.Documentation"] == ["man:zeek-mgmt(1)"]


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


def test_install_into_an_unusable_directory_fails_clearly(tmp_path: Path) -> None:
    """A --prefix that cannot hold the units: exit 1, the path and the reason named."""
    blocker = tmp_path / "file"
    blocker.write_text("")
    proc = subprocess.run(
        [sys.executable, "-m", "mgmt", "systemd", "install", "--prefix", str(blocker / "units")],
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (proc.returncode, proc.stdout) == (1, "")
    assert proc.stderr == (
        f"zeek-mgmt systemd: error: cannot write {blocker / 'units'}: Not a directory\n"
    )
