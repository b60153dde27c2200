"""HTTP caching: validators, the page cache a node's workers share, and fingerprinted static URLs.

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
from pathlib import Path
from typing import NamedTuple

from flask import Flask, Response, current_app, request
from werkzeug.exceptions import SecurityError
from werkzeug.http import quote_etag
from werkzeug.security import safe_join
from werkzeug.wsgi import get_current_url, get_host

from . import config
from .generation import REQUEST_KEY, GenerationWatch, read_last_import, request_generation
from .models import db
from .page_cache import PageCache
from .search import store
from .security import MAX_QUERY_STRING

STATIC_MAX_AGE = 365 * 24 * 3600
#: Endpoints whose answers do not follow the content generation.
UNVALIDATED_ENDPOINTS = {"static", "health.healthz"}
FINGERPRINT_ARG = "v"
PAGE_CACHE_FILE = "page-cache.sqlite3"
#: WSGI environ keys: this request's validators, and whether its answer may be stored.
VALIDATORS_KEY = "nexus.validators"
KEEP_KEY = "nexus.keep"


class Validators(NamedTuple):
    """What an answer's `ETag` and `Last-Modified` are made of."""

    etag: str
    modified: dt.datetime
    state: tuple  # (release, generation, live index directory): answers of other states are dropped


def register(app: Flask) -> None:
    """Install validators, the page cache and static fingerprints."""
    megabytes = app.config["PAGE_CACHE_MB"]
    app.extensions["nexus.http"] = _Release(app)
    app.extensions["nexus.generation"] = GenerationWatch(app.instance_path, float(app.config["INDEX_CHECK_SECONDS"]))
    app.extensions["nexus.page_cache"] = PageCache(
        Path(app.instance_path) / PAGE_CACHE_FILE, int(megabytes * 1024 * 1024)
    )
    if megabytes:
        app.wsgi_app = CachedAnswers(app, app.wsgi_app)
    app.before_request(_answer_conditional)
    app.after_request(_add_cache_headers)
    app.url_defaults(_fingerprint_static_url)


class _Release:
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


def content_validators() -> Validators:
    """This request's validators, computed once (the page cache's middleware may have done it)."""
    environ = request.environ
    if VALIDATORS_KEY not in environ:
        environ[VALIDATORS_KEY] = validators_for(current_app, environ, request_generation())
    return environ[VALIDATORS_KEY]


def validators_for(app: Flask, environ: dict, generation: tuple[int, dt.datetime | None]) -> Validators:
    """The validators of the answer to the request `environ` describes, under content `generation`.

    Derived from the release, the last committed import (id and time), the live index
    directory and the full request URL. An answer is never older than its validators: the
    generation is read before the view's queries run.
    """
    release, release_time = app.extensions["nexus.http"].current_release()
    number, finished = generation
    index = live_index_identity(app.instance_path)
    key = f"{release}|{number}|{index}|{get_current_url(environ)}"
    etag = hashlib.blake2b(key.encode(), digest_size=12).hexdigest()
    modified = max(finished, release_time) if finished else release_time
    return Validators(etag, modified.replace(microsecond=0), (release, number, index))


class CachedAnswers:
    """WSGI: answer a plain GET or HEAD from the shared page cache before Flask runs, and store what Flask rendered.

    A hit costs a `stat`, a `readlink` and one lookup in the cache file, so cached pages are
    served at close to the speed of a hello-world app. Conditional requests, misses and
    everything else go on to Flask, which renders and validates. An answer is stored here,
    as it leaves the app, so it is kept with every header every hook added.
    """

    def __init__(self, app: Flask, wsgi_app):
        self.app = app
        self.wsgi_app = wsgi_app
        self.skip = (app.static_url_path + "/", "/healthz")

    def __call__(self, environ, start_response):
        if not self._storable(environ):
            return self.wsgi_app(environ, start_response)
        cache = self.app.extensions["nexus.page_cache"]
        if "HTTP_IF_NONE_MATCH" not in environ and "HTTP_IF_MODIFIED_SINCE" not in environ:
            try:
                with self.app.app_context():
                    generation = self.app.extensions["nexus.generation"].current(read_last_import)
                    db.session.remove()
                validators = validators_for(self.app, environ, generation)
            except Exception:  # noqa: BLE001 - say the database is down: Flask answers with the right error
                return self.wsgi_app(environ, start_response)
            cached = cache.get(validators.etag)
            if cached is not None:
                headers, body = cached
                start_response("200 OK", [*headers, ("Content-Length", str(len(body)))])
                return [b""] if environ["REQUEST_METHOD"] == "HEAD" else [body]
            # Flask need not read the generation or compute the validators again.
            environ[REQUEST_KEY], environ[VALIDATORS_KEY] = generation, validators
        sent: list = []

        def remember(status, headers, exc_info=None):
            sent[:] = [status, headers]
            return start_response(status, headers, exc_info)

        body = self.wsgi_app(environ, remember)
        validators = environ.get(VALIDATORS_KEY)
        if not environ.get(KEEP_KEY) or validators is None or not sent or not sent[0].startswith("200 "):
            return body
        try:
            chunks = list(body)
        finally:
            if hasattr(body, "close"):
                body.close()
        headers = [(k, v) for k, v in sent[1] if k.lower() != "content-length"]
        cache.put(validators.etag, "|".join(map(str, validators.state)), headers, b"".join(chunks))
        return chunks

    def _storable(self, environ) -> bool:
        """A GET or HEAD of a page or API answer for an allowed host: looked up, and stored once rendered."""
        return (
            environ.get("REQUEST_METHOD") in ("GET", "HEAD")
            and not environ.get("PATH_INFO", "").startswith(self.skip)
            and len(environ.get("QUERY_STRING", "")) <= MAX_QUERY_STRING
            and self._allowed_host(environ)
        )

    def _allowed_host(self, environ) -> bool:
        """Whether the host is one NEXUS_ALLOWED_HOSTS allows: others go to Flask, which refuses them."""
        hosts = self.app.config["TRUSTED_HOSTS"]
        if not hosts:
            return True
        try:
            get_host(environ, hosts)
        except SecurityError:
            return False
        return True


