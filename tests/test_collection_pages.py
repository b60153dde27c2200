"""A home page and header that fit the collection: kinds where entries use them, topics where they do not."""

from __future__ import annotations

import re

import pytest

from portal import queries

from .conftest import SHIPPED_CONTENT, do_import, write_entry


def nav(html: str) -> str:
    """The header's navigation."""
    start = html.index('<nav class="site-nav"')
    return html[start : html.index("</nav>", start)]


def nav_links(html: str) -> list[str]:
    return re.findall(r'href="([^"]+)"', nav(html))


@pytest.fixture
def til(make_app, tmp_path):
    """A TIL-style collection: topic folders, no front matter kinds, a loose note with its own tags."""
    root = tmp_path / "til"
    notes = {
        "sqlite/json-extract.md": ("JSON extract", "2024-01-05"),
        "sqlite/fts5.md": ("FTS5", "2024-03-01"),
        "sqlite/vacuum.md": ("Vacuum", "2023-06-01"),
        "docker/prune.md": ("Prune images", "2024-02-01"),
        "docker/compose-profiles.md": ("Compose profiles", "2022-01-01"),
        "git/bisect.md": ("Bisect", "2021-05-05"),
    }
    for path, (title, date) in notes.items():
        write_entry(root, path, f"---\ndate: {date}\n---\n# {title}\n\nBody.\n")
    write_entry(root, "loose.md", "---\ntags: [shell, docker]\ndate: 2020-01-01\n---\n# Loose\n\nBody.\n")
    app = make_app(root)
    assert do_import(app, root).errors == []
    return app


def test_home_without_kinds_shows_topics_with_counts_and_newest_notes(til):
    html = til.test_client().get("/").get_data(as_text=True)
    assert 'class="kind-counts"' not in html and "/kinds/" not in html  # no empty kinds anywhere
    topics = html[html.index('id="topics-heading"') : html.index('id="latest-heading"')]
    found = re.findall(r'class="topic-name" href="/tags/([^"]+)">[^<]+</a>\s*<span class="count">(\d+) entr', topics)
    # Top-level folders first (by their size), then the most used other tags; a topic counts its tag,
    # so docker counts the loose note tagged docker too.
    assert found == [("sqlite", "3"), ("docker", "3"), ("git", "1"), ("shell", "1")]
    assert 'Newest: <a href="/entries/sqlite/fts5">FTS5</a>' in topics
    assert 'Newest: <a href="/entries/docker/prune">Prune images</a>' in topics
    assert "7 entries in 4 topics." in html
    assert 'id="tags-heading"' not in html  # the topics replace the popular-tags box


def test_header_without_kinds_offers_topics(til):
    client = til.test_client()
    for path in ("/", "/entries/git/bisect", "/tags", "/no-such-page"):
        links = nav_links(client.get(path).get_data(as_text=True))
        assert links == ["/tags/sqlite", "/tags/docker", "/tags/git", "/tags/shell", "/tags"], path
    tag_page = client.get("/tags/docker").get_data(as_text=True)
    assert '<a href="/tags/docker" aria-current="page">' in nav(tag_page)
    assert '<a href="/tags">Tags</a>' in nav(tag_page)  # the topic is the current item, not Tags


def test_only_the_kinds_in_use_are_offered(make_app, tmp_path):
    root = tmp_path / "mixed"
    write_entry(root, "technologies/redis.md", "# Redis\n\nIn memory.\n")
    write_entry(root, "concepts/caching.md", "# Caching\n\nTTL.\n")
    write_entry(root, "notes/plain.md", "# Plain\n\nNo kind.\n")
    app = make_app(root)
    do_import(app, root)
    html = app.test_client().get("/").get_data(as_text=True)
    assert nav_links(html) == ["/kinds/technology", "/kinds/concept", "/tags"]
    counts = html[html.index('class="kind-counts"') : html.index("</ul>", html.index('class="kind-counts"'))]
    assert re.findall(r'href="/kinds/(\w+)"', counts) == ["technology", "concept"]
    assert "Challenges" not in counts and "Best practices" not in counts
    assert 'id="topics-heading"' not in html
    assert "3 entries: technologies and concepts." in html


