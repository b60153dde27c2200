"""`flask --app portal watch`: a save shows on the site, whatever the editor, with one line saying what changed."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import threading
import time

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from portal import watch
from portal.locking import import_lock
from portal.models import Entry, db
from portal.watch import Watcher

from .conftest import write_entry
from .servers import BIN, PROJECT_ROOT, nexus_env

DEADLINE = 30.0


def wait_for(condition, what: str, lines=(), timeout: float = DEADLINE):
    """Poll `condition` until it is true; fail with what was printed if the deadline passes."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; printed: {list(lines)}")
        time.sleep(0.02)


class Running:
    """A Watcher in a thread, its printed lines, and a way to stop it."""

    def __init__(self, app, root):
        self.lines: list[str] = []
        self.watcher = Watcher(app, root, echo=lambda line, err=False: self.lines.append(line))
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.watcher.run, args=(self.stop,), daemon=True)
        self.thread.start()

    def started(self):
        wait_for(lambda: any(line.startswith("watching ") for line in self.lines), "the watcher to start", self.lines)
        return self

    def changes(self) -> list[str]:
        """Lines printed after start-up, without the import time."""
        start = next(i for i, line in enumerate(self.lines) if line.startswith("watching "))
        return [re.sub(r" \(\d+ ms\)$", "", line) for line in self.lines[start + 1 :]]

    def wait_for_line(self, line: str):
        wait_for(lambda: line in self.changes(), repr(line), self.lines)

    def close(self):
        self.stop.set()
        self.thread.join(timeout=10)
        assert not self.thread.is_alive()


@pytest.fixture
def watching(make_app, content_dir):
    """A watcher following the sample content, started and done with its first import."""
    app = make_app(content_dir)
    running = Running(app, content_dir).started()
    running.app = app
    yield running
    running.close()


def titles(app) -> dict[str, str]:
    with app.app_context():
        found = dict(db.session.execute(select(Entry.path, Entry.title)).all())
        db.session.remove()
    return found


# Editors' ways of saving `path` (relative to the content folder) with new text.
def plain_save(root, path, text):
    (root / path).write_text(text)


def vim_save(root, path, text):
    """vim (backupcopy=auto): probe file 4913, the old file renamed to `name~`, the new one written, backup deleted."""
    target = root / path
    probe = target.parent / "4913"
    probe.write_text("")
    probe.unlink()
    backup = target.with_name(target.name + "~")
    target.rename(backup)
    target.write_text(text)
    backup.unlink()


def emacs_save(root, path, text):
    """emacs: a lock link `.#name`, an autosave `#name#`, a `name~` backup by rename, then the new file."""
    target = root / path
    lock = target.with_name(".#" + target.name)
    os.symlink("user@host.1234:1", lock)
    autosave = target.with_name(f"#{target.name}#")
    autosave.write_text(text)
    target.rename(target.with_name(target.name + "~"))
    target.write_text(text)
    autosave.unlink()
    lock.unlink()


def jetbrains_save(root, path, text):
    """JetBrains "safe write": `name___jb_tmp___` written, the old file renamed to `name___jb_old___`, then swapped."""
    target = root / path
    temporary = target.with_name(target.name + "___jb_tmp___")
    old = target.with_name(target.name + "___jb_old___")
    temporary.write_text(text)
    target.rename(old)
    temporary.rename(target)
    old.unlink()


def atomic_replace(root, path, text):
    """VS Code and most tools' atomic save: a hidden temporary file renamed over the old one."""
    target = root / path
    temporary = target.with_name(f".{target.name}.tmp")
    temporary.write_text(text)
    os.replace(temporary, target)


@pytest.mark.parametrize(
    "save",
    [
        plain_save,  # writing in place
        vim_save,  # the file is missing for a moment: must not be reported as deleted and added
        emacs_save,  # `#…#` and `.#…` files and a `~` backup beside the save
        jetbrains_save,  # two renames and suffixed temporary names
        atomic_replace,  # a rename over the file
    ],
)
def test_a_save_updates_its_entry_whatever_the_editor(watching, content_dir, save):
    save(content_dir, "concepts/caching.md", "# Caching, saved\n\nNew words.\n")
    watching.wait_for_line("updated concepts/caching.md")
    assert titles(watching.app)["concepts/caching.md"] == "Caching, saved"
    assert not [line for line in watching.changes() if "caching" in line and not line.startswith("updated ")]


def move(content_dir, source, target):
    (content_dir / target).parent.mkdir(parents=True, exist_ok=True)
    (content_dir / source).rename(content_dir / target)


