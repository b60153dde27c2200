"""A targeted import (`import_content(..., paths=[...])`, what the watcher runs) ends where a full import does."""

from __future__ import annotations

import random
import shutil

import pytest
from sqlalchemy import select

from portal.importer import import_content
from portal.models import Entry, SiteText, Tag, db

from .conftest import write_entry


def snapshot(app) -> dict:
    """Everything an import writes that a reader sees, without ids and timestamps."""
    with app.app_context():
        entries = {
            e.path: (
                e.slug,
                e.title,
                e.summary,
                e.kind,
                e.date,
                e.updated,
                e.sort_date,
                e.html,
                e.text,
                e.toc,
                e.link_keys,
                e.content_hash,
                sorted(t.slug for t in e.tags),
                sorted(link.target_slug for link in e.outgoing),
            )
            for e in db.session.scalars(select(Entry))
        }
        tags = {t.slug: (t.name, t.description, t.aliases) for t in db.session.scalars(select(Tag))}
        texts = {s.key: s.html for s in db.session.scalars(select(SiteText))}
        db.session.remove()
    return {"entries": entries, "tags": tags, "site_text": texts}


def outcome(report) -> dict:
    """What a report says happened, in a comparable form."""
    return {
        "added": sorted(report.added),
        "updated": sorted(report.updated),
        "deleted": sorted(report.deleted),
        "errors": sorted(map(str, report.errors)),
        "warnings": sorted(report.warnings),
    }


class Pair:
    """The same folder imported two ways: targeted (with the paths that changed) and in full."""

    def __init__(self, make_app, content, tmp_path):
        self.content = content
        self.targeted = make_app(content, instance="targeted")
        # Always SQLite in its own folder: with PostgreSQL both apps would otherwise share one schema.
        self.full = make_app(content, instance="full", SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path}/full.sqlite3")
        self.failing: set[str] = set()
        self.step(None)

    def _import(self, app, paths):
        with app.app_context():
            report = import_content(self.content, app.instance_path, paths=paths)
            db.session.remove()
        return report

    def step(self, changed: list[str] | None):
        """Import `changed` (plus what failed last time, as the watcher does) and a full import; compare."""
        paths = None if changed is None else sorted(set(changed) | self.failing)
        targeted = self._import(self.targeted, paths)
        full = self._import(self.full, None)
        self.failing = {error.path for error in targeted.errors}
        assert outcome(targeted) == outcome(full)
        assert snapshot(self.targeted) == snapshot(self.full)
        return targeted


def apply(content, action: tuple) -> list[str]:
    """Do one change to the folder; the paths a watcher would report for it."""
    verb, *args = action
    if verb == "write":
        write_entry(content, args[0], args[1])
        return [args[0]]
    if verb == "delete":
        target = content / args[0]
        shutil.rmtree(target) if target.is_dir() else target.unlink()
        return [args[0]]
    if verb == "move":
        (content / args[1]).parent.mkdir(parents=True, exist_ok=True)
        (content / args[0]).rename(content / args[1])
        return [args[0], args[1]]
    raise ValueError(verb)


LINKS_TO_LATER = "# Later link\n\nSee [the later note](later.md) and [[later]].\n"
CLASH = "---\nslug: technologies/redis\n---\n# Clash\n\nWants Redis's slug.\n"

