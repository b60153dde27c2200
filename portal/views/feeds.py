"""Atom feeds, the sitemap, robots.txt and the OpenSearch description: how readers and tools find entries.

Feeds and the sitemap are Jinja XML templates (autoescaped); characters XML 1.0 forbids are
removed from the output, since a note may hold control characters that would break a parser.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import re
from urllib.parse import urljoin

from flask import Blueprint, Response, redirect, render_template, url_for
from markupsafe import escape

from .. import queries
from ..kinds import KINDS
from ..models import Entry
from ..queries import TagFilter
from .api import resolve_tag
from .args import tag_filter_args

bp = Blueprint("feeds", __name__)

#: Entries per feed: the newest ones.
FEED_SIZE = 50
#: The sitemap protocol's limit on URLs in one file.
SITEMAP_LIMIT = 50_000
ATOM_TYPE = "application/atom+xml"
XML_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")
#: A link or image tag of sanitized HTML (text never holds a raw `<`), and a URL attribute in it.
LINKING_TAG = re.compile(r"<(?:a|img)\s[^>]*>")
URL_ATTRIBUTE = re.compile(r'(\s(?:href|src)=")([^"]*)(")')


def atom_time(value: dt.date | dt.datetime) -> str:
    """RFC 3339 time in UTC, as Atom wants it; a date is taken at midnight."""
    if not isinstance(value, dt.datetime):
        value = dt.datetime.combine(value, dt.time())
    return value.replace(microsecond=0, tzinfo=None).isoformat() + "Z"


def entry_times(entry: Entry) -> tuple[dt.date, dt.date]:
    """(published, updated) of an entry as its front matter states them."""
    published = entry.date or entry.sort_date
    return published, max(entry.updated or published, published)


def absolute_urls(markup: str, base: str) -> str:
    """Stored HTML with its relative links and image sources made absolute against `base` (the entry's URL).

    Entries link to each other and to their files relative to their own page; the feed also says
    so with `xml:base`, which many feed readers ignore.
    """

    def absolute(attribute: re.Match) -> str:
        url = urljoin(base, html.unescape(attribute.group(2)))
        return f"{attribute.group(1)}{escape(url)}{attribute.group(3)}"

    return LINKING_TAG.sub(lambda tag: URL_ATTRIBUTE.sub(absolute, tag.group(0)), markup)


def _xml(template: str, mimetype: str, **context) -> Response:
    text = XML_FORBIDDEN.sub("", render_template(template, **context))
    return Response(text, mimetype=mimetype)


def _feed(title: str, subtitle: str, tag_filter: TagFilter, self_url: str, page_url: str) -> Response:
    """An Atom feed of the newest entries passing the filter."""
    ids = {slug: tag.id for slug, tag in queries.tags_by_slug(tag_filter.tags()).items()}
    entries = queries.feed_entries(tag_filter, ids, FEED_SIZE)
    times = {entry.slug: entry_times(entry) for entry in entries}
    contents = {
        entry.slug: absolute_urls(entry.html, url_for("pages.entry", slug=entry.slug, _external=True))
        for entry in entries
    }
    if times:
        updated = max(updated for _, updated in times.values())
    else:
        last = queries.last_import()
        updated = last.finished_at if last else dt.datetime(1970, 1, 1)
    return _xml(
        "feeds/atom.xml",
        ATOM_TYPE,
        title=title,
        subtitle=subtitle,
        entries=entries,
        times=times,
        contents=contents,
        updated=updated,
        self_url=self_url,
        page_url=page_url,
    )


@bp.app_template_filter("atomtime")
def _atom_time_filter(value):
    return atom_time(value)


@bp.get("/feed.atom")
def site_feed():
    """The newest entries of the whole site."""
    return _feed(
        title="",
        subtitle="Newest entries",
        tag_filter=TagFilter(),
        self_url=url_for(".site_feed", _external=True),
        page_url=url_for("pages.index", _external=True),
    )


@bp.get("/tags/<tag>/feed.atom")
def tag_feed(tag):
    """The newest entries with one tag; other spellings and aliases redirect to the tag's own feed."""
    found = resolve_tag(tag)
    if found.slug != tag:
        return redirect(url_for(".tag_feed", tag=found.slug), 301)
    return _feed(
        title=found.name,
        subtitle=found.description or f"Newest entries tagged {found.name}",
        tag_filter=TagFilter(all=(found.slug,)),
        self_url=url_for(".tag_feed", tag=found.slug, _external=True),
        page_url=url_for("tags.tag", tag=found.slug, _external=True),
    )


@bp.get("/entries/feed.atom")
def filtered_feed():
    """The newest entries passing any tag filter (`all`, `any`, `not`, `tag`, `kind`), as on `/entries`."""
    tag_filter = tag_filter_args()
    names = {slug: tag.name for slug, tag in queries.tags_by_slug(tag_filter.tags()).items()}
    return _feed(
        title=describe_filter(tag_filter, names),
        subtitle="Newest entries matching a filter",
        tag_filter=tag_filter,
        self_url=url_for(".filtered_feed", _external=True, **tag_filter.params()),
        page_url=url_for("tags.filtered", _external=True, **tag_filter.params()),
    )


def describe_filter(tag_filter: TagFilter, names: dict[str, str]) -> str:
    """A short title for a filter: `Python + Redis, not Django (Concepts)`."""

    def named(slugs):
        return [names.get(slug, slug) for slug in slugs]

    parts = []
    if tag_filter.all:
        parts.append(" + ".join(named(tag_filter.all)))
    if tag_filter.any:
        parts.append("any of " + ", ".join(named(tag_filter.any)))
    if tag_filter.none:
        parts.append("not " + ", ".join(named(tag_filter.none)))
    text = ", ".join(parts) or "All entries"
    if tag_filter.kind:
        text += f" ({KINDS[tag_filter.kind].many})"
    return text


@bp.get("/sitemap.xml")
def sitemap():
    """Every entry, tag and kind page, with when it last changed."""
    entries, tags, kinds = queries.sitemap_dates()
    newest = max((modified for _, modified in entries), default=None)
    urls = [(url_for("pages.index", _external=True), newest), (url_for("tags.index", _external=True), newest)]
    urls += [(url_for("pages.kind", kind=kind, _external=True), kinds[kind]) for kind in KINDS if kind in kinds]
    urls += [(url_for("tags.tag", tag=slug, _external=True), modified) for slug, modified in tags]
    urls += [(url_for("pages.entry", slug=slug, _external=True), modified) for slug, modified in entries]
    return _xml("feeds/sitemap.xml", "application/xml", urls=urls[:SITEMAP_LIMIT])


@bp.get("/robots.txt")
def robots():
    """Crawl everything but endless search and filter result pages; the sitemap lists the rest."""
    text = render_template("feeds/robots.txt", sitemap_url=url_for(".sitemap", _external=True))
    return Response(text, mimetype="text/plain")


@bp.get("/opensearch.xml")
def opensearch():
    """An OpenSearch 1.1 description, so browsers can add the site as a search engine."""
    return _xml("feeds/opensearch.xml", "application/opensearchdescription+xml")


def opensearch_suggestions(query: str, entries: list[Entry]) -> Response:
    """Suggestions in the OpenSearch format: [query, [titles], [summaries], [URLs]]."""
    body = [
        query,
        [entry.title for entry in entries],
        [entry.summary or "" for entry in entries],
        [url_for("pages.entry", slug=entry.slug, _external=True) for entry in entries],
    ]
    return Response(json.dumps(body, ensure_ascii=False), mimetype="application/x-suggestions+json")
