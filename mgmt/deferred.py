"""Standard-library modules that our dependencies import but never use: loaded lazily.

``websockets`` imports ``importlib.metadata`` in ``websockets.version`` (only a
development checkout of websockets uses it) and ``urllib.request`` in
``websockets.proxy`` (used only to look up a system proxy, which our connections
disable with ``proxy=None``). Loading them, with what they import (``email``,
``zipfile``, ``http.client``, ...), was about a tenth of a daemon's start-up imports.

:func:`defer` registers such a module in :data:`sys.modules` unloaded: an ``import``
statement finds it there and succeeds at once (it reads only the module's ``__spec__``),
and the module really loads (executes) on the first access to any other attribute, so
code that does use it gets it, unchanged. A module already imported is left as it is.
This is :class:`importlib.util.LazyLoader`'s idea, except that reading ``__spec__`` does
not load the module: with LazyLoader, any later ``import`` statement of the module would
(the import system checks ``__spec__._initializing``). Not thread-safe: it is meant for
the start of a process, for modules nothing uses there. :mod:`mgmt.cli` calls it first
thing, for every ``zeek-mgmt`` process.
"""

from __future__ import annotations

import importlib.util
import sys
import types
from typing import Any

#: Imported by our dependencies at import time, used only in paths we never take.
UNUSED_AT_START: tuple[str, ...] = ("importlib.metadata", "urllib.request")


class _Deferred(types.ModuleType):
    """A registered module not executed yet: executed on first use."""

    def __getattribute__(self, attr: str) -> Any:
        spec = types.ModuleType.__getattribute__(self, "__spec__")
        if attr == "__spec__":  # what an import statement reads: not a use
            return spec
        object.__setattr__(self, "__class__", types.ModuleType)  # an ordinary module now
        spec.loader.exec_module(self)
        return getattr(self, attr)


def defer(names: tuple[str, ...] = UNUSED_AT_START) -> None:
    """Register each module of ``names`` not imported yet, to be executed on first use."""
    for name in names:
        if name in sys.modules:
            continue
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            continue
        module = importlib.util.module_from_spec(spec)  # its attributes, not executed
        module.__class__ = _Deferred
        sys.modules[name] = module
        # What a real import does: the package gets the submodule as an attribute.
        parent, _, child = name.rpartition(".")
        if parent:
            setattr(sys.modules[parent], child, module)
