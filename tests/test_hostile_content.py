"""Hostile content: pathological files next to good notes cost their budget, are named with a reason, and
every good note still imports, in `flask import` and in gunicorn's first start. A database that cannot be
written is one line, not a traceback.
"""

from __future__ import annotations

import os
import re
import signal
import time

import pytest
import sqlalchemy
from sqlalchemy import event, select

from portal import processes, sandbox
from portal.content import parse_bytes
from portal.models import Entry, db
from portal.rendering import render

from .conftest import SAMPLE_ENTRIES, do_import, write_entry
from .servers import fetch, gunicorn, nexus_env

GOOD = {path.removesuffix(".md") for path in SAMPLE_ENTRIES}

#: Real inputs that stopped every import with a RecursionError (issue 21). Each is an error of its
#: file whether the renderer recurses into it or refuses it first.
PATHOLOGICAL = {
    "deep-list.md": "- " * 600 + "x\n",  # about 1 KB: stopped every import and gunicorn's start
    "deep-front-matter.md": "---\nx: " + "[" * 1000 + "]" * 1000 + "\n---\nBody.\n",  # PyYAML recurses
    "deep-admonitions.md": "".join("    " * i + "!!! note\n" for i in range(500)) + "    " * 500 + "x\n",
}


def slugs(app) -> set[str]:
    with app.app_context():
        found = set(db.session.scalars(select(Entry.slug)))
        db.session.remove()
        return found


def test_pathological_files_are_named_and_every_good_note_imports(make_app, content_dir):
    for name, text in PATHOLOGICAL.items():
        write_entry(content_dir, f"bad/{name}", text)
    app = make_app(content_dir, MAX_RENDER_SECONDS=5)
    report = do_import(app, content_dir)
    assert slugs(app) == GOOD
    assert sorted(e.path for e in report.errors) == sorted(f"bad/{name}" for name in PATHOLOGICAL)
    for error in report.errors:
        assert error.line >= 1 and error.reason and "\n" not in str(error)


# Inputs no parser should take long over are not guaranteed to exist once the renderer is fixed, so
# the budgets are tested with a parser and a renderer that misbehave on a marker in the file. They
# reach the workers by fork, which copies this process with its patches.


def _misbehave(text: str) -> None:
    if "SLEEP-FOREVER" in text:
        time.sleep(3600)
    if "SPIN" in text:
        while True:
            pass
    if "ALLOCATE" in text:
        bytearray(8 * 1024**3)
    if "SEGFAULT" in text:
        os.kill(os.getpid(), signal.SIGSEGV)


def _parse_bytes(relative, raw, **kwargs):
    _misbehave(raw.decode("utf-8", "replace").split("---")[-1].split("\n", 1)[0])  # a marker in the title line
    return parse_bytes(relative, raw, **kwargs)


def _render(body, **kwargs):
    _misbehave(body)
    return render(body, **kwargs)


@pytest.fixture
def misbehaving(monkeypatch):
    """Parsing and rendering that misbehave on markers, in forked workers."""
    monkeypatch.setattr(processes, "parse_bytes", _parse_bytes)
    monkeypatch.setattr(processes, "render", _render)
    monkeypatch.setattr(sandbox, "_start_method", lambda: "fork")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        # A parser that never ends (e.g. a quadratic pattern on a large input) is stopped at its deadline.
        ("# SLEEP-FOREVER\n\nx\n", r"took more than 3 s to parse and render; stopped \(NEXUS_MAX_RENDER_SECONDS\)"),
        ("# Fine title\n\nSPIN\n", r"took more than 3 s to parse and render"),  # the renderer, busy
        ("# Fine title\n\nALLOCATE\n", r"needs more than 256 MB of memory to render \(NEXUS_MAX_RENDER_MB\)"),
        ("# SEGFAULT\n\nx\n", r"the process rendering it stopped \(signal SIGSEGV\)"),  # C code that crashes
    ],
)
def test_a_file_over_its_budget_is_stopped_and_keeps_its_last_good_version(
    make_app, content_dir, misbehaving, text, reason
):
    write_entry(content_dir, "notes/runaway.md", "# Runaway\n\nFine at first.\n")
    app = make_app(content_dir, MAX_RENDER_SECONDS=3, MAX_RENDER_MB=256)  # 3 s: a good note on a busy machine
    assert do_import(app, content_dir).errors == []
    write_entry(content_dir, "notes/runaway.md", text)
    write_entry(content_dir, "notes/new.md", "# New\n\nAdded beside it.\n")
    report = do_import(app, content_dir)
    assert [str(e) for e in report.errors] == [f"notes/runaway.md:1: {e.reason}" for e in report.errors]
    assert len(report.errors) == 1 and re.search(reason, report.errors[0].reason), report.errors
    assert report.added == ["notes/new.md"]
    assert slugs(app) == GOOD | {"notes/runaway", "notes/new"}
    page = app.test_client().get("/entries/notes/runaway").get_data(as_text=True)
    assert "Fine at first." in page  # its last good version stays on the site


