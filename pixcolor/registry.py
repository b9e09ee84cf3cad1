"""One shape for every registry of named things: training stages (``pixcolor.stages``),
baselines (``baselines``), benchmark methods (``bench.methods``) and metrics
(``analysis.metrics``).

A :class:`Registry` is a dict from name to entry, in registration order, that refuses a
name already taken unless told to replace it, and answers an unknown name with the names it
knows.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class UnknownNameError(KeyError, ValueError):
    """A name no entry of a registry has; the message lists the names it has. A KeyError
    (a failed lookup) and a ValueError (a bad argument), so callers may catch either."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class Registry(dict[str, T]):
    """Named entries of one ``kind`` (used in messages); ``hint`` ends the unknown-name
    message (where more entries come from)."""

    def __init__(self, kind: str, hint: str = "") -> None:
        super().__init__()
        self.kind, self.hint = kind, hint

    def add(self, name: str, entry: T, *, overwrite: bool = False) -> T:
        """Register ``entry`` under ``name`` and return it.

        Raises:
            ValueError: ``name`` is taken and ``overwrite`` is False.
        """
        if name in self and not overwrite:
            raise ValueError(f"{self.kind} {name!r} is already registered; pass overwrite=True")
        self[name] = entry
        return entry

    def register(self, name: str, *, overwrite: bool = False) -> Callable[[T], T]:
        """Decorator form of :meth:`add`."""
        return lambda entry: self.add(name, entry, overwrite=overwrite)

    def register_named(self, name: str) -> Callable[[T], T]:
        """Class decorator: :meth:`add` the class under ``name`` and set its ``name``
        attribute to it (stages, baselines)."""

        def deco(cls):
            cls.name = name
            return self.add(name, cls)

        return deco

    def __missing__(self, name: str):
        raise UnknownNameError(f"unknown {self.kind} {name!r}; choose one of "
                               f"{sorted(self)}{self.hint}")
