"""`/search` (HTML), `/api/search` and `/api/suggest` (JSON): one engine, same parameters."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from flask import Blueprint, abort, after_this_request, current_app, jsonify, render_template, request, url_for
from werkzeug.exceptions import ServiceUnavailable

from .. import queries
from ..caching import not_kept
from ..openapi import MAX_PER_PAGE
from ..queries import TagFilter
from .admission import admitted
from .api import entry_summary
from .args import choice_arg, int_arg, page_arg, tag_filter_args
from .feeds import opensearch_suggestions

if TYPE_CHECKING:
    from ..search import engine

# The search engine (and Whoosh under it) is imported by the first search, not with the
# blueprint: the app factory registers every blueprint, also in processes that never search.

bp = Blueprint("search", __name__)

DEFAULT_PER_PAGE = 10
#: Tags offered to narrow a search page, most common first (the API lists every one).
FACETS_SHOWN = 20


@dataclass
class SearchRequest:
    """The parsed parameters of a search, shared by the page and the API."""

    q: str
    page: int
    per_page: int
    sort: str
    tag_filter: TagFilter
    exact: bool = False

    @property
    def tags(self) -> list[str]:
        """Tags every result must carry (`tag` and `all` parameters)."""
        return list(self.tag_filter.all)

    @property
    def kind(self) -> str | None:
        return self.tag_filter.kind

    def params(self, **changes) -> dict:
        """Query parameters of this search with some changed, defaults left out (for links)."""
        tag_filter = changes.pop("tag_filter", self.tag_filter)
        args = replace(self, **changes)
        params = {
            "q": args.q,
            "page": args.page if args.page > 1 else None,
            "per_page": args.per_page if args.per_page != DEFAULT_PER_PAGE else None,
            "sort": args.sort if args.sort != "relevance" else None,
            "exact": "1" if args.exact else None,
            **tag_filter.params(),
        }
        return {name: value for name, value in params.items() if value is not None}


def read_search_args() -> SearchRequest:
    """Parse and check the search parameters; bad ones raise a 400, unknown tags a 404."""
    from ..search import engine  # lazy: see the imports

    return SearchRequest(
        q=request.args.get("q", ""),
        page=page_arg(),
        per_page=int_arg("per_page", DEFAULT_PER_PAGE, maximum=MAX_PER_PAGE),
        sort=choice_arg("sort", engine.SORTS, "relevance"),
        tag_filter=tag_filter_args(),
        exact=request.args.get("exact") == "1",
    )


class Listing:
    """The entries of one page of results, read once: the snippets take their text, the cards the rest."""

    def __init__(self):
        self.entries: dict[str, queries.Listed] = {}

    def texts(self, slugs: list[str]) -> dict[str, str]:
        """slug -> text of the page's entries (what the search engine asks for its snippets)."""
        self.entries = queries.listed_by_slugs(slugs)
        return {slug: entry.text for slug, entry in self.entries.items()}

    def results(self, outcome: engine.SearchOutcome) -> list[tuple]:
        """(entry, hit) for each hit of the page whose entry still exists, in rank order."""
        if not self.entries and outcome.hits:
            self.texts([hit.slug for hit in outcome.hits])
        return [(self.entries[hit.slug], hit) for hit in outcome.hits if hit.slug in self.entries]


@admitted
def run(args: SearchRequest, listing: Listing) -> engine.SearchOutcome:
    """Run a search with the worker's searcher; an unusable index is a 503."""
    from ..search import engine  # lazy: see the imports

    pool = current_app.extensions["nexus.searchers"]
    try:
        return engine.run_search(
            pool,
            args.q,
            page=args.page,
            per_page=args.per_page,
            sort=args.sort,
            tags_all=args.tag_filter.all,
            tags_any=args.tag_filter.any,
            tags_not=args.tag_filter.none,
            kind=args.tag_filter.kind,
            texts=listing.texts,
            correct=not args.exact,
        )
    except engine.IndexUnavailable as error:
        current_app.logger.error("search unavailable: %s", error)
        raise ServiceUnavailable(
            "Search is unavailable right now; the site operator needs to run `flask reindex`."
        ) from None


