"""File stamps: an unchanged file is not read again, and no change is missed for it (see scanning.py)."""

from __future__ import annotations

import os

import pytest
from sqlalchemy import inspect, select, text

from portal import importer, scanning, writer
from portal.models import Entry, FileStamp, db
from portal.report import ImportReport

from .conftest import do_import, write_entry
from .test_gitdates import Repo, moment, plain_git  # noqa: F401 - plain_git: git as on a fresh machine (autouse)

NOTES = {f"topic/note-{n}.md": f"# Note {n}\n\nSome text about {n}.\n" for n in range(4)}


@pytest.fixture
def reads(monkeypatch) -> list[str]:
    """The files the scan reads (in the sandbox's processes: the paths it sends them), in order."""
    seen: list[str] = []
    real = scanning.read_entries

    def counting(sandbox, settings, jobs):
        seen.extend(job.path for job in jobs)
        return real(sandbox, settings, jobs)

    monkeypatch.setattr(scanning, "read_entries", counting)
    return seen


@pytest.fixture
def settled(monkeypatch):
    """Files count as settled at once (in use, the files an import stamps were written 2 s before it or more)."""
    monkeypatch.setattr(scanning, "RACY_SECONDS", 0)


@pytest.fixture
def folder(tmp_path):
    """Four short notes."""
    root = tmp_path / "notes"
    for relative, body in NOTES.items():
        write_entry(root, relative, body)
    return root


@pytest.fixture
def stamped(make_app, folder, settled):
    """An app over the notes, imported once: every file has its stamp."""
    app = make_app(folder)
    assert sorted(do_import(app, folder).added) == sorted(NOTES)
    assert stamps(app).keys() == NOTES.keys()
    return app


def stamps(app) -> dict[str, FileStamp]:
    """path -> the stamp its entry has."""
    with app.app_context():
        rows = db.session.execute(select(Entry.path, FileStamp).join(FileStamp, FileStamp.entry_id == Entry.id)).all()
        db.session.expunge_all()
        db.session.remove()
    return {path: stamp for path, stamp in rows}


def entry_text(app, path: str) -> str:
    with app.app_context():
        found = db.session.scalar(select(Entry.text).where(Entry.path == path))
        db.session.remove()
    return found


def test_an_unchanged_folder_is_not_read_again(stamped, folder, reads):
    report = do_import(stamped, folder)
    assert reads == []
    assert sorted(report.unchanged) == sorted(NOTES) and not report.changed


def test_an_edit_that_keeps_size_and_mtime_is_still_seen(stamped, folder, reads):
    """Same size, mtime put back: the ctime moved, and no program can put that back."""
    path = folder / "topic/note-1.md"
    before = path.stat()
    path.write_text(NOTES["topic/note-1.md"].replace("Some", "Same"), encoding="utf-8")
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert path.stat().st_size == before.st_size and path.stat().st_mtime_ns == before.st_mtime_ns
    report = do_import(stamped, folder)
    assert reads == ["topic/note-1.md"] and report.updated == ["topic/note-1.md"]
    assert "Same text about 1" in entry_text(stamped, "topic/note-1.md")


def test_an_edit_that_changes_mtime_or_size_is_seen(stamped, folder, reads):
    write_entry(folder, "topic/note-0.md", "# Note 0\n\nLonger text now.\n")
    write_entry(folder, "topic/note-2.md", NOTES["topic/note-2.md"].replace("Some", "Sum"))
    report = do_import(stamped, folder)
    assert sorted(reads) == ["topic/note-0.md", "topic/note-2.md"]
    assert report.updated == ["topic/note-0.md", "topic/note-2.md"]


def test_a_touched_file_is_read_once_and_stamped_again(stamped, folder, reads):
    """Same bytes, new mtime: read and found unchanged, and its new stamp spares the next import."""
    path = folder / "topic/note-3.md"
    old = stamps(stamped)["topic/note-3.md"].signature
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns - 10**9))
    report = do_import(stamped, folder)
    assert reads == ["topic/note-3.md"] and not report.changed
    assert stamps(stamped)["topic/note-3.md"].signature != old
    reads.clear()
    do_import(stamped, folder)
    assert reads == []