@pytest.mark.parametrize(
    ("change", "expected", "paths_after"),
    [
        # A new file.
        (
            lambda root: write_entry(root, "notes/new.md", "# New\n\nBody.\n"),
            ["added notes/new.md"],
            {"notes/new.md", "notes/plain-note.md"},
        ),
        # A deleted file.
        (lambda root: (root / "notes/plain-note.md").unlink(), ["deleted notes/plain-note.md"], set()),
        # Renamed in its folder: one line, not a deletion and an addition.
        (
            lambda root: move(root, "notes/plain-note.md", "notes/renamed.md"),
            ["moved notes/plain-note.md → notes/renamed.md"],
            {"notes/renamed.md"},
        ),
        # Moved to another (new) folder.
        (
            lambda root: move(root, "notes/plain-note.md", "archive/2025/plain-note.md"),
            ["moved notes/plain-note.md → archive/2025/plain-note.md"],
            {"archive/2025/plain-note.md"},
        ),
        # A folder renamed: inotify names the folder only, not the files in it.
        (
            lambda root: move(root, "notes", "archive/notes"),
            ["moved notes/plain-note.md → archive/notes/plain-note.md"],
            {"archive/notes/plain-note.md"},
        ),
        # A folder deleted (rm -r).
        (lambda root: shutil.rmtree(root / "notes"), ["deleted notes/plain-note.md"], set()),
        # A folder moved out of the content folder: reported by its name only.
        (lambda root: move(root, "notes", "../elsewhere/notes"), ["deleted notes/plain-note.md"], set()),
        # A draft leaves the site though its file stays.
        (
            lambda root: write_entry(root, "notes/plain-note.md", "---\ndraft: true\n---\n# Plain\n"),
            ["deleted notes/plain-note.md (draft)"],
            set(),
        ),
    ],
)
def test_files_and_folders_added_moved_and_deleted(watching, content_dir, change, expected, paths_after):
    change(content_dir)
    for line in expected:
        watching.wait_for_line(line)
    notes = {p for p in titles(watching.app) if not p.startswith(("technologies/", "concepts/", "challenges/"))}
    assert notes == paths_after


def test_a_folder_moved_in_from_outside_is_imported(watching, content_dir, tmp_path):
    write_entry(tmp_path / "outside", "new/one.md", "# One\n\nBody.\n")
    write_entry(tmp_path / "outside", "new/deeper/two.md", "# Two\n\nBody.\n")
    (tmp_path / "outside/new").rename(content_dir / "new")
    watching.wait_for_line("added new/one.md")
    watching.wait_for_line("added new/deeper/two.md")


def test_a_broken_save_prints_file_and_line_and_keeps_the_last_good_version(watching, content_dir):
    write_entry(content_dir, "technologies/redis.md", "---\ntitle: [broken\n---\nText.\n")
    wait_for(lambda: any(line.startswith("error: ") for line in watching.lines), "an error line", watching.lines)
    error = next(line for line in watching.lines if line.startswith("error: "))
    assert error.startswith("error: technologies/redis.md:2: invalid YAML front matter")
    assert error.endswith("(the site keeps its last good version)")
    assert titles(watching.app)["technologies/redis.md"] == "Redis"
    write_entry(content_dir, "technologies/redis.md", "# Redis, fixed\n\nText.\n")
    watching.wait_for_line("updated technologies/redis.md")
    assert titles(watching.app)["technologies/redis.md"] == "Redis, fixed"


def test_skipped_files_cause_no_import(watching, content_dir):
    imports = watching.watcher.imports
    write_entry(content_dir, "_drafts/wip.md", "# WIP\n")
    write_entry(content_dir, ".hidden.md", "# Hidden\n")
    write_entry(content_dir, "notes/.notes.md.swp", "swap")
    write_entry(content_dir, "notes/scratch.txt", "not markdown")
    # Then one real save: whether it shares a batch with those or not, it is the only import.
    write_entry(content_dir, "notes/plain-note.md", "# Plain, saved\n")
    watching.wait_for_line("updated notes/plain-note.md")
    assert watching.watcher.imports == imports + 1
    assert watching.changes() == ["updated notes/plain-note.md"]
    assert "_drafts/wip.md" not in titles(watching.app)


@pytest.mark.parametrize(
    ("path", "text", "expected"),
    [
        # The home page's introduction.
        ("_intro.md", "Welcome to [[redis]].\n", "updated _intro.md"),
        # The tag vocabulary: every entry is rendered again (its names and aliases are in each one).
        ("_tags.yml", "redis:\n  name: Redis DB\n", "updated technologies/redis.md"),
    ],
)
def test_site_files_starting_with_underscore_are_imported(watching, content_dir, path, text, expected):
    write_entry(content_dir, path, text)
    watching.wait_for_line(expected)


