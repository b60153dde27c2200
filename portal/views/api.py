"""The read-only JSON API under `/api/`: entries, tags, stats, its OpenAPI document and Swagger UI.

`/api/search` and `/api/suggest` live in `views/search.py`. For every `/api/` route, this module
checks the query parameters against the OpenAPI document before the view runs and adds CORS
headers to the answer; `views/errors.py` answers errors (unknown routes too) as JSON.
"""

from __future__ import annotations

from flask import Blueprint, Flask, abort, current_app, jsonify, render_template, request, url_for

from .. import openapi, queries
from ..content import tag_slug
from ..generation import current_generation
from ..models import Entry, Tag
from ..related import related_entries
from .args import BadArgument, UnknownTag, choice_arg, int_arg, page_arg, tag_filter_args

bp = Blueprint("api", __name__, url_prefix="/api")

#: A public, read-only API: any origin may read it, without credentials.
CORS_HEADERS = {"Access-Control-Allow-Origin": "*", "Access-Control-Expose-Headers": "ETag"}
PREFLIGHT_HEADERS = {
    "Access-Control-Allow-Methods": "GET, HEAD, OPTIONS",
    "Access-Control-Allow-Headers": "Accept, Accept-Language, If-None-Match, If-Modified-Since",
    "Access-Control-Max-Age": "86400",
}


# --- shared by every /api/ route -------------------------------------------------------------


def openapi_document(app: Flask) -> dict:
    """The app's OpenAPI document, built once from its routes."""
    if "nexus.openapi" not in app.extensions:
        document = openapi.build_spec(app)
        app.extensions["nexus.openapi"] = (document, openapi.query_parameters(document))
    return app.extensions["nexus.openapi"][0]


@bp.before_app_request
def _check_query_args():
    """400 for a query parameter whose value breaks its documented schema, so answers match the document."""
    rule = request.url_rule
    if rule is None or not rule.rule.startswith(openapi.API_PREFIX) or request.method not in ("GET", "HEAD"):
        return
    openapi_document(current_app)
    documented = current_app.extensions["nexus.openapi"][1].get((openapi.openapi_path(rule.rule), "get"), [])
    for parameter in documented:
        for raw in request.args.getlist(parameter["name"]):
            problem = openapi.check_value(parameter, raw)
            if problem:
                raise BadArgument(problem)


@bp.after_app_request
def _add_cors_headers(response):
    """`Access-Control-Allow-Origin: *` on every /api/ answer; preflights may send validators."""
    if request.path.startswith(openapi.API_PREFIX):
        response.headers.update(CORS_HEADERS)
        if request.method == "OPTIONS":
            response.headers.update(PREFLIGHT_HEADERS)
    return response


def resolve_tag(raw: str) -> Tag:
    """The tag a URL names by slug, name or alias; an unknown one is a 404 with suggestions."""
    slug = tag_slug(raw)
    found = queries.tags_by_slug([slug]).get(slug)
    if found is None:
        alias = queries.tag_aliases().get(slug)
        found = queries.tags_by_slug([alias]).get(alias) if alias else None
    if found is None:
        raise UnknownTag(slug, queries.nearest_tags(slug))
    return found


# --- JSON representations ---------------------------------------------------------------------


def entry_ref(entry: Entry) -> dict:
    """Enough to link to an entry."""
    return {
        "slug": entry.slug,
        "title": entry.title,
        "kind": entry.kind,
        "url": url_for("pages.entry", slug=entry.slug, _external=True),
        "api_url": url_for("api.entry", slug=entry.slug, _external=True),
    }


def entry_summary(entry: Entry) -> dict:
    """An entry as listed (the `EntrySummary` schema)."""
    return {
        **entry_ref(entry),
        "summary": entry.summary or "",
        "tags": [tag.slug for tag in entry.tags],
        "date": (entry.date or entry.created_at.date()).isoformat(),  # not sort_date: that is the update, if any
        "updated": entry.updated.isoformat() if entry.updated else None,
    }


