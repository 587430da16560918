"""``zeek-mgmt systemd install [--user USER] [--prefix DIR]``: write the systemd units.

The templates are package data (``mgmt/install/units/*.service``; the repository's
``systemd/`` links to them): valid units for ``/usr/local/bin/zeek-mgmt`` run as root.
``install`` writes them into ``--prefix`` (``/etc/systemd/system``) for *this*
installation:

* ``ExecStart=`` names the absolute path of the zeek-mgmt that runs the command (a venv's
  or pipx's ``bin/zeek-mgmt`` is not on systemd's search path), or ``<python> -m mgmt``
  when it was started that way;
* ``--user USER``: ``User=``/``Group=`` (the user's primary group). The agent keeps
  ``CAP_NET_RAW``/``CAP_NET_ADMIN`` as ambient capabilities, which is what a non-root
  agent's Zeek nodes need for capture; the controller needs no capability;
* ``ProtectHome=yes`` (controller) becomes ``read-only`` when zeek-mgmt, its venv or its
  Python lives under ``/home``, ``/root`` or ``/run/user``, which ``yes`` would hide (the
  agent is ``read-only`` anyway: node scripts may live there);
* the Zeek found on ``PATH`` now: its directory goes first on the units' ``PATH`` (systemd's
  default has no ``/opt/zeek/bin``, so the daemons would find no Zeek and use other
  directories), and its state, spool and log directories into ``ReadWritePaths=`` unless
  the template lists them already.

Nothing else changes; everything the template says about hardening stays. What it writes
passes ``systemd-analyze verify`` (tests/daemon/test_systemd_units.py).
"""

from __future__ import annotations

import argparse
import grp
import os
import pwd
import shutil
import sys
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

#: The units, by role.
UNITS = {"controller": "zeek-mgmt-controller.service", "agent": "zeek-mgmt-agent.service"}
#: Where the templates' ExecStart= points.
TEMPLATE_EXEC = "/usr/local/bin/zeek-mgmt"
#: What ProtectHome= hides.
HOME_DIRS = ("/home", "/root", "/run/user")
#: systemd's default PATH for services (systemd >= 239, "split /usr").
SYSTEMD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin"
DEFAULT_PREFIX = "/etc/systemd/system"


@dataclass(frozen=True)
class Installation:
    """What the units are written for.

    Attributes:
        exec_start: the command line that runs zeek-mgmt (before the role).
        user: the account (``None``: root).
        group: its group.
        home_paths: paths of this installation that lie under a home directory.
        zeek: the zeek found on PATH ("" if none).
        zeek_dirs: that Zeek's state, spool and log directories.
    """

    exec_start: list[str]
    user: str | None = None
    group: str | None = None
    home_paths: list[str] = field(default_factory=list)
    zeek: str = ""
    zeek_dirs: list[str] = field(default_factory=list)


def template(role: str) -> str:
    """The unit template of ``role`` (package data)."""
    return resources.files("mgmt.install").joinpath("units", UNITS[role]).read_text("utf-8")


def running_executable(argv0: str = "", python: str = "") -> list[str]:
    """How this zeek-mgmt was started, as an absolute command: the ``zeek-mgmt`` script
    (not resolved: a pipx symlink stays the stable name), the one beside the Python, or
    ``<python> -m mgmt``."""
    argv0 = argv0 or sys.argv[0]
    python = python or sys.executable
    if os.path.basename(argv0) == "zeek-mgmt" and os.access(argv0, os.X_OK):
        return [os.path.abspath(argv0)]
    beside = os.path.join(os.path.dirname(python), "zeek-mgmt")
    if os.access(beside, os.X_OK):
        return [beside]
    return [os.path.abspath(python), "-m", "mgmt"]


def under_home(paths: list[str]) -> list[str]:
    """Those of ``paths`` (or the files they link to) under a directory ProtectHome hides."""
    found = []
    for path in paths:
        for candidate in dict.fromkeys((path, os.path.realpath(path))):
            if any(candidate == d or candidate.startswith(d + "/") for d in HOME_DIRS):
                found.append(candidate)
    return list(dict.fromkeys(found))


def _quote(word: str) -> str:
    """A word of a systemd command line (quoted if it needs it)."""
    if word and all(c not in word for c in " \t\"'\\;$%"):
        return word
    return '"' + word.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%") + '"'


