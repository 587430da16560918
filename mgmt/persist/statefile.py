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
import secrets
import tomllib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import tomli_w

from mgmt.exceptions import StateStoreError

log = logging.getLogger("mgmt")


class AtomicFile:
    """One atomic, durable replacement of a file, written as a stream.

    The data goes to a temporary file in the target's directory (created, or truncated if
    a killed writer left it, never through a symlink). :meth:`commit` then fsyncs it,
    renames it over the target and fsyncs the directory; :meth:`discard` removes it. So
    after a crash the target is either its previous or its new complete version.
    :func:`write_atomic` writes a whole file this way; the archiver streams compressed
    logs through it.

    Args:
        dir_fd: the directory, opened with ``O_DIRECTORY`` (owned by the caller).
        target: the file's name in that directory.
        temp: the temporary file's name in that directory.
        mode: the permission bits of the file (the umask applies).

    Raises:
        OSError: the temporary file cannot be created.
    """

    def __init__(self, dir_fd: int, target: str, temp: str, mode: int = 0o600) -> None:
        self.dir_fd = dir_fd
        self.target = target
        self.temp = temp
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
        #: The temporary file, open for writing until :meth:`close`.
        self.fd: int | None = os.open(temp, flags, mode, dir_fd=dir_fd)

    def write(self, data: bytes | memoryview) -> None:
        """Append ``data`` to the temporary file."""
        assert self.fd is not None, "written after close"
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view) :]

    def close(self) -> None:
        """Make the data durable (fsync) and close the temporary file. Idempotent."""
        fd, self.fd = self.fd, None
        if fd is not None:
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def commit(self) -> None:
        """Close the temporary file, rename it over the target, fsync the directory.

        Raises:
            OSError: a step failed; the temporary file is removed.
        """
        try:
            self.close()
            os.rename(self.temp, self.target, src_dir_fd=self.dir_fd, dst_dir_fd=self.dir_fd)
            os.fsync(self.dir_fd)
        except BaseException:
            self.discard()
            raise

    def discard(self) -> None:
        """Close and remove the temporary file (a failed write). Never raises OSError."""
        fd, self.fd = self.fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(self.temp, dir_fd=self.dir_fd)


def open_directory(path: Path | str) -> int:
    """An ``O_DIRECTORY`` descriptor of ``path``, for :class:`AtomicFile` and fsyncs."""
    return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)


@contextlib.contextmanager
def closing_fd(fd: int) -> Iterator[int]:
    """``fd`` for the block, closed when it ends."""
    try:
        yield fd
    finally:
        os.close(fd)


def opened_directory(path: Path | str) -> contextlib.AbstractContextManager[int]:
    """:func:`open_directory` for a ``with`` block, closed when it ends."""
    return closing_fd(open_directory(path))


def write_atomic(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data`` atomically and durably (see :class:`AtomicFile`),
    creating its directory if needed. The temporary file is ``.<name>.<random>.tmp``.

    Raises:
        StateStoreError: the directory is not writable, the disk is full, ...
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with opened_directory(path.parent) as dir_fd:
            temp = f".{path.name}.{secrets.token_hex(6)}.tmp"
            out = AtomicFile(dir_fd, path.name, temp, mode)
            try:
                out.write(data)
            except BaseException:
                out.discard()
                raise
            out.commit()
    except OSError as exc:
        raise StateStoreError(str(path), f"cannot write: {exc.strerror or exc}") from exc


def remove_stale_temporaries(directory: Path, names: Iterable[str]) -> list[Path]:
    """Remove the temporary files that interrupted writes of ``names`` left in ``directory``.

    Matches ``.<name>.*.tmp`` for each state file name (what :func:`write_atomic` creates)
    and nothing else; each removal is logged.

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


def read_if_present(path: Path) -> bytes | None:
    """The content of the state file ``path``; ``None`` when it does not exist.

    Raises:
        StateStoreError: it exists but cannot be read.
    """
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StateStoreError(str(path), f"cannot read: {exc.strerror or exc}") from exc


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
    raw = read_if_present(path)
    if raw is None:
        return None
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
