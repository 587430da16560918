"""The supervisor's node table on disk, for adoption after a restart of the agent.

One TOML file (DESIGN.md, "Persistence"): written with tomli-w, read with tomllib; every
write is atomic (:func:`mgmt.persist.statefile.write_atomic`) and carries
``schema_version``. A file that cannot be parsed raises
:class:`~mgmt.exceptions.StateStoreError` naming it, and from then on this store refuses
to write over it: an operator must look at it first.

Layout (``env`` holds the node's whole environment, hence mode 0600)::

    schema_version = 1

    [nodes.worker-01]
    intent = "run"            # run | stop | remove
    argv = ["/usr/local/zeek/bin/zeek", "-i", "eth0", "-U", ".status", ...]
    cwd = "/usr/local/zeek/var/lib/nodes/worker-01"
    cpu_affinity = 2          # absent when unset
    role = "worker"           # for the start order; absent when unknown
    pid = 4242                # absent when no process
    create_time = 1718000000.25
    current = true            # false: the process runs an older spec (restart it)

    [nodes.worker-01.env]
    CLUSTER_NODE = "worker-01"
"""

from __future__ import annotations

import enum
import logging
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import tomli_w

from mgmt.core.frozen import frozen
from mgmt.exceptions import StateStoreError
from mgmt.persist.statefile import write_atomic
from mgmt.supervisor.policy import NodeSpec
from mgmt.typing import NodeName

logger = logging.getLogger("mgmt.supervisor")

SCHEMA_VERSION = 1


class Intent(enum.Enum):
    """What the supervisor wanted for a node when it wrote the table."""

    #: Keep a process running (adopt it, or start one).
    RUN = "run"
    #: Keep the node, without a process (stopped on request, or failed).
    STOP = "stop"
    #: The node left the deployment; a process still found is stopped and forgotten.
    REMOVE = "remove"
    #: Stopped by ``zeek-mgmt stop``: kept stopped (also by a redeploy of an unchanged
    #: spec) until ``zeek-mgmt start`` or a restart.
    HOLD = "hold"


@frozen
class StoredNode:
    """One row of the table.

    Attributes:
        spec: the node's spec (the one to use for the next spawn).
        intent: see :class:`Intent`.
        pid: the live process when the table was written, if any.
        create_time: that process's start time (psutil ``create_time()``).
        current: whether that process was started from ``spec`` (``False`` after a
            deploy changed the spec while the old process was still stopping).
    """

    spec: NodeSpec
    intent: Intent
    pid: int | None = None
    create_time: float | None = None
    current: bool = True


