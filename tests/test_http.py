"""Security headers, HTTP caching, static fingerprints, proxies and limits (portal/security.py, portal/caching.py)."""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
from werkzeug.http import http_date
from werkzeug.test import EnvironBuilder

from portal import caching, config, security
from portal.generation import read_last_import
from portal.importer import rebuild_index
from portal.models import Entry, db
from portal.search import store

from .conftest import CELERY, PROJECT_ROOT, do_import, write_entry

# One URL of each kind of answer the site gives.
PAGES = ["/", "/entries/technologies/celery", "/kinds/technology", "/tags/celery", "/search?q=celery", "/tags"]
API = ["/api/search?q=celery", "/api/suggest?q=cel"]


def get(client, url, **kwargs):
    """GET and close the answer (static files are streamed from open files)."""
    response = client.get(url, **kwargs)
    response.get_data()
    response.close()
    return response


def csp(response) -> dict[str, str]:
    """The Content-Security-Policy header as directive -> sources."""
    policy = response.headers["Content-Security-Policy"]
    return dict(part.strip().split(" ", 1) for part in policy.split(";"))


# --- security headers -------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        *PAGES,
        *API,
        "/healthz",
        "/static/css/site.css",
        "/entries/no-such-entry",  # 404 page
        "/api/search?page=0",  # 400 JSON
        "/kinds/technologies",  # 301 redirect
        "/?x=" + "a" * 5000,  # 414
    ],
)
def test_every_answer_carries_the_security_headers(client, url):
    response = get(client, url)
    headers = response.headers
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Referrer-Policy"] == "strict-origin-when-cross-origin"
    assert "camera=()" in headers["Permissions-Policy"] and "geolocation=()" in headers["Permissions-Policy"]
    policy = csp(response)
    assert policy["frame-ancestors"] == "'none'"
    assert policy["script-src"] == "'self'"  # no 'unsafe-inline', no 'unsafe-eval', no CDN
    assert policy["style-src"] == "'self'"
    assert policy["object-src"] == "'none'" and policy["base-uri"] == "'none'"
    assert "unsafe" not in headers["Content-Security-Policy"]
    assert "Strict-Transport-Security" not in headers  # plain http: HSTS would be ignored anyway


class InlineCodeFinder(HTMLParser):
    """Collects what a strict CSP would block: inline scripts, style elements and attributes, handlers."""

    def __init__(self):
        super().__init__()
        self.problems = []

    def handle_starttag(self, tag, attrs):
        names = {name for name, _ in attrs}
        if tag == "script" and "src" not in names:
            self.problems.append("inline <script>")
        if tag == "style":
            self.problems.append("<style> element")
        if "style" in names:
            self.problems.append(f"style attribute on <{tag}>")
        self.problems.extend(f"{name} on <{tag}>" for name in names if name.startswith("on"))
        for name, value in attrs:
            if name in ("href", "src", "action") and (value or "").strip().lower().startswith("javascript:"):
                self.problems.append(f"javascript: URL on <{tag}>")


@pytest.mark.parametrize("url", [*PAGES, "/entries/no-such-entry"])
def test_pages_hold_nothing_the_policy_would_block(client, url):
    # The CSP forbids inline code and styles: a page that needed them would break in browsers.
    finder = InlineCodeFinder()
    finder.feed(client.get(url).get_data(as_text=True))
    assert finder.problems == []


def test_hsts_only_over_https_behind_a_trusted_proxy(make_app, content_dir):
    app = make_app(content_dir, TRUSTED_PROXIES=1)
    do_import(app, content_dir)
    response = app.test_client().get("/", headers={"X-Forwarded-Proto": "https"})
    assert response.headers["Strict-Transport-Security"] == "max-age=31536000"


# --- conditional requests -----------------------------------------------------------


