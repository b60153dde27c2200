"""Functional tests through the test client: `/search` (HTML), `/api/search` and `/api/suggest` (JSON)."""

from __future__ import annotations

import html
import re
from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .conftest import BACKENDS, do_import
from .test_search import CELERY, REDIS, REPORTS, ZEPHYR_WORDS, corpus_app

# The top-level keys and result keys the issue lists for /api/search ...
API_KEYS = {"query", "total", "page", "pages", "results", "facets", "corrected", "suggestion"}
RESULT_KEYS = {"slug", "title", "url", "kind", "tags", "snippet", "score"}
# ... and those the implementation adds on top: the page size, the "query was cut" notice, what the
# engine did to the query (relaxed matching, function words); each result as the entries API lists
# it, with the words it lacks.
API_EXTRA_KEYS = {"per_page", "notice", "relaxed", "full_matches", "ignored_words"}
RESULT_EXTRA_KEYS = {"date", "updated", "summary", "api_url", "missing_words"}

# A title holding markup-like text, to check that result cards escape it.
ANGLE_ENTRY = """\
    ---
    title: Angle <i>brackets</i> & ampersands
    kind: practice
    tags: [security]
    date: 2025-02-09
    ---
    Titles can hold characters that look like markup.
    """


@pytest.fixture(scope="module", params=BACKENDS)
def search_app(request, tmp_path_factory):
    """One imported app over the search corpus of the unit tests, shared by the read-only tests."""
    extra = {"practices/angle-brackets.md": ANGLE_ENTRY}
    with corpus_app(tmp_path_factory.mktemp("views"), request.param, extra) as app:
        yield app


@pytest.fixture
def search_client(search_app):
    """A test client over the shared search app."""
    return search_app.test_client()


def api(client, **params):
    """GET /api/search and return (status, JSON body)."""
    response = client.get("/api/search", query_string=params)
    assert response.mimetype == "application/json"
    return response.status_code, response.get_json()


def page(client, **params):
    """GET /search and return (status, HTML text)."""
    response = client.get("/search", query_string=params)
    assert response.mimetype == "text/html"
    return response.status_code, response.get_data(as_text=True)


def found(client, **params) -> list[str]:
    """Slugs of every result of an API search (up to 50)."""
    status, body = api(client, per_page=50, **params)
    assert status == 200, body
    return [result["slug"] for result in body["results"]]


# --- the JSON answer ---------------------------------------------------------------------


def test_api_shape(search_client):
    status, body = api(search_client, q="celery")
    assert status == 200
    assert set(body) == API_KEYS | API_EXTRA_KEYS
    assert body["query"] == "celery"
    assert (body["total"], body["page"], body["pages"], body["per_page"]) == (3, 1, 1, 10)
    assert body["corrected"] is None and body["suggestion"] is None and body["notice"] is None
    assert (body["relaxed"], body["full_matches"], body["ignored_words"]) == (False, 3, [])
    assert set(body["facets"]) == {"tags"}
    assert all(isinstance(k, str) and isinstance(v, int) for k, v in body["facets"]["tags"].items())
    first = body["results"][0]
    assert set(first) == RESULT_KEYS | RESULT_EXTRA_KEYS
    assert first["slug"] == CELERY
    assert first["title"] == "Celery"
    assert first["url"] == "http://localhost/entries/technologies/celery"
    assert first["kind"] == "technology"
    assert first["tags"] == ["celery", "python", "redis"]
    assert first["date"] == "2025-03-01"
    assert "<mark>Celery</mark>" in first["snippet"]
    assert isinstance(first["score"], float) and first["score"] > 0
    assert first["missing_words"] == []


def test_api_result_urls_open_the_entry(search_client):
    _, body = api(search_client, q="celery")
    assert len(body["results"]) == 3
    for result in body["results"]:
        assert search_client.get(urlsplit(result["url"]).path).status_code == 200


def test_api_and_html_agree(search_client):
    _, body = api(search_client, q="celery")
    _, text = page(search_client, q="celery")
    positions = [text.index(f">{html.escape(result['title'])}</a>") for result in body["results"]]
    assert len(positions) == 3 and positions == sorted(positions)  # same results, same order
    assert "3 results for" in text


