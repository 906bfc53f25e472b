"""A read-only mapping that, unlike :class:`types.MappingProxyType`, pickles and deep-copies.

Catalogue entries and profiles are frozen so that nobody edits a shared table by accident;
they must still survive ``copy.deepcopy`` and ``pickle`` (environments are copied by search
baselines and sent to worker processes).

>>> import copy, pickle
>>> m = FrozenMap({"a": 1})
>>> m["a"], dict(m), m == {"a": 1}
(1, {'a': 1}, True)
>>> pickle.loads(pickle.dumps(m)) == m, copy.deepcopy(m) == m
(True, True)
>>> m["b"] = 2
Traceback (most recent call last):
TypeError: 'FrozenMap' object does not support item assignment
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

__all__ = ["FrozenMap"]


class FrozenMap(Mapping[str, Any]):
    """An immutable mapping (a copy of ``data`` taken at construction)."""

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[str, Any] | None = None) -> None:
        object.__setattr__(self, "_data", dict(data or {}))

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"FrozenMap({self._data!r})"

    def __hash__(self) -> int:
        return hash(frozenset(self._data.items()))

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("FrozenMap is read-only")

    def __reduce__(self) -> tuple[type, tuple[dict[str, Any]]]:
        return (FrozenMap, (self._data,))
