"""The Zeek installation in use: where Zeek's framework keeps its state, spool and logs.

As Zeek's framework (``Management::get_state_dir()``/``get_spool_dir()`` fall back to
``Installation::state_dir``/``spool_dir``; ``Management::Agent::archive_dir`` is
``Installation::log_dir``), the three directories default to those of the Zeek in use:
``state_dir`` = ``<prefix>/var/lib`` (nodes in ``<prefix>/var/lib/nodes/<name>``),
``spool_dir`` = ``<prefix>/spool`` (log queue ``<prefix>/spool/log-queue``),
``archive_dir`` = ``<prefix>/logs``. Each is independent, as in Zeek: an explicit
``state_dir`` moves neither the spool nor the archive. The Zeek in use is ``agent.zeek``
when set in the file or a flag (for the controller too, so both roles of one file agree),
else ``zeek`` on PATH; its prefix comes from the ``zeek-config`` beside it (run once per
process, only when one of the three is not explicit), else from its path
(``<prefix>/bin/zeek``); without a zeek, from a ``zeek-config`` on PATH. The directories
are read from the installation's ``base/misc/installation.zeek`` when present (a Zeek
built with its own ``--localstatedir``/``--spooldir``/``--logdir`` has them there), else
the layout above. Without any Zeek: ``/var/lib/zeek-mgmt`` as root, else
``$XDG_STATE_HOME/zeek-mgmt`` or ``~/.local/state/zeek-mgmt``, with ``<state_dir>/spool``
and ``<state_dir>/logs``. ``archive_cmd`` defaults to the ``zeek-archiver`` beside the
zeek in use (Zeek's agent runs ``<Installation::root_dir>/bin/zeek-archiver``), else one
on PATH. The sources say which rule applied, e.g. ``default (zeek-config --prefix of
/opt/zeek/bin/zeek)`` or ``default (no Zeek found)``. (The rules are applied by the
default functions of :mod:`mgmt.settings.schema`.)
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from pathlib import Path

from mgmt.core.frozen import frozen


@frozen
class ZeekInstallation:
    """Directories of a Zeek installation, as Zeek's ``Installation::`` module has them."""

    prefix: Path
    #: ``Installation::state_dir`` (``<prefix>/var/lib`` unless configured otherwise).
    state_dir: Path
    #: ``Installation::spool_dir`` (``<prefix>/spool``).
    spool_dir: Path
    #: ``Installation::log_dir`` (``<prefix>/logs``).
    log_dir: Path
    #: How it was found, e.g. ``zeek-config --prefix of /opt/zeek/bin/zeek``.
    origin: str


_INSTALLATION_CONST = re.compile(
    r'^\s*const\s+(state_dir|spool_dir|log_dir)\s*=\s*"([^"\\]*)"\s*;', re.MULTILINE
)
#: How long zeek-config (a small shell script) may take.
_ZEEK_CONFIG_TIMEOUT = 10.0


def is_program(path: str) -> bool:
    """Whether ``path`` is an executable file."""
    return os.path.isfile(path) and os.access(path, os.X_OK)


def which(program: str, path: str) -> str:
    """``program`` looked up on the search path ``path`` ("" if not found)."""
    return shutil.which(program, path=path) or ""


def resolve_program(program: str, path: str) -> str:
    """A program setting as a path: a bare name is looked up on ``path`` ("" if not found)."""
    if not program or os.sep in program:
        return program
    return which(program, path)


def bin_dirs(program: str) -> list[str]:
    """The directory of ``program`` and, if it is a symlink, that of its target."""
    if not program:
        return []
    dirs = [os.path.dirname(os.path.abspath(program))]
    real = os.path.dirname(os.path.realpath(program))
    return dirs if real in dirs else [*dirs, real]


@functools.cache
def _ask_zeek_config(zeek_config: str) -> tuple[str, str] | None:
    """``zeek-config --prefix --script_dir``, once per process; None if it fails."""
    try:
        done = subprocess.run(
            [zeek_config, "--prefix", "--script_dir"],
            capture_output=True,
            text=True,
            timeout=_ZEEK_CONFIG_TIMEOUT,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    lines = done.stdout.splitlines()
    if done.returncode != 0 or len(lines) != 2 or not all(os.path.isabs(x) for x in lines):
        return None
    return lines[0], lines[1]


@functools.cache
def _installation_dirs(script_dir: str) -> dict[str, str]:
    """The directories ``base/misc/installation.zeek`` names (what Zeek really uses)."""
    path = os.path.join(script_dir, "base", "misc", "installation.zeek")
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError:
        return {}
    return {m[1]: m[2] for m in _INSTALLATION_CONST.finditer(text) if os.path.isabs(m[2])}


def _installation(prefix: str, script_dir: str, origin: str) -> ZeekInstallation:
    dirs = _installation_dirs(script_dir)
    return ZeekInstallation(
        prefix=Path(prefix),
        state_dir=Path(dirs.get("state_dir") or os.path.join(prefix, "var", "lib")),
        spool_dir=Path(dirs.get("spool_dir") or os.path.join(prefix, "spool")),
        log_dir=Path(dirs.get("log_dir") or os.path.join(prefix, "logs")),
        origin=origin,
    )


def find_zeek_installation(zeek: str, path: str) -> ZeekInstallation | None:
    """The installation of the Zeek in use, or None when no Zeek is found.

    ``zeek`` is the zeek executable in use ("" if none; one that is not an executable file
    is no installation): the ``zeek-config`` beside it
    (or beside the file a symlink points to) gives the prefix; without one, a zeek at
    ``<prefix>/bin/zeek`` does. Without a zeek, a ``zeek-config`` on ``path`` does.
    The directories are those of the installation's ``base/misc/installation.zeek``
    (Zeek's ``Installation::`` module, which the framework uses), else the standard layout
    ``<prefix>/var/lib``, ``<prefix>/spool``, ``<prefix>/logs``.
    """
    if zeek:
        if not is_program(zeek):
            return None
        for bindir in bin_dirs(zeek):
            zeek_config = os.path.join(bindir, "zeek-config")
            if is_program(zeek_config) and (answer := _ask_zeek_config(zeek_config)):
                return _installation(*answer, origin=f"zeek-config --prefix of {zeek}")
        bindir = bin_dirs(zeek)[-1]
        if os.path.basename(bindir) == "bin":
            prefix = os.path.dirname(bindir)
            scripts = os.path.join(prefix, "share", "zeek")
            return _installation(prefix, scripts, origin=f"prefix of {zeek}")
        return None
    zeek_config = shutil.which("zeek-config", path=path) or ""
    if zeek_config and (answer := _ask_zeek_config(zeek_config)):
        return _installation(*answer, origin=f"{zeek_config} --prefix")
    return None
