"""Follow a content folder: import it once, then import what changes, one debounced batch of saves at a time.

`flask --app portal watch` and `make dev` (in a thread) run a `Watcher`. It uses watchfiles
(inotify on Linux): a burst of events (an editor's atomic save, a `git checkout`) arrives as
one batch, and each batch is one targeted import of the paths it names (`import_content(...,
paths=...)`), so a save costs a read of that file, not of the whole folder. The import lock
is held only while importing: a manual `import` still runs between batches.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path, PurePosixPath

import click
from flask import Flask
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from watchfiles import watch

from .config import import_settings
from .folder import INTRO_FILE, VOCABULARY_FILE, is_markdown, is_skipped
from .generation import current_generation
from .importer import import_content
from .locking import ImportBusy
from .models import Entry, db
from .report import ImportReport

#: watchfiles yields a batch once no event came for STEP_MS, or after DEBOUNCE_MS of steady events.
#: An editor's save (temporary file, rename, delete) takes a few ms; a `git checkout` has no 50 ms pause.
STEP_MS = 50
DEBOUNCE_MS = 1600
#: An idle watcher wakes this often: the first wake-up runs the initial import, once events are being recorded.
IDLE_MS = 200
#: Some editors move the old file away before writing the new one: look again before calling it deleted.
DELETE_GRACE = 0.05
#: Lines printed per batch before the rest are counted (a vocabulary change re-renders every entry).
MAX_LINES = 40
#: Site files every import reads; a change to them needs an import even though no entry lives there.
SITE_FILES = (VOCABULARY_FILE, INTRO_FILE)

Echo = Callable[..., None]


class ContentFilter:
    """A watchfiles filter: drop what no import reads (skipped `_`/`.` names, except the site files).

    Other names pass even if they are not Markdown: a deleted or moved folder is reported by its
    name alone, and whether it was one is decided against the database (`Watcher.paths_to_import`).
    """

    def __init__(self, root: Path):
        self.root = str(root)

    def __call__(self, change, path: str) -> bool:
        relative = os.path.relpath(path, self.root)
        if relative == "." or relative.startswith(".."):
            return False
        parts = PurePosixPath(Path(relative).as_posix()).parts
        return "/".join(parts) in SITE_FILES or not any(is_skipped(part) for part in parts)


class Watcher:
    """Import `root` into `app`, then follow it until stopped; prints one line per change through `echo`."""

    def __init__(self, app: Flask, root, *, echo: Echo = click.echo, wait: bool = True):
        self.app = app
        self.root = Path(root).resolve()
        self.echo = echo
        self.wait = wait
        self.known: dict[str, tuple[str, str]] = {}  # path -> (slug, content hash), as the database has them
        self.folders: set[str] = set()  # every folder that holds a known entry
        self.generation = None  # after our last import; another importer's makes us reload `known`
        self.failing: set[str] = set()  # files the last import reported errors for: offered again each batch
        self.retry: set[str] = set()  # the paths of a batch whose import failed
        self.shown_errors: set[str] = set()
        self.imports = 0  # how many imports ran (tests check that a burst is one)

    def run(self, stop_event: threading.Event | None = None) -> None:
        """Watch until Ctrl-C (KeyboardInterrupt reaches the caller) or until `stop_event` is set."""
        changes_seen = watch(
            self.root,
            watch_filter=ContentFilter(self.root),
            debounce=DEBOUNCE_MS,
            step=STEP_MS,
            rust_timeout=IDLE_MS,
            yield_on_timeout=True,
            stop_event=stop_event,
        )
        with self.app.app_context():
            started = False
            for changes in changes_seen:
                if not started:  # events are recorded from here on: nothing saved during the import is missed
                    self.initial_import()
                    started = True
                elif changes:
                    self.handle(changes)

    def initial_import(self) -> ImportReport:
        """A full import, as `flask import` does; with `wait=False` a running import is an ImportBusy."""
        report = self._import(None, wait=self.wait)
        for error in report.errors:
            self.echo(f"error: {error}", err=True)
        self.shown_errors = {str(error) for error in report.errors}
        for warning in report.warnings:
            self.echo(f"warning: {warning}", err=True)
        self.echo(report.summary())
        self.echo(f"watching {self.root} for changes (Ctrl-C to stop)")
        return report

    def handle(self, changes) -> ImportReport | None:
        """Import one batch of watchfiles changes and print what it did; None if nothing was imported."""
        if not self.root.is_dir():
            self.echo(
                f"error: the content folder {self.root} is gone; start the watcher again once it is back", err=True
            )
            return None
        if self.generation != current_generation():
            self._load_known()  # someone else imported: paths and slugs may have changed
        db.session.remove()
        paths = self.paths_to_import(changes) | self.retry
        if not paths:
            return None
        if any(p in self.known and not (self.root / p).exists() for p in paths):
            time.sleep(DELETE_GRACE)
        before = dict(self.known)
        started = time.monotonic()
        try:
            report = self._import(sorted(paths | self.failing), wait=True)
        except (OSError, SQLAlchemyError) as error:  # e.g. a database that does not answer: try again next time
            self.retry = paths
            self.echo(f"error: the import failed, will try again at the next change: {error}", err=True)
            return None
        self.retry = set()
        milliseconds = round((time.monotonic() - started) * 1000)
        self._print(report, before, paths, milliseconds)
        return report

    def paths_to_import(self, changes) -> set[str]:
        """The relative paths of a batch that an import must look at: entries, site files and folders."""
        paths = set()
        for _change, path in changes:
            relative = Path(os.path.relpath(path, self.root)).as_posix()
            if relative in SITE_FILES or is_markdown(relative.rsplit("/", 1)[-1]):
                paths.add(relative)
            elif relative in self.folders or os.path.isdir(path):
                paths.add(relative)  # a folder added, moved or deleted (its files may not be reported)
            # anything else is an editor's temporary file (`4913`, `notes.md~`, `#notes.md#`, `x___jb_tmp___`)
        return paths

    def _import(self, paths, *, wait: bool) -> ImportReport:
        """One import under the lock: at once if free; else wait for the running one (or fail if not `wait`)."""
        try:
            report = self._import_once(paths, wait=False)
        except ImportBusy:
            if not wait:
                raise
            self.echo("waiting for another import to finish…")
            report = self._import_once(paths, wait=True)
        self.imports += 1
        self.failing = {e.path for e in report.errors if e.path not in SITE_FILES}
        self._update_known(report, full=paths is None or VOCABULARY_FILE in paths)
        return report

    def _import_once(self, paths, *, wait: bool) -> ImportReport:
        try:
            return import_content(
                self.root, self.app.instance_path, **import_settings(self.app.config), wait=wait, paths=paths
            )
        finally:
            db.session.remove()

    def _load_known(self) -> None:
        """Every entry's path, slug and hash, read from the database."""
        rows = db.session.execute(select(Entry.path, Entry.slug, Entry.content_hash))
        self.known = {path: (slug, digest) for path, slug, digest in rows}
        self.folders = _folders(self.known)
        self.generation = current_generation()
        db.session.remove()

    def _update_known(self, report: ImportReport, *, full: bool) -> None:
        """Refresh what we know of the entries an import touched (of all of them after a full import)."""
        changed = report.added + report.updated
        if full or len(changed) > 500:
            self._load_known()
            return
        for path in report.deleted:
            self.known.pop(path, None)
        if changed:
            rows = db.session.execute(select(Entry.path, Entry.slug, Entry.content_hash).where(Entry.path.in_(changed)))
            self.known.update((path, (slug, digest)) for path, slug, digest in rows)
        if report.added or report.deleted:
            self.folders = _folders(self.known)
        self.generation = report.generation
        db.session.remove()

    def _print(self, report: ImportReport, before: dict, paths: set[str], milliseconds: int) -> None:
        """One line per change: moved, added, updated, deleted; then errors and warnings."""
        lines = change_lines(report, before, self.known, self.root)
        if report.site_text_changed:
            lines.append(f"{'updated' if (self.root / INTRO_FILE).exists() else 'deleted'} {INTRO_FILE}")
        took = f" ({milliseconds} ms)"
        for line in lines[:MAX_LINES]:
            self.echo(line + took)
        if len(lines) > MAX_LINES:
            self.echo(f"… and {len(lines) - MAX_LINES} more: {report.summary()}")
        errors = {str(e): e for e in report.errors}
        for text, error in errors.items():
            if error.path in paths or text not in self.shown_errors:  # a repeated save of a broken file says so again
                kept = " (the site keeps its last good version)" if error.path in self.known else ""
                self.echo(f"error: {text}{kept}", err=True)
        self.shown_errors = set(errors)
        for warning in report.warnings:
            self.echo(f"warning: {warning}", err=True)


