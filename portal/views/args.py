"""Parsing query-string arguments into clean values, with clear errors for bad ones."""

from __future__ import annotations

from flask import request
from werkzeug.exceptions import BadRequest, NotFound

from .. import queries
from ..content import slugify, tag_slug
from ..kinds import KIND_ALIASES, KINDS
from ..openapi import MAX_PAGE
from ..queries import TagFilter


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


def page_arg() -> int:
    """`page` of any listing, HTML or API: a 400 outside 1 to MAX_PAGE (a huge page overflows the database's offset)."""
    return int_arg("page", 1, maximum=MAX_PAGE)


def choice_arg(name: str, choices, default: str) -> str:
    """One of a fixed set of values, or a 400 listing them."""
    raw = request.args.get(name) or default
    if raw not in choices:
        raise BadArgument(f"'{name}' must be one of: {', '.join(choices)}; got {raw[:40]!r}.")
    return raw


MAX_FILTER_TAGS = 20
FILTER_PARAMS = (("all", "all"), ("any", "any"), ("not", "none"))


class UnknownTag(NotFound):
    """A tag nobody uses; the 404 page suggests the nearest known tags."""

    def __init__(self, slug: str, suggestions):
        super().__init__(f"There is no tag '{slug}'.")
        self.slug, self.suggestions = slug, suggestions


def _tag_list(param: str) -> list[str]:
    """Comma-separated (or repeated) tag names of one parameter, as slugs."""
    slugs = []
    for raw in request.args.getlist(param):
        if len(raw) > 2000:
            raise BadArgument(f"'{param}' is too long.")
        for item in raw.split(","):
            if not item.strip():
                continue
            slug = tag_slug(item)
            if not slug or len(slug) > 100:
                raise BadArgument(f"'{param}' contains {item[:40]!r}, which is not a tag name.")
            slugs.append(slug)
    return slugs


def kind_arg() -> str | None:
    """The `kind` parameter in any accepted spelling, or a 400 listing the kinds."""
    raw = request.args.get("kind")
    if not raw:
        return None
    kind = KIND_ALIASES.get(slugify(raw))
    if kind is None:
        raise BadArgument(f"'kind' must be one of: {', '.join(KINDS)}; got {raw[:40]!r}.")
    return kind


def tag_filter_args(*, extra_all: tuple[str, ...] = ("tag",)) -> TagFilter:
    """`all`, `any`, `not` (and `tag`, same as `all`) and `kind`; unknown tags are a 404 with suggestions."""
    groups = {field: _tag_list(param) for param, field in FILTER_PARAMS}
    for param in extra_all:
        groups["all"] += _tag_list(param)
    named = {slug for values in groups.values() for slug in values}
    if len(named) > MAX_FILTER_TAGS:
        raise BadArgument(f"A filter can name at most {MAX_FILTER_TAGS} tags.")
    known = queries.tags_by_slug(named)
    aliases = queries.tag_aliases() if named - known.keys() else {}
    for field, values in groups.items():
        resolved = []
        for slug in values:
            slug = slug if slug in known else aliases.get(slug, slug)
            if slug not in known and slug not in queries.tags_by_slug([slug]):
                raise UnknownTag(slug, queries.nearest_tags(slug))
            resolved.append(slug)
        groups[field] = tuple(sorted(set(resolved)))
    return TagFilter(all=groups["all"], any=groups["any"], none=groups["none"], kind=kind_arg())
