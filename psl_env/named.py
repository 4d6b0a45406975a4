"""Tables of named extensions (codecs, channel models): one registration rule for all of them."""

from __future__ import annotations

from typing import TypeVar

T = TypeVar("T")


def register_named(table: dict[str, T], name: str, obj: T, what: str, replace: bool = False) -> T:
    """Put ``obj`` in ``table`` under ``name``; idempotent for the same object, and a different one
    under a taken name needs ``replace=True``. ``what`` names the kind in the errors ("codec")."""
    if not name:
        raise ValueError(f"{getattr(obj, '__name__', obj)}: a {what} needs a non-empty name")
    old = table.get(name)
    if old is not None and old is not obj and not replace:
        raise ValueError(f"{what} {name!r} is already registered; pass replace=True to override")
    table[name] = obj
    return obj
