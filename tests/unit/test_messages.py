"""Every actor message pickles (Thespian sends them between processes) and has
a unique, module-level class name (``ActorTypeDispatcher`` routes on it).

The classes are discovered from the module, so a new message is covered
without touching this file; a field of a type ``sample`` does not know fails
the test loudly rather than being skipped.
"""

from __future__ import annotations

import ast
import collections.abc
import dataclasses
import inspect
import pickle
import sys
import types
import typing
from typing import Any

import pytest

from actorsys import messages
from actorsys.config import AppConfig

MESSAGE_CLASSES = sorted(
    (
        obj
        for obj in vars(messages).values()
        if inspect.isclass(obj)
        and dataclasses.is_dataclass(obj)
        and obj.__module__ == messages.__name__
    ),
    key=lambda cls: cls.__name__,
)


class FakeAddress:
    """Stands in for Thespian's opaque ActorAddress: any picklable value."""

    def __init__(self, where: str) -> None:
        self.where = where

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FakeAddress) and other.where == self.where

    def __hash__(self) -> int:
        return hash(self.where)


def sample(annotation: Any, name: str) -> Any:
    """A non-default value of type ``annotation`` for field ``name``."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if annotation is Any:
        return FakeAddress(f"addr-{name}")
    if annotation is AppConfig:
        return AppConfig().with_overrides({"kafka": {"group_id": f"g-{name}"}})
    if annotation is bool:
        return True
    if annotation is int:
        return 42
    if annotation is float:
        return 1.5
    if annotation is str:
        return f"s-{name}"
    if annotation is bytes:
        return b"\x00\x01payload\xff"
    if isinstance(annotation, type) and dataclasses.is_dataclass(annotation):  # a value object
        return make(annotation)
    if origin in (typing.Union, types.UnionType):
        return sample(next(a for a in args if a is not type(None)), name)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return (sample(args[0], name), sample(args[0], name + "2"))
        return tuple(sample(a, f"{name}{i}") for i, a in enumerate(args))
    if origin in (dict, collections.abc.Mapping):
        return {sample(args[0], name): sample(args[1], name)}
    raise AssertionError(f"no sample value for {annotation!r} (field {name!r}): extend sample()")


def make(cls: type) -> Any:
    hints = typing.get_type_hints(cls, {**vars(messages), **vars(sys.modules[cls.__module__])})
    return cls(**{f.name: sample(hints[f.name], f.name) for f in dataclasses.fields(cls)})


def test_discovery_finds_the_messages() -> None:
    # Given the messages module
    names = {cls.__name__ for cls in MESSAGE_CLASSES}
    # Then discovery sees the protocol's core messages (it is not vacuous)
    assert {"OffsetsHandout", "NewOffsets", "BatchNotification", "PartitionProgress"} <= names
    assert {"JobAssignment", "JobDone", "Drain", "StatusReport"} <= names
    assert len(MESSAGE_CLASSES) >= 30


@pytest.mark.parametrize("cls", MESSAGE_CLASSES, ids=lambda cls: cls.__name__)
@pytest.mark.parametrize("protocol", [pickle.DEFAULT_PROTOCOL, pickle.HIGHEST_PROTOCOL])
def test_message_round_trips_through_pickle(cls: type, protocol: int) -> None:
    # Given a message with every field set
    message = make(cls)
    # When it is pickled and unpickled (as between actor processes)
    copy = pickle.loads(pickle.dumps(message, protocol=protocol))
    # Then it is an equal message of the same class
    assert type(copy) is cls
    assert copy == message
    for f in dataclasses.fields(cls):
        assert getattr(copy, f.name) == getattr(message, f.name)


@pytest.mark.parametrize("cls", MESSAGE_CLASSES, ids=lambda cls: cls.__name__)
def test_message_is_immutable(cls: type) -> None:
    # Given a message
    message = make(cls)
    # When a field is assigned (or one is added)
    # Then it is refused: a message cannot change after it is sent
    with pytest.raises((dataclasses.FrozenInstanceError, AttributeError, TypeError)):
        setattr(message, next((f.name for f in dataclasses.fields(cls)), "extra"), None)


def test_message_class_names_are_unique_and_module_level() -> None:
    # Given the source of the messages module
    tree = ast.parse(inspect.getsource(messages))
    defined = [node.name for node in tree.body if isinstance(node, ast.ClassDef)]
    # Then no class name is defined twice (a later one would silently shadow the first)
    assert len(defined) == len(set(defined)), sorted(n for n in defined if defined.count(n) > 1)
    # And every message is the module attribute of its own name, not a nested class
    for cls in MESSAGE_CLASSES:
        assert cls.__qualname__ == cls.__name__
        assert getattr(messages, cls.__name__) is cls
    # And every class defined there is a discovered message
    assert set(defined) == {cls.__name__ for cls in MESSAGE_CLASSES}