class NodeTableStore:
    """Reads and atomically writes the node table file.

    Args:
        path: the TOML file, e.g. ``<state>/supervisor-nodes.toml``.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._last: bytes | None = None
        self._broken = False
        self._written: tuple[StoredNode, ...] | None = None
        #: Why the last :meth:`update` could not write the table (``None``: it could).
        self.error: str | None = None

    def load(self) -> list[StoredNode]:
        """Read the table. A missing file is an empty table.

        Raises:
            StateStoreError: the file is unreadable, not TOML, of another schema version,
                or malformed. The store then refuses to :meth:`save`.
        """
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            self._broken = False
            return []
        except OSError as exc:
            self._broken = True
            raise StateStoreError(str(self.path), f"cannot read: {exc.strerror}") from exc
        try:
            nodes = _decode(raw)
        except (tomllib.TOMLDecodeError, UnicodeDecodeError, _Malformed, ValueError) as exc:
            self._broken = True
            raise StateStoreError(str(self.path), f"corrupt node table: {exc}") from exc
        self._broken = False
        self._last = raw
        return nodes

    def save(self, nodes: Iterable[StoredNode]) -> None:
        """Write the table atomically; a no-op if it equals what was last read or written.

        Raises:
            StateStoreError: the file cannot be written, or :meth:`load` found it corrupt.
        """
        if self._broken:
            raise StateStoreError(
                str(self.path), "not overwriting a node table that failed to load"
            )
        raw = _encode(nodes)
        if raw == self._last:
            return
        write_atomic(self.path, raw, mode=0o600)  # it holds the nodes' environments
        self._last = raw
        logger.debug("= node table written (%d bytes)", len(raw))

    def update(self, nodes: tuple[StoredNode, ...]) -> None:
        """Write the table if ``nodes`` changed since the last successful write.

        A failure is kept in :attr:`error` (logged once per streak of failures) and the
        write is tried again at the next call; never raises.
        """
        # Cheap check first: specs are usually the very same objects, so this comparison
        # does not walk environments, and nothing is encoded when nothing changed.
        if nodes == self._written:
            return
        try:
            self.save(nodes)
        except StateStoreError as exc:
            if self.error is None:
                logger.error("cannot persist the node table: %s", exc)
            self.error = str(exc)
            return
        if self.error is not None:
            logger.warning("node table written again")
        self.error = None
        self._written = nodes


# --------------------------------------------------------------------------------------
# Encoding


class _Malformed(Exception):
    """A well-formed TOML document with the wrong content (message says where)."""


def _encode(nodes: Iterable[StoredNode]) -> bytes:
    table: dict[str, Any] = {}
    for node in nodes:
        spec = node.spec
        row: dict[str, Any] = {
            "intent": node.intent.value,
            "argv": list(spec.argv),
            "cwd": spec.cwd,
        }
        if spec.cpu_affinity is not None:
            row["cpu_affinity"] = spec.cpu_affinity
        if spec.role:
            row["role"] = spec.role
        if node.pid is not None:
            row["pid"] = node.pid
        if node.create_time is not None:
            row["create_time"] = node.create_time
        row["current"] = node.current
        row["env"] = dict(spec.env)
        table[spec.name] = row
    return tomli_w.dumps({"schema_version": SCHEMA_VERSION, "nodes": table}).encode()


def _decode(raw: bytes) -> list[StoredNode]:
    doc = tomllib.loads(raw.decode("utf-8"))
    version = doc.get("schema_version")
    if version != SCHEMA_VERSION:
        raise _Malformed(f"schema_version is {version!r}, expected {SCHEMA_VERSION}")
    rows = doc.get("nodes", {})
    if not isinstance(rows, dict):
        raise _Malformed("nodes: expected a table")
    nodes = []
    for name, row in rows.items():
        where = f"nodes.{name}"
        if not isinstance(row, dict):
            raise _Malformed(f"{where}: expected a table")
        argv = _get(row, where, "argv", list)
        if not argv or not all(isinstance(a, str) for a in argv):
            raise _Malformed(f"{where}.argv: expected a non-empty list of strings")
        env = _get(row, where, "env", dict)
        if not all(isinstance(v, str) for v in env.values()):
            raise _Malformed(f"{where}.env: expected string values")
        affinity = _get(row, where, "cpu_affinity", int, optional=True)
        role = _get(row, where, "role", str, optional=True) or ""
        pid = _get(row, where, "pid", int, optional=True)
        create_time = _get(row, where, "create_time", (int, float), optional=True)
        try:
            intent = Intent(_get(row, where, "intent", str))
        except ValueError as exc:
            raise _Malformed(f"{where}.intent: {exc}") from exc
        try:
            spec = NodeSpec(
                name=NodeName(name),
                argv=tuple(argv),
                env=env,
                cwd=_get(row, where, "cwd", str),
                cpu_affinity=affinity,
                role=role,
            )
        except ValueError as exc:
            # A well-formed row for a node no supervisor can run (e.g. a name starting
            # with '.'): drop it rather than refuse to start. Its configuration, if the
            # agent still has it, is launched afresh or reported FAILED.
            logger.warning(
                "node table: dropping node %r: %s%s",
                name[:64],
                exc,
                "" if pid is None else f" (its process, pid {pid}, is left alone)",
            )
            continue
        nodes.append(
            StoredNode(
                spec=spec,
                intent=intent,
                pid=pid,
                create_time=None if create_time is None else float(create_time),
                current=_get(row, where, "current", bool),
            )
        )
    return nodes


def _get(
    row: dict[str, Any],
    where: str,
    key: str,
    kind: type | tuple[type, ...],
    optional: bool = False,
) -> Any:
    if key not in row:
        if optional:
            return None
        raise _Malformed(f"{where}.{key}: missing")
    value = row[key]
    # bool is an int subclass: do not accept true for a pid.
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise _Malformed(f"{where}.{key}: unexpected value {value!r}")
    return value
