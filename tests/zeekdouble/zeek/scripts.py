"""Script resolution: finding scripts on ``ZEEKPATH`` (``util::find_script_file``) and
following their ``@load`` lines (``scan.l``)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

#: Top-level directories of Zeek's own scripts under share/zeek (besides policy/).
BUILTIN_ROOTS = frozenset({"base", "builtin-plugins"})
#: Top-level directories under share/zeek/policy (also on ZEEKPATH by default).
POLICY_ROOTS = frozenset(
    {"frameworks", "protocols", "misc", "tuning", "integration", "files", "zeekygen"}
)
#: Cluster backends shipped with Zeek 8.2.2.
KNOWN_BACKENDS = frozenset({"broker", "zeromq"})
#: Scripts that select a cluster backend (directly or via the management framework;
#: the management framework's declaration-only scripts ``types`` and ``*/api`` do not).
BACKEND_SCRIPT = re.compile(
    r"^(?:policy/)?frameworks/(?:cluster/backend/[^/]+|management(?!/(?:types|[a-z]+/api)$))"
    r"(?:/|$)"
)

_LOAD_RE = re.compile(r"^\s*@load\s+(\S+)")


@dataclass(frozen=True, slots=True)
class Resolved:
    """A script found by name: a real file, or one of Zeek's own (pretended)."""

    name: str
    path: str
    builtin: bool


class ScriptResolver:
    """Finds scripts on ZEEKPATH the way Zeek does (``.zeek`` first, packages)."""

    def __init__(self, zeekpath: str, share: str, strict: bool) -> None:
        self.zeekpath = zeekpath
        self.dirs = zeekpath.split(":")
        self.share = share
        self.strict = strict

    def builtin_dirs(self) -> dict[str, str]:
        return {
            self.share: "",
            f"{self.share}/policy": "policy/",
            f"{self.share}/site": "site/",
        }

    def find(self, name: str, relative_to: str | None = None) -> Resolved | str | None:
        """Return the resolution, a directory lacking ``__load__.zeek`` (str), or None.

        ``relative_to`` is the directory for names starting with ``.``.
        """
        name = name.rstrip("/")
        if name.startswith(("/", "~")):
            base = os.path.expanduser(name)
            return self._try(name, [base + ".zeek", base])
        if name.startswith(".") and relative_to is not None:
            base = os.path.join(relative_to, name)
            return self._try(name, [base + ".zeek", base])
        for d in self.dirs:
            base = os.path.join(d, name) if d else name
            found = self._try(name, [base + ".zeek", base])
            if found is not None:
                return found
            prefix = self.builtin_dirs().get(os.path.normpath(d) if d else "")
            if prefix is not None and (rel := _canonical_builtin(prefix + name)) is not None:
                return Resolved(name, f"{self.share}/{rel}", True)
        if not self.strict:
            for prefix in ("", "policy/", "site/"):
                if (rel := _canonical_builtin(prefix + name)) is not None:
                    return Resolved(name, f"{self.share}/{rel}", True)
        return None

    @staticmethod
    def _try(name: str, candidates: list[str]) -> Resolved | str | None:
        for cand in candidates:
            if os.access(cand, os.R_OK):
                if os.path.isdir(cand):
                    loader = os.path.join(cand, "__load__.zeek")
                    if not os.access(loader, os.R_OK):
                        return os.path.normpath(cand)
                    return Resolved(name, os.path.normpath(loader), False)
                return Resolved(name, os.path.normpath(cand), False)
        return None


def _canonical_builtin(rel: str) -> str | None:
    """Map a path relative to share/zeek to one of Zeek's scripts, or None."""
    rel = rel.removesuffix(".zeek")
    parts = rel.split("/")
    if rel == "site/local":
        return "site/local.zeek"
    if parts[0] in BUILTIN_ROOTS and len(parts) >= 2:
        return rel + ".zeek"
    if parts[0] != "policy" or len(parts) < 3 or parts[1] not in POLICY_ROOTS:
        return None
    if parts[1:4] == ["frameworks", "cluster", "backend"] and (
        len(parts) < 5 or parts[4] not in KNOWN_BACKENDS
    ):
        return None
    return rel + ".zeek"


def loads_in(code: str) -> list[tuple[int, str]]:
    """``@load`` lines of Zeek code: ``(line, target)``."""
    return [
        (n, m.group(1))
        for n, line in enumerate(code.splitlines(), 1)
        if (m := _LOAD_RE.match(line))
    ]


def scan_loads(path: str) -> list[tuple[int, str]]:
    """``@load`` lines of a script on disk: ``(line, target)``."""
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return []
    return loads_in(text)