SCENARIOS = [
    # One edited file: the common save.
    [[("write", "technologies/redis.md", "---\ntitle: Redis 7\ntags: [redis]\n---\nNew text.\n")]],
    # A new file makes an unchanged entry's broken link resolve: that entry is rendered again, unread by the scan.
    [[("write", "notes/linky.md", LINKS_TO_LATER)], [("write", "notes/later.md", "# Later\n\nHere.\n")]],
    # Deleting a file that others link to ([[redis]], redis.md) re-renders them with broken links.
    [[("delete", "technologies/redis.md")]],
    # A file moved to another folder: a new slug, and links to it follow.
    [[("move", "technologies/redis.md", "stores/redis.md")]],
    # A folder renamed: every entry in it moves, reported by the folder's old and new paths only.
    [[("move", "notes", "archive/notes")]],
    # A folder deleted (rm -r), reported by its path only.
    [[("delete", "technologies")]],
    # A folder moved in from outside the content folder, reported by its path only.
    [[("write", "../outside/new/one.md", "# One\n\nBody.\n")], [("move", "../outside/new", "new")]],
    # A broken save keeps the last good version; fixing it updates the entry.
    [
        [("write", "concepts/caching.md", "---\ntitle: [broken\n---\nx\n")],
        [("write", "concepts/caching.md", "# Caching again\n\nFixed.\n")],
    ],
    # A new file loses a slug clash; once the owner is deleted it takes the slug (failing paths are retried).
    [[("write", "clash.md", CLASH)], [("delete", "technologies/redis.md")]],
    # A draft leaves the site; undrafted, it comes back.
    [
        [("write", "notes/plain-note.md", "---\ndraft: true\n---\n# Plain\n\nx\n")],
        [("write", "notes/plain-note.md", "# Plain\n\nBack.\n")],
    ],
    # The tag vocabulary changes every entry's rendering: a targeted import falls back to a full scan.
    [[("write", "_tags.yml", "redis:\n  name: Redis DB\n  aliases: [rds]\n")]],
    # The home page's introduction is read by every import.
    [[("write", "_intro.md", "Welcome. See [[redis]].\n")]],
    # Skipped names and editors' leftovers change nothing.
    [[("write", "_drafts/wip.md", "# WIP\n"), ("write", ".hidden.md", "# Hidden\n"), ("write", "notes/x.md~", "x")]],
    # A file renamed within its folder and edited in the same batch.
    [[("move", "notes/plain-note.md", "notes/renamed.md"), ("write", "notes/renamed.md", "# Renamed\n\nNew.\n")]],
]


@pytest.mark.parametrize("steps", SCENARIOS)
def test_targeted_import_equals_a_full_import(make_app, content_dir, tmp_path, steps):
    pair = Pair(make_app, content_dir, tmp_path)
    for actions in steps:
        changed = [path for action in actions for path in apply(content_dir, action)]
        pair.step(changed)


def test_random_edits_moves_and_deletions_stay_equal(make_app, content_dir, tmp_path):
    pair = Pair(make_app, content_dir, tmp_path)
    rng = random.Random(18)
    names = [f"{folder}/{stem}.md" for folder in ("a", "b", "b/c") for stem in ("x", "y", "z")]
    for step in range(12):
        actions = []
        for _ in range(rng.randint(1, 3)):
            present = sorted(p.relative_to(content_dir).as_posix() for p in content_dir.rglob("*.md"))
            verb = rng.choice(["write", "write", "delete", "move"])
            if verb == "write" or not present:
                target = rng.choice(names)
                link = rng.choice(names)
                text = f"# Note {step}\n\nSee [this]({'../' * target.count('/')}{link}) and [[{link[:-3]}]].\n"
                actions.append(("write", target, text))
            elif verb == "delete":
                actions.append(("delete", rng.choice(present)))
            else:
                source = rng.choice(present)
                free = [n for n in names if not (content_dir / n).exists()]
                if free:
                    actions.append(("move", source, rng.choice(free)))
        changed = [path for action in actions for path in apply(content_dir, action)]
        pair.step(changed)


def test_a_targeted_import_reads_only_the_paths_it_is_given(make_app, content_dir):
    app = make_app(content_dir)
    with app.app_context():
        import_content(content_dir, app.instance_path)
        (content_dir / "concepts/caching.md").chmod(0)  # unreadable: a full scan would report it
        write_entry(content_dir, "technologies/redis.md", "# Redis\n\nEdited.\n")
        report = import_content(content_dir, app.instance_path, paths=["technologies/redis.md"])
        db.session.remove()
    (content_dir / "concepts/caching.md").chmod(0o644)
    assert report.updated == ["technologies/redis.md"] and report.errors == []
    assert len(report.unchanged) == 4