# --- the HTML page -------------------------------------------------------------------------


def test_html_results_with_highlights_and_facets(search_client):
    status, text = page(search_client, q="celery")
    assert status == 200
    assert "<mark>Celery</mark>" in text
    for title in ("Celery", "Redis", "Slow report generation"):
        assert f">{title}</a>" in text
    assert "Narrow by tag" in text
    assert 'name="q" value="celery"' in text


def test_facet_links_narrow_the_search(search_client):
    _, text = page(search_client, q="celery")
    facets = re.search(r'<ul class="facets">(.*?)</ul>', text, re.S).group(1)
    links = dict((name, html.unescape(href)) for href, name in re.findall(r'<a href="([^"]+)">(\S+) <span', facets))
    assert set(links) == {"celery", "redis", "python", "django", "caching"}  # every tag of the three matches
    drill = urlsplit(links["python"])
    assert drill.path == "/search" and parse_qs(drill.query)["q"] == ["celery"]
    status, narrowed = page(search_client, **parse_qs(drill.query))
    assert status == 200 and "1 result for" in narrowed and ">Celery</a>" in narrowed


def test_empty_query_shows_popular_tags(search_client):
    status, text = page(search_client)
    assert status == 200
    assert "Popular tags" in text
    assert re.search(r">\s*zephyr\s*<span class=\"count\">12</span>", text)  # the most used tag, counted
    assert "results for" not in text


@pytest.mark.parametrize("q", ["", "   ", "\t"])
def test_empty_query_api(search_client, q):
    status, body = api(search_client, q=q)
    assert status == 200
    assert (body["total"], body["results"], body["facets"]) == (0, [], {"tags": {}})


# --- filters, facets, pagination, sorting through the URL -----------------------------------


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"tag": "redis"}, {CELERY, REDIS}),  # one tag
        ({"tag": ["redis", "python"]}, {CELERY}),  # repeated: all tags must match
        ({"tag": "redis,python"}, {CELERY}),  # comma-separated is the same
        ({"tag": "Redis"}, {CELERY, REDIS}),  # tags are slugs: case is folded
        ({"tag": ["redis", "django"]}, set()),  # no entry has both
        ({"kind": "challenge"}, {REPORTS}),
        ({"kind": "technology", "tag": "python"}, {CELERY}),
    ],
)
def test_filter_params(search_client, params, expected):
    assert set(found(search_client, q="celery", **params)) == expected


def test_unknown_tag_is_a_404_not_a_500(search_client):
    status, body = api(search_client, q="celery", tag="no-such-tag")
    assert status == 404 and "no-such-tag" in body["error"]["message"]
    assert page(search_client, q="celery", tag="no-such-tag")[0] == 404


def test_facets_cover_all_matches_not_the_page(search_client):
    _, body = api(search_client, q="celery", per_page=1, page=2)
    assert len(body["results"]) == 1 and body["total"] == 3 and body["pages"] == 3
    assert body["facets"]["tags"] == {"celery": 2, "redis": 2, "python": 1, "django": 1, "caching": 1}


@pytest.mark.parametrize(
    ("params", "count", "pages"),
    [
        ({}, 10, 2),  # the default page size is 10
        ({"page": 2}, 2, 2),
        ({"per_page": 5, "page": 3}, 2, 3),
        ({"per_page": 50}, 12, 1),  # the largest page size allowed
        ({"per_page": 5, "page": 9}, 0, 3),  # past the end: an empty page, not an error
    ],
)
def test_pagination(search_client, params, count, pages):
    status, body = api(search_client, q="zephyr", **params)
    assert status == 200
    assert (len(body["results"]), body["total"], body["pages"]) == (count, 12, pages)
    assert body["facets"]["tags"] == {"zephyr": 12, "even": 6, "odd": 6}


