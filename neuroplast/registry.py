"""A small named registry used for every extensible kind (rules, surrogates, tasks, ...)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Generic, TypeVar

T = TypeVar("T")

__all__ = ["Registry"]


class Registry(Generic[T]):
    """Name → object table; names are case-insensitive and unique.

    Parameters
    ----------
    kind : str
        What is registered (used in error messages, e.g. ``"rule"``).
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    @staticmethod
    def _key(name: str) -> str:
        return name.strip().lower()

    def register(self, name: str, obj: T, *, replace: bool = False) -> T:
        """Add ``obj`` under ``name``; a duplicate name raises ``ValueError``."""
        key = self._key(name)
        if not key:
            raise ValueError(f"a {self.kind} needs a non-empty name")
        if key in self._items and not replace:
            raise ValueError(f"a {self.kind} named {key!r} is already registered")
        self._items[key] = obj
        return obj

    def get(self, name: str) -> T:
        """Return the object registered as ``name``; unknown names raise ``KeyError``."""
        key = self._key(name)
        try:
            return self._items[key]
        except KeyError:
            known = ", ".join(sorted(self._items)) or "none"
            raise KeyError(f"unknown {self.kind} {name!r} (known: {known})") from None

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._key(name) in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._items))

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._items)
