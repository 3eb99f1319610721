"""A small typed registry: named components (normalizers, resamplers, networks, ...) with did-you-mean errors."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from autounet.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to components. Lookups of unknown names raise ``ConfigError`` with suggestions."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}
        self._aliases: dict[str, str] = {}

    def register(self, name: str, *, aliases: tuple[str, ...] = ()) -> Callable[[T], T]:
        """Decorator registering ``obj`` under ``name`` (and optional aliases, e.g. reference class names)."""

        def decorator(obj: T) -> T:
            self.add(name, obj, aliases=aliases)
            return obj

        return decorator

    def add(self, name: str, obj: T, *, aliases: tuple[str, ...] = ()) -> None:
        """Register ``obj`` under ``name``; a duplicate name is a programming error."""
        if name in self._items or name in self._aliases:
            msg = f"{self.kind} {name!r} is registered twice"
            raise ValueError(msg)
        self._items[name] = obj
        for alias in aliases:
            self._aliases[alias] = name

    def canonical(self, name: str) -> str:
        """The registered name for ``name`` or one of its aliases."""
        if name in self._items:
            return name
        if name in self._aliases:
            return self._aliases[name]
        choices = [*self._items, *self._aliases]
        close = difflib.get_close_matches(name, choices, n=3)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        msg = f"Unknown {self.kind} {name!r}.{hint} Available: {', '.join(sorted(self._items))}."
        raise ConfigError(msg)

    def get(self, name: str) -> T:
        """The component registered as ``name`` (or an alias)."""
        return self._items[self.canonical(name)]

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items or name in self._aliases

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
