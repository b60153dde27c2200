"""Large imports parse and render in one process per core: the result is the one a single process gives."""

from __future__ import annotations

import re
import threading

import pytest
from sqlalchemy import select

from portal import processes
from portal.content import ContentError, ParsedEntry
from portal.models import Entry, db

from .conftest import do_import, write_entry

COUNT = 230  # above processes.MIN_PARALLEL


def write_corpus(root):
    for i in range(COUNT):
        links = f"See [the next one](e{i + 1}.md), [[e{i + 2}]] and [nothing](missing.md)."
        body = f"---\ntitle: Entry {i}\ntags: [t{i % 7}]\n---\n# Part {i}\n\n{links}\n\n```python\nx = {i}\n```\n"
        write_entry(root, f"notes/e{i}.md", body)
    write_entry(root, "notes/broken.md", "---\ntitle: [unclosed\n---\nBody\n")
    write_entry(root, "notes/bad-kind.md", "---\nkind: spaceship\n---\nBody\n")


def snapshot(app):
    with app.app_context():
        rows = db.session.execute(
            select(Entry.slug, Entry.title, Entry.html, Entry.text, Entry.link_keys, Entry.toc).order_by(Entry.slug)
        ).all()
        db.session.remove()
    return [tuple(row) for row in rows]


@pytest.fixture
def corpus(tmp_path):
    root = tmp_path / "many"
    write_corpus(root)
    return root


def test_parallel_import_matches_a_single_process(make_app, corpus, tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(processes.os, "cpu_count", lambda: 2)  # parallel even on a one-core machine
    caplog.set_level("INFO", logger="portal")
    # Two databases to compare, whatever backend the suite runs on.
    parallel_app = make_app(corpus, instance="parallel", SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path}/p.sqlite3")
    parallel = do_import(parallel_app, corpus)
    assert re.search(r"parsed 232 files in [2-9] processes", caplog.text)
    assert re.search(r"rendered 230 entries in [2-9] processes", caplog.text)
    if threading.active_count() == 1:  # Whoosh forks its writers: only without other threads (see process_count)
        assert re.search(r"230 documents in [\d.]+s \([2-9] processes\)", caplog.text)
    monkeypatch.setattr(processes, "MIN_PARALLEL", 10**9)
    serial_app = make_app(corpus, instance="serial", SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path}/s.sqlite3")
    serial = do_import(serial_app, corpus)

    assert sorted(map(str, parallel.errors)) == sorted(map(str, serial.errors))
    assert len(parallel.errors) == 2 and len(parallel.added) == COUNT
    assert sorted(parallel.warnings) == sorted(serial.warnings)
    assert snapshot(parallel_app) == snapshot(serial_app)
    for app in (parallel_app, serial_app):
        body = app.test_client().get("/api/search?q=part&per_page=1").get_json()
        assert body["total"] == COUNT


def test_pool_processes_are_spawned_when_other_threads_run(corpus):
    # Forking a process that runs other threads can copy held locks; spawn is used then.
    files = [(p.relative_to(corpus).as_posix(), p.read_bytes()) for p in sorted(corpus.rglob("*.md"))]
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        assert processes._context().get_start_method() == "spawn"
        results = processes.parse_entries(files, folder_tags=True)
    finally:
        stop.set()
        other.join()
    assert sum(isinstance(r, ParsedEntry) for r in results) == COUNT
    errors = [r for r in results if isinstance(r, ContentError)]
    assert [e.path for e in errors] == ["notes/bad-kind.md", "notes/broken.md"]
    assert all(e.line >= 1 and e.reason for e in errors)


def test_small_imports_stay_in_one_process(monkeypatch):
    monkeypatch.setattr(processes, "_map", lambda *args: pytest.fail("no pool for a few files"))
    assert processes.render_entries([], {}) == {}
    assert processes.parse_entries([("a.md", b"# A\n")], folder_tags=True)[0].title == "A"
    assert processes.process_count(processes.MIN_PARALLEL - 1) == 1


def test_large_sites_record_each_spelling_word_once_per_block():
    from portal.search.analysis import thin_spelling

    documents = [{"spell": "redis celery"}, {"spell": "redis django"}, {"spell": "redis"}, {"spell": "redis"}]
    small = list(thin_spelling([dict(d) for d in documents], count=199))  # up to 199 entries: every word
    assert [d["spell"] for d in small] == ["redis celery", "redis django", "redis", "redis"]
    large = list(thin_spelling([dict(d) for d in documents], count=300))  # blocks of 3 documents
    assert [d["spell"] for d in large] == ["redis celery", "django", "", "redis"]
