"""Real Zeek for the tests marked ``zeek``: finding it, and sites whose nodes run it.

Which Zeek: the ``zeek`` on ``PATH`` (``.ci/run`` puts ``/opt/zeek/bin`` first), with
``zeek-config`` and ``zeek-archiver`` beside it (the test double has neither). Without
one, the tests skip with the reason; with ``ZEEK_MGMT_REQUIRE_ZEEK=1`` (set by ``.ci/run``
after installing Zeek) that is a failure instead (see also ``tests/conftest.py``, which
turns any skip of a ``zeek`` test into a failure then).

:func:`real_site` is a :class:`tests.support.sites.Site` (free ports, state and spool
dirs, ``zeek-mgmt run`` and the real ``zeek-client``) whose agent starts the real
``zeek`` for its nodes, with ``-C`` (loopback traffic has no valid checksums) and
settings from a TOML file. Real nodes take about a second of CPU each to start, more on
a busy machine: waits use :data:`TIMEOUT`, always on an observed state.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import pytest
import tomli_w

from tests.support.ports import free_port_block
from tests.support.reference import LOCAL_AGENT
from tests.support.sites import Site, site
from tests.support.waiting import MS

#: Set (to 1) by .ci/run once it installed Zeek: a missing Zeek is then a failure.
REQUIRE_ENV = "ZEEK_MGMT_REQUIRE_ZEEK"
#: Upper bound for one wait on real Zeek nodes (each takes about a second of CPU to start).
TIMEOUT = 60_000 * MS

#: Zeek's Quickstart cluster plus a proxy: manager, logger, proxy, two workers on ``lo``.
NODES = ["logger", "manager", "proxy", "worker-01", "worker-02"]
#: A log stream every node loading it writes a row with its name to once a second
#: (``mgmt_probe.log`` at the logger): the nodes' logs reaching the logger.
PROBE_SCRIPT = """\
module MgmtProbe;
export {
	redef enum Log::ID += { LOG };
	type Info: record { node: string &log; };
}
event MgmtProbe::tick()
	{
	Log::write(MgmtProbe::LOG, Info($node=Cluster::node));
	schedule 1 sec { MgmtProbe::tick() };
	}
event zeek_init()
	{
	Log::create_stream(MgmtProbe::LOG, Log::Stream($columns=Info, $path="mgmt_probe"));
	schedule 1 sec { MgmtProbe::tick() };
	}
"""


@dataclass(frozen=True)
class RealZeek:
    """An installed Zeek: its programs and version."""

    zeek: Path
    archiver: Path
    prefix: Path
    version: str


def missing(reason: str) -> NoReturn:
    """Skip the test for ``reason``, or fail it when CI asked for real Zeek."""
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{reason}, but {REQUIRE_ENV}=1: the real-Zeek tests must run")
    pytest.skip(reason)


def find_real_zeek() -> RealZeek | str:
    """The real Zeek on PATH, or why there is none."""
    found = shutil.which("zeek")
    if found is None:
        return "no zeek on PATH"
    zeek = Path(found).resolve()
    config, archiver = zeek.with_name("zeek-config"), zeek.with_name("zeek-archiver")
    if not config.exists() or not archiver.exists():
        return f"{zeek} has no zeek-config and zeek-archiver beside it (not a Zeek install)"

    def output(*argv: str) -> str:
        return subprocess.run(
            argv, capture_output=True, text=True, timeout=30_000 * MS, check=True
        ).stdout

    try:
        prefix = output(str(config), "--prefix").strip()
        version = output(str(zeek), "--version").split()[-1]
    except (OSError, subprocess.SubprocessError, IndexError) as exc:
        return f"{zeek} does not run: {exc}"
    return RealZeek(zeek, archiver, Path(prefix), version)


def real_zeek() -> RealZeek:
    """The real Zeek on PATH; skips (or fails, see :func:`missing`) without one."""
    found = find_real_zeek()
    if isinstance(found, str):
        missing(found)
    return found


def settings_toml(zeek: RealZeek, root: Path, **sections: dict[str, Any]) -> str:
    """The settings file of a real-Zeek site: ``sections`` update the defaults here."""
    doc: dict[str, dict[str, Any]] = {
        "agent": {
            "zeek": str(zeek.zeek),
            "node_args": ["-C"],
            "stop_grace": 5.0,
            "request_timeout": 15.0,
            "archive_dir": str(root / "logs"),
            "archive_cmd": shlex.quote(str(zeek.archiver)),
        },
        "controller": {"request_timeout": 18.0},
    }
    for section, values in sections.items():
        doc.setdefault(section, {}).update(values)
    return tomli_w.dumps(doc)


def own_ports() -> dict[str, Any]:
    """Controller settings that give a site's nodes Broker and metrics ports of their own
    (free right now), so that it can run beside a site using Zeek's defaults."""
    return {
        "auto_assign_broker_start_port": free_port_block(8),
        "auto_assign_metrics_start_port": free_port_block(8),
    }


@contextlib.contextmanager
def real_site(root: Path, zeek: RealZeek, **sections: dict[str, Any]) -> Iterator[Site]:
    """A started ``zeek-mgmt run`` whose nodes are real Zeek (agent listed when yielded);
    closed at exit, failing if any process was left behind. Nodes get Zeek's default
    ports unless ``sections`` say otherwise (see :func:`own_ports`)."""
    settings = root / "settings.toml"
    settings.write_text(settings_toml(zeek, root, **sections))
    with site(root, ZEEK_MGMT_CONFIG=str(settings)) as s:
        s.start("run")
        s.wait_agents(LOCAL_AGENT, timeout=TIMEOUT)
        yield s


def write_script(path: Path, text: str) -> Path:
    """Write a Zeek script for a node (``scripts = <path>`` in the configuration)."""
    path.write_text(text)
    return path
