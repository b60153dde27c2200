"""HTTP behaviour every answer shares: security headers, caching validators, proxies and limits.

Pages and API answers change only when an import commits or a new index is swapped in
(or when the code and templates change), so their `ETag` is a hash of those states and
the request URL; a conditional request is answered 304 before any view runs, and a node's
workers share the answers they rendered under that ETag (a bounded page cache in the
instance folder, see page_cache.py), so a page is rendered once per node and import.
Static files get a content fingerprint in their URL (`?v=<hash>`) and are cached for a
year only when the fingerprint matches the file served.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import time
from pathlib import Path

from flask import Flask, Response, current_app, g, request
from sqlalchemy import select
from werkzeug.exceptions import RequestURITooLarge
from werkzeug.http import quote_etag
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.security import safe_join
from werkzeug.wsgi import get_current_url

from . import config, search
from .importer import GENERATION_FILE
from .models import ImportRun, db
from .page_cache import PageCache

#: Longest query string answered; longer ones get 414 before any database work.
MAX_QUERY_STRING = 4096
#: Request bodies are never needed (the site has no forms that change state).
MAX_CONTENT_LENGTH = 64 * 1024
STATIC_MAX_AGE = 365 * 24 * 3600
#: Endpoints whose answers do not follow the content generation.
UNVALIDATED_ENDPOINTS = {"static", "health.healthz"}
FINGERPRINT_ARG = "v"
#: The last import that changed content: the generation (its id) and when it finished.
LAST_IMPORT = select(ImportRun.id, ImportRun.finished_at).order_by(ImportRun.id.desc()).limit(1)
#: Default size of the page cache each node's workers share, when NEXUS_PAGE_CACHE_MB is not set
#: (off under TESTING).
PAGE_CACHE_MB = 128
PAGE_CACHE_FILE = "page-cache.sqlite3"
#: WSGI environ key: the validators CachedAnswers computed (and found nothing cached under).
VALIDATORS_KEY = "nexus.validators"

#: Everything comes from this origin. Scripts and styles only from files (no inline code):
#: vendored libraries under /static/vendor are covered by 'self'. Images may be linked from
#: any https site, as notes often do; `data:` serves small icons in vendored stylesheets.
CONTENT_SECURITY_POLICY = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self'",
    "img-src": "'self' https: data:",
    "font-src": "'self'",
    "connect-src": "'self'",
    "object-src": "'none'",
    "base-uri": "'none'",
    "form-action": "'self'",
    "frame-ancestors": "'none'",
}
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "strict-origin-when-cross-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": (
        "accelerometer=(), camera=(), geolocation=(), gyroscope=(), magnetometer=(), microphone=(), payment=(), usb=()"
    ),
}


def register(app: Flask) -> None:
    """Install proxy trust, limits, security headers, validators and static fingerprints."""
    trusted = app.config.get("TRUSTED_PROXIES", 0)
    megabytes = app.config.get("PAGE_CACHE_MB")
    if megabytes is None:
        megabytes = 0 if app.testing else PAGE_CACHE_MB  # tests change rows behind the importer's back
    if megabytes < 0:
        raise RuntimeError("NEXUS_PAGE_CACHE_MB must be 0 or more")
    if trusted < 0:
        raise RuntimeError(f"NEXUS_TRUSTED_PROXIES must be 0 or more, got {trusted}")
    if megabytes:
        app.wsgi_app = CachedAnswers(app, app.wsgi_app)
    if trusted:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=trusted, x_proto=trusted, x_host=trusted, x_port=trusted, x_prefix=trusted)  # fmt: skip
    if app.config.get("CACHE_MAX_AGE", 0) < 0:
        raise RuntimeError("NEXUS_CACHE_MAX_AGE must be 0 or more")
    app.config.setdefault("MAX_CONTENT_LENGTH", MAX_CONTENT_LENGTH)
    app.extensions["nexus.http"] = _State(app)
    app.extensions["nexus.generation"] = GenerationWatch(
        app.instance_path, float(app.config.get("INDEX_CHECK_SECONDS", 0))
    )
    app.extensions["nexus.page_cache"] = PageCache(
        Path(app.instance_path) / PAGE_CACHE_FILE, int(megabytes * 1024 * 1024)
    )
    app.before_request(_limit_query_string)
    app.before_request(_answer_conditional)
    app.after_request(_add_headers)
    app.url_defaults(_fingerprint_static_url)


class _State:
    """Per-app caches: the release fingerprint and static file hashes."""

    def __init__(self, app: Flask):
        self.app = app
        self.static_hashes: dict[str, tuple[tuple[int, int], str]] = {}
        self.release, self.release_time = self._release()

    def _release(self) -> tuple[str, dt.datetime]:
        """A hash of the code, templates, static files and page settings, with their newest mtime."""
        digest = hashlib.blake2b(digest_size=8)
        newest = 0
        folders = [config.PROJECT_ROOT / "portal", Path(self.app.template_folder), Path(self.app.static_folder)]
        for folder in folders:
            for base, dirnames, filenames in os.walk(folder):
                dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
                for name in sorted(filenames):
                    stat = os.stat(os.path.join(base, name))
                    digest.update(f"{base}/{name}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
                    newest = max(newest, stat.st_mtime_ns)
        settings = {key: self.app.config.get(key) for _, key, _, _ in config.SETTINGS if key != "SECRET_KEY"}
        digest.update(repr(sorted(settings.items())).encode())
        return digest.hexdigest(), dt.datetime.fromtimestamp(newest // 1_000_000_000, dt.UTC).replace(tzinfo=None)

    def current_release(self) -> tuple[str, dt.datetime]:
        """The release fingerprint; recomputed per request in debug mode, where files change."""
        if self.app.debug:
            self.release, self.release_time = self._release()
        return self.release, self.release_time

    def static_hash(self, filename: str) -> str | None:
        """A short content hash of a static file, cached until its size or mtime changes."""
        path = safe_join(self.app.static_folder, filename)
        if path is None:
            return None
        try:
            stat = os.stat(path)
        except OSError:
            return None
        key = (stat.st_size, stat.st_mtime_ns)
        cached = self.static_hashes.get(filename)
        if cached is not None and cached[0] == key:
            return cached[1]
        digest = hashlib.blake2b(digest_size=6)
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 16), b""):
                digest.update(block)
        self.static_hashes[filename] = (key, digest.hexdigest())
        return digest.hexdigest()


def _state() -> _State:
    return current_app.extensions["nexus.http"]


def _limit_query_string():
    """414 for an oversized query string, before any other work."""
    if len(request.query_string) > MAX_QUERY_STRING:
        raise RequestURITooLarge(f"The query string is longer than {MAX_QUERY_STRING} bytes.")


def content_validators() -> tuple[str, dt.datetime, tuple]:
    """(ETag value, Last-Modified, content state) of this request's answer under the current content."""
    return validators_for(current_app, request.environ, lambda: db.session.connection().execute(LAST_IMPORT).first())