def test_html_pagination_links(search_client):
    _, text = page(search_client, q="zephyr", per_page=5, page=2)
    assert "Page 2 of 3" in text
    assert 'rel="prev"' in text and 'rel="next"' in text
    assert "per_page=5" in text


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        ("newest", [f"series/zephyr-{n:02}" for n in range(12, 0, -1)]),
        ("title", [f"series/zephyr-{n:02}" for n in sorted(range(1, 13), key=lambda n: ZEPHYR_WORDS[n - 1])]),
    ],
)
def test_sort(search_client, sort, expected):
    assert found(search_client, q="zephyr", sort=sort) == expected
    status, text = page(search_client, q="zephyr", sort=sort, per_page=50)  # regression: title sort was a 500
    assert status == 200
    assert f'<option value="{sort}" selected>' in text


def test_sort_relevance_is_by_score(search_client):
    _, body = api(search_client, q="redis", sort="relevance")
    scores = [result["score"] for result in body["results"]]
    assert scores == sorted(scores, reverse=True)
    assert body["results"][0]["slug"] == REDIS  # title match first


# --- highlighting and escaping -------------------------------------------------------------------


def test_snippet_escapes_entry_text_in_json(search_client):
    _, body = api(search_client, q="untrusted")
    snippet = body["results"][0]["snippet"]
    assert "<mark>Untrusted</mark>" in snippet
    assert "&lt;b&gt;" in snippet and "<b>" not in snippet
    assert "&amp;" in snippet


def test_snippet_escapes_entry_text_in_html(search_client):
    _, text = page(search_client, q="visitors")
    assert "<mark>visitors</mark>" in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "<script>alert(1)" not in text


def test_titles_are_escaped(search_client):
    _, text = page(search_client, q="ampersands")
    assert "Angle &lt;i&gt;brackets&lt;/i&gt; &amp; ampersands" in text
    assert "<i>brackets" not in text


# --- typo correction ---------------------------------------------------------------------------------


def test_corrected_results(search_client):
    _, body = api(search_client, q="celary")
    assert (body["query"], body["corrected"], body["total"]) == ("celary", "celery", 3)
    _, text = page(search_client, q="celary")
    assert "Showing results for" in text and "<strong>celery</strong>" in text
    assert "search instead for" in text and "exact=1" in text


def test_exact_turns_correction_off(search_client):
    _, body = api(search_client, q="celary", exact="1")
    assert (body["corrected"], body["total"]) == (None, 0)
    _, text = page(search_client, q="celary", exact="1")
    assert "Nothing matched" in text and "Showing results for" not in text


def test_did_you_mean(search_client):
    _, body = api(search_client, q="plain OR celary")
    assert (body["corrected"], body["suggestion"], body["total"]) == (None, "plain OR celery", 1)
    _, text = page(search_client, q="plain OR celary")
    assert "Did you mean" in text and "<strong>plain OR celery</strong>" in text


# --- vocabulary -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("postgres", "technologies/postgresql"),
        ("psql", "technologies/postgresql"),
        ("k8s", "technologies/pods"),
        ("kubernetes", "technologies/pods"),
        ("drf", "technologies/serializers"),
        ('"django rest framework"', "challenges/nested-viewsets"),
        ("js", "technologies/promises"),
        ("mq", CELERY),
        ("select_related", "challenges/slow-list-pages"),
        ("N+1", "challenges/slow-list-pages"),  # sent encoded: a raw + in a URL is a space
        ("async/await", "challenges/slow-list-pages"),
        ("CI/CD", "challenges/slow-list-pages"),
        ("docker-compose", "challenges/slow-list-pages"),
    ],
)
def test_vocabulary_through_the_api(search_client, q, expected):
    assert expected in found(search_client, q=q)


# --- bad parameters ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"page": "abc"}, "page"),  # not a number
        ({"page": "0"}, "page"),  # pages start at 1
        ({"page": "-1"}, "page"),
        ({"page": "1.5"}, "page"),
        ({"page": "99999999999999999999"}, "page"),  # huge
        ({"per_page": "10000"}, "per_page"),  # over the cap of 50
        ({"per_page": "51"}, "per_page"),
        ({"per_page": "0"}, "per_page"),
        ({"per_page": "ten"}, "per_page"),
        ({"sort": "bogus"}, "sort"),
        ({"sort": "<script>"}, "sort"),
        ({"kind": "bogus"}, "kind"),
    ],
)
def test_bad_params(search_client, params, name):
    status, body = api(search_client, q="celery", **params)
    assert status == 400
    assert body["error"]["code"] == 400 and f"'{name}'" in body["error"]["message"]
    status, text = page(search_client, q="celery", **params)
    assert status == 400
    assert "400 Bad Request" in text and f"'{name}'" in html.unescape(text)
    assert "<script>" not in text.split("<main", 1)[-1]