def tag_json(tag: Tag, count: int) -> dict:
    """A tag with its entry count (the `Tag` schema)."""
    return {
        "slug": tag.slug,
        "name": tag.name,
        "description": tag.description or "",
        "aliases": list(tag.aliases or []),
        "count": count,
        "url": url_for("tags.tag", tag=tag.slug, _external=True),
        "api_url": url_for("api.tag", tag=tag.slug, _external=True),
        "feed_url": url_for("feeds.tag_feed", tag=tag.slug, _external=True),
    }


def paging(pagination, endpoint: str, **params) -> dict:
    """Totals and next/previous links of a page; a page past the last is simply empty."""
    pages = max(1, pagination.pages)

    def link(number):
        return url_for(endpoint, page=number if number > 1 else None, _external=True, **params)

    page = pagination.page
    return {
        "total": pagination.total,
        "page": page,
        "pages": pages,
        "per_page": pagination.per_page,
        "next": link(page + 1) if page < pages else None,
        "prev": link(min(page - 1, pages)) if page > 1 else None,
    }


def page_args() -> tuple[int, int, str]:
    """`page`, `per_page` and `sort` of a list of entries."""
    return (
        page_arg(),
        int_arg("per_page", openapi.ENTRIES_PER_PAGE, maximum=openapi.MAX_PER_PAGE),
        choice_arg("sort", openapi.ENTRY_SORTS, "newest"),
    )


def _list_params(per_page: int, sort: str) -> dict:
    """Query parameters that keep a list's page size and order in its links."""
    return {
        "per_page": per_page if per_page != openapi.ENTRIES_PER_PAGE else None,
        "sort": sort if sort != "newest" else None,
    }


# --- routes -------------------------------------------------------------------------------------


@bp.get("/entries")
def entries():
    """Entries, newest first or by title, filtered by tags and kind.
    ---
    get:
      summary: List entries
      description: >-
        Entries carrying every `all` tag, at least one `any` tag, no `not` tag, of the given `kind`.
        Without filters, every entry.
      operationId: listEntries
      tags: [entries]
      parameters: [page, per_page, entry_sort, all, any, not, tag, kind]
      responses:
        "200":
          description: One page of entries.
          content: {application/json: {schema: EntryPage}}
        "304": NotModified
        "400": BadRequest
        "404": NotFound
        "414": URITooLong
    """
    tag_filter = tag_filter_args()
    page, per_page, sort = page_args()
    ids = {slug: tag.id for slug, tag in queries.tags_by_slug(tag_filter.tags()).items()}
    pagination = queries.filtered_entries(tag_filter, ids, page, per_page, sort)
    return jsonify(
        **paging(pagination, ".entries", **tag_filter.params(), **_list_params(per_page, sort)),
        sort=sort,
        filter={
            "all": list(tag_filter.all),
            "any": list(tag_filter.any),
            "not": list(tag_filter.none),
            "kind": tag_filter.kind,
        },
        entries=[entry_summary(entry) for entry in pagination.items],
    )


@bp.get("/entries/<path:slug>")
def entry(slug):
    """One entry: metadata, sanitized HTML, table of contents, related entries and backlinks.
    ---
    get:
      summary: Get an entry
      operationId: getEntry
      tags: [entries]
      parameters:
        - name: slug
          in: path
          required: true
          description: The entry's slug; it may contain `/` (sent as is or as `%2F`).
          schema: {type: string, minLength: 1}
          example: technologies/celery
      responses:
        "200":
          description: The entry.
          content: {application/json: {schema: Entry}}
        "304": NotModified
        "404": NotFound
        "414": URITooLong
    """
    found = queries.entry_by_slug(slug)
    if found is None:
        abort(404, description=f"There is no entry {slug[:100]!r}.")
    related = related_entries(found, current_app.extensions["nexus.searchers"])
    return jsonify(
        **entry_summary(found),
        html=found.html,
        toc=found.toc or [],
        word_count=found.word_count,
        reading_minutes=found.reading_minutes,
        tag_names={tag.slug: tag.name for tag in found.tags},
        related=[dict(entry_ref(item.entry), reason=item.reason) for item in related],
        backlinks=[entry_ref(other) for other in queries.backlinks(found)],
    )