def test_a_file_changed_just_before_the_import_is_read_again_next_time(make_app, folder, reads):
    """Racily new (git's term): a change in the same clock tick as the read could keep its stat; no stamp."""
    app = make_app(folder)  # the notes were written just now, within RACY_SECONDS
    do_import(app, folder)
    assert stamps(app) == {}
    reads.clear()
    report = do_import(app, folder)
    assert sorted(reads) == sorted(NOTES) and not report.changed


def test_a_file_the_import_just_wrote_loses_its_old_stamp(stamped, folder, monkeypatch):
    monkeypatch.setattr(scanning, "RACY_SECONDS", 3600)  # this time the edit is "just now"
    write_entry(folder, "topic/note-0.md", "# Note 0\n\nEdited.\n")
    assert do_import(stamped, folder).updated == ["topic/note-0.md"]
    assert "topic/note-0.md" not in stamps(stamped) and len(stamps(stamped)) == 3


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda root: write_entry(root, "_tags.yml", "python:\n  name: Python\n"), id="vocabulary"),
        pytest.param(lambda root: None, id="renderer-version"),
    ],
)
def test_a_new_salt_reads_every_file(stamped, folder, reads, monkeypatch, change):
    """What else a file's hash covers (renderer, settings, vocabulary) changed: every stamp is void."""
    change(folder)
    if not (folder / "_tags.yml").exists():
        monkeypatch.setattr(importer, "RENDERER_VERSION", importer.RENDERER_VERSION + "-next")
    report = do_import(stamped, folder)
    assert sorted(reads) == sorted(NOTES)
    assert sorted(report.updated) == sorted(NOTES)
    reads.clear()
    do_import(stamped, folder)
    assert reads == []  # stamped again, with the new salt


def test_folder_tags_setting_is_part_of_the_salt(stamped, folder, make_app, reads):
    app = make_app(folder, FOLDER_TAGS=False)
    report = do_import(app, folder)
    assert sorted(reads) == sorted(NOTES) and sorted(report.updated) == sorted(NOTES)


def test_a_deleted_file_takes_its_stamp_with_it(stamped, folder):
    (folder / "topic/note-2.md").unlink()
    assert do_import(stamped, folder).deleted == ["topic/note-2.md"]
    assert "topic/note-2.md" not in stamps(stamped)
    with stamped.app_context():
        assert db.session.scalar(select(db.func.count()).select_from(FileStamp)) == 3
        db.session.remove()


def test_a_broken_edit_is_reported_at_every_import(stamped, folder, reads):
    """The stamp remembers the broken bytes' hash, not the entry's: the file is read and reported again."""
    (folder / "topic/note-1.md").write_bytes(b"# Note 1\n\n\xff not UTF-8\n")
    for _ in range(2):
        reads.clear()
        report = do_import(stamped, folder)
        assert reads == ["topic/note-1.md"]
        assert [e.path for e in report.errors] == ["topic/note-1.md"]
    assert "Some text about 1" in entry_text(stamped, "topic/note-1.md")  # its last good version stays


def test_a_file_replaced_by_a_symlink_is_read(stamped, folder, reads, tmp_path):
    """A symlink is always read: where it leads can change while the link stays the same."""
    path = folder / "topic/note-0.md"
    target = folder / "topic/_kept.md"
    path.rename(target)
    os.symlink(target, path)
    report = do_import(stamped, folder)
    assert reads == ["topic/note-0.md"] and not report.changed


def test_a_changed_linked_file_imports_its_note_again(make_app, folder, settled, reads):
    """The note's stamp holds, but the image it links to changed: the note is read and rendered again."""
    write_entry(folder, "topic/pic.md", "# Pic\n\n![plan](plan.png)\n")
    (folder / "topic/plan.png").write_bytes(b"\x89PNG one")
    app = make_app(folder)
    do_import(app, folder)
    (folder / "topic/plan.png").write_bytes(b"\x89PNG two!")
    reads.clear()
    report = do_import(app, folder)
    assert reads == ["topic/pic.md"] and report.updated == ["topic/pic.md"]


