"""Parsing query-string arguments into clean values, with clear errors for bad ones."""

from __future__ import annotations

from flask import request
from werkzeug.exceptions import BadRequest


class BadArgument(BadRequest):
    """A query-string argument with a value Nexus cannot use."""


def int_arg(name: str, default: int, *, minimum: int = 1, maximum: int | None = None) -> int:
    """An integer argument within bounds, or a 400 that says which and why."""
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadArgument(f"'{name}' must be a whole number, got {raw[:40]!r}.") from None
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
        raise BadArgument(f"'{name}' must be {bound}, got {value}.")
    return value


def choice_arg(name: str, choices, default: str) -> str:
    """One of a fixed set of values, or a 400 listing them."""
    raw = request.args.get(name) or default
    if raw not in choices:
        raise BadArgument(f"'{name}' must be one of: {', '.join(choices)}; got {raw[:40]!r}.")
    return raw