@pytest.mark.parametrize("url", PAGES + API)
def test_pages_and_api_answers_have_validators_and_answer_304(client, url):
    response = client.get(url)
    assert response.status_code == 200
    etag, modified = response.headers["ETag"], response.headers["Last-Modified"]
    assert etag.startswith('W/"') and modified.endswith("GMT")
    assert response.headers["Cache-Control"] == "no-cache"

    again = client.get(url, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.data == b""
    assert again.headers["ETag"] == etag
    assert again.headers["Cache-Control"] == "no-cache"
    assert again.headers["X-Frame-Options"] == "DENY"

    assert client.get(url, headers={"If-Modified-Since": modified}).status_code == 304
    assert client.head(url, headers={"If-None-Match": etag}).status_code == 304
    # An ETag that does not match wins over a matching date (RFC 9110 §13.2.2).
    stale = client.get(url, headers={"If-None-Match": 'W/"other"', "If-Modified-Since": modified})
    assert stale.status_code == 200 and stale.data


def test_etags_differ_per_url_and_query(client):
    etags = {client.get(url).headers["ETag"] for url in ["/", "/?page=1", "/kinds/concept", "/api/search?q=redis"]}
    assert len(etags) == 4


def test_an_import_that_changes_content_changes_every_validator(client, imported_app, content_dir):
    before = {url: client.get(url).headers["ETag"] for url in PAGES}
    write_entry(content_dir, "technologies/redis.md", "---\ntitle: Redis, revised\ntags: [redis]\n---\nNew.\n")
    do_import(imported_app, content_dir)
    for url, etag in before.items():
        response = client.get(url, headers={"If-None-Match": etag})
        assert response.status_code == 200, url
        assert response.headers["ETag"] != etag


def test_an_unchanged_import_keeps_validators(client, imported_app, content_dir):
    etag = client.get("/").headers["ETag"]
    do_import(imported_app, content_dir)  # nothing changed: same generation, same index
    assert client.get("/", headers={"If-None-Match": etag}).status_code == 304


def test_a_new_search_index_changes_validators(client, imported_app, content_dir, monkeypatch):
    # Between a commit and its index swap, search answers come from the old index:
    # their validator must change again when the new index goes live.
    from portal import importer

    with monkeypatch.context() as patch:
        patch.setattr(importer, "sync_index", lambda *args, **kwargs: None)  # still building
        write_entry(content_dir, "concepts/zeppelins.md", "# Zeppelins\n\nCelery on airships.\n")
        do_import(imported_app, content_dir)
    etag = client.get("/api/search?q=celery").headers["ETag"]
    with imported_app.app_context():
        rebuild_index(imported_app.instance_path)  # the new index goes live
        db.session.remove()
    response = client.get("/api/search?q=celery", headers={"If-None-Match": etag})
    assert response.status_code == 200 and response.get_json()["total"] == 4
    # Rebuilding the same generation (`flask reindex`) is a new index: answers made without it,
    # or with a broken one, must not be revalidated (see test_answers_without_a_usable_index...).
    etag = response.headers["ETag"]
    with imported_app.app_context():
        rebuild_index(imported_app.instance_path)
        db.session.remove()
    response = client.get("/api/search?q=celery", headers={"If-None-Match": etag})
    assert response.status_code == 200 and response.headers["ETag"] != etag


def test_last_modified_is_the_last_import_or_release(client, imported_app):
    from portal import queries

    with imported_app.app_context():
        finished = queries.last_import().finished_at
    _, release_time = imported_app.extensions["nexus.http"].current_release()
    expected = max(finished, release_time).replace(microsecond=0)
    assert client.get("/").headers["Last-Modified"] == http_date(expected)


def test_errors_and_redirects_get_no_validators(client):
    for url in ["/entries/nope", "/kinds/technologies", "/api/search?per_page=999"]:
        response = client.get(url)
        assert response.status_code in (301, 400, 404)
        assert "ETag" not in response.headers
        assert response.headers["Cache-Control"] == "no-cache"


def test_a_max_age_setting_lets_caches_reuse_pages(make_app, content_dir):
    app = make_app(content_dir, CACHE_MAX_AGE=60)
    do_import(app, content_dir)
    response = app.test_client().get("/")
    assert response.headers["Cache-Control"] == "public, max-age=60"
    assert "ETag" in response.headers


def test_healthz_is_never_cached(client):
    response = client.get("/healthz")
    assert response.headers["Cache-Control"] == "no-store"
    assert "ETag" not in response.headers and "Last-Modified" not in response.headers


# --- static files -------------------------------------------------------------------


def static_urls(html: str) -> list[str]:
    return re.findall(r'(?:href|src)="(/static/[^"]+)"', html)


def test_static_urls_carry_a_content_fingerprint_and_are_immutable(client):
    urls = static_urls(client.get("/").get_data(as_text=True))
    assert any(u.startswith("/static/css/site.css?v=") for u in urls)
    for url in urls:
        path, fingerprint = url.split("?v=")
        file = PROJECT_ROOT / "static" / path.removeprefix("/static/")
        assert fingerprint == hashlib.blake2b(file.read_bytes(), digest_size=6).hexdigest()
        response = get(client, url)
        assert response.status_code == 200
        assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"


@pytest.mark.parametrize("query", ["", "?v=0123456789ab", "?v="])
def test_static_without_the_right_fingerprint_is_revalidated(client, query):
    # An old or missing fingerprint must not pin today's file in caches for a year.
    response = get(client, "/static/css/site.css" + query)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-cache"
    assert get(client, "/static/css/site.css", headers={"If-None-Match": response.headers["ETag"]}).status_code == 304


def test_the_fingerprint_follows_the_file_content(imported_app, tmp_path):
    imported_app.static_folder = str(tmp_path / "static")
    asset = tmp_path / "static" / "app.js"
    asset.parent.mkdir()
    asset.write_text("one")
    with imported_app.test_request_context():
        from flask import url_for

        first = url_for("static", filename="app.js")
        asset.write_text("two, longer")
        second = url_for("static", filename="app.js")
        missing = url_for("static", filename="missing.js")
    assert first != second and first.startswith("/static/app.js?v=")
    assert missing == "/static/missing.js"


# --- limits and traversal ------------------------------------------------------------


def test_query_strings_up_to_4_kb_are_served_and_longer_get_414(client):
    assert client.get("/?x=" + "a" * (security.MAX_QUERY_STRING - 2)).status_code == 200
    assert client.get("/?x=" + "a" * (security.MAX_QUERY_STRING - 1)).status_code == 414
    response = client.get("/api/search?q=" + "a" * 5000)
    assert response.status_code == 414
    assert response.get_json()["error"]["code"] == 414


@pytest.mark.parametrize(
    "path",
    [
        "/entries/../../etc/passwd",
        "/entries/..%2F..%2Fetc%2Fpasswd",
        "/entries/%2e%2e/%2e%2e/etc/passwd",
        "/entries/%252e%252e%252fetc%252fpasswd",  # double encoded
        "/entries/....//....//etc/passwd",
        "/entries/%00../etc/passwd",
        "/static/../portal/__init__.py",
        "/static/..%2Fportal%2F__init__.py",
        "/static/%2e%2e/wsgi.py",
        "/static//etc/passwd",
    ],
)
def test_path_traversal_never_reads_outside(client, path):
    response = get(client, path)
    assert response.status_code in (404, 400, 308), path
    body = response.get_data(as_text=True)
    assert "root:" not in body and "create_app" not in body


# --- proxies --------------------------------------------------------------------------

FORWARDED = {
    "X-Forwarded-For": "203.0.113.9",
    "X-Forwarded-Proto": "https",
    "X-Forwarded-Host": "docs.example.org",
    "X-Forwarded-Prefix": "/wiki",
}


def test_forwarded_headers_are_ignored_unless_configured(client):
    api = client.get("/api/search?q=celery", headers=FORWARDED).get_json()
    assert api["results"][0]["url"] == "http://localhost/entries/technologies/celery"
    redirect = client.get("/kinds/technologies", headers=FORWARDED)
    assert redirect.status_code == 301 and redirect.headers["Location"] == "/kinds/technology"
    html = client.get("/", headers=FORWARDED).get_data(as_text=True)
    assert 'href="/static/css/site.css' in html and "/wiki/" not in html


def test_a_trusted_proxy_sets_scheme_host_and_prefix(make_app, content_dir):
    app = make_app(content_dir, TRUSTED_PROXIES=1)
    do_import(app, content_dir)
    client = app.test_client()
    api = client.get("/api/search?q=celery", headers=FORWARDED).get_json()
    assert api["results"][0]["url"] == "https://docs.example.org/wiki/entries/technologies/celery"
    redirect = client.get("/kinds/technologies", headers=FORWARDED)
    assert redirect.status_code == 301 and redirect.headers["Location"] == "/wiki/kinds/technology"
    html = client.get("/", headers=FORWARDED).get_data(as_text=True)
    assert 'href="/wiki/static/css/site.css?v=' in html
    assert 'action="/wiki/search"' in html
    # Only as many hops as configured are believed: with two values, the nearer one wins.
    two_hops = dict(FORWARDED, **{"X-Forwarded-Host": "evil.example, docs.example.org"})
    api = client.get("/api/search?q=celery", headers=two_hops).get_json()
    assert api["results"][0]["url"].startswith("https://docs.example.org/wiki/")


def test_trusted_proxies_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("NEXUS_TRUSTED_PROXIES", "2")
    monkeypatch.setenv("NEXUS_CACHE_MAX_AGE", "30")
    parsed = config.from_environment()
    assert parsed["TRUSTED_PROXIES"] == 2 and parsed["CACHE_MAX_AGE"] == 30
    monkeypatch.setenv("NEXUS_TRUSTED_PROXIES", "many")
    with pytest.raises(RuntimeError, match="NEXUS_TRUSTED_PROXIES"):
        config.from_environment()


def test_a_negative_proxy_count_is_a_start_up_error(make_app, content_dir):
    with pytest.raises(RuntimeError, match="NEXUS_TRUSTED_PROXIES"):
        make_app(content_dir, TRUSTED_PROXIES=-1)


# --- production safety -----------------------------------------------------------------


def test_the_wsgi_app_runs_without_debug(tmp_path):
    code = "import wsgi; print(wsgi.app.debug, wsgi.app.testing)"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NEXUS_", "FLASK_"))}
    env.update(NEXUS_INSTANCE_PATH=str(tmp_path / "instance"), NEXUS_SECRET_KEY="x")
    result = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False False"


def test_the_wsgi_app_refuses_flask_debug(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEXUS_")}
    env.update(NEXUS_INSTANCE_PATH=str(tmp_path / "instance"), NEXUS_SECRET_KEY="x", FLASK_DEBUG="1")
    result = subprocess.run([sys.executable, "-c", "import wsgi"], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True)  # fmt: skip
    assert result.returncode != 0
    assert "refusing to serve Nexus in debug mode" in result.stderr


def test_gunicorn_config_keeps_debug_tools_and_proxy_trust_off(monkeypatch):
    import runpy

    for name in list(os.environ):
        if name.startswith("NEXUS_GUNICORN_"):
            monkeypatch.delenv(name)
    settings = runpy.run_path(str(PROJECT_ROOT / "gunicorn.conf.py"))
    assert settings["reload"] is False
    assert settings["forwarded_allow_ips"] == ""  # ProxyFix (NEXUS_TRUSTED_PROXIES) decides alone
    assert settings["limit_request_line"] <= 8190
    assert "%(r)s" in settings["access_log_format"] and "%(s)s" in settings["access_log_format"]


def test_production_start_up_without_a_secret_key_is_a_clear_error(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NEXUS_", "FLASK_"))}
    env.update(NEXUS_INSTANCE_PATH=str(tmp_path / "instance"))
    result = subprocess.run([sys.executable, "-c", "import wsgi"], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True)  # fmt: skip
    assert result.returncode != 0
    assert "No secret key: set NEXUS_SECRET_KEY" in result.stderr and "flask --app portal secret-key" in result.stderr


def test_the_secret_key_command_creates_a_private_key_file_once(make_app, content_dir):
    app = make_app(content_dir, SECRET_KEY=None)
    assert app.config["SECRET_KEY"] is None  # nothing is generated behind the operator's back
    key_file = Path(app.instance_path) / "secret_key"
    assert not key_file.exists()
    result = app.test_cli_runner().invoke(args=["secret-key"])
    assert result.exit_code == 0 and f"created {key_file}" in result.output
    assert key_file.stat().st_mode & 0o777 == 0o600 and len(key_file.read_text().strip()) == 64
    key = key_file.read_text()
    again = app.test_cli_runner().invoke(args=["secret-key"])
    assert again.exit_code == 0 and f"kept {key_file}" in again.output and key_file.read_text() == key
    assert make_app(content_dir, SECRET_KEY=None).config["SECRET_KEY"] == key.strip()


# --- /healthz ----------------------------------------------------------------------


def test_healthz_is_503_when_index_and_database_counts_differ(client, imported_app):
    with imported_app.app_context():
        db.session.delete(db.session.scalar(db.select(Entry).where(Entry.slug == "concepts/caching")))
        db.session.commit()  # behind the importer's back: the index still has 5 documents
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.get_json()
    assert body["status"] == "error" and body["entries"] == 4 and body["index_documents"] == 5
    assert body["reason"] == "index has 5 documents, database has 4 entries"


def test_healthz_allows_a_fresh_import_time_to_build_its_index(client, imported_app, content_dir, monkeypatch):
    from portal import importer
    from portal.views import health

    monkeypatch.setattr(importer, "sync_index", lambda *args, **kwargs: None)  # as if still building
    write_entry(content_dir, "concepts/new.md", "# New\n\nJust committed.\n")
    do_import(imported_app, content_dir)
    body = client.get("/healthz").get_json()
    assert body["status"] == "ok" and body["index_pending"] is True
    assert (body["generation"], body["index_generation"], body["entries"], body["index_documents"]) == (2, 1, 6, 5)

    monkeypatch.setattr(health, "INDEX_GRACE_SECONDS", 0)  # the import died: the index never came
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.get_json()["reason"] == "index is from generation 1, database is at 2"


# --- the page cache -------------------------------------------------------------------


@pytest.fixture
def cached_app(make_app, content_dir):
    app = make_app(content_dir, PAGE_CACHE_MB=1)
    do_import(app, content_dir)
    return app


def test_pages_are_rendered_once_per_import_and_served_from_the_cache(cached_app, content_dir):
    cache = cached_app.extensions["nexus.page_cache"]
    client = cached_app.test_client()
    first = client.get("/entries/technologies/celery")
    second = client.get("/entries/technologies/celery")
    assert (cache.misses, cache.stores, cache.hits) == (1, 1, 1)
    assert second.data == first.data and second.headers["ETag"] == first.headers["ETag"]
    assert second.headers["Content-Security-Policy"] == first.headers["Content-Security-Policy"]
    assert second.headers["Cache-Control"] == first.headers["Cache-Control"] == "no-cache"
    assert second.headers["Content-Length"] == str(len(first.data))
    head = client.head("/entries/technologies/celery")
    assert head.data == b"" and head.headers["Content-Length"] == str(len(first.data)) and cache.hits == 2

    # An import changes the state: the next answer is rendered anew and is never stale.
    write_entry(content_dir, "technologies/celery.md", "---\ntitle: Celery, revised\n---\nZeppelins.\n")
    do_import(cached_app, content_dir)
    third = client.get("/entries/technologies/celery")
    assert b"Celery, revised" in third.data and third.headers["ETag"] != first.headers["ETag"]
    assert cache.hits == 2


@pytest.mark.parametrize(
    "path",
    [
        "/api/entries",  # CORS headers are added by the API's own hook, after the caching hooks ran
        "/api/search?q=celery",
        "/entries/technologies/celery",  # security headers
    ],
)
def test_a_cached_answer_keeps_every_header_of_the_rendered_one(cached_app, path):
    client = cached_app.test_client()
    rendered = client.get(path)
    cached = client.get(path)
    assert cached_app.extensions["nexus.page_cache"].hits == 1
    ignored = {"Date", "Content-Length"}
    assert {k: v for k, v in cached.headers.items() if k not in ignored} == {
        k: v for k, v in rendered.headers.items() if k not in ignored
    }


def test_a_cached_page_still_answers_conditional_requests_with_304(cached_app):
    client = cached_app.test_client()
    etag = client.get("/tags/celery").headers["ETag"]
    assert client.get("/tags/celery").status_code == 200  # from the cache
    again = client.get("/tags/celery", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.data == b"" and again.headers["ETag"] == etag


def test_workers_of_one_node_share_the_pages_they_render(cached_app, make_app, content_dir):
    other_worker = make_app(content_dir, PAGE_CACHE_MB=1)  # same instance folder, as gunicorn's workers
    rendered = cached_app.test_client().get("/search?q=celery")
    served = other_worker.test_client().get("/search?q=celery")
    cache = other_worker.extensions["nexus.page_cache"]
    assert (cache.hits, cache.stores) == (1, 0)
    assert served.data == rendered.data and served.headers["ETag"] == rendered.headers["ETag"]


def test_the_page_cache_keeps_answers_apart_by_url_and_host(cached_app):
    client = cached_app.test_client()
    api = client.get("/api/search?q=celery", headers={"Host": "one.example"}).get_json()
    other = client.get("/api/search?q=celery", headers={"Host": "two.example"}).get_json()
    assert api["results"][0]["url"].startswith("http://one.example/")
    assert other["results"][0]["url"].startswith("http://two.example/")
    assert client.get("/api/search?q=redis").get_json()["query"] == "redis"


def test_the_page_cache_skips_errors_and_stays_within_its_budget(make_app, content_dir):
    app = make_app(content_dir, PAGE_CACHE_MB=0.035)  # 36 KB: less than these answers; one may take a quarter
    do_import(app, content_dir)
    cache = app.extensions["nexus.page_cache"]
    client = app.test_client()
    assert client.get("/entries/nope").status_code == 404
    assert client.get("/entries/nope").status_code == 404 and cache.hits == 0 and cache.stores == 0
    sizes = {url: len(client.get(url).data) for url in PAGES + API}
    assert cache.stores == len(PAGES + API) and sum(sizes.values()) > cache.max_bytes
    assert 0 < cache.size() <= cache.max_bytes
    assert client.get(API[-1]).status_code == 200 and cache.hits == 1  # the newest answer stayed
    assert client.get(PAGES[0]).status_code == 200 and cache.hits == 1  # the oldest made room


def test_an_import_drops_the_answers_of_the_old_content(cached_app, content_dir):
    cache = cached_app.extensions["nexus.page_cache"]
    client = cached_app.test_client()
    for url in PAGES:
        client.get(url)
    before = cache.size()
    write_entry(content_dir, "concepts/new.md", "# New\n\nFresh.\n")
    do_import(cached_app, content_dir)
    client.get("/")
    assert 0 < cache.size() < before


def _rebuild_index(app):
    with app.app_context():
        rebuild_index(app.instance_path)
        db.session.remove()


def _suggested(client) -> list[str]:
    return [s["slug"] for s in client.get("/api/suggest?q=cel").get_json()["suggestions"]]


def test_answers_without_a_usable_index_are_never_kept(cached_app):
    client, cache = cached_app.test_client(), cached_app.extensions["nexus.page_cache"]
    live = store.live_index_dir(cached_app.instance_path)
    shutil.rmtree(live)  # the index went missing: its link points nowhere
    suggest = client.get("/api/suggest?q=cel")
    assert suggest.status_code == 200 and suggest.get_json()["suggestions"] == []
    assert suggest.headers["Cache-Control"] == "no-store" and "ETag" not in suggest.headers
    assert client.get(f"/entries/{CELERY}").status_code == 200  # no related entries by content: not kept either
    assert cache.stores == 0
    _rebuild_index(cached_app)  # the same generation again
    assert CELERY in _suggested(client)


def test_an_index_rebuilt_for_the_same_generation_changes_the_cache_key(cached_app):
    client, cache = cached_app.test_client(), cached_app.extensions["nexus.page_cache"]
    broken = store.live_index_dir(cached_app.instance_path)
    for toc in broken.glob("*.toc"):
        toc.write_bytes(b"not an index")  # there, but it will not open
    suggest = client.get("/api/suggest?q=cel")
    assert suggest.get_json()["suggestions"] == [] and suggest.headers["Cache-Control"] == "no-store"
    first = client.get(f"/entries/{CELERY}")
    assert first.status_code == 200 and cache.stores == 1
    _rebuild_index(cached_app)
    rebuilt = store.live_index_dir(cached_app.instance_path)
    assert rebuilt != broken and rebuilt.name.split(".")[1] == broken.name.split(".")[1]
    again = client.get(f"/entries/{CELERY}", headers={"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 200 and again.headers["ETag"] != first.headers["ETag"]
    assert CELERY in _suggested(client)


def test_a_corrupt_cache_file_is_replaced_and_never_fails_a_request(cached_app, caplog):
    client = cached_app.test_client()
    first = client.get("/tags/celery")
    path = Path(cached_app.instance_path) / caching.PAGE_CACHE_FILE
    cache = cached_app.extensions["nexus.page_cache"]
    cache._local.pid = None  # as a worker started after the damage would
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    path.write_bytes(b"not a database" * 100)
    with caplog.at_level(logging.WARNING, logger="portal.page_cache"):
        again = client.get("/tags/celery")
    assert again.status_code == 200 and again.data == first.data
    assert "page cache" in caplog.text
    client.get("/tags/celery")
    assert client.get("/tags/celery").data == first.data and cache.hits >= 1


def test_the_page_cache_is_off_in_tests_unless_asked_for(app):
    assert app.extensions["nexus.page_cache"].max_bytes == 0


def test_an_import_on_this_node_is_seen_at_once_and_another_nodes_within_the_interval(make_app, content_dir):
    app = make_app(content_dir, PAGE_CACHE_MB=1, INDEX_CHECK_SECONDS=3600)
    do_import(app, content_dir)
    client = app.test_client()
    first = client.get("/entries/technologies/celery").headers["ETag"]
    write_entry(content_dir, "technologies/celery.md", "# Celery\n\nChanged here.\n")
    do_import(app, content_dir)  # this node's importer announces the generation
    changed = client.get("/entries/technologies/celery")
    assert b"Changed here" in changed.data and changed.headers["ETag"] != first

    # Another node's import changes only the database: seen when the interval has passed.
    watch = app.extensions["nexus.generation"]
    with app.app_context():
        db.session.execute(
            db.text(
                "INSERT INTO import_runs (started_at, finished_at, added, updated, unchanged, deleted, errors, entries) SELECT started_at, finished_at, 0, 1, 0, 0, 0, entries FROM import_runs"
            )
        )
        db.session.commit()
    assert client.get("/entries/technologies/celery").headers["ETag"] == changed.headers["ETag"]
    watch._next_read = 0  # the interval has passed
    assert client.get("/entries/technologies/celery").headers["ETag"] != changed.headers["ETag"]


# --- allowed hosts ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("allowed", "host", "status"),
    [
        ("wiki.example.org", "wiki.example.org", 200),  # the site's own name
        ("wiki.example.org", "wiki.example.org:8443", 200),  # ports are ignored
        ("wiki.example.org", "evil.example", 400),  # any other name
        ("wiki.example.org", "wiki.example.org.evil.example", 400),  # a name that merely starts like it
        ("wiki.example.org", "example.org", 400),  # nor is its parent domain
        (".example.org", "wiki.example.org", 200),  # a leading dot allows subdomains...
        (".example.org", "example.org", 200),  # ...and the domain itself
        (".example.org", "badexample.org", 400),  # but not a name that ends in the same letters
        ("wiki.example.org, 127.0.0.1", "127.0.0.1:8000", 200),  # a list: a health check by address
        ("", "anything.example", 200),  # unset: every host, as before
    ],
)
def test_allowed_hosts_answer_400_to_any_other_host(make_app, content_dir, allowed, host, status):
    app = make_app(content_dir, TRUSTED_HOSTS=config.parse_list(allowed))
    do_import(app, content_dir)
    client = app.test_client()
    for path in ["/", "/feed.atom", "/sitemap.xml", "/robots.txt", "/opensearch.xml", "/api/entries", "/healthz"]:
        response = client.get(path, headers={"Host": host})
        assert response.status_code == status, path
        if status == 400:
            text = response.get_data(as_text=True)
            assert "not served under that host" in text and "evil" not in text, path


def test_allowed_hosts_come_from_the_environment(monkeypatch, make_app, content_dir):
    monkeypatch.setenv("NEXUS_ALLOWED_HOSTS", "wiki.example.org")
    app = make_app(content_dir)
    assert app.test_client().get("/", headers={"Host": "evil.example"}).status_code == 400


def test_the_page_cache_never_answers_a_host_that_is_not_allowed(make_app, content_dir):
    app = make_app(content_dir, PAGE_CACHE_MB=1, TRUSTED_HOSTS=["wiki.example.org"])
    do_import(app, content_dir)
    client = app.test_client()
    good = client.get("/api/entries", headers={"Host": "wiki.example.org"})
    assert good.status_code == 200 and "http://wiki.example.org/" in good.get_data(as_text=True)
    # An answer stored for another host (say, before the setting was made) is never served for it.
    cache = app.extensions["nexus.page_cache"]
    environ = EnvironBuilder(path="/api/entries", headers={"Host": "evil.example"}).get_environ()
    with app.app_context():
        generation = app.extensions["nexus.generation"].current(read_last_import)
    validators = caching.validators_for(app, environ, generation)
    cache.put(validators.etag, "|".join(map(str, validators.state)), [("Content-Type", "text/plain")], b"forged")
    assert cache.get(validators.etag) is not None
    response = client.get("/api/entries", headers={"Host": "evil.example"})
    assert response.status_code == 400 and b"forged" not in response.data


def test_remembered_links_follow_the_path_prefix_each_request_has(make_app, content_dir):
    # Templates' links are built once per process; a proxy's prefix (or none) is part of what they are kept by.
    app = make_app(content_dir, TRUSTED_PROXIES=1)
    do_import(app, content_dir)
    client = app.test_client()
    plain = client.get("/tags").get_data(as_text=True)
    prefixed = client.get("/tags", headers={"X-Forwarded-Prefix": "/wiki"}).get_data(as_text=True)
    again = client.get("/tags").get_data(as_text=True)
    assert 'href="/tags/celery"' in plain and 'href="/tags/celery"' in again
    assert 'href="/wiki/tags/celery"' in prefixed and 'href="/tags/celery"' not in prefixed
