"""HTTP behaviour every answer shares: security headers, caching validators, proxies and limits.

Pages and API answers change only when an import commits or a new index is swapped in
(or when the code and templates change), so their `ETag` is a hash of those states and
the request URL; a conditional request is answered 304 before any view runs, and each
worker keeps the answers it rendered under that ETag (a bounded page cache), so a page is
rendered once per worker and import. Static files get a content fingerprint in their URL
(`?v=<hash>`) and are cached for a year only when the fingerprint matches the file served.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import threading
from collections import OrderedDict
from pathlib import Path

from flask import Flask, Response, current_app, g, request
from sqlalchemy import select
from werkzeug.exceptions import RequestURITooLarge
from werkzeug.http import quote_etag
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.security import safe_join

from . import config, search
from .models import ImportRun, db

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
#: Default page cache per worker when NEXUS_PAGE_CACHE_MB is not set (off under TESTING).
PAGE_CACHE_MB = 32

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
    if trusted < 0:
        raise RuntimeError(f"NEXUS_TRUSTED_PROXIES must be 0 or more, got {trusted}")
    if trusted:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=trusted, x_proto=trusted, x_host=trusted, x_port=trusted, x_prefix=trusted)  # fmt: skip
    if app.config.get("CACHE_MAX_AGE", 0) < 0:
        raise RuntimeError("NEXUS_CACHE_MAX_AGE must be 0 or more")
    app.config.setdefault("MAX_CONTENT_LENGTH", MAX_CONTENT_LENGTH)
    megabytes = app.config.get("PAGE_CACHE_MB")
    if megabytes is None:
        megabytes = 0 if app.testing else PAGE_CACHE_MB  # tests change rows behind the importer's back
    if megabytes < 0:
        raise RuntimeError("NEXUS_PAGE_CACHE_MB must be 0 or more")
    app.extensions["nexus.http"] = _State(app)
    app.extensions["nexus.page_cache"] = PageCache(int(megabytes * 1024 * 1024))
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


class PageCache:
    """Answers this worker rendered, keyed by their ETag (content state and URL), bounded in bytes.

    A key names one state of the content, so an entry is never stale: it stops being asked
    for when an import or a new index changes the state, and the whole cache is dropped then.
    """

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self.size = 0
        self.hits = self.misses = 0
        self._answers: OrderedDict[str, tuple[bytes, list]] = OrderedDict()
        self._state = None
        self._lock = threading.Lock()

    def get(self, key: str, state) -> tuple[bytes, list] | None:
        """The stored body and headers for `key`, or None."""
        if not self.max_bytes:
            return None
        with self._lock:
            if state != self._state:
                self._clear(state)
            answer = self._answers.get(key)
            if answer is None:
                self.misses += 1
                return None
            self._answers.move_to_end(key)
            self.hits += 1
            return answer

    def put(self, key: str, state, body: bytes, headers: list) -> None:
        """Keep an answer, evicting the least recently used beyond the byte budget."""
        cost = len(body) + 512
        if cost > self.max_bytes // 8:
            return
        with self._lock:
            if state != self._state or key in self._answers:
                return  # the content changed while this answer was rendered, or a twin stored it first
            self._answers[key] = (body, headers)
            self.size += cost
            while self.size > self.max_bytes:
                _, (old, _) = self._answers.popitem(last=False)
                self.size -= len(old) + 512

    def _clear(self, state) -> None:
        self._answers.clear()
        self.size = 0
        self._state = state


def _state() -> _State:
    return current_app.extensions["nexus.http"]


def _limit_query_string():
    """414 for an oversized query string, before any other work."""
    if len(request.query_string) > MAX_QUERY_STRING:
        raise RequestURITooLarge(f"The query string is longer than {MAX_QUERY_STRING} bytes.")


def content_validators() -> tuple[str, dt.datetime, tuple]:
    """(ETag value, Last-Modified, content state) of this request's answer under the current content.

    Derived from the release, the last committed import (id and time), the live index
    directory and the full request URL. Read before the view runs, in the same database
    transaction as the view's queries, so an answer is never older than its validators.
    """
    release, release_time = _state().current_release()
    # Core rather than ORM: this runs on every request, even those answered from the page cache.
    last = db.session.connection().execute(LAST_IMPORT).first()
    generation, finished = (last.id, last.finished_at) if last else (0, None)
    index_generation = _live_index_generation(current_app.instance_path)
    key = f"{release}|{generation}|{index_generation}|{request.url}"
    etag = hashlib.blake2b(key.encode(), digest_size=12).hexdigest()
    modified = max(finished, release_time) if finished else release_time
    return etag, modified.replace(microsecond=0), (release, generation, index_generation)


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
    etag, modified, state = content_validators()
    g.nexus_validators = (etag, modified, state)
    if request.if_none_match:
        fresh = request.if_none_match.contains_weak(etag) or request.if_none_match.star_tag
    else:
        since = request.if_modified_since
        fresh = since is not None and modified <= since.replace(tzinfo=None)
    if fresh:
        response = Response(status=304)
        _set_validators(response, etag, modified)
        return response
    cached = current_app.extensions["nexus.page_cache"].get(etag, state)
    if cached is not None:
        return Response(cached[0], status=200, headers=cached[1])
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
    """Store a freshly rendered answer in this worker's page cache."""
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
    cache.put(validators[0], validators[2], response.get_data(), headers)


def _fingerprint_static_url(endpoint: str, values: dict) -> None:
    """`url_for('static', filename=...)` gains `?v=<content hash>` for long-lived caching."""
    if endpoint == "static" and FINGERPRINT_ARG not in values and "filename" in values:
        fingerprint = _state().static_hash(values["filename"])
        if fingerprint:
            values[FINGERPRINT_ARG] = fingerprint
