"""Fixtures in the flaskr style: a fresh app, instance folder and content folder per test."""

from __future__ import annotations

import contextlib
import gc
import os
import textwrap
import uuid
from pathlib import Path

import pytest
import sqlalchemy

from portal import create_app
from portal.config import import_settings
from portal.importer import import_content
from portal.models import db

PROJECT_ROOT = Path(__file__).resolve().parent.parent

# Read before the autouse fixture below clears NEXUS_* variables. When set (CI sets it), every
# database-touching test runs against PostgreSQL as well as SQLite.
POSTGRES_URL = os.environ.get("NEXUS_TEST_POSTGRES_URL")
if os.environ.get("NEXUS_REQUIRE_POSTGRES") == "1" and not POSTGRES_URL:
    raise RuntimeError("NEXUS_REQUIRE_POSTGRES=1 but NEXUS_TEST_POSTGRES_URL is not set")
BACKENDS = ["sqlite", "postgresql"] if POSTGRES_URL else ["sqlite"]


def pytest_collection_modifyitems(items):
    """Browser tests run last: their session server is a thread, and while a thread runs, every
    import's sandbox workers are spawned (a fresh interpreter each) instead of forked."""
    items.sort(key=lambda item: "browser" in item.keywords)


def pytest_terminal_summary(terminalreporter):
    """Say so when the suite ran without PostgreSQL, and how to include it."""
    if not POSTGRES_URL:
        terminalreporter.write_line(
            "PostgreSQL: not tested (NEXUS_TEST_POSTGRES_URL is not set). `make test` starts a throwaway "
            "cluster when PostgreSQL is installed: sudo scripts/system-deps.sh",
            yellow=True,
        )


SHIPPED_CONTENT = PROJECT_ROOT / "content"

# A small, hand-countable corpus used by many tests.
SAMPLE_ENTRIES = {
    "technologies/celery.md": """\
        ---
        title: Celery
        summary: Background tasks for Python with a message broker.
        kind: technology
        tags: [celery, python, redis]
        date: 2025-03-01
        ---
        Celery runs **background tasks** outside the request cycle. It needs a broker such as
        [Redis](redis.md) or RabbitMQ.

        ## Workers

        Start a worker with `celery -A proj worker -l info`.
        """,
    "technologies/redis.md": """\
        ---
        title: Redis
        summary: An in-memory data store used as a cache and a broker.
        kind: technology
        tags: [redis, caching]
        date: 2025-03-05
        ---
        Redis keeps data in memory. Use it for cache-aside caching with a TTL, and as a Celery broker.
        """,
    "concepts/caching.md": """\
        ---
        title: Caching strategies
        kind: concept
        tags: [caching, performance]
        date: 2025-02-10
        ---
        Cache-aside, write-through and TTLs. See [[redis]] for a concrete store.

        ## Invalidation

        The hard part is invalidation: delete the key when the row changes.
        """,
    "challenges/slow-reports.md": """\
        ---
        title: Slow report generation
        kind: challenge
        tags: [celery, django]
        date: 2025-04-01
        ---
        ## Challenge

        Generating a PDF report took 40 seconds inside a request and timed out.

        ## Solution

        Move it to a Celery task and poll for the result.
        """,
    "notes/plain-note.md": """\
        # A plain note without front matter

        This note has no front matter; its tag comes from its folder.
        """,
}

#: The sample entries' slugs, for tests that name them.
CELERY, REDIS, CACHING, REPORTS, NOTE = (
    "technologies/celery",
    "technologies/redis",
    "concepts/caching",
    "challenges/slow-reports",
    "notes/plain-note",
)


def write_entry(root: Path, relative: str, text: str) -> Path:
    """Write one Markdown file (dedented) under a content folder."""
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


@pytest.fixture(autouse=True)
def _thawed():
    """`flask import` freezes the collector's view of the process for good (portal/cli.py); a test must not."""
    yield
    gc.unfreeze()


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch):
    """No NEXUS_* setting of the developer's shell leaks into a test."""
    for name in list(os.environ):
        if name.startswith("NEXUS_"):
            monkeypatch.delenv(name)


@pytest.fixture
def content_dir(tmp_path) -> Path:
    """A content folder holding the sample entries."""
    root = tmp_path / "content"
    for relative, text in SAMPLE_ENTRIES.items():
        write_entry(root, relative, text)
    return root


@contextlib.contextmanager
def postgres_schema():
    """A fresh, empty PostgreSQL schema for one test: yields a database URL that uses it."""
    schema = "t_" + uuid.uuid4().hex[:12]
    admin = sqlalchemy.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f"CREATE SCHEMA {schema}")
    separator = "&" if "?" in POSTGRES_URL else "?"
    try:
        yield f"{POSTGRES_URL}{separator}options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()


@pytest.fixture(params=BACKENDS)
def database_url(request):
    """None for SQLite in the instance folder; a throwaway PostgreSQL schema otherwise."""
    if request.param == "sqlite":
        yield None
    else:
        with postgres_schema() as url:
            yield url


@pytest.fixture
def make_app(tmp_path, database_url):
    """Build apps with a temporary instance folder and any extra settings."""
    apps = []

    def _make(content: Path | None = None, instance: str = "instance", **settings):
        config = {
            "TESTING": True,
            "SECRET_KEY": "test",
            "INSTANCE_PATH": str(tmp_path / instance),
            "CONTENT_DIR": str(content or tmp_path / "content"),
            "INDEX_CHECK_SECONDS": 0,
            "PAGE_CACHE_MB": 0,  # tests change rows behind the importer's back; test_http.py turns it on
            # Test content folders are in no git repository, where git dates only add a warning;
            # tests/test_git_dates_import.py turns them on.
            "GIT_DATES": False,
        }
        if database_url:
            config["SQLALCHEMY_DATABASE_URI"] = database_url
        config.update(settings)
        app = create_app(config)
        apps.append(app)
        return app

    yield _make
    for app in apps:  # close searchers' files, and connections so the schema can be dropped
        app.extensions["nexus.searchers"].close()
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


@pytest.fixture
def app(make_app, content_dir):
    """An app over the sample content, not yet imported."""
    return make_app(content_dir)


@pytest.fixture
def imported_app(app, content_dir):
    """An app whose sample content has been imported and indexed."""
    with app.app_context():
        report = import_content(content_dir, app.instance_path, **import_settings(app.config))
        assert not report.errors, report.errors
        db.session.remove()
    return app


@pytest.fixture
def client(imported_app):
    """A test client over the imported sample content."""
    return imported_app.test_client()


@pytest.fixture
def runner(app):
    """A CLI runner for the app."""
    return app.test_cli_runner()


def do_import(app, content: Path):
    """Import a folder in the app's context and return the report."""
    with app.app_context():
        report = import_content(content, app.instance_path, **import_settings(app.config))
        db.session.remove()
        return report
