"""``@frozen``: a frozen, slotted dataclass whose methods cost little to build.

``@frozen`` (or ``@frozen(kw_only=True)``) means what ``@dataclass(frozen=True,
slots=True)`` means: the same constructor (positional and keyword arguments, defaults,
``field(default_factory=...)``, ``KW_ONLY``, ``__post_init__``), ``__match_args__``,
``__slots__``, the same ``__eq__`` (fields compared as one tuple, only with an instance of
the very same class), ``__hash__`` (``hash`` of the tuple of the hashed fields: the same
number), ``__repr__`` text, :class:`dataclasses.FrozenInstanceError` on assignment or
deletion, pickling, and :func:`dataclasses.fields` / :func:`dataclasses.replace`: the class
*is* a dataclass, its fields processed by :mod:`dataclasses` itself.

Why: :mod:`dataclasses` writes the source of six methods per frozen class and compiles
each with ``exec`` (and, for a class without a docstring, reads ``inspect.signature`` to
write one). For our ~170 classes that was about 45 % of importing the daemons. Here
``dataclasses`` only collects the fields and makes the slotted class (``init=False,
repr=False, eq=False``, not ``frozen``: that asks it for no method). ``__eq__``,
``__hash__`` and ``__repr__``, the code :mod:`dataclasses` would write, are compiled once
per number of fields, ``__init__`` once per *shape* (how many arguments, which are
keyword-only or made by a factory, whether there is ``__post_init__``), with placeholder
names; each class gets a copy of the code with its fields' names in their place (names
in a code object are data: the bytecode refers to them by position), and its defaults.
``__setattr__`` and ``__delattr__`` are one function each for all classes. So a class
costs no compilation once its shape has been seen (30 compilations for the daemons' ~160
classes instead of ~950), and its methods run the same bytecode as before.
``bench/startup_imports.py`` prints the figures.

What differs: ``__dataclass_params__`` records what :mod:`dataclasses` was asked for
(``frozen=False`` among them), so a class derived from a ``@frozen`` class must be
``@frozen`` too (``@dataclass(frozen=True)`` refuses it); a class without a docstring
gets ``Name(field, ...)`` rather than its signature; ``__repr__`` has no guard against
recursion (a frozen object cannot contain itself). Anything this module does not build
itself (``order``, ``InitVar``, ``init=False`` fields, a field named ``self`` or like our
helpers, a base made by ``dataclass(frozen=True)``) is left to ``dataclass(frozen=True,
slots=True)`` unchanged. ``tests/core/test_frozen.py`` compares every ``@frozen`` class
of ``mgmt`` with the twin :mod:`dataclasses` makes of its fields.

This module is pure: no I/O.
"""

from __future__ import annotations

import keyword
import re
import sys
from collections.abc import Callable
from dataclasses import MISSING, Field, FrozenInstanceError, dataclass, field, fields
from types import FunctionType
from typing import Any, TypeVar, dataclass_transform, overload

T = TypeVar("T")


