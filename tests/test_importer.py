"""The importer: add, update, delete, skip unchanged, keep good versions, links and tags."""

from __future__ import annotations

import gc

import pytest
from sqlalchemy import select

from portal import collector, importer, locking, writer
from portal.models import Entry, ImportRun, Link, Tag, db
from portal.search import store

from .conftest import do_import, write_entry


def entries(app) -> dict[str, Entry]:
    with app.app_context():
        rows = db.session.scalars(select(Entry)).all()
        result = {e.slug: e for e in rows}
        for entry in rows:  # load what tests read after the session ends
            _ = [t.slug for t in entry.tags]
        db.session.expunge_all()
        return result


def tag_slugs(app) -> set[str]:
    with app.app_context():
        return set(db.session.scalars(select(Tag.slug)))


def test_first_import_adds_everything(app, content_dir):
    report = do_import(app, content_dir)
    assert sorted(report.added) == sorted(
        [
            "challenges/slow-reports.md",
            "concepts/caching.md",
            "notes/plain-note.md",
            "technologies/celery.md",
            "technologies/redis.md",
        ]
    )
    assert report.errors == [] and report.warnings == []
    assert report.generation == 1
    found = entries(app)
    assert found["notes/plain-note"].title == "A plain note without front matter"
    assert [t.slug for t in found["notes/plain-note"].tags] == ["notes"]
    # A summary is derived from the first paragraph when front matter has none.
    assert found["concepts/caching"].summary.startswith("Cache-aside, write-through and TTLs.")
    assert "<strong>background tasks</strong>" in found["technologies/celery"].html


def test_second_import_changes_nothing(app, content_dir):
    do_import(app, content_dir)
    live_before = store.live_index_dir(app.instance_path)
    report = do_import(app, content_dir)
    assert report.added == report.updated == report.deleted == []
    assert len(report.unchanged) == 5
    assert report.generation == 1
    assert not report.indexed
    assert store.live_index_dir(app.instance_path) == live_before


REDIS_CHANGED = "---\ntitle: Redis 7\ntags: [redis]\n---\nNew text.\n"
REDIS_BROKEN = "---\ntitle: [oops\n---\nBroken edit.\n"
YAML_ERROR = "technologies/redis.md:2: invalid YAML front matter: expected ',' or ']', but got '<stream end>'"


@pytest.mark.parametrize(
    ("edits", "reported", "titles"),
    [
        pytest.param(
            {"technologies/redis.md": REDIS_CHANGED},
            {"updated": ["technologies/redis.md"]},
            {"technologies/redis": "Redis 7"},
            id="a changed file is updated",
        ),
        pytest.param(
            {"notes/plain-note.md": None},
            {"deleted": ["notes/plain-note.md"]},
            {"notes/plain-note": None},
            id="a removed file is deleted",
        ),
        pytest.param(
            {"technologies/redis.md": REDIS_BROKEN},
            {"errors": [YAML_ERROR], "updated": []},
            {"technologies/redis": "Redis"},
            id="a broken edit keeps the last good version",
        ),
        pytest.param(
            {"technologies/redis.md": "---\ndraft: true\n---\nHidden.\n"},
            {"deleted": ["technologies/redis.md"]},
            {"technologies/redis": None},
            id="marking an entry as a draft takes it down",
        ),
        pytest.param(
            {"zz/other.md": "---\nslug: technologies/redis\n---\nImpostor.\n"},
            {"errors": ["zz/other.md:2: duplicate slug 'technologies/redis' (also used by technologies/redis.md)"]},
            {"technologies/redis": "Redis"},
            id="a duplicate slug keeps the first owner",
        ),
        pytest.param(
            {"technologies/redis.md": "---\ntitle: Redis\nslug: stores/redis\n---\nMoved.\n"},
            # Entries linking to it are rendered again so their links follow the move.
            {"updated": ["concepts/caching.md", "technologies/celery.md", "technologies/redis.md"]},
            {"stores/redis": "Redis", "technologies/redis": None},
            id="moving a slug frees the old one",
        ),
    ],
)
def test_a_second_import_follows_each_edit(app, content_dir, edits, reported, titles):
    do_import(app, content_dir)
    for relative, text in edits.items():
        if text is None:
            (content_dir / relative).unlink()
        else:
            write_entry(content_dir, relative, text)
    report = do_import(app, content_dir)
    for name, expected in reported.items():
        assert sorted(str(item) for item in getattr(report, name)) == sorted(expected), name
    found = entries(app)
    for slug, title in titles.items():
        assert (found[slug].title if slug in found else None) == title, slug
    # The search index follows the database: a new generation whenever something changed.
    assert store.check_index(app.instance_path) == (report.generation, len(found))
    assert report.generation == (2 if report.changed else 1)


