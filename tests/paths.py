"""Where the repository and the tests' recorded data are (one definition for every test)."""

from __future__ import annotations

from pathlib import Path

#: The repository's root (what daemons started by tests get as PYTHONPATH).
REPO_ROOT = Path(__file__).resolve().parents[1]
#: Recorded outputs and inputs the tests compare against (see tests/data/README.md).
DATA = REPO_ROOT / "tests" / "data"
