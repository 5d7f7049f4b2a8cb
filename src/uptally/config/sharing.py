"""Keep the monitors of a validated config small: what an idle monitor costs is mostly its config.

Two things make a pydantic model of 22 fields cost about 1.3 KB:
- every model has its own lists, dicts and fields-set, so ten thousand monitors with
  `locations: [local]` and the same expectations hold ten thousand equal copies of each;
- pydantic gives every model a private attribute dict (832 bytes for 22 keys), where plain
  Python objects of one class share one table of keys and keep only their values (~200 bytes).

Config models are frozen and nothing mutates their values, so equal values can be one object,
and each monitor can be rebuilt with its attributes set one by one, which lets CPython share the
key table. The key table of a class is only filled by its first instances, so the monitor
classes are primed here, on import, before any monitor exists. On a Python where this sharing
works differently, the rebuilt monitors are the same values at the same size as before.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any, TypeVar, get_args

from pydantic import BaseModel

from uptally.config.schema import Monitor

M = TypeVar("M", bound=BaseModel)

MONITOR_CLASSES: tuple[type[BaseModel], ...] = get_args(get_args(Monitor)[0])


def _prime(cls: type[BaseModel]) -> None:
    probe = cls.__new__(cls)
    for name in cls.model_fields:
        object.__setattr__(probe, name, None)


for _cls in MONITOR_CLASSES:
    _prime(_cls)


def compact_monitors(monitors: list[M]) -> None:
    """Replace each monitor by an equal one that shares equal values and its key table."""
    pool: dict[Hashable, Any] = {}
    monitors[:] = [_rebuilt(monitor, pool) for monitor in monitors]


def _rebuilt(model: M, pool: dict[Hashable, Any]) -> M:
    cls = type(model)
    copy = cls.__new__(cls)
    for name, value in model.__dict__.items():
        object.__setattr__(copy, name, _shared(value, pool))
    fields_set = model.__pydantic_fields_set__
    # model_copy() copies the fields-set before changing it, so sharing it is safe
    object.__setattr__(
        copy,
        "__pydantic_fields_set__",
        pool.setdefault(("fields-set", frozenset(fields_set)), fields_set),
    )
    object.__setattr__(copy, "__pydantic_extra__", model.__pydantic_extra__)
    object.__setattr__(copy, "__pydantic_private__", model.__pydantic_private__)
    return copy


def _shared(value: Any, pool: dict[Hashable, Any]) -> Any:
    if isinstance(value, list | dict):
        key = _key(value)
        return value if key is None else pool.setdefault(key, value)
    if type(value) is str:
        return pool.get(value) or pool.setdefault(value, _fresh(value))
    return value


def _fresh(text: str) -> str:
    """An equal string allocated now, after the parse: see the module docstring."""
    return text.encode("utf-8", "surrogatepass").decode("utf-8", "surrogatepass")


def _key(value: list[Any] | dict[Any, Any]) -> Hashable | None:
    # with the types: 1 == True == 1.0, but a list of ints must not become a list of bools
    key: Hashable = (
        (list, tuple((type(item), item) for item in value))
        if isinstance(value, list)
        else (dict, tuple((name, type(item), item) for name, item in value.items()))
    )
    try:
        hash(key)
    except TypeError:  # holds something unhashable: left as it is
        return None
    return key
