"""``@frozen`` classes behave as ``@dataclass(frozen=True, slots=True)`` ones would.

Every ``@frozen`` class of ``mgmt`` (the event catalogue, the records, the settings, ...)
is compared with a twin made by :mod:`dataclasses` itself from the same fields: the same
constructor signature, ``__match_args__``, slots, repr, equality, hash,
``FrozenInstanceError``, pickling and ``dataclasses.replace``.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import pickle
import pkgutil
import typing
from typing import Any

import pytest

import mgmt
from mgmt.broker import events as be
from mgmt.broker import extevents as bx
from mgmt.core import frozen as fr


def _frozen_classes() -> list[type]:
    found: dict[str, type] = {}
    for info in pkgutil.walk_packages(mgmt.__path__, "mgmt."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and value.__module__ == info.name
                and value.__dict__.get("__setattr__") is fr._setattr
            ):
                found[f"{info.name}.{value.__qualname__}"] = value
    return [found[name] for name in sorted(found)]


CLASSES = _frozen_classes()


def _twin(cls: type) -> type:
    """The class ``dataclass(frozen=True, slots=True)`` makes of ``cls``'s fields."""
    specs = []
    for f in dataclasses.fields(cls):
        extra: dict[str, Any] = {}
        if f.default is not dataclasses.MISSING:
            extra["default"] = f.default
        if f.default_factory is not dataclasses.MISSING:
            extra["default_factory"] = f.default_factory
        spec = dataclasses.field(
            init=f.init, repr=f.repr, hash=f.hash, compare=f.compare, kw_only=f.kw_only, **extra
        )
        specs.append((f.name, f.type, spec))
    twin = dataclasses.make_dataclass(cls.__name__, specs, frozen=True, slots=True)
    twin.__qualname__ = cls.__qualname__
    return twin


def _build(cls: type, values: dict[str, object]) -> Any:
    """An instance holding ``values``, made without ``__init__`` (``__post_init__`` checks
    would refuse our sample values)."""
    obj: Any = object.__new__(cls)
    for name, value in values.items():
        object.__setattr__(obj, name, value)
    return obj


def _made_here(cls: type, name: str) -> bool:
    """Whether ``cls``'s ``name`` method is generated (not the class body's own)."""
    return bool(getattr(cls, name).__code__.co_filename == "<string>")


def _values(cls: type, tag: str = "v") -> dict[str, object]:
    return {f.name: f"{tag}{i}" for i, f in enumerate(dataclasses.fields(cls))}


def test_the_catalogue_and_the_records_are_frozen_classes() -> None:
    names = {c.__qualname__ for c in CLASSES}
    assert {"GetConfigurationRequest", "NodeStatus", "Node", "Reqid", "Timespan"} <= names
    assert len(CLASSES) > 100


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: f"{c.__module__}.{c.__qualname__}")
def test_frozen_class_is_what_dataclasses_would_make(cls: type) -> None:
    twin = _twin(cls)
    assert dataclasses.is_dataclass(cls)
    assert str(inspect.signature(cls)) == str(inspect.signature(twin))
    assert cls.__match_args__ == twin.__match_args__  # type: ignore[attr-defined]
    slots = {s for klass in cls.__mro__ for s in klass.__dict__.get("__slots__", ())}
    assert slots == {f.name for f in dataclasses.fields(cls)}

    values = _values(cls)
    obj, same, ref = _build(cls, values), _build(cls, values), _build(twin, values)
    assert not hasattr(obj, "__dict__")
    assert repr(obj) == repr(ref)
    compares, hashes = _made_here(cls, "__eq__"), _made_here(cls, "__hash__")
    if compares:
        assert obj == same
        assert obj.__eq__(ref) is NotImplemented
        assert obj != object()
    if hashes:
        assert hash(obj) == hash(ref)
    frozen_error = dataclasses.FrozenInstanceError
    for name in values:
        changed = {**values, name: "other"}
        mine, theirs = _build(cls, changed), _build(twin, changed)
        if compares:
            assert (obj == mine) == (ref == theirs), name
        if hashes:
            assert (hash(obj) == hash(mine)) == (hash(ref) == hash(theirs)), name
        with pytest.raises(
            dataclasses.FrozenInstanceError, match=f"cannot assign to field '{name}'"
        ):
            setattr(obj, name, "x")
        with pytest.raises(frozen_error, match=f"cannot delete field '{name}'"):
            delattr(obj, name)
        assert getattr(obj, name) == values[name]
    with pytest.raises(frozen_error):
        obj.not_a_field = 1
    assert repr(pickle.loads(pickle.dumps(obj))) == repr(obj)


