"""The JSON API under /api/: entries, tags, stats, errors, CORS and checked parameters."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from .conftest import CACHING, CELERY, NOTE, REDIS, REPORTS, do_import, write_entry

ENTRY_SUMMARY_KEYS = {"slug", "title", "kind", "url", "api_url", "summary", "tags", "date", "updated"}


def get(client, path, **params):
    """GET an API path: (status, JSON body), checking the answer is JSON."""
    response = client.get(path, query_string=params)
    assert response.mimetype == "application/json", (path, response.status_code, response.data[:200])
    return response.status_code, response.get_json()


def slugs(body) -> list[str]:
    return [entry["slug"] for entry in body["entries"]]


# --- /api/entries -------------------------------------------------------------------------------


def test_entries_newest_first_with_summaries(client):
    status, body = get(client, "/api/entries")
    assert status == 200
    assert (body["total"], body["page"], body["pages"], body["per_page"]) == (5, 1, 1, 20)
    assert body["next"] is None and body["prev"] is None
    assert body["filter"] == {"all": [], "any": [], "not": [], "kind": None}
    # The plain note has no date: it sorts by its first import (today), so it comes first.
    assert slugs(body) == [NOTE, REPORTS, REDIS, CELERY, CACHING]
    celery = body["entries"][3]
    assert set(celery) == ENTRY_SUMMARY_KEYS
    assert celery == {
        "slug": CELERY,
        "title": "Celery",
        "kind": "technology",
        "url": "http://localhost/entries/technologies/celery",
        "api_url": "http://localhost/api/entries/technologies/celery",
        "summary": "Background tasks for Python with a message broker.",
        "tags": ["celery", "python", "redis"],
        "date": "2025-03-01",
        "updated": None,
    }


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"all": "redis"}, [REDIS, CELERY]),
        ({"all": "redis,celery"}, [CELERY]),
        ({"all": "Redis, Celery"}, [CELERY]),  # names, any case, a space after the comma
        ({"tag": "redis"}, [REDIS, CELERY]),  # `tag` is `all` by another name
        ({"any": "django,performance"}, [REPORTS, CACHING]),
        ({"not": "celery"}, [NOTE, REDIS, CACHING]),
        ({"kind": "technology"}, [REDIS, CELERY]),
        ({"all": "celery", "not": "django", "kind": "technology"}, [CELERY]),
        ({"sort": "title"}, [NOTE, CACHING, CELERY, REDIS, REPORTS]),
        ({"all": "caching", "kind": "challenge"}, []),  # nothing matches: an empty page, not an error
    ],
)
def test_entries_filters_and_sort(client, params, expected):
    status, body = get(client, "/api/entries", **params)
    assert status == 200, body
    assert slugs(body) == expected
    assert body["total"] == len(expected)


def test_entries_filter_reports_resolved_tags(client):
    _, body = get(client, "/api/entries", all="Redis", any="celery,caching", kind="technology")
    assert body["filter"] == {"all": ["redis"], "any": ["caching", "celery"], "not": [], "kind": "technology"}


def test_entries_pagination_links(client):
    _, first = get(client, "/api/entries", per_page=2, sort="title")
    assert (first["total"], first["pages"], first["per_page"]) == (5, 3, 2)
    assert first["prev"] is None
    seen = slugs(first)
    next_url = first["next"]
    while next_url:
        parts = urlsplit(next_url)
        assert parts.scheme == "http" and parts.netloc == "localhost"
        status, page = get(client, parts.path, **{k: v[0] for k, v in parse_qs(parts.query).items()})
        assert status == 200
        assert page["prev"] is not None
        seen += slugs(page)
        next_url = page["next"]
    assert seen == [NOTE, CACHING, CELERY, REDIS, REPORTS]  # every entry once, in order


def test_entries_page_past_the_end_is_empty(client):
    status, body = get(client, "/api/entries", page=7)
    assert status == 200
    assert body["entries"] == [] and body["total"] == 5 and body["next"] is None
    assert parse_qs(urlsplit(body["prev"]).query) == {}  # back to the last real page (page 1)


def test_unknown_filter_tag_is_404_with_suggestions(client):
    status, body = get(client, "/api/entries", all="redls")
    assert status == 404
    assert body["error"]["code"] == 404
    assert "redls" in body["error"]["message"]
    assert "redis" in body["error"]["suggestions"]


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"page": "abc"}, "'page' must be a whole number"),
        ({"page": "0"}, "'page' must be between 1 and 10000"),
        ({"page": ""}, "'page' must be a whole number"),  # the API takes no empty values
        ({"page": "9" * 30}, "'page' must be between 1 and 10000"),
        ({"page": " 2"}, "whole number"),  # Python's int() would take it; the document does not
        ({"per_page": "51"}, "'per_page' must be between 1 and 50"),
        ({"per_page": "1.5"}, "whole number"),
        ({"sort": "oldest"}, "'sort' must be one of: newest, title"),
        ({"kind": "technologies"}, "'kind' must be one of: technology, concept, challenge, practice"),
        ({"kind": ""}, "'kind' must be one of"),
        ({"all": "!!!"}, "'all' must be a comma-separated list of at most 5 tag names"),
        ({"any": "a,,b"}, "'any' must be a comma-separated list"),  # an empty item
        ({"not": "a,b,c,d,e,f"}, "at most 5"),  # six tags
        ({"tag": "x" * 61}, "'tag' must be a comma-separated list"),  # longer than any tag
    ],
)
def test_bad_parameters_are_400_saying_why(client, params, fragment):
    status, body = get(client, "/api/entries", **params)
    assert status == 400, body
    assert body["error"]["code"] == 400
    assert fragment in body["error"]["message"]


def test_bad_parameters_are_checked_on_search_too(client):
    for params in ({"per_page": "0"}, {"sort": "best"}, {"exact": "yes"}, {"kind": "x"}, {"tag": "-"}):
        status, body = get(client, "/api/search", q="celery", **params)
        assert status == 400, (params, body)
    status, body = get(client, "/api/suggest", q="x", format="xml")
    assert status == 400
    assert "'format' must be one of: json, opensearch" in body["error"]["message"]


def test_html_pages_keep_their_lenient_parameters(client):
    # The strict checks belong to the API; pages still take every spelling of a kind.
    assert client.get("/entries?kind=technologies").status_code == 200
    assert client.get("/search?q=celery&sort=").status_code == 200


# --- /api/entries/<slug> ------------------------------------------------------------------------


def test_entry_detail(client):
    status, body = get(client, f"/api/entries/{CELERY}")
    assert status == 200
    assert set(body) == ENTRY_SUMMARY_KEYS | {
        "html",
        "toc",
        "word_count",
        "reading_minutes",
        "tag_names",
        "related",
        "backlinks",
    }
    assert body["title"] == "Celery"
    assert "<strong>background tasks</strong>" in body["html"]
    assert body["toc"] == [{"level": 2, "id": "workers", "title": "Workers"}]
    assert body["tag_names"] == {"celery": "celery", "python": "python", "redis": "redis"}
    assert body["word_count"] > 10 and body["reading_minutes"] == 1
    related = {item["slug"]: item for item in body["related"]}
    assert REDIS in related and REPORTS in related
    assert all(
        item["reason"] and item["api_url"].startswith("http://localhost/api/entries/") for item in related.values()
    )
    assert body["backlinks"] == []


def test_entry_backlinks(client):
    _, body = get(client, f"/api/entries/{REDIS}")
    assert {item["slug"] for item in body["backlinks"]} == {CELERY, CACHING}
    assert set(body["backlinks"][0]) == {"slug", "title", "kind", "url", "api_url"}


def test_entry_slug_may_be_percent_encoded(client):
    status, body = get(client, "/api/entries/technologies%2Fcelery")
    assert status == 200 and body["slug"] == CELERY


def test_unknown_entry_is_json_404(client):
    status, body = get(client, "/api/entries/no/such/entry")
    assert status == 404
    assert body == {"error": {"code": 404, "message": "There is no entry 'no/such/entry'."}}


# --- /api/tags ----------------------------------------------------------------------------------


def test_tags_with_counts_and_descriptions(make_app, content_dir):
    write_entry(content_dir, "_tags.yml", "redis:\n  name: Redis\n  description: In-memory store.\n  aliases: [rds]\n")
    app = make_app(content_dir)
    do_import(app, content_dir)
    client = app.test_client()
    status, body = get(client, "/api/tags")
    assert status == 200
    assert body["total"] == len(body["tags"]) == 7
    by_slug = {tag["slug"]: tag for tag in body["tags"]}
    assert by_slug["redis"] == {
        "slug": "redis",
        "name": "Redis",
        "description": "In-memory store.",
        "aliases": ["rds"],
        "count": 2,
        "url": "http://localhost/tags/redis",
        "api_url": "http://localhost/api/tags/redis",
        "feed_url": "http://localhost/tags/redis/feed.atom",
    }
    counts = [tag["count"] for tag in body["tags"]]
    assert counts == sorted(counts, reverse=True)
    _, by_name = get(client, "/api/tags", sort="name")
    names = [tag["name"] for tag in by_name["tags"]]
    assert names == sorted(names)
    # A tag is found by slug, name or alias, in any case.
    for spelling in ("redis", "Redis", "RDS"):
        status, body = get(client, f"/api/tags/{spelling}")
        assert status == 200 and body["tag"]["slug"] == "redis"


def test_tag_detail_with_entries_and_co_tags(client):
    status, body = get(client, "/api/tags/celery", per_page=1)
    assert status == 200
    assert body["tag"]["slug"] == "celery" and body["tag"]["count"] == 2
    assert (body["total"], body["pages"], body["per_page"], body["sort"]) == (2, 2, 1, "newest")
    assert slugs(body) == [REPORTS]
    assert body["next"] == "http://localhost/api/tags/celery?page=2&per_page=1"
    assert {(t["slug"], t["count"]) for t in body["co_tags"]} == {("django", 1), ("python", 1), ("redis", 1)}


def test_unknown_tag_is_404_with_suggestions(client):
    status, body = get(client, "/api/tags/celer")
    assert status == 404
    assert body["error"]["suggestions"][0] == "celery"


# --- /api/stats ---------------------------------------------------------------------------------


def test_stats(client):
    status, body = get(client, "/api/stats")
    assert status == 200
    assert body["entries"] == 5
    assert body["kinds"] == {"technology": 2, "concept": 1, "challenge": 1, "practice": 0}
    assert body["without_kind"] == 1
    assert body["per_tag"]["celery"] == 2 and body["per_tag"]["notes"] == 1
    assert body["tags"] == len(body["per_tag"]) == 7
    assert body["generation"] == 1
    assert body["last_import"]["added"] == 5
    assert body["last_import"]["finished_at"].endswith("Z")


def test_stats_before_any_import(app):
    status, body = get(app.test_client(), "/api/stats")
    assert status == 200
    assert (body["entries"], body["generation"], body["last_import"]) == (0, 0, None)


# --- errors, methods and CORS -------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/nothing", "/api/", "/api", "/api/entries/", "/api/tags/a/b"])
def test_unknown_api_routes_answer_json_404(client, path):
    response = client.get(path)
    assert response.status_code in (404, 308)  # `/api/entries/` may redirect to the slash-less route
    if response.status_code == 404:
        assert response.mimetype == "application/json"
        assert response.get_json()["error"]["code"] == 404


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_other_methods_are_json_405_with_allow(client, method):
    response = getattr(client, method)("/api/entries")
    assert response.status_code == 405
    assert response.mimetype == "application/json"
    assert response.get_json()["error"]["code"] == 405
    assert set(response.headers["Allow"].replace(" ", "").split(",")) == {"GET", "HEAD", "OPTIONS"}


@pytest.mark.parametrize(
    "path", ["/api/entries", f"/api/entries/{CELERY}", "/api/tags", "/api/stats", "/api/search?q=x", "/api/nope"]
)
def test_every_api_answer_allows_any_origin(client, path):
    response = client.get(path, headers={"Origin": "https://elsewhere.example"})
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert "ETag" in response.headers["Access-Control-Expose-Headers"]
    assert "Access-Control-Allow-Credentials" not in response.headers


def test_cors_preflight(client):
    response = client.options(
        "/api/entries",
        headers={
            "Origin": "https://elsewhere.example",
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "if-none-match",
        },
    )
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert "GET" in response.headers["Access-Control-Allow-Methods"]
    assert "if-none-match" in response.headers["Access-Control-Allow-Headers"].lower()
    assert int(response.headers["Access-Control-Max-Age"]) > 0


def test_pages_outside_the_api_get_no_cors_headers(client):
    assert "Access-Control-Allow-Origin" not in client.get("/").headers


def test_api_answers_revalidate_with_etags(client):
    first = client.get("/api/entries")
    etag = first.headers["ETag"]
    again = client.get("/api/entries", headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.headers["Access-Control-Allow-Origin"] == "*"


def test_pages_answer_405_with_allow_too(client):
    response = client.post("/tags")
    assert response.status_code == 405
    assert response.mimetype == "text/html"
    assert "GET" in response.headers["Allow"]
