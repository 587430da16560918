"""Per-node redefs carried in a node's ``env``: ``ZEEK_MGMT_REDEF_<identifier>=<value>``.

Rules / theory of operation
---------------------------
zeekctl applies plugin settings to single nodes with generated redefs (its af_packet
plugin writes ``redef AF_Packet::fanout_id = 42;`` under ``@if ( peer_description ==
"<node>" )``). A configuration of the Management framework can carry per-node values in
``env`` (and in ``options``, which zeek-client can neither read from a file nor print
back), so zeek-mgmt carries them there: an env variable named :data:`PREFIX` +
``<identifier>`` with a Zeek expression as its value, e.g.
``ZEEK_MGMT_REDEF_AF_Packet::fanout_id=42``. They survive ``get-config`` and a
re-stage by zeek-client, like any env entry.

The agent passes them to the node as Zeek code on its command line (``zeek -e``, parsed
after the node's scripts; :func:`redef_code`): ``redef <identifier> = <value>;`` per
entry in name order. An identifier must be a Zeek name (``Module::name``, letters,
digits and ``_``); a value must be one line, not empty, without ``;`` (a redef is one
statement). :func:`problem` says what is wrong with one entry; :mod:`mgmt.core.launchable` refuses
a configuration with such an entry at stage time, naming node and variable.

Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

#: The env variable prefix of a per-node redef.
PREFIX = "ZEEK_MGMT_REDEF_"

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(::[A-Za-z_][A-Za-z0-9_]*)*")


def is_redef(key: str) -> bool:
    """Whether an env variable name is a per-node redef."""
    return key.startswith(PREFIX)


def problem(key: str, value: str) -> str | None:
    """Why ``key=value`` (a redef env entry) cannot become a redef, or ``None``."""
    ident = key[len(PREFIX) :]
    if not _IDENTIFIER.fullmatch(ident):
        return f"{ident!r} after {PREFIX} is not a Zeek identifier"
    if not value.strip():
        return "its value is empty"
    if any(c in value for c in "\n\r;"):
        return "its value is not a single Zeek expression (a newline or ';')"
    return None


def redefs(env: Mapping[str, str]) -> list[tuple[str, str]]:
    """The ``(identifier, value)`` redefs in a node's env, sorted by identifier."""
    return sorted((k[len(PREFIX) :], v.strip()) for k, v in env.items() if is_redef(k))


def redef_code(env: Mapping[str, str]) -> str | None:
    """The Zeek code of a node's redefs (for ``zeek -e``), or ``None`` when it has none."""
    found = redefs(env)
    if not found:
        return None
    return " ".join(f"redef {ident} = {value};" for ident, value in found)