def test_committing_a_stamped_note_dates_it_again(make_app, tmp_path, settled, reads):
    """Its bytes and stat are the same, its git dates are not: part of the salt, so it is read again."""
    repo = Repo(tmp_path / "repo")
    repo.commit(moment(1), write={"old.md": "# Old\n\nCommitted.\n"})
    (repo.root / "fresh.md").write_text("# Fresh\n\nNot committed yet.\n", encoding="utf-8")
    app = make_app(repo.root, GIT_DATES=True)
    do_import(app, repo.root)
    reads.clear()
    repo.commit(moment(2))
    report = do_import(app, repo.root)
    assert reads == ["fresh.md"] and report.updated == ["fresh.md"]


def test_a_targeted_import_stamps_what_it_reads(stamped, folder, reads):
    write_entry(folder, "topic/note-0.md", "# Note 0\n\nEdited for the watcher.\n")
    with stamped.app_context():
        report = importer.import_content(folder, stamped.instance_path, git_dates=False, paths=["topic/note-0.md"])
        db.session.remove()
    assert report.updated == ["topic/note-0.md"]
    reads.clear()
    assert not do_import(stamped, folder).changed
    assert reads == []


def test_a_database_from_before_stamps_gains_the_table(stamped, folder, make_app, reads):
    """No migrations: the app creates the missing table at start-up, and the next import fills it."""
    with stamped.app_context():
        with db.engine.begin() as connection:
            connection.execute(text("DROP TABLE file_stamps"))
        assert "file_stamps" not in inspect(db.engine).get_table_names()
        db.session.remove()
        db.engine.dispose()
    again = make_app(folder)  # the same instance and database, started again
    with again.app_context():
        assert "file_stamps" in inspect(db.engine).get_table_names()
        db.session.remove()
    report = do_import(again, folder)
    assert sorted(reads) == sorted(NOTES) and not report.changed  # read once, as before stamps
    reads.clear()
    do_import(again, folder)
    assert reads == []


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # PostgreSQL keeps long text out of line
def test_the_entries_every_import_reads_come_from_one_index_on_sqlite(stamped, folder, make_app):
    """Reaching `content_hash` in the table's rows walks past their HTML: half an unchanged import's query at 10,000."""
    with stamped.app_context():
        assert db.engine.dialect.name == "sqlite"
        sql = str(writer.EXISTING.compile(dialect=db.engine.dialect))
        plan = " ".join(row[-1] for row in db.session.execute(text(f"EXPLAIN QUERY PLAN {sql}")))
        assert "SCAN entries USING COVERING INDEX ix_entries_existing" in plan
        with db.engine.begin() as connection:  # a database made before the index
            connection.execute(text("DROP INDEX ix_entries_existing"))
        db.session.remove()
        db.engine.dispose()
    again = make_app(folder)  # the same instance and database, started again
    with again.app_context():
        assert "ix_entries_existing" in {index["name"] for index in inspect(db.engine).get_indexes("entries")}
        db.session.remove()


def test_a_stamp_of_other_bytes_than_the_entry_is_not_trusted(stamped, folder, reads):
    """The stamp holds for the file, but the entry kept another version (its hash): the file is read."""
    with stamped.app_context():
        db.session.execute(FileStamp.__table__.update().values(content_hash="0" * 64))
        db.session.commit()
        assert all(old.signature is None for old in writer.existing_entries().values())
        db.session.remove()
    report = do_import(stamped, folder)
    assert sorted(reads) == sorted(NOTES) and not report.changed
    reads.clear()
    do_import(stamped, folder)
    assert reads == []  # stamped again, of the entry's bytes


def test_a_stamped_file_gone_between_the_walk_and_its_stat_is_read(stamped, folder):
    """The scan's `lstat` fails: the file is read like any other, and reading it reports why."""
    with stamped.app_context():
        existing = writer.existing_entries()
        db.session.remove()
    (folder / "topic/note-2.md").unlink()
    salt = (importer.RENDERER_VERSION, "folder_tags=True", repr([]), importer.TAG_SLUG_RULES)  # as the import's
    scanner = scanning.Scanner(folder, existing, salt, ImportReport())
    scanner.read_found(["topic/note-2.md", "topic/note-3.md"])  # as the walk found them a moment before
    assert [job.path for job in scanner.pending] == ["topic/note-2.md"]
    assert scanner.report.unchanged == ["topic/note-3.md"]
