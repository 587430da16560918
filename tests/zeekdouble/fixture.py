"""Install the test-double ``zeek`` for tests.

``install_zeek_double(bin_dir)`` writes an executable ``bin_dir/zeek`` whose
first line is ``#!<sys.executable> -I`` followed by the double's source, so that
it runs under the test interpreter, isolated from ``PYTHON*`` variables in the
agent's environment. Exec'ing it through a symlink named ``zeek.<node>`` gives
the process the kernel comm name ``zeek.<node>`` (the kernel names a process
after the file passed to ``execve``, also for ``#!`` scripts).

To share the pytest fixture, import it in a ``conftest.py``::

    from tests.zeekdouble.fixture import zeek_double  # noqa: F401
"""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest

DOUBLE_SOURCE = Path(__file__).with_name("zeek.py")


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
    source = DOUBLE_SOURCE.read_text(encoding="utf-8")
    if source.startswith("#!"):
        source = source.split("\n", 1)[1]
    target = bin_dir / "zeek"
    tmp = bin_dir / ".zeek.tmp"
    tmp.write_text(f"#!{sys.executable} -I\n{source}", encoding="utf-8")
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
