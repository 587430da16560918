"""Durable state files: atomic TOML writes with a schema version.

Every write goes to a temporary file in the same directory, is flushed and fsynced, then
renamed over the target, and the directory is fsynced, so after a crash (``kill -9``,
power loss) the file is either the previous complete version or the new complete version,
never a mix. Reads that find a corrupt or foreign file raise
:class:`~mgmt.exceptions.StateStoreError` naming the file; nothing here ever replaces a
file it could not read.

A write interrupted by ``kill -9`` or a power loss leaves its temporary file
(``.<name>.<random>.tmp``) behind; :func:`remove_stale_temporaries` removes those at
start-up, once the daemon holds its state directory's lock (:mod:`mgmt.persist.lock`), so
it can never delete the temporary file of a write in progress.
"""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import tempfile
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import tomli_w

from mgmt.exceptions import StateStoreError

log = logging.getLogger("mgmt")


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically and durably.

    Raises:
        StateStoreError: the directory is not writable, the disk is full, ...
    """
    directory = path.parent
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError as exc:
        raise StateStoreError(str(path), f"cannot write: {exc.strerror or exc}") from exc


def remove_stale_temporaries(directory: Path, names: Iterable[str]) -> list[Path]:
    """Remove the temporary files that interrupted writes of ``names`` left in ``directory``.

    Matches ``.<name>.*.tmp`` for each state file name (what :func:`write_atomic` and the
    node table store create) and nothing else; each removal is logged.

    Only call this while holding the directory's instance lock: a live writer's temporary
    file looks the same.

    Returns:
        The files removed. A file that cannot be removed is logged and skipped.
    """
    removed = []
    for name in names:
        for path in sorted(directory.glob(f".{glob.escape(name)}.*.tmp")):
            if path.is_symlink() or not path.is_file():
                continue
            try:
                path.unlink()
            except FileNotFoundError:
                continue
            except OSError as exc:
                log.warning("cannot remove leftover temporary file %s: %s", path, exc.strerror)
                continue
            log.info("removed %s, left over from an interrupted write", path)
            removed.append(path)
    return removed


def save_toml(path: Path, kind: str, schema_version: int, body: dict[str, Any]) -> None:
    """Write ``body`` as a TOML document tagged with ``kind`` and ``schema_version``."""
    doc = {"kind": kind, "schema_version": schema_version, **body}
    write_atomic(path, tomli_w.dumps(doc).encode("utf-8"))


def load_toml(path: Path, kind: str, schema_version: int) -> dict[str, Any] | None:
    """Read a document written by :func:`save_toml`.

    Returns:
        The document, or ``None`` when the file does not exist (a fresh start).

    Raises:
        StateStoreError: unreadable, not TOML, another kind of file, or a schema version
            this code does not understand. The file is left untouched.
    """
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StateStoreError(str(path), f"cannot read: {exc.strerror or exc}") from exc
    try:
        doc = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise StateStoreError(str(path), f"corrupt state file (not valid TOML: {exc})") from exc
    if doc.get("kind") != kind:
        raise StateStoreError(str(path), f"not a {kind} state file (kind={doc.get('kind')!r})")
    version = doc.get("schema_version")
    if version != schema_version:
        raise StateStoreError(
            str(path),
            f"unsupported schema_version {version!r} (this version reads {schema_version})",
        )
    return doc
