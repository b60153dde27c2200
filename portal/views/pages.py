"""Home, entry and kind pages, and the header's navigation (which fits the collection)."""

from __future__ import annotations

import logging
from urllib.parse import quote

from flask import Blueprint, abort, current_app, redirect, render_template, url_for
from sqlalchemy.exc import SQLAlchemyError

from .. import queries
from ..kinds import KIND_ALIASES
from ..models import first_line
from ..outline import Outline
from ..related import related_entries
from .args import page_arg

bp = Blueprint("pages", __name__)
log = logging.getLogger(__name__)


@bp.app_template_global()
def site_outline() -> Outline:
    """The kinds and topics the header offers; none when the database cannot say (an error page must still render)."""
    try:
        return queries.collection_outline()
    except SQLAlchemyError as error:
        # One line, as every database outage is logged (views/errors.py): a traceback per page says nothing more.
        log.warning("no navigation for this page: the database did not answer (%s)", first_line(error))
        return Outline()


@bp.get("/")
def index():
    """Newest entries first; counts per kind where entries have kinds, else the main topics; the most used tags."""
    page = page_arg()
    pagination = queries.entries_page(page, current_app.config["PER_PAGE"])
    if page > 1 and not pagination.items:
        abort(404)
    outline = queries.collection_outline()
    return render_template(
        "entries/index.html",
        pagination=pagination,
        kind_counts=outline.kinds,
        topics=[] if outline.kinds else outline.topics,
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
        edit_url=edit_link(current_app.config["EDIT_URL"], found.path),
    )


def edit_link(template: str | None, path: str) -> str | None:
    """`NEXUS_EDIT_URL` with `{path}` replaced by the entry's file path, each segment URL-quoted (like MkDocs' edit_uri)."""
    if not template:
        return None
    return template.replace("{path}", "/".join(quote(part, safe="") for part in path.split("/")))


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