class _Factory:
    """The default of an argument whose field has a ``default_factory``."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<factory>"  # what dataclasses' own marker prints in signatures


_FACTORY = _Factory()

#: A placeholder in :func:`_compiled`'s ``__repr__`` text.
_PLACEHOLDER = re.compile(r"_frozen_(\d+)=")

#: ``__eq__``, ``__hash__`` and ``__repr__`` by number of fields (see :func:`_compiled`).
_COMPILED: dict[int, dict[str, Callable[..., Any]]] = {}

#: ``__init__`` makers by shape (see :func:`_init_maker`).
_MAKERS: dict[tuple[Any, ...], Callable[..., Callable[..., None]]] = {}


def _compiled(n: int) -> dict[str, Callable[..., Any]]:
    """``__eq__``, ``__hash__`` and ``__repr__`` as :mod:`dataclasses` writes them, for
    ``n`` fields named ``_frozen_0, _frozen_1, ...`` (compiled once per ``n``; see
    :func:`_method`)."""
    made = _COMPILED.get(n)
    if made is None:
        mine = "".join(f"self._frozen_{i}," for i in range(n))
        theirs = "".join(f"other._frozen_{i}," for i in range(n))
        shown = ", ".join(f"_frozen_{i}={{self._frozen_{i}!r}}" for i in range(n))
        source = (
            "def __eq__(self, other):\n"
            " if other.__class__ is self.__class__:\n"
            f"  return ({mine}) == ({theirs})\n"
            " return NotImplemented\n"
            "def __hash__(self):\n"
            f" return hash(({mine}))\n"
            "def __repr__(self):\n"
            f' return self.__class__.__qualname__ + f"({shown})"\n'
        )
        made = {}
        exec(source, {}, made)  # our own text: no name in it comes from a class
        _COMPILED[n] = made
    return made


def _method(cls: type, name: str, names: tuple[str, ...]) -> Callable[..., Any]:
    """``cls``'s ``__eq__``, ``__hash__`` or ``__repr__`` over the fields ``names``: the
    compiled one for their number, with their names in place of the placeholders: the
    attribute names (a code object's names are only names) and the ``<name>=`` of the
    text ``__repr__`` writes."""
    template = _compiled(len(names))[name]
    code = template.__code__
    attributes = {f"_frozen_{i}": field for i, field in enumerate(names)}
    consts = tuple(
        _PLACEHOLDER.sub(lambda m: f"{names[int(m[1])]}=", c) if isinstance(c, str) else c
        for c in code.co_consts
    )
    code = code.replace(
        co_names=tuple(attributes.get(n, n) for n in code.co_names), co_consts=consts
    )
    method = FunctionType(code, _globals(cls), name)
    method.__qualname__ = f"{cls.__qualname__}.{name}"
    return method


def _setattr(self: object, name: str, value: object) -> None:
    raise FrozenInstanceError(f"cannot assign to field {name!r}")


def _delattr(self: object, name: str) -> None:
    raise FrozenInstanceError(f"cannot delete field {name!r}")


def _getstate(self: object) -> list[object]:
    return [getattr(self, f.name) for f in fields(self)]  # type: ignore[arg-type]


def _setstate(self: object, state: list[object]) -> None:
    for f, value in zip(fields(self), state, strict=False):  # type: ignore[arg-type]
        object.__setattr__(self, f.name, value)


def _has_default(f: Field[Any]) -> bool:
    return f.default is not MISSING or _made(f)


def _init_maker(
    shape: tuple[tuple[bool, bool], ...], post_init: bool
) -> Callable[..., Callable[..., None]]:
    """Compile (once per shape) a function that makes an ``__init__``.

    ``shape`` holds ``(keyword only, made by a factory)`` per argument, in ``__init__``'s
    order. The maker takes ``object.__setattr__``, :data:`_FACTORY`, then per argument its
    field's name and, if made by a factory, the factory. The ``__init__`` it returns names
    its arguments ``a0, a1, ...``: :func:`_make_init` renames them after the fields (a
    code object's local names are only names), so that classes whose fields are named
    differently share one compiled ``__init__``. The defaults are set on the function
    (``__defaults__``, ``__kwdefaults__``).
    """
    key = (shape, post_init)
    maker = _MAKERS.get(key)
    if maker is not None:
        return maker
    params = ["self"]
    takes = ["__frozen_set", "__frozen_FACTORY"]
    body = []
    for i, (kw_only, factory) in enumerate(shape):
        if kw_only and "*" not in params:
            params.append("*")
        params.append(f"a{i}")
        takes.append(f"__frozen_n{i}")
        value = f"a{i}"
        if factory:
            takes.append(f"__frozen_f{i}")
            value = f"__frozen_f{i}() if a{i} is __frozen_FACTORY else a{i}"
        body.append(f"__frozen_set(self, __frozen_n{i}, {value})")
    if post_init:
        body.append("self.__post_init__()")
    source = (
        f"def __frozen_make({', '.join(takes)}):\n"
        f" def __init__({', '.join(params)}):\n"
        + "".join(f"  {line}\n" for line in body or ["pass"])
        + " return __init__\n"
    )
    namespace: dict[str, Any] = {}
    exec(source, {}, namespace)  # our own text: no name in it comes from a class
    made_maker: Callable[..., Callable[..., None]] = namespace["__frozen_make"]
    _MAKERS[key] = made_maker
    return made_maker


def _make_init(cls: type, flds: tuple[Field[Any], ...]) -> Callable[..., None]:
    """``cls``'s ``__init__``: ``(self, <positional fields>, *, <keyword-only fields>)``."""
    order = [f for f in flds if not f.kw_only] + [f for f in flds if f.kw_only]
    seen_default = False
    for f in order:
        if f.kw_only:
            break
        if _has_default(f):
            seen_default = True
        elif seen_default:
            raise TypeError(f"non-default argument {f.name!r} follows default argument")
    maker = _init_maker(tuple((bool(f.kw_only), _made(f)) for f in order), _post_init(cls))
    takes: list[Any] = [object.__setattr__, _FACTORY]
    for f in order:
        takes += [f.name, f.default_factory] if _made(f) else [f.name]
    made = maker(*takes)
    code = made.__code__.replace(co_varnames=("self", *(f.name for f in order)))
    init: Callable[..., None] = FunctionType(
        code, _globals(cls), "__init__", None, made.__closure__
    )
    defaults = [_default(f) for f in order if not f.kw_only and _has_default(f)]
    if defaults:
        init.__defaults__ = tuple(defaults)
    kwdefaults = {f.name: _default(f) for f in order if f.kw_only and _has_default(f)}
    if kwdefaults:
        init.__kwdefaults__ = kwdefaults
    init.__annotations__ = {**{f.name: f.type for f in order}, "return": None}
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    return init


def _globals(cls: type) -> dict[str, Any]:
    """The globals of ``cls``'s methods: its module's, as :mod:`dataclasses` gives them
    (``typing.get_type_hints(cls.__init__)`` reads its annotations there)."""
    module = sys.modules.get(cls.__module__)
    return module.__dict__ if module is not None else {}


def _post_init(cls: type) -> bool:
    return hasattr(cls, "__post_init__")


def _made(f: Field[Any]) -> bool:
    """Whether the field's default is made by a factory."""
    return f.default_factory is not MISSING


def _default(f: Field[Any]) -> Any:
    """The default of the field's ``__init__`` argument."""
    return _FACTORY if _made(f) else f.default


def _builds(cls: type, order: bool) -> bool:
    """Whether this module can build ``cls``'s methods (see the module docstring)."""
    if order or any(
        getattr(getattr(b, "__dataclass_params__", None), "frozen", False) for b in cls.__mro__[1:]
    ):
        return False
    annotations = cls.__dict__.get("__annotations__", {})
    for name, annotation in annotations.items():
        if name.startswith(("__frozen", "_frozen")) or keyword.iskeyword(name) or name == "self":
            return False
        text = annotation if isinstance(annotation, str) else repr(annotation)
        if "InitVar" in text:
            return False
        value = cls.__dict__.get(name)
        if isinstance(value, Field) and not value.init:
            return False
    return True


def _set(cls: type, name: str, value: Any) -> None:
    """Set ``name`` unless the class body defines it (as :mod:`dataclasses` does)."""
    if name not in cls.__dict__:
        setattr(cls, name, value)


def _build(cls: type[T], kw_only: bool, order: bool) -> type[T]:
    if not _builds(cls, order):
        made: type[T] = dataclass(frozen=True, slots=True, kw_only=kw_only, order=order)(cls)
        return made
    own_doc = cls.__dict__.get("__doc__")
    if not own_doc:
        cls.__doc__ = "-"  # so that dataclasses does not read inspect.signature for one
    body = cls.__dict__
    explicit_hash = "__hash__" in body and not (body["__hash__"] is None and "__eq__" in body)
    cls = dataclass(init=False, repr=False, eq=False, slots=True, kw_only=kw_only)(cls)
    flds = fields(cls)  # type: ignore[arg-type]
    compared = tuple(f.name for f in flds if f.compare)
    shown = tuple(f.name for f in flds if f.repr)
    _set(cls, "__init__", _make_init(cls, flds))
    _set(cls, "__repr__", _method(cls, "__repr__", shown))
    _set(cls, "__eq__", _method(cls, "__eq__", compared))
    if not explicit_hash:
        hashed = tuple(f.name for f in flds if (f.compare if f.hash is None else f.hash))
        cls.__hash__ = _method(cls, "__hash__", hashed)  # type: ignore[method-assign]
    _set(cls, "__setattr__", _setattr)
    _set(cls, "__delattr__", _delattr)
    _set(cls, "__getstate__", _getstate)
    _set(cls, "__setstate__", _setstate)
    if not own_doc:
        cls.__doc__ = f"{cls.__name__}({', '.join(f.name for f in flds)})"
    return cls


@overload
@dataclass_transform(frozen_default=True, field_specifiers=(field, Field))
def frozen(cls: type[T], /) -> type[T]: ...


@overload
def frozen(*, kw_only: bool = False, order: bool = False) -> Callable[[type[T]], type[T]]: ...


def frozen(
    cls: type[T] | None = None, /, *, kw_only: bool = False, order: bool = False
) -> type[T] | Callable[[type[T]], type[T]]:
    """Make ``cls`` a frozen, slotted dataclass (see the module docstring)."""
    if cls is not None:
        return _build(cls, kw_only, order)
    return lambda c: _build(c, kw_only, order)
