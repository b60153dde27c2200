"""Tag pages, combined filters with drill-down counts, kinds, related entries and backlinks."""

from __future__ import annotations

import re

import pytest

from .conftest import do_import, write_entry

# Sample corpus (tests/conftest.py), hand-counted:
#   technologies/celery    [celery, python, redis]   technology  2025-03-01
#   technologies/redis     [redis, caching]          technology  2025-03-05
#   concepts/caching       [caching, performance]    concept     2025-02-10
#   challenges/slow-reports [celery, django]         challenge   2025-04-01
#   notes/plain-note       [notes]                   (no kind)   first import


def slugs_listed(html: str) -> list[str]:
    """Entry slugs linked from the cards of a listing page, in order."""
    return re.findall(r'<h3 class="card-title"><a href="/entries/([^"]+)"', html)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("all=redis", ["technologies/redis", "technologies/celery"]),
        ("all=redis,celery", ["technologies/celery"]),
        ("all=celery&all=redis", ["technologies/celery"]),  # repeated parameters work too
        ("any=django,caching", ["challenges/slow-reports", "technologies/redis", "concepts/caching"]),
        ("not=celery", ["notes/plain-note", "technologies/redis", "concepts/caching"]),
        ("all=caching&not=performance", ["technologies/redis"]),
        ("kind=technology", ["technologies/redis", "technologies/celery"]),
        ("kind=technologies", ["technologies/redis", "technologies/celery"]),  # plural spelling
        ("all=celery&kind=challenge", ["challenges/slow-reports"]),
        ("all=redis&any=python,django&not=caching", ["technologies/celery"]),
        ("all=redis,django", []),  # a valid but empty combination
        ("all=Redis", ["technologies/redis", "technologies/celery"]),  # case-insensitive
        (
            "all=,,",
            [
                "notes/plain-note",
                "challenges/slow-reports",
                "technologies/redis",
                "technologies/celery",
                "concepts/caching",
            ],
        ),
        ("sort=title&all=redis", ["technologies/celery", "technologies/redis"]),
    ],
)
def test_combined_filters(client, query, expected):
    response = client.get(f"/entries?{query}")
    assert response.status_code == 200
    assert slugs_listed(response.get_data(as_text=True)) == expected


def test_drill_down_counts_cover_the_current_results(client):
    html = client.get("/entries?all=redis").get_data(as_text=True)
    facets = dict(re.findall(r'<li><a href="/entries\?all=[^"]+">([^<]+) <span class="count">(\d+)</span>', html))
    assert facets == {"caching": "1", "celery": "1", "python": "1"}
    # Adding a tag narrows: the link keeps the current tag and adds the new one, canonically ordered.
    assert 'href="/entries?all=caching,redis"' in html


def test_active_filters_are_removable_chips(client):
    html = client.get("/entries?all=redis&not=caching&kind=technology").get_data(as_text=True)
    assert 'href="/entries?not=caching&amp;kind=technology">has: redis' in html
    assert 'href="/entries?all=redis&amp;kind=technology">not: caching' in html
    assert 'href="/entries?all=redis&amp;not=caching">kind: Technology' in html


def test_tag_order_in_the_url_does_not_matter(client):
    first = client.get("/entries?all=redis,celery&any=python").get_data(as_text=True)
    second = client.get("/entries?any=python&all=celery,redis").get_data(as_text=True)
    canonical = '<link rel="canonical" href="http://localhost/entries?all=celery,redis&amp;any=python">'
    assert canonical in first and canonical in second


@pytest.mark.parametrize(
    ("query", "status", "message"),
    [
        ("all=nosuchtag", 404, "There is no tag <strong>nosuchtag</strong>"),
        ("any=redsi", 404, 'href="/tags/redis"'),  # the nearest tag is suggested
        ("kind=recipe", 400, "&#39;kind&#39; must be one of: technology, concept, challenge, practice"),
        ("all=%00", 400, "which is not a tag name"),
        ("all=" + ",".join(f"t{i}" for i in range(25)), 400, "at most 20 tags"),
        ("all=" + "x" * 3000, 400, "too long"),
        ("page=abc&all=redis", 400, "whole number"),
        ("sort=random", 400, "must be one of: newest, title"),
    ],
)
def test_bad_filters_get_clear_messages(client, query, status, message):
    response = client.get(f"/entries?{query}")
    assert response.status_code == status
    assert message in response.get_data(as_text=True)


