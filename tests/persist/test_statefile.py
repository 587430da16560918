"""The one atomic file writer: whole files (state files) and streams (the archiver)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from mgmt.persist.statefile import (
    AtomicFile,
    opened_directory,
    remove_stale_temporaries,
    write_atomic,
)


def test_write_atomic_replaces_the_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    """The new content replaces the old, private to the owner, with no .tmp file left."""
    path = tmp_path / "sub" / "state.toml"
    write_atomic(path, b"old")
    write_atomic(path, b"new")
    assert path.read_bytes() == b"new"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in path.parent.iterdir()) == ["state.toml"]


def test_a_discarded_stream_leaves_the_previous_file(tmp_path: Path) -> None:
    """A stream that fails half-way is discarded: the target keeps its old content."""
    (tmp_path / "log.gz").write_bytes(b"old")
    with opened_directory(tmp_path) as dir_fd:
        out = AtomicFile(dir_fd, "log.gz", ".tmp.log", 0o664)
        out.write(b"partial")
        out.discard()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["log.gz"]
    assert (tmp_path / "log.gz").read_bytes() == b"old"


def test_a_killed_writers_temporary_is_reused_but_never_a_symlink(tmp_path: Path) -> None:
    """A leftover temporary file is truncated and reused; a symlink there is refused."""
    (tmp_path / ".tmp.log").write_bytes(b"left over by kill -9, and longer")
    (tmp_path / "elsewhere").write_bytes(b"untouched")
    with opened_directory(tmp_path) as dir_fd:
        out = AtomicFile(dir_fd, "log.gz", ".tmp.log", 0o664)
        out.write(b"whole")
        out.commit()
        os.symlink(tmp_path / "elsewhere", tmp_path / ".tmp.other")
        with pytest.raises(OSError):
            AtomicFile(dir_fd, "other.gz", ".tmp.other", 0o664)
    assert (tmp_path / "log.gz").read_bytes() == b"whole"
    assert not (tmp_path / ".tmp.log").exists()
    assert (tmp_path / "elsewhere").read_bytes() == b"untouched"


def test_stale_temporaries_of_named_files_only_are_removed(tmp_path: Path) -> None:
    """Only ``.<name>.*.tmp`` of the given state files go; anything else stays."""
    for name in (".agent.toml.1a2b.tmp", ".nodes.toml.99.tmp", ".other.toml.1.tmp", "x.tmp"):
        (tmp_path / name).write_text("")
    removed = remove_stale_temporaries(tmp_path, ("agent.toml", "nodes.toml"))
    assert sorted(p.name for p in removed) == [".agent.toml.1a2b.tmp", ".nodes.toml.99.tmp"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.toml.1.tmp", "x.tmp"]
