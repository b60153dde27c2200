"""Home, entry and kind pages."""

from __future__ import annotations

from flask import Blueprint, abort, current_app, redirect, render_template, url_for

from .. import queries
from ..content import KIND_ALIASES
from ..related import related_entries
from .args import page_arg

bp = Blueprint("pages", __name__)


@bp.get("/")
def index():
    """Newest entries first, with counts per kind and the most used tags."""
    page = page_arg()
    pagination = queries.entries_page(page, current_app.config["PER_PAGE"])
    if page > 1 and not pagination.items:
        abort(404)
    return render_template(
        "entries/index.html",
        pagination=pagination,
        kind_counts=queries.kind_counts(),
        tags=queries.popular_tags(15),
        recently_updated=queries.recently_updated(5),
        intro=queries.site_text("intro"),
    )


@bp.get("/entries/<path:slug>")
def entry(slug):
    """One rendered entry."""
    found = queries.entry_by_slug(slug)
    if found is None:
        abort(404)
    older, newer = queries.neighbours(found)
    return render_template(
        "entries/entry.html",
        entry=found,
        related=related_entries(found, current_app.extensions["nexus.searchers"]),
        backlinks=queries.backlinks(found),
        older=older,
        newer=newer,
    )


@bp.get("/kinds/<kind>")
def kind(kind):
    """Entries of one kind; plural and other spellings redirect to the canonical URL."""
    canonical = KIND_ALIASES.get(kind.lower())
    if canonical is None:
        abort(404)
    if canonical != kind:
        return redirect(url_for(".kind", kind=canonical), 301)
    page = page_arg()
    pagination = queries.entries_page(page, current_app.config["PER_PAGE"], kind=kind)
    if page > 1 and not pagination.items:
        abort(404)
    return render_template("kinds/kind.html", kind=kind, pagination=pagination, kind_counts=queries.kind_counts())