def _folders(paths) -> set[str]:
    """Every folder that holds one of `paths`, at any depth."""
    return {str(parent) for path in paths for parent in PurePosixPath(path).parents} - {"."}


def change_lines(report: ImportReport, before: dict, after: dict, root: Path) -> list[str]:
    """`moved a.md → b/a.md` when a deleted and an added file have the same content hash; else added/updated/deleted."""
    added = list(report.added)
    lines = []
    for path in report.deleted:
        digest = before.get(path, (None, None))[1]
        twin = next((a for a in added if after.get(a, (None, None))[1] == digest), None)
        if digest is not None and twin is not None:
            added.remove(twin)
            lines.append(f"moved {path} → {twin}")
        else:
            draft = " (draft)" if (root / path).is_file() else ""
            lines.append(f"deleted {path}{draft}")
    lines[:0] = [f"added {path}" for path in added]
    lines[:0] = [f"updated {path}" for path in report.updated]
    return sorted(lines, key=lambda line: line.split(" ", 1)[1])


def quiet_import_logs() -> None:
    """The watcher prints one line per change; the importer's own INFO lines would say it all twice."""
    logging.getLogger("portal").setLevel(logging.WARNING)


def start_thread(app: Flask, root, *, echo: Echo = click.echo) -> tuple[threading.Thread, threading.Event]:
    """Run a Watcher in a daemon thread (the development server's); set the event to stop it."""
    stop = threading.Event()
    watcher = Watcher(app, root, echo=echo)

    def follow():
        try:
            watcher.run(stop)
        except Exception as error:  # noqa: BLE001 - the server keeps running; say why the watcher stopped
            echo(f"the watcher stopped: {error}", err=True)

    thread = threading.Thread(target=follow, name="nexus-watch", daemon=True)
    thread.start()
    return thread, stop