def test_a_changed_file_shows_its_new_text(app, content_dir):
    do_import(app, content_dir)
    write_entry(content_dir, "technologies/redis.md", REDIS_CHANGED)
    do_import(app, content_dir)
    assert "New text." in entries(app)["technologies/redis"].html


def test_a_deleted_file_takes_its_orphan_tags_with_it(app, content_dir):
    do_import(app, content_dir)
    (content_dir / "notes/plain-note.md").unlink()
    do_import(app, content_dir)
    assert "notes" not in tag_slugs(app)


def test_fixing_a_broken_edit_imports_it(app, content_dir):
    do_import(app, content_dir)
    write_entry(content_dir, "technologies/redis.md", REDIS_BROKEN)
    do_import(app, content_dir)
    write_entry(content_dir, "technologies/redis.md", "---\ntitle: Redis fixed\n---\nGood again.\n")
    report = do_import(app, content_dir)
    assert report.updated == ["technologies/redis.md"] and report.errors == []
    assert entries(app)["technologies/redis"].title == "Redis fixed"


def test_links_follow_a_moved_slug(app, content_dir):
    do_import(app, content_dir)
    write_entry(content_dir, "technologies/redis.md", "---\ntitle: Redis\nslug: stores/redis\n---\nMoved.\n")
    do_import(app, content_dir)
    assert 'href="../stores/redis"' in entries(app)["technologies/celery"].html


def test_a_new_draft_is_not_served(app, content_dir):
    write_entry(content_dir, "drafts/wip.md", "---\ndraft: true\n---\nNot yet.\n")
    do_import(app, content_dir)
    assert "drafts/wip" not in entries(app)


def test_bad_files_are_reported_and_the_rest_imports(app, content_dir):
    (content_dir / "bad").mkdir()
    (content_dir / "bad/latin1.md").write_bytes(b"# Caf\xe9\n")
    (content_dir / "bad/empty.md").write_bytes(b"")
    (content_dir / "bad/dangling.md").symlink_to(content_dir / "does-not-exist.md")
    write_entry(content_dir, "bad/kind.md", "---\nkind: recipe\n---\nx\n")
    report = do_import(app, content_dir)
    messages = sorted(str(e) for e in report.errors)
    assert messages[0].startswith("bad/dangling.md:1: cannot read file")
    assert messages[1:] == [
        "bad/empty.md:1: file is empty",
        "bad/kind.md:2: unknown kind 'recipe'; use one of: technology, concept, challenge, practice",
        "bad/latin1.md:1: not valid UTF-8 text",
    ]
    assert len(report.added) == 5


def test_duplicate_slug_in_one_new_folder_keeps_the_first_path(app, tmp_path):
    root = tmp_path / "fresh"
    write_entry(root, "a/Note.md", "# One\n\nfirst\n")
    write_entry(root, "a/note.md", "# Two\n\nsecond\n")
    report = do_import(app, root)
    assert report.added == ["a/Note.md"]
    assert [e.reason for e in report.errors] == ["duplicate slug 'a/note' (also used by a/Note.md)"]


def test_links_backlinks_and_broken_link_warnings(app, content_dir):
    write_entry(content_dir, "concepts/ttl.md", "---\ntitle: TTL\n---\nIntro.\n\nSee [later](future.md).\n")
    report = do_import(app, content_dir)
    assert report.warnings == ["concepts/ttl.md:6: link to 'future.md' points to no entry"]
    with app.app_context():
        links = set(db.session.execute(select(Link.target_slug, Entry.slug).join(Entry)).all())
    assert ("technologies/redis", "technologies/celery") in links  # [Redis](redis.md)
    assert ("technologies/redis", "concepts/caching") in links  # [[redis]]
    # Adding the missing target re-renders the unchanged entry that links to it.
    write_entry(content_dir, "concepts/future.md", "# Future\n\nHere.\n")
    report = do_import(app, content_dir)
    assert report.added == ["concepts/future.md"] and report.updated == ["concepts/ttl.md"]
    assert 'href="./concepts/future"' not in entries(app)["concepts/ttl"].html
    assert 'href="../concepts/future"' in entries(app)["concepts/ttl"].html


def test_tag_vocabulary_folds_aliases_and_names_tags(app, content_dir):
    (content_dir / "_tags.yml").write_text(
        "kubernetes:\n  name: Kubernetes\n  description: Orchestration.\n  aliases: [k8s]\n", encoding="utf-8"
    )
    write_entry(content_dir, "technologies/k8s.md", "---\ntitle: K8s\ntags: [K8s, Redis]\n---\nPods.\n")
    do_import(app, content_dir)
    found = entries(app)["technologies/k8s"]
    assert [t.slug for t in found.tags] == ["kubernetes", "redis"]
    with app.app_context():
        tag = db.session.scalar(select(Tag).where(Tag.slug == "kubernetes"))
        assert (tag.name, tag.description) == ("Kubernetes", "Orchestration.")