def test_tag_index_counts_and_sorts(client):
    html = client.get("/tags").get_data(as_text=True)
    counts = re.findall(r'<span class="tag-name">([^<]+)</span> <span class="count">(\d+) entr', html)
    assert counts[:3] == [("caching", "2"), ("celery", "2"), ("redis", "2")]
    assert ("notes", "1") in counts and len(counts) == 7
    by_name = re.findall(r'<span class="tag-name">([^<]+)</span>', client.get("/tags?sort=name").get_data(as_text=True))
    assert by_name == sorted(by_name)


def test_tag_page_lists_entries_and_co_occurring_tags(client):
    html = client.get("/tags/celery").get_data(as_text=True)
    assert slugs_listed(html) == ["challenges/slow-reports", "technologies/celery"]
    co = dict(re.findall(r'href="/entries\?all=[^"]+">([^<]+) <span class="count">(\d+)</span>', html))
    assert co == {"django": "1", "python": "1", "redis": "1"}


def test_tag_description_and_alias_from_the_vocabulary(imported_app, content_dir):
    (content_dir / "_tags.yml").write_text(
        "redis:\n  name: Redis\n  description: In-memory data store.\n  aliases: [valkey]\n", encoding="utf-8"
    )
    do_import(imported_app, content_dir)
    client = imported_app.test_client()
    html = client.get("/tags/redis").get_data(as_text=True)
    assert "<h1>Redis</h1>" in html and "In-memory data store." in html
    assert client.get("/tags/valkey").headers["Location"].endswith("/tags/redis")
    assert "In-memory data store." in client.get("/tags").get_data(as_text=True)


def test_unknown_tag_page_suggests_the_nearest(client):
    response = client.get("/tags/celeryy")
    assert response.status_code == 404
    html = response.get_data(as_text=True)
    assert "There is no tag <strong>celeryy</strong>" in html
    assert 'href="/tags/celery"' in html


def test_tag_urls_are_case_insensitive(client):
    response = client.get("/tags/Celery")
    assert response.status_code == 301 and response.headers["Location"].endswith("/tags/celery")


def test_filters_apply_to_search(client):
    body = client.get("/api/search?q=celery&all=python").get_json()
    assert [r["slug"] for r in body["results"]] == ["technologies/celery"]
    body = client.get("/api/search?q=celery&not=python&sort=title").get_json()
    assert [r["slug"] for r in body["results"]] == ["technologies/redis", "challenges/slow-reports"]
    body = client.get("/api/search?q=cache&any=performance,django").get_json()
    assert [r["slug"] for r in body["results"]] == ["concepts/caching"]
    html = client.get("/search?q=celery&all=redis").get_data(as_text=True)
    assert "tag: redis" in html and "Celery" in html


def test_entry_page_links_tags_kind_and_breadcrumbs(client):
    html = client.get("/entries/technologies/celery").get_data(as_text=True)
    assert '<a class="tag" href="/tags/redis">redis</a>' in html
    assert '<a href="/kinds/technology">Technologies</a>' in html  # breadcrumb
    assert '<a class="kind kind-technology" href="/kinds/technology">' in html


def test_previous_and_next_within_a_kind(client):
    html = client.get("/entries/technologies/celery").get_data(as_text=True)
    assert re.search(r'<a rel="next"[^>]*href="/entries/technologies/redis"', html)
    assert 'rel="prev"' not in html
    html = client.get("/entries/technologies/redis").get_data(as_text=True)
    assert re.search(r'<a rel="prev" href="/entries/technologies/celery"', html)


def test_backlinks_list_entries_linking_here(client):
    html = client.get("/entries/technologies/redis").get_data(as_text=True)
    section = html[html.index('id="backlinks-heading"') :]
    assert '<a href="/entries/concepts/caching">Caching strategies</a>' in section
    assert '<a href="/entries/technologies/celery">Celery</a>' in section


def test_related_entries_give_a_reason(imported_app, content_dir):
    write_entry(
        content_dir, "technologies/flower.md", "---\ntags: [celery, python]\n---\n# Flower\n\nMonitors Celery.\n"
    )
    do_import(imported_app, content_dir)
    html = imported_app.test_client().get("/entries/technologies/celery").get_data(as_text=True)
    related = html[html.index('id="related-heading"') : html.index("</ul>", html.index('id="related-heading"'))]
    items = re.findall(r'href="/entries/([^"]+)">[^<]+</a> <span class="reason">([^<]+)</span>', related)
    assert items[0] == ("technologies/flower", "shares tags: celery, python")
    assert len(items) <= 5 and "technologies/celery" not in dict(items)
    assert set(dict(items)) >= {"technologies/redis", "challenges/slow-reports"}