def render(role: str, inst: Installation) -> str:
    """The unit for ``role``, written for ``inst``."""
    text = template(role)
    old = f"\nExecStart={TEMPLATE_EXEC} {role}\n"
    if old not in text:
        raise ValueError(f"template {UNITS[role]} has no '{old.strip()}' line")
    command = " ".join(_quote(w) for w in [*inst.exec_start, role])
    text = text.replace(old, f"\nExecStart={command}\n")
    if inst.home_paths and "\nProtectHome=yes\n" in text:
        text = text.replace(
            "\nProtectHome=yes\n",
            f"\n# {', '.join(inst.home_paths)} is under a home directory: readable, not hidden.\n"
            "ProtectHome=read-only\n",
        )
    flags = f" --user {inst.user}" if inst.user else ""
    added = [f"# Written by `zeek-mgmt systemd install{flags}`."]
    if inst.user:
        added += [f"User={inst.user}", f"Group={inst.group or inst.user}"]
    if inst.zeek:
        zeek_bin = os.path.dirname(inst.zeek)
        if zeek_bin not in SYSTEMD_PATH.split(":"):
            added.append(f"Environment=PATH={zeek_bin}:{SYSTEMD_PATH}")
        missing = [d for d in inst.zeek_dirs if f"-{d} " not in text and f"-{d}\n" not in text]
        if missing:
            added.append("ReadWritePaths=" + " ".join(f"-{d}" for d in missing))
    return text.replace("\n[Service]\n", "\n[Service]\n" + "\n".join(added) + "\n", 1)


def _account(user: str | None) -> tuple[str | None, str | None, str | None]:
    """(user, group, warning) for ``--user`` (root and none mean: no User=)."""
    if user in (None, "", "root"):
        return None, None, None
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        return (
            user,
            user,
            (
                f"user {user!r} does not exist yet: create it before starting the units, e.g. "
                f"useradd --system --user-group --no-create-home {user}"
            ),
        )
    try:
        group = grp.getgrgid(entry.pw_gid).gr_name
    except KeyError:
        group = str(entry.pw_gid)
    return user, group, None


def installation(user: str | None) -> tuple[Installation, list[str]]:
    """What to write for this process's zeek-mgmt and ``user``; plus warnings."""
    from mgmt.settings.zeek import find_zeek_installation

    warnings = []
    name, group, problem = _account(user)
    if problem:
        warnings.append(problem)
    exec_start = running_executable()
    zeek = shutil.which("zeek") or ""
    paths = [exec_start[0], sys.prefix, sys.base_prefix, *([zeek] if zeek else [])]
    dirs: list[str] = []
    if zeek:
        found = find_zeek_installation(zeek, os.environ.get("PATH", os.defpath))
        if found is not None:
            dirs = [str(found.state_dir), str(found.spool_dir), str(found.log_dir)]
    else:
        warnings.append(
            "no zeek on PATH: set [agent] zeek in /etc/zeek-mgmt.toml (the agent warns at "
            "start-up until it finds one)"
        )
    inst = Installation(exec_start, name, group, under_home(paths), zeek, dirs)
    return inst, warnings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``install [--user USER] [--prefix DIR]``."""
    actions = parser.add_subparsers(dest="systemd_action", metavar="ACTION", required=True)
    install = actions.add_parser(
        "install",
        help="write zeek-mgmt-controller.service and zeek-mgmt-agent.service",
        description="Write the systemd units for this zeek-mgmt (its absolute path, the "
        "account to run as, the Zeek on PATH). Then: systemctl daemon-reload; systemctl "
        "enable --now zeek-mgmt-controller zeek-mgmt-agent.",
    )
    install.add_argument(
        "--user",
        metavar="USER",
        help="run the daemons as USER (its primary group); default root. The agent's "
        "nodes keep CAP_NET_RAW and CAP_NET_ADMIN for capture",
    )
    install.add_argument(
        "--prefix",
        metavar="DIR",
        default=DEFAULT_PREFIX,
        help=f"directory to write the units into (default {DEFAULT_PREFIX})",
    )
    install.add_argument(
        "--role",
        choices=tuple(UNITS),
        action="append",
        help="write only this daemon's unit (repeatable; default both)",
    )


def run(args: argparse.Namespace) -> int:
    """Write the units; 1 with ``error: ...`` when a file cannot be written."""
    inst, warnings = installation(args.user)
    prefix = Path(args.prefix)
    written = []
    try:
        prefix.mkdir(parents=True, exist_ok=True)
        for role in args.role or tuple(UNITS):
            path = prefix / UNITS[role]
            tmp = path.with_name(f".{path.name}.tmp")
            tmp.write_text(render(role, inst), encoding="utf-8")
            tmp.chmod(0o644)
            os.replace(tmp, path)
            written.append(path)
    except OSError as exc:
        print(f"zeek-mgmt systemd: error: cannot write {exc.filename or prefix}: "
              f"{exc.strerror or exc}", file=sys.stderr)  # fmt: skip
        return 1
    for path in written:
        print(f"wrote {path}")
    print(f"  ExecStart={' '.join(inst.exec_start)} <role>")
    print(f"  user: {inst.user or 'root'}")
    if inst.home_paths:
        print(f"  ProtectHome=read-only: {', '.join(inst.home_paths)} is under a home directory")
    if inst.zeek:
        print(f"  zeek: {inst.zeek} (the units' PATH has its directory)")
        if inst.user and inst.zeek_dirs:
            print(f"  {inst.user} needs write access to {', '.join(inst.zeek_dirs)}")
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    names = " ".join(p.stem for p in written)
    print(f"next: systemctl daemon-reload && systemctl enable --now {names}")
    return 0