def test_a_burst_of_100_files_is_one_import(watching, content_dir, tmp_path):
    staging = tmp_path / "staging"
    staging.mkdir()
    for number in range(100):
        (staging / f"note-{number:03}.md").write_text(f"# Note {number}\n\nBody {number}.\n")
    imports = watching.watcher.imports
    (content_dir / "burst").mkdir()
    for file in sorted(staging.iterdir()):  # as a checkout or a sync tool writes them: one after another
        file.rename(content_dir / "burst" / file.name)
    wait_for(lambda: any(line.startswith("… and 60 more") for line in watching.lines), "the summary", watching.lines)
    assert len(titles(watching.app)) == 105
    assert watching.watcher.imports == imports + 1
    assert len([line for line in watching.changes() if line.startswith("added burst/")]) == 40
    assert watching.changes()[-1].startswith("… and 60 more: 100 added")


def test_the_lock_is_held_only_while_importing(watching, content_dir):
    with import_lock(watching.app.instance_path, wait=False):
        pass  # an idle watcher leaves the lock free: a manual import runs
    write_entry(content_dir, "notes/new.md", "# New\n")
    watching.wait_for_line("added notes/new.md")


def test_a_second_importer_waits_for_the_first(make_app, content_dir):
    app = make_app(content_dir)
    with import_lock(app.instance_path):
        running = Running(app, content_dir)
        wait_for(lambda: "waiting for another import to finish…" in running.lines, "the waiting line", running.lines)
        with app.app_context():
            assert db.session.scalar(select(func.count()).select_from(Entry)) == 0
            db.session.remove()
    running.started()
    assert len(titles(app)) == 5
    running.close()


def test_no_wait_fails_at_once_with_a_clear_message(app, runner):
    with import_lock(app.instance_path):
        result = runner.invoke(args=["watch", "--no-wait"])
    assert result.exit_code == 1
    assert "another import is running; try again when it has finished" in result.output


def test_watch_of_a_missing_folder_is_a_usage_error(runner, tmp_path):
    result = runner.invoke(args=["watch", str(tmp_path / "nope")])
    assert result.exit_code == 2 and "content folder not found" in result.output


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])  # Ctrl-C, and `kill`
def test_the_command_stops_cleanly(tmp_path, content_dir, stop):
    env = nexus_env(tmp_path / "instance", content_dir)
    process = subprocess.Popen(
        [str(BIN / "flask"), "--app", "portal", "watch"],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert "5 added" in process.stdout.readline()
        assert process.stdout.readline().startswith("watching ")
        write_entry(content_dir, "notes/new.md", "# New\n")
        assert re.fullmatch(r"added notes/new.md \(\d+ ms\)\n", process.stdout.readline())
        process.send_signal(stop)
        out, err = process.communicate(timeout=30)
    finally:
        process.kill()
        process.wait()
    assert process.returncode == 0
    assert out == "stopped watching\n"
    assert "Traceback" not in err and err == ""


def test_a_failed_import_is_tried_again_with_the_next_change(watching, content_dir, monkeypatch):
    real_import = watch.import_content
    calls = []

    def failing_once(*args, **kwargs):
        calls.append(kwargs["paths"])
        if len(calls) == 1:
            raise OperationalError("INSERT", {}, Exception("database is locked"))
        return real_import(*args, **kwargs)

    monkeypatch.setattr(watch, "import_content", failing_once)
    write_entry(content_dir, "notes/first.md", "# First\n")
    wait_for(lambda: any("the import failed" in line for line in watching.lines), "the failure", watching.lines)
    write_entry(content_dir, "notes/second.md", "# Second\n")
    watching.wait_for_line("added notes/first.md")
    watching.wait_for_line("added notes/second.md")


def test_a_deleted_content_folder_is_reported_not_a_crash(watching, content_dir):
    shutil.rmtree(content_dir)
    wait_for(lambda: any("error: the content folder" in line for line in watching.lines), "the error", watching.lines)
    assert watching.thread.is_alive()


def test_errors_are_said_once_unless_their_file_is_saved_again(make_app, content_dir):
    write_entry(content_dir, "notes/broken.md", "---\nkind: nonsense\n---\nx\n")
    running = Running(make_app(content_dir), content_dir).started()
    error = "error: notes/broken.md:2: unknown kind 'nonsense'; use one of: technology, concept, challenge, practice"
    assert error in running.lines
    write_entry(content_dir, "notes/other.md", "# Other\n")
    running.wait_for_line("added notes/other.md")
    assert not [line for line in running.changes() if line.startswith("error: ")]
    write_entry(content_dir, "notes/broken.md", "---\nkind: nonsense\n---\nstill\n")
    running.wait_for_line(error)
    running.close()