def validators_for(app: Flask, environ: dict, read_last_import) -> tuple[str, dt.datetime, tuple]:
    """(ETag value, Last-Modified, content state) of the answer to the request `environ` describes.

    Derived from the release, the last committed import (id and time), the live index
    directory and the full request URL. An answer is never older than its validators: the
    generation is read before the view's queries run.
    """
    release, release_time = app.extensions["nexus.http"].current_release()
    generation, finished = app.extensions["nexus.generation"].current(read_last_import)
    index_generation = _live_index_generation(app.instance_path)
    key = f"{release}|{generation}|{index_generation}|{get_current_url(environ)}"
    etag = hashlib.blake2b(key.encode(), digest_size=12).hexdigest()
    modified = max(finished, release_time) if finished else release_time
    return etag, modified.replace(microsecond=0), (release, generation, index_generation)


class GenerationWatch:
    """The content generation (id and finish time of the last import), read from the database only when it may have changed.

    An import on this node writes `instance/generation` once it commits, which every worker
    notices with one `stat`; an import on another node sharing the database is noticed by
    reading the database at most every `interval` seconds (0: on every request, exact).
    """

    def __init__(self, instance_path, interval: float):
        self.path = Path(instance_path) / GENERATION_FILE
        self.interval = interval
        self._seen = None
        self._value: tuple[int, dt.datetime | None] = (0, None)
        self._next_read = 0.0

    def current(self, read_last_import) -> tuple[int, dt.datetime | None]:
        """(generation, finished_at); `read_last_import()` gives the last ImportRun row (or None) when a read is due."""
        try:
            stat = os.stat(self.path)
            seen = (stat.st_mtime_ns, stat.st_ino, stat.st_size)
        except OSError:
            seen = None
        now = time.monotonic()
        if self.interval <= 0 or seen != self._seen or now >= self._next_read:
            last = read_last_import()
            self._value = (last.id, last.finished_at) if last else (0, None)
            self._seen, self._next_read = seen, now + self.interval
        return self._value


class CachedAnswers:
    """WSGI: answer a plain GET or HEAD from the shared page cache before Flask runs.

    A hit costs a `stat`, a `readlink` and one lookup in the cache file, so cached pages are
    served at close to the speed of a hello-world app. Conditional requests, misses and
    everything else go on to Flask, which renders, validates and fills the cache.
    """

    def __init__(self, app: Flask, wsgi_app):
        self.app = app
        self.wsgi_app = wsgi_app
        self.skip = (app.static_url_path + "/", "/healthz")

    def __call__(self, environ, start_response):
        if (
            environ.get("REQUEST_METHOD") in ("GET", "HEAD")
            and not environ.get("PATH_INFO", "").startswith(self.skip)
            and "HTTP_IF_NONE_MATCH" not in environ
            and "HTTP_IF_MODIFIED_SINCE" not in environ
            and len(environ.get("QUERY_STRING", "")) <= MAX_QUERY_STRING
        ):
            try:
                validators = validators_for(self.app, environ, self._read_last_import)
            except Exception:  # noqa: BLE001 - say the database is down: Flask answers with the right error
                return self.wsgi_app(environ, start_response)
            cached = self.app.extensions["nexus.page_cache"].get(validators[0])
            if cached is None:
                environ[VALIDATORS_KEY] = validators  # Flask need not compute them or look again
            else:
                headers, body = cached
                start_response("200 OK", [*headers, ("Content-Length", str(len(body)))])
                return [b""] if environ["REQUEST_METHOD"] == "HEAD" else [body]
        return self.wsgi_app(environ, start_response)

    def _read_last_import(self):
        """The last import's row, in an app context of its own (outside any request)."""
        with self.app.app_context():
            return db.session.connection().execute(LAST_IMPORT).first()


