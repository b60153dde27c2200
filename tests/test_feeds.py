"""Atom feeds, the sitemap, robots.txt, OpenSearch and the discovery links and social cards in pages."""

from __future__ import annotations

import html
import json
import re
import xml.etree.ElementTree as ET

import feedparser
import pytest

from .conftest import CACHING, CELERY, NOTE, REDIS, REPORTS, do_import, write_entry

ATOM = "{http://www.w3.org/2005/Atom}"
SITEMAP = "{http://www.sitemaps.org/schemas/sitemap/0.9}"
OPENSEARCH = "{http://a9.com/-/spec/opensearch/1.1/}"


def feed(client, url):
    """Fetch and parse a feed; it must be well-formed Atom served as Atom."""
    response = client.get(url)
    assert response.status_code == 200, (url, response.status_code)
    assert response.mimetype == "application/atom+xml"
    parsed = feedparser.parse(response.data, response_headers={"content-type": response.content_type})
    assert not parsed.bozo, parsed.get("bozo_exception")
    assert parsed.version == "atom10"
    ET.fromstring(response.data)  # strict XML too
    return parsed


def entry_urls(parsed) -> list[str]:
    return [item.link for item in parsed.entries]


def url(slug: str) -> str:
    return f"http://localhost/entries/{slug}"


# --- Atom ---------------------------------------------------------------------------------------


def test_site_feed(client):
    parsed = feed(client, "/feed.atom")
    assert parsed.feed.title == "Nexus"
    assert parsed.feed.id == "http://localhost/feed.atom"
    links = {link.rel: link.href for link in parsed.feed.links}
    assert links == {"self": "http://localhost/feed.atom", "alternate": "http://localhost/"}
    assert parsed.feed.author == "Nexus"
    assert entry_urls(parsed) == [url(s) for s in (NOTE, REPORTS, REDIS, CELERY, CACHING)]  # newest first
    # The feed's updated time is its newest entry's.
    assert parsed.feed.updated == parsed.entries[0].updated


def test_feed_entries_carry_summary_content_dates_and_tags(client):
    parsed = feed(client, "/feed.atom")
    celery = next(item for item in parsed.entries if item.link == url(CELERY))
    assert celery.id == url(CELERY)  # stable: the entry's own URL
    assert celery.title == "Celery"
    assert celery.summary == "Background tasks for Python with a message broker."
    assert celery.published == celery.updated == "2025-03-01T00:00:00Z"
    assert [tag.term for tag in celery.tags] == ["celery", "python", "redis"]
    (content,) = celery.content
    assert content.type == "text/html"
    assert "<strong>background tasks</strong>" in content.value
    # Relative links in the stored HTML resolve against the entry's own URL.
    assert f'href="{url(REDIS)}"' in content.value


def test_feed_updated_date_follows_front_matter(make_app, content_dir):
    write_entry(
        content_dir,
        "technologies/redis.md",
        "---\ntitle: Redis\ndate: 2025-03-05\nupdated: 2025-06-30\ntags: [redis]\n---\nIn memory.\n",
    )
    app = make_app(content_dir)
    do_import(app, content_dir)
    parsed = feed(app.test_client(), "/feed.atom")
    redis = next(item for item in parsed.entries if item.link == url(REDIS))
    assert (redis.published, redis.updated) == ("2025-03-05T00:00:00Z", "2025-06-30T00:00:00Z")


def test_tag_feed(client):
    parsed = feed(client, "/tags/redis/feed.atom")
    assert parsed.feed.title == "redis · Nexus"
    assert parsed.feed.id == "http://localhost/tags/redis/feed.atom"
    assert {link.rel: link.href for link in parsed.feed.links}["alternate"] == "http://localhost/tags/redis"
    assert entry_urls(parsed) == [url(REDIS), url(CELERY)]


def test_tag_feed_redirects_other_spellings_and_404s_unknown_tags(client):
    response = client.get("/tags/Redis/feed.atom")
    assert response.status_code == 301
    assert response.headers["Location"] == "/tags/redis/feed.atom"
    assert client.get("/tags/zeppelin/feed.atom").status_code == 404


