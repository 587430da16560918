"""What a daemon's start-up does not load (each costs every ``zeek-mgmt run`` launch)."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.paths import REPO_ROOT

#: Loaded by nothing the daemons do at start-up: websockets imports importlib.metadata
#: and urllib.request, which import the first three, but never uses them (mgmt.deferred);
#: psutil waits for the first node started or adopted, or the first top request; difflib
#: for a mistyped command or settings key.
NOT_AT_START = ("email.message", "http.client", "zipfile", "psutil", "difflib")


def test_daemons_start_without_the_modules_their_dependencies_never_use() -> None:
    """``python -m mgmt`` then both daemons' code, as ``run`` imports it before forking:
    the deferred modules are not executed, and still work when something uses them."""
    code = (
        "import json, sys\n"
        "import mgmt.cli, mgmt.daemon.run, mgmt.controller.main, mgmt.agent.main\n"
        f"loaded = [m for m in {NOT_AT_START!r} if m in sys.modules]\n"
        "import importlib.metadata, urllib.request\n"
        "from importlib.metadata import version\n"
        "print(json.dumps([loaded, version('websockets') == __import__('websockets').__version__,"
        " isinstance(urllib.request.getproxies(), dict)]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO_ROOT
    ).stdout
    assert json.loads(out) == [[], True, True]
