"""Pages through the test client: home, entries, kinds, errors, health."""

from __future__ import annotations

import pytest

from portal.models import db

from .conftest import do_import, write_entry


def test_home_lists_entries_newest_first_with_kind_counts(client):
    html = client.get("/").get_data(as_text=True)
    titles = ("A plain note", "Slow report generation", ">Redis<", ">Celery<", "Caching strategies")
    order = [html.index(title) for title in titles]
    assert order == sorted(order)  # undated notes count from their first import: today
    assert "Background tasks for Python with a message broker." in html
    assert "<strong>2</strong> Technologies" in html
    assert "<strong>1</strong> Challenges and solutions" in html


def test_entry_page_shows_rendered_body_and_metadata(client):
    response = client.get("/entries/technologies/celery")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "<h1>Celery</h1>" in html
    assert "<strong>background tasks</strong>" in html
    assert '<time datetime="2025-03-01">1 March 2025</time>' in html
    assert "min read" in html
    assert 'href="/kinds/technology"' in html
    assert '<a href="#workers">Workers</a>' not in html  # one heading: no table of contents
    assert '<h2 id="workers">' in html


def test_entry_with_several_headings_has_a_table_of_contents(client, content_dir, imported_app):
    write_entry(content_dir, "long.md", "# Long\n\nIntro.\n\n## One\n\nx\n\n## Two\n\ny\n")
    do_import(imported_app, content_dir)
    html = client.get("/entries/long").get_data(as_text=True)
    assert '<a href="#one">One</a>' in html and '<a href="#two">Two</a>' in html


def test_kind_page_lists_only_that_kind(client):
    html = client.get("/kinds/technology").get_data(as_text=True)
    assert "Celery" in html and "Redis" in html
    assert "Slow report generation" not in html


def test_plural_kind_redirects_to_canonical(client):
    response = client.get("/kinds/technologies")
    assert response.status_code == 301
    assert response.headers["Location"].endswith("/kinds/technology")


@pytest.mark.parametrize(
    "path",
    [
        "/entries/nope",
        "/entries/",
        "/entries/../../etc/passwd",
        "/entries/%2e%2e/%2e%2e/etc/passwd",
        "/entries/technologies/celery/../../../etc/passwd",
        "/entries/\x00",
        "/kinds/recipes",
        "/no-such-page",
        "/?page=999",
    ],
)
def test_missing_pages_are_404_in_the_site_layout(client, path):
    response = client.get(path)
    assert response.status_code == 404
    html = response.get_data(as_text=True)
    assert "Page not found" in html and 'class="site-header"' in html
    assert "root:" not in html


@pytest.mark.parametrize("query", ["page=abc", "page=0", "page=-3", "page=1e9"])
def test_bad_page_numbers_are_400_not_500(client, query):
    response = client.get(f"/?{query}")
    assert response.status_code == 400
    assert "must be" in response.get_data(as_text=True)


def test_unexpected_errors_show_the_500_page_without_a_traceback(imported_app):
    @imported_app.get("/boom")
    def boom():
        raise RuntimeError("secret detail")

    imported_app.config["PROPAGATE_EXCEPTIONS"] = False
    response = imported_app.test_client().get("/boom")
    assert response.status_code == 500
    html = response.get_data(as_text=True)
    assert "Something went wrong" in html
    assert "secret detail" not in html and "Traceback" not in html


def test_healthz_reports_entries(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "ok" and body["entries"] == 5 and body["index_documents"] == 5
    assert body["generation"] == 1 and body["last_import"].endswith("Z")


def test_healthz_is_503_when_the_database_does_not_answer(imported_app):
    with imported_app.app_context():
        db.drop_all()  # the tables vanish behind the app's back
    response = imported_app.test_client().get("/healthz")
    assert response.status_code == 503
    assert response.get_json() == {"status": "error", "reason": "database unavailable"}


def test_healthz_is_503_when_the_index_is_missing(client, imported_app):
    import shutil

    from portal.search import store

    shutil.rmtree(store.live_index_dir(imported_app.instance_path))
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.get_json()["reason"] == "search index will not open"


def test_entry_html_is_not_escaped_twice_and_scripts_never_render(client, content_dir, imported_app):
    write_entry(content_dir, "xss.md", "# Title <b>x</b>\n\n<script>alert(1)</script>\n\nText & more.\n")
    do_import(imported_app, content_dir)
    html = client.get("/entries/xss").get_data(as_text=True)
    assert "<script>alert(1)</script>" not in html
    assert "Title &lt;b&gt;x&lt;/b&gt;" in html
    assert "Text &amp; more." in html


@pytest.mark.parametrize("message", ["", "connection refused\nIs the server running?"])
def test_pages_render_without_navigation_when_the_outline_query_fails(client, monkeypatch, caplog, message):
    # Even a driver error with no message at all: the page renders, the log has one line.
    from sqlalchemy.exc import OperationalError

    from portal import queries

    def down():
        raise OperationalError("SELECT", {}, Exception(message))

    monkeypatch.setattr(queries, "collection_outline", down)
    response = client.get("/tags")
    assert response.status_code == 200
    warned = [r.getMessage() for r in caplog.records if "no navigation" in r.getMessage()]
    assert warned == [
        f"no navigation for this page: the database did not answer ({message.splitlines()[0] if message else 'Exception'})"
    ]
