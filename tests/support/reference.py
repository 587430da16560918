"""What real Zeek 8.2.2 and zeek-client 1.5.0 did, recorded in ``tests/data/zeek-8.2.2``
(see tests/data/README.md): the cluster configurations of the captures, and each
command's exit code, stdout and stderr.

A missing capture is an error, never a skip: parity data lives in the repository.
"""

from __future__ import annotations

import re
import socket
from pathlib import Path

from tests.paths import DATA
from tests.support.cli import Run

REFERENCE = DATA / "zeek-8.2.2"
#: The cluster configurations used for the captures.
CONFIGS = REFERENCE / "configs"
#: The agent name of the capture host (``agent-vm``) is ours in comparisons.
CAPTURE_AGENT = "agent-vm"
#: zeek-client names the instance of a configuration without ``[instances]`` after
#: the host it runs on.
LOCAL_AGENT = f"agent-{socket.gethostname() or 'localhost'}"

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def config_files() -> list[Path]:
    """The reference configurations, sorted; an error (never an empty list) if missing."""
    files = sorted(CONFIGS.glob("*.cfg"))
    if not files:
        raise FileNotFoundError(f"no reference configs in {CONFIGS} (see tests/data/README.md)")
    return files


def reference_output(name: str) -> Run:
    """The capture ``zeek-client_<name>.txt``: exit code, stdout and stderr."""
    path = REFERENCE / f"zeek-client_{name}.txt"
    if not path.is_file():
        raise AssertionError(f"reference capture missing: {path} (see tests/data/README.md)")
    text = path.read_text()
    code = int(re.search(r"^# exit code: (\d+)$", text, re.M).group(1))  # type: ignore[union-attr]
    stdout, _, stderr = text.split("## stdout\n", 1)[1].partition("## stderr")
    return Run([], code, stdout, stderr.removeprefix("\n"))


def normalise(text: str) -> str:
    """Make outputs comparable: ids become ``<id>``, the capture host's agent name ours."""
    return _UUID.sub("<id>", text).replace(CAPTURE_AGENT, LOCAL_AGENT)