def test_shipped_content_keeps_its_kinds(make_app):
    app = make_app(SHIPPED_CONTENT)
    do_import(app, SHIPPED_CONTENT)
    html = app.test_client().get("/").get_data(as_text=True)
    kinds = ["/kinds/technology", "/kinds/concept", "/kinds/challenge", "/kinds/practice"]
    assert nav_links(html) == [*kinds, "/tags"]
    assert re.findall(r'<li><a href="(/kinds/\w+)"><strong>\d+</strong>', html) == kinds
    assert 'id="topics-heading"' not in html and 'id="tags-heading"' in html


def test_the_outline_is_built_once_per_import(til, tmp_path):
    """The header is on every page: its kinds and topics come from a per-worker cache, not a query per request."""
    with til.test_request_context("/"):
        first = queries.collection_outline()
    with til.test_request_context("/tags"):
        assert queries.collection_outline() is first
    write_entry(tmp_path / "til", "rust/ownership.md", "# Ownership\n\nBorrowing.\n")
    do_import(til, tmp_path / "til")
    with til.test_request_context("/"):
        changed = queries.collection_outline()
    assert changed is not first and "rust" in [topic.slug for topic in changed.topics]


@pytest.mark.parametrize(
    ("front_matter", "meta"),
    [
        ("date: 2025-03-01\n", "Written 1 March 2025 · 1 min read"),
        ("date: 2025-03-01\nupdated: 2025-04-02\n", "Written 1 March 2025 · Updated 2 April 2025 · 1 min read"),
        ("updated: 2025-04-02\n", "Updated 2 April 2025 · 1 min read"),  # no date: no separator before Updated
        ("", "1 min read"),  # no date at all: no stray "·"
    ],
)
def test_entry_meta_has_no_stray_separator(make_app, tmp_path, front_matter, meta):
    root = tmp_path / "notes"
    write_entry(root, "note.md", (f"---\n{front_matter}---\n" if front_matter else "") + "# Note\n\nBody.\n")
    app = make_app(root)
    do_import(app, root)
    html = app.test_client().get("/entries/note").get_data(as_text=True)
    start = html.index('<p class="meta">')
    text = " ".join(re.sub(r"<[^>]+>", "", html[start : html.index("</p>", start)]).split())
    assert text == meta


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("til/sqlite.md", "https://github.com/me/notes/edit/main/til/sqlite.md"),
        (
            "my notes/C# tips.md",
            "https://github.com/me/notes/edit/main/my%20notes/C%23%20tips.md",
        ),  # quoted per segment
        ("a?b/x&y.md", "https://github.com/me/notes/edit/main/a%3Fb/x%26y.md"),  # no query string from a name
    ],
)
def test_edit_this_page_links_to_the_source(make_app, tmp_path, path, expected):
    root = tmp_path / "notes"
    write_entry(root, path, "# Note\n\nBody.\n")
    app = make_app(root, EDIT_URL="https://github.com/me/notes/edit/main/{path}")
    do_import(app, root)
    slug = app.test_client().get("/api/entries").get_json()["entries"][0]["slug"]
    html = app.test_client().get(f"/entries/{slug}").get_data(as_text=True)
    assert f'<a href="{expected.replace("&", "&amp;")}" rel="nofollow">Edit this page</a>' in html


def test_no_edit_link_without_the_setting(client):
    assert "Edit this page" not in client.get("/entries/technologies/celery").get_data(as_text=True)


@pytest.mark.parametrize("path", ["/", "/tags", "/search?q=json"])
def test_the_site_description_is_the_collections_own(make_app, tmp_path, path):
    root = tmp_path / "til"
    write_entry(root, "sqlite/json-extract.md", "# JSON extract\n\nBody about json.\n")
    app = make_app(root, SITE_DESCRIPTION="Josh's daily notes on Rails & Postgres.")
    assert do_import(app, root).errors == []
    response = app.test_client().get(path)
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    footer = html[html.index('<footer class="site-footer"') :]
    assert "Josh&#39;s daily notes on Rails &amp; Postgres." in footer
    assert "backend engineering" not in html
    if path == "/":
        assert '<meta name="description" content="Josh&#39;s daily notes on Rails &amp; Postgres.">' in html
