"""Install the test-double ``zeek`` for tests.

``install_zeek_double(bin_dir)`` writes an executable ``bin_dir/zeek``: a launcher whose
first line is ``#!<sys.executable> -I`` (it runs under the test interpreter, isolated
from ``PYTHON*`` variables in the agent's environment and from its working directory)
and which runs the double, the package ``zeek`` next to this file, with that package's
directory as the only addition to ``sys.path``. So the double imports the standard
library, ``websockets`` and itself, never ``mgmt`` or ``tests``; its byte code is cached
beside its sources like any module's. Exec'ing the launcher through a symlink named
``zeek.<node>`` gives the process the kernel comm name ``zeek.<node>`` (the kernel names
a process after the file passed to ``execve``, also for ``#!`` scripts).

To share the pytest fixture, import it in a ``conftest.py``::

    from tests.zeekdouble.fixture import zeek_double  # noqa: F401
"""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest

#: The double: a package, run by the launcher as the top-level package ``zeek``.
DOUBLE_PACKAGE = Path(__file__).with_name("zeek")


def install_zeek_double(bin_dir: Path) -> Path:
    """Write the executable test-double ``zeek`` into ``bin_dir``.

    Args:
        bin_dir: Directory to hold ``zeek`` (created if missing). Its parent is
            the double's pretend install prefix (``<prefix>/share/zeek`` in messages).

    Returns:
        The path of the executable.
    """
    if any(ch.isspace() for ch in sys.executable):
        raise RuntimeError(f"cannot use {sys.executable!r} in a #! line")
    bin_dir.mkdir(parents=True, exist_ok=True)
    launcher = (
        f"#!{sys.executable} -I\n"
        '"""The test-double zeek (tests/zeekdouble/fixture.py installed it)."""\n'
        "import sys\n\n"
        f"sys.path.insert(0, {str(DOUBLE_PACKAGE.parent)!r})\n"
        "from zeek.process import run\n\n"
        "run()\n"
    )
    target = bin_dir / "zeek"
    tmp = bin_dir / ".zeek.tmp"
    tmp.write_text(launcher, encoding="utf-8")
    tmp.chmod(tmp.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    os.replace(tmp, target)
    return target


def node_link(zeek: Path, node: str, directory: Path | None = None) -> Path:
    """Create (or replace) a symlink ``zeek.<node>`` to ``zeek`` and return it.

    Kernel comm names are at most 15 bytes, so ``zeek.<node>`` is truncated there.
    """
    link = (directory or zeek.parent) / f"zeek.{node}"
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(zeek)
    return link


@pytest.fixture
def zeek_double(tmp_path: Path) -> Path:
    """The test-double ``zeek``, installed in ``<tmp_path>/zeek-prefix/bin``."""
    return install_zeek_double(tmp_path / "zeek-prefix" / "bin")