@pytest.mark.parametrize("markdown", ["# Only a title\n", "---\ntags: [celery]\n---\n# Only a title\n"])
def test_an_entry_with_no_body_still_has_a_page(imported_app, content_dir, markdown):
    write_entry(content_dir, "concepts/stub.md", markdown)
    do_import(imported_app, content_dir)
    client = imported_app.test_client()
    page = client.get("/entries/concepts/stub")
    assert page.status_code == 200 and "Only a title" in page.get_data(as_text=True)
    assert client.get("/api/entries/concepts/stub").get_json()["title"] == "Only a title"


@pytest.mark.parametrize(
    "markdown",
    [
        "---\nkind: challenge\nchallenge: Zeppelin reports timed out.\nsolution: A Celery task.\n---\nMore notes.\n",
        "---\nkind: challenge\n---\n## Challenge\n\nZeppelin reports timed out.\n\n## Solution\n\nA Celery task.\n",
        "---\nkind: challenge\n---\n**Challenge**: Zeppelin reports timed out.\n\n**Solution**: A Celery task.\n",
    ],
    ids=["front-matter", "sections", "bold-pairs"],
)
def test_challenge_and_solution_in_all_three_forms(imported_app, content_dir, markdown):
    write_entry(content_dir, "challenges/form.md", markdown)
    do_import(imported_app, content_dir)
    client = imported_app.test_client()
    html = client.get("/entries/challenges/form").get_data(as_text=True)
    challenge = re.search(r'class="part part-challenge".*?Zeppelin reports timed out\.', html, re.DOTALL)
    solution = re.search(r'class="part part-solution".*?A Celery task\.', html, re.DOTALL)
    assert challenge and solution and challenge.start() < solution.start()
    found = client.get("/api/search?q=kind:challenge+zeppelin").get_json()
    assert [r["slug"] for r in found["results"]] == ["challenges/form"]


def test_tag_typo_warning_names_the_nearest_tag(imported_app, content_dir):
    write_entry(content_dir, "typo.md", "---\ntitle: T\ntags:\n  - redsi\n---\nx\n")
    report = do_import(imported_app, content_dir)
    assert report.warnings == ["typo.md:3: tag 'redsi' is used only here; did you mean 'redis'?"]


def test_home_shows_intro_kinds_popular_tags_and_recent_updates(imported_app, content_dir):
    (content_dir / "_intro.md").write_text("Welcome to **my notes**; start at [[redis]].\n", encoding="utf-8")
    write_entry(
        content_dir, "technologies/redis.md", "---\ntitle: Redis\nupdated: 2025-09-01\ntags: [redis]\n---\nNew.\n"
    )
    report = do_import(imported_app, content_dir)
    assert report.changed and report.warnings == []
    html = imported_app.test_client().get("/").get_data(as_text=True)
    assert "Welcome to <strong>my notes</strong>" in html
    assert 'href="entries/technologies/redis"' in html  # intro links work from the home page
    recent = html[html.index('id="updated-heading"') :]
    assert recent.index("Redis") < recent.index("</ul>")
    assert '<a class="tag" href="/tags/redis">' in html


def test_plain_notes_without_front_matter_browse_fine(make_app, tmp_path):
    root = tmp_path / "til"
    write_entry(root, "sqlite/json-extract.md", "# JSON extract in SQLite\n\nUse `json_extract()`.\n")
    write_entry(root, "sqlite/fts5.md", "# FTS5\n\nFull-text search. See [[json-extract]].\n")
    write_entry(root, "docker/CLEANUP.md", "Prune images with `docker image prune`.\n")
    app = make_app(root)
    report = do_import(app, root)
    assert report.errors == [] and report.warnings == []
    client = app.test_client()
    assert slugs_listed(client.get("/tags/sqlite").get_data(as_text=True)) == ["sqlite/fts5", "sqlite/json-extract"]
    page = client.get("/entries/docker/cleanup").get_data(as_text=True)
    assert "<h1>Cleanup</h1>" in page
    backlinks = client.get("/entries/sqlite/json-extract").get_data(as_text=True)
    assert '<a href="/entries/sqlite/fts5">FTS5</a>' in backlinks
