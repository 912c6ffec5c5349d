"""Named registries for every extensible kind (rules, losses, surrogates, optimizers, tasks, neuron models),
with plugins.

A :class:`Registry` maps case-insensitive names to objects.  Built-ins register when their module is
imported; third-party packages add theirs through an entry-point group (``neuroplast.rules``,
``neuroplast.losses``, ``neuroplast.surrogates``, ``neuroplast.optimizers``, ``neuroplast.tasks``,
``neuroplast.neurons``), loaded the first time a registry is asked for a name.  A plugin that fails to
load — import error, wrong kind of object, name mismatch — gives a ``RuntimeWarning`` naming it and is
skipped; it never stops neuroplast.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from importlib.metadata import entry_points
from typing import Any, Generic, TypeVar

T = TypeVar("T")

__all__ = ["Registry", "PLUGIN_GROUPS"]

#: Entry-point group of each registry kind.
PLUGIN_GROUPS = {
    "rule": "neuroplast.rules",
    "loss": "neuroplast.losses",
    "surrogate": "neuroplast.surrogates",
    "optimizer": "neuroplast.optimizers",
    "task": "neuroplast.tasks",
    "neuron": "neuroplast.neurons",
}


class Registry(Generic[T]):
    """Name → object table; names are case-insensitive and unique.

    Parameters
    ----------
    kind : str
        What is registered (used in error messages, e.g. ``"rule"``); its entry-point group is
        :data:`PLUGIN_GROUPS` ``[kind]`` unless ``group`` is given.
    group : str, optional
        Entry-point group of third-party plugins (``""``: none).
    check : callable, optional
        ``check(obj, name)`` raises ``TypeError``/``ValueError`` if a plugin's object is not of this kind.
    """

    def __init__(
        self, kind: str, *, group: str | None = None, check: Callable[[Any, str], None] | None = None
    ):
        self.kind = kind
        self.group = PLUGIN_GROUPS.get(kind, "") if group is None else group
        self._check = check
        self._items: dict[str, T] = {}
        self._plugins_loaded = not self.group

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

    def load_plugins(self, refresh: bool = False) -> list[str]:
        """Load this kind's third-party plugins from its entry-point group (once, unless ``refresh``).

        Returns the names that loaded; a plugin that fails warns and is skipped.
        """
        if self._plugins_loaded and not refresh:
            return []
        self._plugins_loaded = True
        if not self.group:
            return []
        loaded = []
        for ep in entry_points(group=self.group):
            try:
                obj = ep.load()
                key = self._key(ep.name)
                if key in self._items and self._items[key] is obj:
                    continue  # the plugin's module registered it on import
                if self._check is not None:
                    self._check(obj, ep.name)
                if key not in self._items:
                    self.register(ep.name, obj)
                loaded.append(ep.name)
            except Exception as exc:  # noqa: BLE001 - any plugin failure must not crash neuroplast
                warnings.warn(
                    f"neuroplast: {self.kind} plugin {ep.name!r} ({ep.value}) failed to load and is skipped: "
                    f"{type(exc).__name__}: {exc}",
                    RuntimeWarning,
                    stacklevel=3,
                )
        return loaded

    def get(self, name: str) -> T:
        """Return the object registered as ``name``; unknown names raise ``KeyError``."""
        self.load_plugins()
        key = self._key(name)
        try:
            return self._items[key]
        except KeyError:
            known = ", ".join(sorted(self._items)) or "none"
            raise KeyError(f"unknown {self.kind} {name!r} (known: {known})") from None

    def __contains__(self, name: object) -> bool:
        self.load_plugins()
        return isinstance(name, str) and self._key(name) in self._items

    def __iter__(self) -> Iterator[str]:
        self.load_plugins()
        return iter(sorted(self._items))

    def names(self) -> list[str]:
        """Registered names (built-ins and plugins), sorted."""
        self.load_plugins()
        return sorted(self._items)
