"""The importer: add, update, delete, skip unchanged, keep good versions, links and tags."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from portal import importer, locking, writer
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


def test_changed_file_is_updated_and_reindexed(app, content_dir):
    do_import(app, content_dir)
    write_entry(content_dir, "technologies/redis.md", "---\ntitle: Redis 7\ntags: [redis]\n---\nNew text.\n")
    report = do_import(app, content_dir)
    assert report.updated == ["technologies/redis.md"]
    assert report.generation == 2 and report.indexed
    found = entries(app)["technologies/redis"]
    assert found.title == "Redis 7" and "New text." in found.html
    assert store.check_index(app.instance_path) == (2, 5)


def test_removed_file_is_deleted_with_its_orphan_tags(app, content_dir):
    do_import(app, content_dir)
    (content_dir / "notes/plain-note.md").unlink()
    report = do_import(app, content_dir)
    assert report.deleted == ["notes/plain-note.md"]
    assert "notes/plain-note" not in entries(app)
    assert "notes" not in tag_slugs(app)
    assert store.check_index(app.instance_path)[1] == 4


def test_broken_edit_keeps_the_last_good_version(app, content_dir):
    do_import(app, content_dir)
    write_entry(content_dir, "technologies/redis.md", "---\ntitle: [oops\n---\nBroken edit.\n")
    report = do_import(app, content_dir)
    assert [str(e) for e in report.errors] == [
        "technologies/redis.md:2: invalid YAML front matter: expected ',' or ']', but got '<stream end>'"
    ]
    found = entries(app)["technologies/redis"]
    assert found.title == "Redis" and "Broken edit" not in found.html
    # Fixing the file imports it normally.
    write_entry(content_dir, "technologies/redis.md", "---\ntitle: Redis fixed\n---\nGood again.\n")
    report = do_import(app, content_dir)
    assert report.updated == ["technologies/redis.md"] and report.errors == []
    assert entries(app)["technologies/redis"].title == "Redis fixed"


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


def test_duplicate_slug_keeps_the_first_owner(app, content_dir):
    do_import(app, content_dir)
    write_entry(content_dir, "zz/other.md", "---\nslug: technologies/redis\n---\nImpostor.\n")
    report = do_import(app, content_dir)
    assert [str(e) for e in report.errors] == [
        "zz/other.md:2: duplicate slug 'technologies/redis' (also used by technologies/redis.md)"
    ]
    assert "Impostor" not in entries(app)["technologies/redis"].html


def test_duplicate_slug_in_one_new_folder_keeps_the_first_path(app, tmp_path):
    root = tmp_path / "fresh"
    write_entry(root, "a/Note.md", "# One\n\nfirst\n")
    write_entry(root, "a/note.md", "# Two\n\nsecond\n")
    report = do_import(app, root)
    assert report.added == ["a/Note.md"]
    assert [e.reason for e in report.errors] == ["duplicate slug 'a/note' (also used by a/Note.md)"]


def test_moving_a_slug_frees_it(app, content_dir):
    do_import(app, content_dir)
    write_entry(content_dir, "technologies/redis.md", "---\ntitle: Redis\nslug: stores/redis\n---\nMoved.\n")
    report = do_import(app, content_dir)
    # Entries linking to it are rendered again so their links follow the move.
    assert sorted(report.updated) == ["concepts/caching.md", "technologies/celery.md", "technologies/redis.md"]
    found = entries(app)
    assert "stores/redis" in found and "technologies/redis" not in found
    assert 'href="../stores/redis"' in found["technologies/celery"].html


def test_draft_entries_are_not_served(app, content_dir):
    write_entry(content_dir, "drafts/wip.md", "---\ndraft: true\n---\nNot yet.\n")
    do_import(app, content_dir)
    assert "drafts/wip" not in entries(app)
    # Marking a published entry as draft takes it down.
    write_entry(content_dir, "technologies/redis.md", "---\ndraft: true\n---\nHidden.\n")
    report = do_import(app, content_dir)
    assert report.deleted == ["technologies/redis.md"]


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