@pytest.mark.parametrize(
    "params",
    [
        {"per_page": "50"},  # the cap itself is fine
        # a far page: test_page_numbers.py (an empty page in the API, a 404 on the HTML page)
        {"tag": ""},  # no tag at all
    ],
)
def test_edge_params_are_accepted(search_client, params):
    assert api(search_client, q="celery", **params)[0] == 200
    assert page(search_client, q="celery", **params)[0] == 200


@pytest.mark.parametrize("name", ["page", "per_page", "sort", "kind"])
def test_empty_params(search_client, name):
    # A form may send `name=`: the page falls back to the default; the API may insist on a value.
    assert page(search_client, q="celery", **{name: ""})[0] == 200
    status, body = api(search_client, q="celery", **{name: ""})
    assert status == 200 or (status == 400 and f"'{name}'" in body["error"]["message"])


# --- bad input in q --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "q",
    [
        '"unclosed quote',  # quotes left open
        "'single",
        "AND",  # lone operators
        "OR",
        "NOT",
        "*",
        "-",
        "+",
        "celery AND",
        "NOT NOT NOT",
        "A/~/4",  # tilde and slashes
        "title:",  # a field with nothing after it
        "nosuchfield:x",
        "(",
        ")",
        "[a TO",  # an open range
        "{a TO b]",
        "celery^",
        '"0,0"',  # a quoted comma: a phrase of two tags, which keep no positions (was a 500)
        'spell:"celery redis"',  # a phrase on the unpositioned spelling field (was a 500)
        'date:"x y"',  # not a date (was a 500)
        "x" * 4000,  # thousands of characters (cut to 500)
        " ".join(["ab"] * 1300),  # over a thousand words (cut to 32)
        "\x00\x01\x07\x1b[31m\x7f",  # control characters
        "\u202eevil\u202c",  # a right-to-left override
        "مرحبا بالعالم",  # right-to-left text
        "שלום",
        "🙂🚀 celery",  # emoji
        "<script>alert(1)</script>",  # markup must come back escaped
        "%00%27",
        "\\",
    ],
)
def test_bad_input_gives_a_page(search_client, q):
    status, body = api(search_client, q=q)
    assert status == 200, body
    status, text = page(search_client, q=q)
    assert status == 200
    if "<" in q:
        assert q not in text
        assert html.escape(q, quote=False) in text


def test_long_queries_say_they_were_cut(search_client):
    _, body = api(search_client, q=" ".join(["ab"] * 1300))
    assert "first 32 words" in body["notice"]
    _, text = page(search_client, q="x" * 4000)
    assert "cut to 500 characters" in text


@pytest.mark.parametrize(
    "q",
    [
        "x" * 5000,  # 5,000 characters
        " ".join(["word"] * 2000),  # 2,000 words
    ],
)
def test_oversized_queries_get_a_clear_answer(search_client, q):
    # Query strings over 4096 bytes are refused with 414 before any work (portal/security.py), as
    # gunicorn refuses request lines over 4094 bytes; shorter ones are cut and answered (above).
    response = search_client.get("/api/search", query_string={"q": q})
    assert response.status_code in (200, 414)
    if response.status_code == 414:
        assert "longer than" in response.get_json()["error"]["message"]
    response = search_client.get("/search", query_string={"q": q})
    assert response.status_code in (200, 414)
    assert response.mimetype == "text/html"


# --- /api/suggest -------------------------------------------------------------------------------------------------


def test_suggest(search_client):
    body = search_client.get("/api/suggest", query_string={"q": "zephyr ma"}).get_json()
    assert [s["title"] for s in body["suggestions"]] == ["Zephyr mango"]
    assert body["suggestions"][0]["url"] == "/entries/series/zephyr-01"