@pytest.mark.parametrize(
    ("query", "expected", "title"),
    [
        ("", [NOTE, REPORTS, REDIS, CELERY, CACHING], "All entries · Nexus"),
        ("?all=redis,celery", [CELERY], "celery + redis · Nexus"),
        ("?any=django,performance", [REPORTS, CACHING], "any of django, performance · Nexus"),
        ("?all=celery&not=django", [CELERY], "celery, not django · Nexus"),
        ("?kind=technology", [REDIS, CELERY], "All entries (Technologies) · Nexus"),
        ("?tag=caching&kind=concept", [CACHING], "caching (Concepts) · Nexus"),
        ("?all=caching&kind=challenge", [], "caching (Challenges and solutions) · Nexus"),
    ],
)
def test_filter_feeds(client, query, expected, title):
    parsed = feed(client, "/entries/feed.atom" + query)
    assert entry_urls(parsed) == [url(s) for s in expected]
    assert parsed.feed.title == title
    assert parsed.feed.updated  # even an empty feed says when it was updated


def test_filter_feed_links_use_canonical_parameters(client):
    parsed = feed(client, "/entries/feed.atom?all=Redis,celery&kind=technology")
    assert parsed.feed.id == "http://localhost/entries/feed.atom?all=celery,redis&kind=technology"
    alternate = {link.rel: link.href for link in parsed.feed.links}["alternate"]
    assert alternate == "http://localhost/entries?all=celery,redis&kind=technology"


def test_filter_feed_with_unknown_tag_is_404(client):
    assert client.get("/entries/feed.atom?all=zeppelin").status_code == 404


def test_feeds_escape_markup_and_drop_characters_xml_forbids(make_app, content_dir):
    write_entry(
        content_dir,
        "practices/odd.md",
        "---\ntitle: Angle <b>brackets</b> & feeds\nsummary: 'Less < more & \"quotes\"'\n"
        "kind: practice\ntags: [xml]\ndate: 2026-01-01\n---\nBody with ]]> and a form\x0cfeed and a\x0bvertical tab.\n",
    )
    write_entry(content_dir, "practices/heading.md", "# Vertical\x0btab\x01title\n\nA note.\n")
    app = make_app(content_dir)
    report = do_import(app, content_dir)
    assert not report.errors, report.errors
    response = app.test_client().get("/feed.atom")
    assert not re.search(b"[\x00-\x08\x0b\x0c\x0e-\x1f]", response.data)
    parsed = feed(app.test_client(), "/feed.atom")
    odd = next(item for item in parsed.entries if item.link == url("practices/odd"))
    assert odd.title == "Angle <b>brackets</b> & feeds"
    assert odd.summary == 'Less < more & "quotes"'
    assert "]]&gt;" in odd.content[0].value
    assert "Vertical" in next(item.title for item in parsed.entries if item.link == url("practices/heading"))


# --- sitemap and robots.txt ---------------------------------------------------------------------


def test_sitemap_lists_every_entry_tag_and_kind_page(client):
    response = client.get("/sitemap.xml")
    assert response.status_code == 200
    assert response.mimetype == "application/xml"
    root = ET.fromstring(response.data)
    assert root.tag == f"{SITEMAP}urlset"
    urls = {u.findtext(f"{SITEMAP}loc"): u.findtext(f"{SITEMAP}lastmod") for u in root}
    entries = {url(s) for s in (NOTE, REPORTS, REDIS, CELERY, CACHING)}
    tags = {f"http://localhost/tags/{t}" for t in ("caching", "celery", "django", "notes", "performance", "python", "redis")}  # fmt: skip
    kinds = {f"http://localhost/kinds/{k}" for k in ("technology", "concept", "challenge")}  # no practice entries
    assert set(urls) == entries | tags | kinds | {"http://localhost/", "http://localhost/tags"}
    for loc, lastmod in urls.items():
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", lastmod), (loc, lastmod)
    for loc in urls:
        assert client.get(loc.removeprefix("http://localhost")).status_code == 200, loc


