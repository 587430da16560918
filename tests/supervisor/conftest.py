"""Fixtures of the supervisor tests: a test-double node executable and its specs."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from mgmt.supervisor.policy import NodeSpec
from tests.support.programs import write_executable

NODE_SCRIPT = """\
#!{python}
import os, signal, sys, time

mode = os.environ.get("MODE", "run")
print("stdout of", os.environ.get("CLUSTER_NODE"), flush=True)
print("", flush=True)
print("stderr of", os.environ.get("CLUSTER_NODE"), file=sys.stderr, flush=True)
if mode == "exit1":
    print("fatal error: problem with interface eth9", file=sys.stderr, flush=True)
    sys.exit(1)

def write_status(text):
    with open(".status", "w") as f:
        f.write(text + "\\n")

def on_term(signum, frame):
    write_status("TERMINATED [atexit]")
    os._exit(0)

signal.signal(signal.SIGTERM, signal.SIG_IGN if mode == "ignore_term" else on_term)
write_status("INITIALIZING [main]")
if mode != "never_ready":
    write_status("RUNNING [run_loop]")
while True:
    time.sleep(60)
"""


@pytest.fixture
def node_exe(tmp_path: Path) -> Path:
    """The test-double node executable."""
    return write_executable(tmp_path / "fakezeek", NODE_SCRIPT.format(python=sys.executable))


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    path = tmp_path / "state"
    path.mkdir()
    return path


@pytest.fixture
def make_spec(node_exe: Path, state_dir: Path) -> Callable[..., NodeSpec]:
    def make(name: str, mode: str = "run", **extra: object) -> NodeSpec:
        env = {"PATH": os.environ.get("PATH", os.defpath), "CLUSTER_NODE": name, "MODE": mode}
        return NodeSpec(
            name=name,  # type: ignore[arg-type]
            argv=(str(node_exe), "-U", ".status"),
            env=env,
            cwd=str(state_dir / "nodes" / name),
            **extra,  # type: ignore[arg-type]
        )

    return make