def test_tags_are_case_insensitive_with_one_display_name(app, tmp_path):
    root = tmp_path / "c"
    write_entry(root, "a.md", "---\ntags: [Django REST Framework]\n---\nx\n")
    write_entry(root, "b.md", "---\ntags: [django-rest-framework]\n---\ny\n")
    do_import(app, root)
    with app.app_context():
        tags = db.session.execute(select(Tag.slug, Tag.name)).all()
    assert tags == [("django-rest-framework", "Django REST Framework")]


def test_a_failed_write_changes_nothing(app, content_dir, monkeypatch):
    do_import(app, content_dir)
    (content_dir / "notes/plain-note.md").unlink()
    write_entry(content_dir, "technologies/redis.md", "---\ntitle: Changed\n---\nChanged.\n")

    def explode(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(writer, "_refresh_tag_names", explode)
    with pytest.raises(RuntimeError):
        do_import(app, content_dir)
    found = entries(app)
    assert "notes/plain-note" in found and found["technologies/redis"].title == "Redis"
    with app.app_context():
        assert db.session.scalar(select(ImportRun.id).order_by(ImportRun.id.desc())) == 1
    assert store.check_index(app.instance_path) == (1, 5)


def test_only_one_import_at_a_time(app):
    with (
        locking.import_lock(app.instance_path),
        pytest.raises(locking.ImportBusy),
        locking.import_lock(app.instance_path, wait=False),
    ):
        pass


def test_missing_or_broken_index_is_rebuilt_at_start(app, content_dir):
    import shutil

    do_import(app, content_dir)
    shutil.rmtree(store.live_index_dir(app.instance_path))
    with app.app_context():
        assert importer.ensure_ready(content_dir, app.instance_path) == "rebuilt the search index"
    assert store.check_index(app.instance_path) == (1, 5)
    # A corrupted index (garbage in its files) is rebuilt too.
    for file in store.live_index_dir(app.instance_path).iterdir():
        if file.suffix in {".toc", ".seg"}:
            file.write_bytes(b"garbage")
    with app.app_context():
        assert importer.ensure_ready(content_dir, app.instance_path) == "rebuilt the search index"
        assert importer.ensure_ready(content_dir, app.instance_path) == "ready"
    assert store.check_index(app.instance_path) == (1, 5)


def test_empty_site_imports_at_start(app, content_dir):
    with app.app_context():
        assert importer.ensure_ready(content_dir, app.instance_path).startswith("imported 5 entries")
    assert len(entries(app)) == 5


def test_new_entries_are_inserted_together_each_with_its_own_tags_and_links(make_app, tmp_path):
    # One INSERT for all new entries (not one per entry), and every entry gets its own id's tags and links.
    from sqlalchemy import event

    root = tmp_path / "many"
    for i in range(40):
        write_entry(root, f"n{i:02}.md", f"---\ntags: [t{i}]\n---\n# Note {i}\n\n[next](n{i + 1:02}.md)\n")
    app = make_app(root)
    inserts = []
    with app.app_context():

        def count(conn, cursor, statement, parameters, context, executemany):
            if statement.lstrip().upper().startswith("INSERT INTO ENTRIES"):
                inserts.append(executemany)

        event.listen(db.engine, "before_cursor_execute", count)
        try:
            report = do_import(app, root)
        finally:
            event.remove(db.engine, "before_cursor_execute", count)
    assert len(report.added) == 40 and len(inserts) <= 2  # PostgreSQL's driver may page a long executemany
    with app.app_context():
        tagged = db.session.execute(select(Entry.slug, Tag.slug).join(Entry.tags)).all()
        assert sorted(tagged) == sorted((f"n{i:02}", f"t{i}") for i in range(40))
        links = dict(
            db.session.execute(select(Entry.slug, Link.target_slug).join(Link, Link.source_id == Entry.id)).all()
        )
    assert links == {f"n{i:02}": f"n{i + 1:02}" for i in range(39)}  # n40 does not exist


def test_the_collector_pauses_for_the_import_steps_and_resumes(app, content_dir, monkeypatch):
    """Parse, render and write run without cyclic collections (each walks the growing heap); the collector is back after."""
    seen = []
    write = importer.write_changes

    def recording(*args, **kwargs):
        seen.append(gc.isenabled())
        return write(*args, **kwargs)

    monkeypatch.setattr(importer, "write_changes", recording)
    assert gc.isenabled()
    assert not do_import(app, content_dir).errors
    assert seen == [False]
    assert gc.isenabled()


def test_the_collector_stays_off_if_it_was_off():
    """A caller that turned the collector off keeps it off."""
    gc.disable()
    try:
        with collector.paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()
