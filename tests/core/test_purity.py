"""The pure layer stays pure: importing mgmt.broker pulls in no I/O machinery.

Two guards (STYLE guideline 1): ``mgmt/broker/ruff.toml`` bans the imports statically;
this test checks at run time, in a fresh interpreter per module, that nothing imported
them indirectly either.
"""

from __future__ import annotations

import json
import os
import pkgutil
import subprocess
import sys
import tomllib

import pytest

import mgmt.broker
import mgmt.core
from tests.paths import REPO_ROOT

# os and time are loaded by every interpreter at start-up, so only the modules that mean
# "this code does I/O or runs an event loop" can be checked at run time; ruff covers the rest.
FORBIDDEN = ("asyncio", "websockets", "socket", "psutil", "signal", "selectors", "subprocess")
PURE_MODULES = (
    ["mgmt.broker"]
    + [f"mgmt.broker.{m.name}" for m in pkgutil.iter_modules(mgmt.broker.__path__)]
    + ["mgmt.core", "mgmt.archive.names", "mgmt.settings.model"]
    + [f"mgmt.core.{m.name}" for m in pkgutil.iter_modules(mgmt.core.__path__)]
    # The pure policies of the daemons (DESIGN.md "Layers", level 2).
    + [
        "mgmt.controller.validation",
        "mgmt.controller.actions",
        "mgmt.controller.configs",
        "mgmt.controller.deploy",
        "mgmt.controller.fanout",
        "mgmt.controller.instances",
        "mgmt.controller.requests",
        "mgmt.controller.state",
        "mgmt.agent.actions",
        "mgmt.agent.extensions",
        "mgmt.agent.layout",
        "mgmt.agent.retention",
        "mgmt.agent.state",
        "mgmt.supervisor.order",
        "mgmt.supervisor.policy",
    ]
    # The client's pure layer: settings, cluster files and every renderer (the CLI's I/O
    # is in client.api, client.connect and the command modules).
    + [
        "client.config",
        "client.clusterconfig",
        "client.workers",
        "client.render",
        "client.extrender",
        "client.observe",
    ]
)


def imported_by(module: str) -> list[str]:
    """The FORBIDDEN modules present in sys.modules after importing ``module`` afresh."""
    code = (
        "import importlib, json, sys\n"
        f"importlib.import_module({module!r})\n"
        f"print(json.dumps([m for m in {FORBIDDEN!r} if m in sys.modules]))\n"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    result: list[str] = json.loads(out.stdout)
    return result


def test_all_submodules_are_listed() -> None:
    """The module list covers the package (so a new module is checked automatically)."""
    assert {"mgmt.broker.data", "mgmt.broker.session", "mgmt.core.peertext"} <= set(PURE_MODULES)


@pytest.mark.parametrize("module", PURE_MODULES)
def test_pure_module_imports_no_io(module: str) -> None:
    """Importing a pure module in a fresh interpreter loads no asyncio/websockets/socket."""
    assert imported_by(module) == []


def test_the_check_can_fail() -> None:
    """The same probe does see asyncio and websockets when the transport is imported."""
    assert {"asyncio", "websockets", "socket"} <= set(imported_by("mgmt.transport"))


@pytest.mark.parametrize("package", ["broker", "core", "controller"])
def test_nested_ruff_config_bans_io_imports(package: str) -> None:
    """The pure packages' ruff.toml extends the project config and bans the I/O modules."""
    config = tomllib.loads((REPO_ROOT / "mgmt" / package / "ruff.toml").read_text())
    assert config["extend"] == "../../pyproject.toml"
    assert "TID251" in config["lint"]["extend-select"]
    banned = config["lint"]["flake8-tidy-imports"]["banned-api"]
    assert set(banned) == {"asyncio", "websockets", "socket", "psutil", "time", "os", "signal"}
    assert all(entry["msg"] for entry in banned.values())