@pytest.mark.slow
def test_gunicorn_starts_on_a_folder_with_pathological_files(content_dir, tmp_path):
    # gunicorn's master imports an empty site before it forks: one bad file used to stop it.
    for name, text in PATHOLOGICAL.items():
        write_entry(content_dir, name, text)
    env = nexus_env(tmp_path / "instance", content_dir, NEXUS_MAX_RENDER_SECONDS="5")
    log = tmp_path / "gunicorn.log"
    with gunicorn(env, workers=1, log_path=log) as base:
        status, body, _ = fetch(base + "/healthz")
        assert status == 200 and f'"entries":{len(GOOD)}' in body.replace(" ", "")
        assert fetch(base + "/entries/technologies/celery")[0] == 200
        assert fetch(base + "/entries/deep-list")[0] == 404
    assert f"Nexus start-up: imported {len(GOOD)} entries ({len(PATHOLOGICAL)} errors)" in log.read_text()


def _read_only(url: str | None, instance) -> str:
    """The URL of the same database, opened read-only."""
    if url is None:
        return f"sqlite:///file:{instance}/nexus.sqlite3?mode=ro&uri=true"
    return url.replace("options=", "options=-cdefault_transaction_read_only%3Don%20")


@pytest.mark.parametrize("problem", ["read-only", "full"])
def test_a_database_that_cannot_be_written_is_one_line_and_nothing_is_half_written(
    make_app, content_dir, database_url, tmp_path, problem
):
    app = make_app(content_dir)
    assert do_import(app, content_dir).errors == []
    write_entry(content_dir, "technologies/redis.md", "# Redis 8\n\nChanged.\n")
    write_entry(content_dir, "notes/new.md", "# New\n\n" + "Added words. " * 20_000)  # the file must grow
    (content_dir / "concepts/caching.md").unlink()
    if problem == "read-only":
        broken = make_app(content_dir, SQLALCHEMY_DATABASE_URI=_read_only(database_url, tmp_path / "instance"))
    elif database_url is None:
        broken = make_app(content_dir)
        with broken.app_context():  # SQLite's own limit: the file cannot grow by one page
            db.engine.dispose()
            event.listen(db.engine, "connect", _no_room)
    else:
        broken = make_app(content_dir)
        with broken.app_context():  # as close to a full disk as a test gets: the writes fail
            db.engine.dispose()
            event.listen(db.engine, "connect", _read_only_session)
    result = broken.test_cli_runner().invoke(args=["import"])
    assert result.exit_code == 1
    assert re.fullmatch(r"Error: cannot write to the database: [^\n]+\n", result.output), result.output
    assert slugs(app) == GOOD  # nothing of the changes was written
    with app.app_context():
        assert db.session.scalar(select(Entry.title).where(Entry.slug == "technologies/redis")) == "Redis"
        db.session.remove()


def _no_room(connection, _record):
    cursor = connection.cursor()
    pages = cursor.execute("PRAGMA page_count").fetchone()[0]
    cursor.execute(f"PRAGMA max_page_count = {pages}")
    cursor.close()


def _read_only_session(connection, _record):
    with connection.cursor() as cursor:
        cursor.execute("SET default_transaction_read_only = on")
    connection.commit()


def test_a_database_error_that_is_not_about_writing_is_not_hidden(make_app, content_dir, monkeypatch):
    # Only a write that the database refuses becomes a one-line error; a bug keeps its traceback.
    app = make_app(content_dir)
    monkeypatch.setattr("portal.importer.write_changes", _integrity_error)
    result = app.test_cli_runner().invoke(args=["import"])
    assert isinstance(result.exception, sqlalchemy.exc.IntegrityError)


def _integrity_error(*args):
    raise sqlalchemy.exc.IntegrityError("INSERT", {}, Exception("UNIQUE constraint failed"))
