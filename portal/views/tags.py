"""Tag pages and the combined tag filter (`/entries?all=…&any=…&not=…&kind=…`)."""

from __future__ import annotations

from flask import Blueprint, abort, current_app, redirect, render_template, url_for

from .. import queries
from ..content import tag_slug
from .args import UnknownTag, choice_arg, page_arg, tag_filter_args

bp = Blueprint("tags", __name__)


@bp.get("/tags")
def index():
    """Every tag with its entry count, by count or by name."""
    sort = choice_arg("sort", ("count", "name"), "count")
    return render_template("tags/index.html", tags=queries.all_tags(sort), sort=sort)


@bp.get("/tags/<tag>")
def tag(tag):
    """Entries with one tag, its description, and the tags that appear beside it."""
    slug = tag_slug(tag)
    found = queries.tags_by_slug([slug]).get(slug)
    if found is None:
        alias = queries.tag_aliases().get(slug)
        if alias:
            return redirect(url_for(".tag", tag=alias), 301)
        raise UnknownTag(slug, queries.nearest_tags(slug))
    if found.slug != tag:
        return redirect(url_for(".tag", tag=found.slug), 301)
    sort = choice_arg("sort", ("newest", "title"), "newest")
    tag_filter = queries.TagFilter(all=(found.slug,))
    pagination = _page_of(tag_filter, sort)
    co_tags = [(t, n) for t, n in queries.tag_counts_within(tag_filter, {found.slug: found.id}) if t.id != found.id]
    return render_template("tags/tag.html", tag=found, pagination=pagination, sort=sort, co_tags=co_tags)


@bp.get("/entries")
def filtered():
    """Entries matching every `all` tag, at least one `any` tag, no `not` tag, and the kind."""
    tag_filter = tag_filter_args(extra_all=("tag",))
    sort = choice_arg("sort", ("newest", "title"), "newest")
    pagination = _page_of(tag_filter, sort)
    facets = [(t, n) for t, n in _counts(tag_filter) if t.slug not in tag_filter.tags()]
    return render_template(
        "tags/filter.html",
        tag_filter=tag_filter,
        pagination=pagination,
        sort=sort,
        facets=facets,
        names={t.slug: t.name for t in queries.tags_by_slug(tag_filter.tags()).values()},
        canonical=url_for(".filtered", _external=True, **tag_filter.params()),
    )


def _ids(tag_filter):
    return {slug: t.id for slug, t in queries.tags_by_slug(tag_filter.tags()).items()}


def _page_of(tag_filter, sort):
    """One page of filtered entries; past the last page is a 404."""
    page = page_arg()
    pagination = queries.filtered_entries(tag_filter, _ids(tag_filter), page, current_app.config["PER_PAGE"], sort)
    if page > 1 and not pagination.items:
        abort(404)
    return pagination


def _counts(tag_filter):
    return queries.tag_counts_within(tag_filter, _ids(tag_filter))