@bp.get("/search")
def search_page():
    """Search results with facets, or popular tags when the query is empty."""
    args = read_search_args()
    if not args.q.strip():
        return render_template(
            "search/search.html", args=args, outcome=None, results=[], facets=[], tags=queries.popular_tags(30)
        )
    listing = Listing()
    outcome = run(args, listing)
    if args.page > outcome.pages:
        abort(404)  # past the last page, as every listing
    active = args.tag_filter.tags()
    facets = [(tag, count) for tag, count in outcome.facets.items() if tag not in active][:FACETS_SHOWN]
    return render_template(
        "search/search.html", args=args, outcome=outcome, results=listing.results(outcome), facets=facets, tags=[]
    )


@bp.get("/api/search")
def api_search():
    """The same search as JSON.
    ---
    get:
      summary: Search entries
      description: >-
        Full-text search (BM25F; several words narrow, `"phrase"`, `prefix*`, `-word`, `tag:x`,
        `kind:x`, `title:x`), with highlighted snippets, tag facets over all matches and typo
        correction. Function words ("how", "in", "the") are never required (`ignored_words`).
        When fewer than 10 entries have every word, entries that match most of them follow the
        full matches (`relaxed`, `full_matches`; each result's `missing_words`). A word the index
        does not know is corrected when that finds better results (`corrected`), or offered
        (`suggestion`). Quotes and operators keep their strict meaning. An empty `q` finds
        nothing. Queries are cut to 500 characters and 32 words.
      operationId: search
      tags: [search]
      parameters:
        - {name: q, in: query, description: The query., schema: {type: string}, example: celery redis}
        - page
        - search_per_page
        - search_sort
        - tag
        - all
        - any
        - not
        - kind
        - {name: exact, in: query, description: "`1` turns typo correction off.", schema: {type: string, enum: ["0", "1"]}}
      responses:
        "200":
          description: One page of ranked results.
          content: {application/json: {schema: SearchResults}}
        "304": NotModified
        "400": BadRequest
        "404": NotFound
        "414": URITooLong
        "503": Unavailable
    """
    from ..search import engine  # lazy: see the imports

    args = read_search_args()
    listing = Listing()
    if not args.q.strip():
        outcome = engine.SearchOutcome(query="", hits=[], total=0, page=args.page, per_page=args.per_page)
    else:
        outcome = run(args, listing)
    results = [
        {
            **entry_summary(entry),
            "snippet": hit.snippet,
            "score": round(hit.score, 4),
            "missing_words": hit.missing,
        }
        for entry, hit in listing.results(outcome)
    ]
    return jsonify(
        query=outcome.query,
        total=outcome.total,
        page=outcome.page,
        pages=outcome.pages,
        per_page=outcome.per_page,
        results=results,
        facets={"tags": outcome.facets},
        corrected=outcome.corrected,
        suggestion=outcome.suggestion,
        relaxed=outcome.relaxed,
        full_matches=outcome.full_matches,
        ignored_words=outcome.ignored,
        notice=outcome.notice,
    )


@bp.get("/api/suggest")
def api_suggest():
    """Titles matching what has been typed so far, for the header's search box.
    ---
    get:
      summary: Title suggestions
      description: >-
        Up to 8 entries whose title words start with what was typed. `format=opensearch` answers
        in the OpenSearch suggestions format that browsers use for the search bar.
      operationId: suggest
      tags: [search]
      parameters:
        - {name: q, in: query, description: What has been typed so far., schema: {type: string, maxLength: 500}, example: cel}
        - {name: format, in: query, description: The answer's format., schema: {type: string, enum: [json, opensearch], default: json}}
      responses:
        "200":
          description: Matching titles.
          content:
            application/json: {schema: Suggestions}
            application/x-suggestions+json: {schema: OpenSearchSuggestions}
        "304": NotModified
        "400": BadRequest
        "414": URITooLong
    """
    from ..search import engine  # lazy: see the imports

    q = request.args.get("q", "")
    if len(q) > engine.MAX_QUERY_CHARS:
        abort(400, description=f"'q' must be at most {engine.MAX_QUERY_CHARS} characters.")
    try:
        slugs = engine.suggest_titles(current_app.extensions["nexus.searchers"], q)
    except engine.IndexUnavailable:
        slugs = []
        after_this_request(not_kept)  # an empty list for want of an index: never kept
    entries = queries.entries_by_slugs(slugs)
    if request.args.get("format") == "opensearch":
        return opensearch_suggestions(q, entries)
    return jsonify(
        query=q,
        suggestions=[
            {"slug": e.slug, "title": e.title, "kind": e.kind, "url": url_for("pages.entry", slug=e.slug)}
            for e in entries
        ],
    )
