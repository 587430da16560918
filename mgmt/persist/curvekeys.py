"""The ZeroMQ CURVE keys on disk: ``<work_dir>/zeromq-curve.json``, mode 0600.

The controller generates its keys once (:func:`load_or_create`) and keeps them, as
zeekctl keeps its in ``<spool>/zeromq/curve``; each agent keeps the keys it was last sent
(:func:`save`, :func:`load`), so that nodes it revives or adopts after a restart get the
same keys. The file is written atomically; its content never goes to a log.
"""

from __future__ import annotations

import logging
import secrets
from pathlib import Path

from mgmt.core.curve import CurveKeys
from mgmt.exceptions import StateStoreError
from mgmt.persist.statefile import read_if_present, write_atomic

log = logging.getLogger("mgmt.persist")

FILE_NAME = "zeromq-curve.json"


def load(path: Path) -> CurveKeys | None:
    """The keys in ``path``; ``None`` if there is no such file.

    Raises:
        StateStoreError: the file cannot be read or is not a key file.
    """
    raw = read_if_present(path)
    if raw is None:
        return None
    try:
        return CurveKeys.from_json(raw.decode("utf-8"))
    except ValueError as exc:  # UnicodeDecodeError included
        raise StateStoreError(str(path), f"not a CURVE key file: {exc}") from None


def save(path: Path, keys: CurveKeys) -> None:
    """Write ``keys`` to ``path`` (0600, atomically). Raises StateStoreError."""
    write_atomic(path, keys.to_json().encode(), mode=0o600)


def load_or_create(path: Path) -> CurveKeys:
    """The keys in ``path``, generated and saved first if there are none.

    Raises:
        StateStoreError: they can be neither read nor created.
    """
    keys = load(path)
    if keys is None:
        keys = CurveKeys.generate(secrets.token_bytes(32), secrets.token_bytes(32))
        save(path, keys)
        log.info("generated ZeroMQ CURVE keys in %s", path)
    return keys