@pytest.mark.parametrize(
    ("q", "status"),
    [
        ("", 200),  # nothing typed yet
        ("<script>", 200),
        ('"(', 200),
        ("x" * 500, 200),
        ("x" * 501, 400),  # longer than any query could be
    ],
)
def test_suggest_edge_cases(search_client, q, status):
    response = search_client.get("/api/suggest", query_string={"q": q})
    assert response.status_code == status
    assert response.mimetype == "application/json"


# --- refresh through the web ------------------------------------------------------------------------------------


def test_update_and_delete_through_the_api(imported_app, client, content_dir):
    pool = imported_app.extensions["nexus.searchers"]
    assert found(client, q="celery").count(CELERY) == 1
    opened = pool.opened
    for _ in range(5):
        found(client, q="redis")
        page(client, q="caching")
    assert pool.opened == opened  # requests alone never reopen the searcher
    path = content_dir / "technologies/celery.md"
    path.write_text(path.read_text().replace("background tasks", "background jobs"))
    do_import(imported_app, content_dir)
    assert found(client, q="celery").count(CELERY) == 1
    assert found(client, q="jobs") == [CELERY]
    assert pool.opened == opened + 1
    (content_dir / "technologies/redis.md").unlink()
    do_import(imported_app, content_dir)
    assert REDIS not in found(client, q="redis")
    assert pool.opened == opened + 2


# --- property-based: any query string gives a page ----------------------------------------------------------------

# Operators, field names and markup, mixed with arbitrary text (st.text includes control characters).
FRAGMENTS = [
    '"', "'", "(", ")", "[", "]", "{", "}", "*", "?", "~", "~2", "^", "^3", "-", "+", ":", "\\", "/", "%", "&",
    "AND", "OR", "NOT", "TO", "title:", "tag:", "kind:", "intitle:", "date:", "slug:",
    "celery", "redis", "zephyr", "celary", "N+1", "select_related", "k8s",
    "<qx>", "<qx onerror=1>", "</qx>", "&amp;", "\x00", "\x1b", "\u202e", "\u200f", "שלום", "🙂",
]  # fmt: skip
queries_strategy = st.one_of(
    st.text(max_size=120),
    st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=12)), max_size=14).map(" ".join),
    st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=6)), max_size=14).map("".join),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(q=queries_strategy)
def test_any_query_gives_a_page(search_client, q):
    response = search_client.get("/api/search", query_string={"q": q})
    assert response.status_code in (200, 400), (q, response.status_code)
    body = response.get_json()
    assert ("results" in body) if response.status_code == 200 else ("error" in body)
    response = search_client.get("/search", query_string={"q": q})
    assert response.status_code == 200, (q, response.status_code)
    if "<" in q:
        text = response.get_data(as_text=True)
        # The templates never write `<qx`; finding it means the query leaked unescaped.
        assert "<qx" not in text
        # Short queries such as `</a>` are also ordinary markup: only those may appear as typed.
        assert q not in text or q in reference_page(search_client)


def reference_page(client) -> str:
    """A results page for an ordinary query: the markup any page may contain."""
    return client.get("/search", query_string={"q": "zephyr", "per_page": 50}).get_data(as_text=True)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    params=st.fixed_dictionaries(
        {"q": st.sampled_from(["celery", "zephyr", ""])},
        optional={name: st.text(max_size=8) for name in ("page", "per_page", "sort", "kind", "tag")},
    )
)
def test_any_params_give_a_page_or_a_400(search_client, params):
    api_response = search_client.get("/api/search", query_string=params)
    html_response = search_client.get("/search", query_string=params)
    assert api_response.status_code in (200, 400, 404), params  # 404: a tag nobody uses
    assert html_response.status_code in (200, 400, 404), params
    if api_response.status_code == 200:  # the page is at least as forgiving as the API…
        body = api_response.get_json()
        past_the_last_page = body["page"] > body["pages"]  # …but 404s past its last page, as every listing
        assert html_response.status_code == (404 if past_the_last_page else 200), params
    else:
        assert api_response.get_json()["error"]["message"]