NO_CHECKS = [c for c in CLASSES if not hasattr(c, "__post_init__")]


@pytest.mark.parametrize("cls", NO_CHECKS, ids=lambda c: f"{c.__module__}.{c.__qualname__}")
def test_frozen_constructor_and_replace_set_the_same_fields(cls: type) -> None:
    """Positional, keyword and default arguments land in the fields dataclasses would
    fill, and ``dataclasses.replace`` works through the same constructor."""
    twin = _twin(cls)
    params = inspect.signature(cls).parameters.values()
    required = [p for p in params if p.default is inspect.Parameter.empty]
    args = [f"a{i}" for i, p in enumerate(required) if p.kind is p.POSITIONAL_OR_KEYWORD]
    kwargs = {p.name: f"k{p.name}" for p in required if p.kind is p.KEYWORD_ONLY}
    every = {p.name: f"n{p.name}" for p in params}
    for mine, theirs in [
        (cls(*args, **kwargs), twin(*args, **kwargs)),
        (cls(**every), twin(**every)),
    ]:
        for f in dataclasses.fields(cls):
            if f.default_factory is dataclasses.MISSING:
                assert getattr(mine, f.name) == getattr(theirs, f.name), f.name
            else:  # made anew for each object (a dict, a uuid, a time, ...)
                assert type(getattr(mine, f.name)) is type(getattr(theirs, f.name)), f.name
    obj = cls(*args, **kwargs)
    first = dataclasses.fields(cls)[0].name if dataclasses.fields(cls) else None
    if first is not None:
        assert getattr(dataclasses.replace(obj, **{first: "new"}), first) == "new"


def test_events_equal_only_within_their_own_class() -> None:
    """Events sharing an argument list (and their shared base) are never equal."""
    assert be.GetInstancesRequest("r1") == be.GetInstancesRequest("r1")
    deploy: object = be.DeployRequest("r1")
    base: object = be.Reqid("r1")
    assert be.GetInstancesRequest("r1") != deploy
    assert be.GetInstancesRequest("r1") != base
    assert base != be.GetInstancesRequest("r1")
    assert hash(be.GetInstancesRequest("r1")) == hash(("r1",))
    assert repr(be.GetConfigurationRequest("r1", True)) == (
        "GetConfigurationRequest(reqid='r1', deployed=True)"
    )
    assert bx.is_extension_event(be.event_name(bx.GetVersionRequest("r1")))


def test_events_are_documented_as_their_zeek_event() -> None:
    assert be.GetInstancesRequest.__doc__ == (
        "The event ``Management::Controller::API::get_instances_request``."
    )


def test_frozen_refuses_a_default_before_a_required_argument() -> None:
    class Bad:
        a: int = 1
        b: int

    with pytest.raises(TypeError, match="non-default argument 'b' follows default argument"):
        fr.frozen(Bad)


def test_frozen_leaves_ordered_classes_to_dataclasses() -> None:
    @fr.frozen(order=True)
    class Ordered:
        a: int

    assert Ordered(1) < Ordered(2)
    assert Ordered.__dataclass_params__.frozen  # type: ignore[attr-defined]


def test_constructor_annotations_resolve_in_the_class_module() -> None:
    """As for dataclasses' own ``__init__``, ``typing.get_type_hints`` reads the
    constructor's (postponed) annotations in the module of the class."""
    from mgmt.broker.data import Port
    from mgmt.broker.records import Node

    hints = typing.get_type_hints(Node.__init__)
    assert hints["p"] == Port | None
    assert hints["return"] is type(None)
    assert typing.get_type_hints(be.GetConfigurationRequest.__init__)["deployed"] is bool