def live_index_identity(instance_path) -> str:
    """The live index directory's name (`index.<generation>.<id>`), or "" when there is no usable one.

    The directory, not only its generation: an index rebuilt for the same generation (`flask
    reindex` after the index went missing or broke) is a new directory, so answers computed
    without it, or with the broken one, are never served once it is live. Each node builds its
    own index, so a node revalidating another node's ETag answers 200 rather than 304.
    """
    link = store.index_link(instance_path)
    try:
        name = os.readlink(link)
    except OSError:
        return ""
    return name if os.path.isdir(link.parent / name) else ""


def _answer_conditional():
    """Answer 304 at once when the client's copy is current, or from the page cache when it holds the answer."""
    if request.method not in ("GET", "HEAD") or request.endpoint in UNVALIDATED_ENDPOINTS or request.endpoint is None:
        return None
    looked_up = VALIDATORS_KEY in request.environ
    etag, modified, _state = content_validators()
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
    max_age = current_app.config["CACHE_MAX_AGE"]
    response.headers["Cache-Control"] = f"public, max-age={max_age}" if max_age else "no-cache"


def _static_cache_control(response: Response) -> None:
    """A year and immutable when the URL's fingerprint matches the file; revalidate otherwise."""
    filename = (request.view_args or {}).get("filename", "")
    wanted = request.args.get(FINGERPRINT_ARG)
    if response.status_code in (200, 304) and wanted and wanted == _release().static_hash(filename):
        response.headers["Cache-Control"] = f"public, max-age={STATIC_MAX_AGE}, immutable"
        response.expires = None
    else:
        response.headers["Cache-Control"] = "no-cache"


def not_kept(response: Response) -> Response:
    """Mark a degraded answer (one computed without the search index): no cache, browser or page cache, keeps it."""
    response.headers["Cache-Control"] = "no-store"
    return response


def _add_cache_headers(response: Response) -> Response:
    """Caching headers suited to each kind of answer; a fresh page may be stored in the page cache.

    An answer that sets its own `Cache-Control` (see `not_kept`) gets no validators and is not stored.
    """
    if request.endpoint == "static":
        _static_cache_control(response)
    elif request.endpoint == "health.healthz":
        response.headers["Cache-Control"] = "no-store"
    elif "Cache-Control" not in response.headers:
        validators = request.environ.get(VALIDATORS_KEY)
        if validators and response.status_code == 200 and "ETag" not in response.headers:
            _set_validators(response, validators.etag, validators.modified)
            _page_cache_control(response)
            request.environ[KEEP_KEY] = _may_keep(response)
        else:
            _page_cache_control(response)
    return response


def _may_keep(response: Response) -> bool:
    """Whether the page cache may store this answer (CachedAnswers stores it as it leaves the app).

    Never while there is no usable search index: search, suggestions and related entries
    would be missing from the answer. Views mark other degraded answers with `not_kept`.
    """
    return (
        request.method == "GET"
        and request.environ[VALIDATORS_KEY].state[2] != ""
        and not response.direct_passthrough
        and response.is_sequence
        and "Set-Cookie" not in response.headers
        and "Vary" not in response.headers
    )


def _release() -> _Release:
    return current_app.extensions["nexus.http"]


def _fingerprint_static_url(endpoint: str, values: dict) -> None:
    """`url_for('static', filename=...)` gains `?v=<content hash>` for long-lived caching."""
    if endpoint == "static" and FINGERPRINT_ARG not in values and "filename" in values:
        fingerprint = _release().static_hash(values["filename"])
        if fingerprint:
            values[FINGERPRINT_ARG] = fingerprint