def _live_index_generation(instance_path) -> str:
    """The generation the live index was built from, from its name (`index.<generation>.<id>`).

    Not the directory itself: nodes that rebuilt the same generation give the same answers.
    """
    try:
        name = os.readlink(search.index_link(instance_path))
    except OSError:
        return ""
    parts = name.split(".")
    return parts[1] if len(parts) == 3 and parts[0] == "index" else name


def _answer_conditional():
    """Answer 304 at once when the client's copy is current; otherwise remember the validators."""
    if request.method not in ("GET", "HEAD") or request.endpoint in UNVALIDATED_ENDPOINTS or request.endpoint is None:
        return None
    looked_up = request.environ.get(VALIDATORS_KEY)
    etag, modified, state = looked_up or content_validators()
    g.nexus_validators = (etag, modified, state)
    g.nexus_generation = state[1]  # what queries.tag_graph() loads for
    if request.if_none_match:
        fresh = request.if_none_match.contains_weak(etag) or request.if_none_match.star_tag
    else:
        since = request.if_modified_since
        fresh = since is not None and modified <= since.replace(tzinfo=None)
    if fresh:
        response = Response(status=304)
        _set_validators(response, etag, modified)
        return response
    if looked_up:
        return None  # CachedAnswers found nothing under this ETag
    cached = current_app.extensions["nexus.page_cache"].get(etag)
    if cached is not None:
        return Response(cached[1], status=200, headers=cached[0])
    return None


def _set_validators(response: Response, etag: str, modified: dt.datetime) -> None:
    response.headers["ETag"] = quote_etag(etag, weak=True)
    response.last_modified = modified


def _page_cache_control(response: Response) -> None:
    """Pages and API answers: revalidate every time (a 304 is cheap), unless a max age is set.

    With the default max age 0 an import shows at once, as the README promises; operators
    who prefer fewer requests set `NEXUS_CACHE_MAX_AGE`.
    """
    max_age = current_app.config.get("CACHE_MAX_AGE", 0)
    if max_age:
        response.headers["Cache-Control"] = f"public, max-age={max_age}"
    else:
        response.headers["Cache-Control"] = "no-cache"


def _static_cache_control(response: Response) -> None:
    """A year and immutable when the URL's fingerprint matches the file; revalidate otherwise."""
    filename = (request.view_args or {}).get("filename", "")
    wanted = request.args.get(FINGERPRINT_ARG)
    if response.status_code in (200, 304) and wanted and wanted == _state().static_hash(filename):
        response.headers["Cache-Control"] = f"public, max-age={STATIC_MAX_AGE}, immutable"
        response.expires = None
    else:
        response.headers["Cache-Control"] = "no-cache"


CSP_HEADER = "; ".join(f"{directive} {sources}" for directive, sources in CONTENT_SECURITY_POLICY.items())


def _add_headers(response: Response) -> Response:
    """Security headers on every answer; caching headers suited to each kind of answer."""
    response.headers.setdefault("Content-Security-Policy", CSP_HEADER)
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if request.is_secure:
        response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
    if request.endpoint == "static":
        _static_cache_control(response)
    elif request.endpoint == "health.healthz":
        response.headers["Cache-Control"] = "no-store"
    elif "Cache-Control" not in response.headers:
        validators = g.get("nexus_validators")
        if validators and response.status_code == 200 and "ETag" not in response.headers:
            _set_validators(response, *validators[:2])
            _page_cache_control(response)
            _keep(response, validators)
        else:
            _page_cache_control(response)
    return response


def _keep(response: Response, validators: tuple) -> None:
    """Store a freshly rendered answer in the page cache the node's workers share."""
    cache = current_app.extensions["nexus.page_cache"]
    if (
        not cache.max_bytes
        or request.method != "GET"
        or response.direct_passthrough
        or not response.is_sequence
        or "Set-Cookie" in response.headers
        or "Vary" in response.headers
    ):
        return
    headers = [(k, v) for k, v in response.headers.items() if k != "Content-Length"]
    cache.put(validators[0], "|".join(map(str, validators[2])), headers, response.get_data())


def _fingerprint_static_url(endpoint: str, values: dict) -> None:
    """`url_for('static', filename=...)` gains `?v=<content hash>` for long-lived caching."""
    if endpoint == "static" and FINGERPRINT_ARG not in values and "filename" in values:
        fingerprint = _state().static_hash(values["filename"])
        if fingerprint:
            values[FINGERPRINT_ARG] = fingerprint