def test_robots_points_at_the_sitemap(client):
    response = client.get("/robots.txt")
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    lines = response.get_data(as_text=True).splitlines()
    assert "Sitemap: http://localhost/sitemap.xml" in lines
    assert "User-agent: *" in lines
    assert "Disallow: /search" in lines
    assert "Disallow: /" not in lines  # the site itself stays crawlable


# --- OpenSearch ---------------------------------------------------------------------------------


def test_opensearch_description(client):
    response = client.get("/opensearch.xml")
    assert response.status_code == 200
    assert response.mimetype == "application/opensearchdescription+xml"
    root = ET.fromstring(response.data)
    assert root.tag == f"{OPENSEARCH}OpenSearchDescription"
    assert root.findtext(f"{OPENSEARCH}ShortName") == "Nexus"
    assert len(root.findtext(f"{OPENSEARCH}ShortName")) <= 16
    templates = {u.get("type"): u.get("template") for u in root.iter(f"{OPENSEARCH}Url")}
    assert templates["text/html"] == "http://localhost/search?q={searchTerms}"
    assert templates["application/x-suggestions+json"] == (
        "http://localhost/api/suggest?format=opensearch&q={searchTerms}"
    )
    assert templates["application/opensearchdescription+xml"] == "http://localhost/opensearch.xml"


def test_opensearch_suggestions(client):
    response = client.get("/api/suggest?format=opensearch&q=cel")
    assert response.status_code == 200
    assert response.mimetype == "application/x-suggestions+json"
    query, titles, descriptions, urls = json.loads(response.data)
    assert query == "cel"
    assert titles[0] == "Celery"
    assert descriptions[0] == "Background tasks for Python with a message broker."
    assert urls[0] == url(CELERY)
    assert len(titles) == len(descriptions) == len(urls)


def test_plain_suggestions_are_unchanged(client):
    body = client.get("/api/suggest?q=cel").get_json()
    assert body["suggestions"][0]["url"] == "/entries/technologies/celery"


# --- links in pages and social cards ------------------------------------------------------------


def head(client, path) -> str:
    response = client.get(path)
    assert response.status_code == 200, path
    text = response.get_data(as_text=True)
    return text[: text.index("</head>")]


@pytest.mark.parametrize("path", ["/", f"/entries/{CELERY}", "/tags", "/search?q=redis", "/kinds/concept"])
def test_every_page_links_the_site_feed_and_search(client, path):
    text = head(client, path)
    assert '<link rel="alternate" type="application/atom+xml" title="Nexus: newest entries" href="/feed.atom">' in text
    assert (
        '<link rel="search" type="application/opensearchdescription+xml" title="Nexus" href="/opensearch.xml">' in text
    )


def test_tag_and_filter_pages_link_their_own_feed_first(client):
    text = head(client, "/tags/redis")
    assert text.index('href="/tags/redis/feed.atom"') < text.index('href="/feed.atom"')
    text = head(client, "/entries?all=redis&kind=technology")
    assert 'href="/entries/feed.atom?all=redis&amp;kind=technology"' in text
    for feed_url in re.findall(r'type="application/atom\+xml"[^>]* href="([^"]+)"', text):
        feed(client, html.unescape(feed_url))


def test_entry_pages_have_social_cards(client):
    text = head(client, f"/entries/{CELERY}")
    assert '<meta name="description" content="Background tasks for Python with a message broker.">' in text
    meta = dict(re.findall(r'<meta property="(og:[a-z_]+)" content="([^"]*)">', text))
    assert meta == {
        "og:type": "article",
        "og:site_name": "Nexus",
        "og:title": "Celery",
        "og:description": "Background tasks for Python with a message broker.",
        "og:url": "http://localhost/entries/technologies/celery",
    }
    assert '<meta property="article:tag" content="python">' in text


def test_social_cards_escape_titles(make_app, content_dir):
    write_entry(content_dir, "x.md", '---\ntitle: A "quoted" <title>\nsummary: "Tom & Jerry"\n---\nBody.\n')
    app = make_app(content_dir)
    do_import(app, content_dir)
    text = head(app.test_client(), "/entries/x")
    assert '<meta property="og:title" content="A &#34;quoted&#34; &lt;title&gt;">' in text
    assert '<meta property="og:description" content="Tom &amp; Jerry">' in text