@bp.get("/tags")
def tags():
    """Every tag in use, with its entry count and description.
    ---
    get:
      summary: List tags
      operationId: listTags
      tags: [tags]
      parameters: [tag_sort]
      responses:
        "200":
          description: All tags used by at least one entry.
          content: {application/json: {schema: TagList}}
        "304": NotModified
        "400": BadRequest
        "414": URITooLong
    """
    sort = choice_arg("sort", openapi.TAG_SORTS, "count")
    found = queries.all_tags(sort)
    return jsonify(total=len(found), tags=[tag_json(tag, count) for tag, count in found])


@bp.get("/tags/<tag>")
def tag(tag):
    """A tag (by slug, name or alias), one page of its entries, and the tags seen beside it.
    ---
    get:
      summary: Get a tag and its entries
      operationId: getTag
      tags: [tags]
      parameters:
        - name: tag
          in: path
          required: true
          description: A tag's slug, name or alias (any case).
          schema: {type: string, minLength: 1}
          example: redis
        - page
        - per_page
        - entry_sort
      responses:
        "200":
          description: The tag and one page of its entries.
          content: {application/json: {schema: TagPage}}
        "304": NotModified
        "400": BadRequest
        "404": NotFound
        "414": URITooLong
    """
    found = resolve_tag(tag)
    page, per_page, sort = page_args()
    tag_filter = queries.TagFilter(all=(found.slug,))
    pagination = queries.filtered_entries(tag_filter, {found.slug: found.id}, page, per_page, sort)
    co_tags = [
        {"slug": other.slug, "name": other.name, "count": count}
        for other, count in queries.tag_counts_within(tag_filter, {found.slug: found.id})
        if other.id != found.id
    ]
    return jsonify(
        tag=tag_json(found, pagination.total),
        **paging(pagination, ".tag", tag=found.slug, **_list_params(per_page, sort)),
        sort=sort,
        entries=[entry_summary(entry) for entry in pagination.items],
        co_tags=co_tags,
    )


@bp.get("/stats")
def stats():
    """Counts per kind and per tag, and the last import.
    ---
    get:
      summary: Site statistics
      operationId: getStats
      tags: [site]
      responses:
        "200":
          description: Counts and the last import.
          content: {application/json: {schema: Stats}}
        "304": NotModified
        "414": URITooLong
    """
    kinds = queries.kind_counts()
    total = queries.entry_count()
    per_tag = {tag.slug: count for tag, count in queries.all_tags()}
    last = queries.last_import()
    last_import = None
    if last is not None:
        last_import = {
            "started_at": last.started_at.isoformat() + "Z",
            "finished_at": last.finished_at.isoformat() + "Z",
            **{key: getattr(last, key) for key in ("added", "updated", "unchanged", "deleted", "errors", "entries")},
        }
    return jsonify(
        entries=total,
        tags=len(per_tag),
        kinds=kinds,
        without_kind=total - sum(kinds.values()),
        per_tag=per_tag,
        generation=current_generation(),
        last_import=last_import,
    )


@bp.get("/openapi.json")
def openapi_json():
    """This document: the OpenAPI 3 description of the API, generated from the code.
    ---
    get:
      summary: OpenAPI document
      operationId: getOpenAPI
      tags: [site]
      responses:
        "200":
          description: The OpenAPI 3.0 document.
          content:
            application/json:
              schema:
                type: object
                required: [openapi, info, paths, components]
                properties:
                  openapi: {type: string, enum: ["3.0.3"]}
        "304": NotModified
        "414": URITooLong
    """
    return jsonify(openapi_document(current_app))


@bp.get("/docs")
def docs():
    """Swagger UI over the OpenAPI document (vendored, no CDN).
    ---
    get:
      summary: API documentation (Swagger UI)
      operationId: getDocs
      tags: [site]
      responses:
        "200":
          description: An HTML page that renders `/api/openapi.json`.
          content: {text/html: {schema: {type: string}}}
        "304": NotModified
        "414": URITooLong
    """
    return render_template("api/docs.html", spec_url=url_for(".openapi_json"))
