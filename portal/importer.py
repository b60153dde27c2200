"""Sync a content folder into the database, then bring the search index to it.

The importer is the only writer. An import runs in named steps: scan the folder against the
database, plan what changes (parse, slugs, links), render, write it all in one transaction,
warn about likely mistakes; then the index is updated aside (only the changed entries, or
rebuilt whole, see indexing.py) and swapped in, so readers see old or new, never half.
"""

from __future__ import annotations

import difflib
import logging
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.exc import InternalError, OperationalError

from . import collector, processes
from .attachments import DEFAULT_MAX_BYTES, AttachmentFiles
from .content import ContentError, ParsedEntry, content_hash
from .folder import INTRO_FILE, VOCABULARY_FILE, read_entry_file
from .generation import announce_generation, current_generation
from .gitdates import FileDates
from .indexing import rebuild_index, sync_index  # noqa: F401 - `flask reindex` takes rebuild_index from here
from .links import link_resolver
from .locking import import_lock
from .models import Entry, Tag, db, entry_tags, utcnow
from .render_version import RENDERER_VERSION
from .report import ImportReport
from .sandbox import Budget, Sandbox, process_count
from .scanning import Scan, Scanner, scan_folder, scan_paths
from .search import store
from .vocabulary import TAG_SLUG_RULES, TagResolver, load_vocabulary
from .writer import Existing, existing_entries, stored_link_keys, write_changes

log = logging.getLogger(__name__)


class ImportFailed(Exception):
    """The import could not be written (a read-only or full database): one line for the operator."""


@dataclass
class Plan:
    """What the import will write: parsed entries, entries to delete, and every slug (which is how links resolve)."""

    parsed: dict[str, ParsedEntry]
    gone: list[str]
    slugs: dict[str, str]


def import_content(
    content_dir,
    instance_path,
    *,
    folder_tags: bool = True,
    git_dates: bool = True,
    max_attachment_bytes: int = DEFAULT_MAX_BYTES,
    max_render_seconds: float = Budget.seconds,
    max_render_mb: float = Budget.megabytes,
    follow_external_symlinks: bool = False,
    progress: Callable[[Iterable], Iterable] | None = None,
    wait: bool = True,
    paths: Iterable[str] | None = None,
) -> ImportReport:
    """Sync `content_dir` into the database and swap in a fresh search index, holding the import lock.

    `git_dates`: date entries by their git history (see gitdates.py); `max_attachment_bytes`: the
    largest file a note may link to and have served (see attachments.py); `max_render_seconds` and
    `max_render_mb`: what parsing and rendering one file may cost (see processes.py);
    `follow_external_symlinks`: publish what symlinks lead to outside the folder (see folder.py);
    `paths` (relative files or folders) makes it a targeted import that reads only those (see
    `scanning.scan_paths`).
    """
    root = Path(content_dir).resolve()
    if not root.is_dir():
        raise FileNotFoundError(f"content folder not found: {root}")
    options = _Options(
        folder_tags,
        git_dates,
        max_attachment_bytes,
        max_render_seconds,
        max_render_mb,
        follow_external_symlinks,
        None if paths is None else list(paths),
    )
    with import_lock(instance_path, wait=wait, engine=db.engine):
        return _import_locked(root, instance_path, options, progress)


@dataclass(frozen=True)
class _Options:
    """How an import reads the folder."""

    folder_tags: bool = True
    git_dates: bool = True
    max_attachment_bytes: int = DEFAULT_MAX_BYTES
    max_render_seconds: float = Budget.seconds
    max_render_mb: float = Budget.megabytes
    follow_external_symlinks: bool = False
    paths: list[str] | None = None  # a targeted import: only these files and folders

    @property
    def budget(self) -> Budget:
        """What parsing and rendering one file may cost."""
        return Budget(float(self.max_render_seconds), float(self.max_render_mb))


def _import_locked(root: Path, instance_path, options: _Options, progress=None) -> ImportReport:
    """The import itself; the caller holds the import lock."""
    started = time.monotonic()
    git_cache = instance_path if options.git_dates else None
    with collector.paused():  # each full collection would walk the growing heap of entries
        report = _sync(root, options, progress, git_cache)
    generation = current_generation()
    if report.changed:
        announce_generation(instance_path, generation)
    with report.timed("index"):
        if report.changed or store.live_generation(instance_path) != generation:
            sync_index(instance_path)
            report.indexed = True
    report.generation = generation
    report.seconds = time.monotonic() - started
    log.info(
        "import of %s: %s (generation %s; %s)",
        root,
        report.summary(),
        generation,
        ", ".join(f"{step} {seconds:.2f}s" for step, seconds in report.timings.items()),
    )
    return report


def _sync(root: Path, options: _Options, progress=None, git_cache=None) -> ImportReport:
    """scan → plan → render → write → warn: the database changes of one import (`git_cache`: git dates on)."""
    report = ImportReport()
    started_at = utcnow()
    folder_tags, follow = options.folder_tags, options.follow_external_symlinks
    vocabulary, vocab_errors = load_vocabulary(root, follow_external=follow)
    report.errors.extend(vocab_errors)
    salt = (RENDERER_VERSION, f"folder_tags={folder_tags}", repr(sorted(vocabulary.items())), TAG_SLUG_RULES)
    existing = existing_entries()
    files = AttachmentFiles(root, options.max_attachment_bytes)
    with report.timed("read"):  # the walk and the stamps: what needs reading
        scanner = Scanner(root, existing, salt, report, files, follow_external=follow)
        scanner.start(git_cache)
        # A targeted import reads only what changed; new tag names or aliases mean every file again.
        if options.paths is not None and VOCABULARY_FILE not in options.paths:
            scan = scan_paths(scanner, options.paths)
        else:
            scan = scan_folder(scanner, progress)
    # Every file is read, parsed and rendered in sandbox processes, within its budget (see processes.py).
    with Sandbox(process_count(len(scanner.pending)), options.budget) as sandbox:
        with report.timed("parse"):  # reading, hashing and parsing, in the sandbox
            scanner.read_pending(sandbox, folder_tags)
            plan = plan_changes(root, scan, existing, folder_tags, report, sandbox, follow_external=follow)
        tags = TagResolver(vocabulary, dict(db.session.execute(select(Tag.slug, Tag.name)).all()))
        with report.timed("render"):
            rows = render_rows(plan, tags, report, sandbox, files)
            intro = _render_intro(root, plan, report, sandbox, files, follow_external=follow)
    with report.timed("write"):
        try:
            write_changes(rows, existing, plan.gone, tags, report, started_at, intro, scan.stamps)
        except (OperationalError, InternalError) as error:  # read-only, full, gone: rolled back, nothing written
            log.debug("the import's write failed", exc_info=True)
            raise ImportFailed(f"cannot write to the database: {str(error.orig).strip().splitlines()[0]}") from None
    warn_about_tag_typos({p: plan.parsed[p] for p in report.added + report.updated if p in plan.parsed}, tags, report)
    return report


def _apply_git_dates(entry: ParsedEntry, dates: FileDates | None) -> None:
    """Front matter's own dates win; git fills in the rest. An update from git counts only after the date."""
    if dates is None:
        return
    from_git = entry.updated is None
    entry.date = entry.date or dates.created
    entry.updated = entry.updated or dates.updated
    if from_git and entry.updated is not None and entry.updated <= entry.date:
        entry.updated = None


def plan_changes(
    root: Path, scan: Scan, existing: dict[str, Existing], folder_tags: bool, report, sandbox, *, follow_external=False
) -> Plan:
    """Take what changed as parsed, drop drafts and deleted files, give every entry its slug and resolve links."""
    parsed: dict[str, ParsedEntry] = {}
    for relative, entry in scan.changed.items():
        if isinstance(entry, ContentError):
            report.errors.append(entry)
            continue
        entry.content_hash = scan.digests[relative]
        parsed[relative] = entry
    drafts = {p for p, e in parsed.items() if e.draft}
    missing = existing.keys() - scan.present
    gone = [p for p in existing if p in missing or p in drafts]
    for path in drafts:
        parsed.pop(path)
    kept = {path: old.slug for path, old in existing.items()}
    slugs = _assign_slugs(existing, parsed, gone, report) if parsed or gone else kept
    if slugs != kept:  # else every link resolves as it did
        _relink(root, existing, gone, parsed, slugs, folder_tags, report, sandbox, follow_external)
    for path, entry in parsed.items():
        _apply_git_dates(entry, scan.git.get(path))
    return Plan(parsed=parsed, gone=gone, slugs=slugs)


def _relink(
    root: Path, existing, gone, parsed, slugs, folder_tags: bool, report: ImportReport, sandbox, follow_external
) -> None:
    """Unchanged entries whose links now resolve differently are parsed again, to be rendered again."""
    resolver = link_resolver(slugs)
    old_resolver = link_resolver({path: old.slug for path, old in existing.items()})
    link_keys = stored_link_keys()
    relink = [
        p for p in report.unchanged if p not in gone and any(resolver(k) != old_resolver(k) for k in link_keys[p])
    ]
    files = []
    for path in relink:
        try:
            files.append((path, read_entry_file(root, path, follow_external=follow_external)))
        except ContentError:
            continue
    for (path, _raw), entry in zip(files, processes.parse_entries(sandbox, files, folder_tags), strict=True):
        if isinstance(entry, ContentError):
            continue
        entry.content_hash = existing[path].content_hash
        parsed[path] = entry
        report.unchanged.remove(path)


def _assign_slugs(existing, parsed, gone, report) -> dict[str, str]:
    """path -> slug for every entry that will exist; on a clash the earlier owner keeps it."""
    owners: dict[str, str] = {}
    for path, old in existing.items():
        if path not in gone and path not in parsed:
            owners[old.slug] = path  # unchanged or broken files keep their slug

    def newcomer_last(path):
        old = existing.get(path)
        return (old is None or old.slug != parsed[path].slug, path)

    for path in sorted(parsed, key=newcomer_last):
        slug = parsed[path].slug
        other = owners.get(slug)
        if other is None:
            owners[slug] = path
            continue
        report.errors.append(
            ContentError(path, parsed[path].slug_line, f"duplicate slug '{slug}' (also used by {other})")
        )
        del parsed[path]
        old = existing.get(path)
        if old is not None and old.slug not in owners:
            owners[old.slug] = path  # its last good version stays served
    return {path: slug for slug, path in owners.items()}


def render_rows(
    plan: Plan, tags: TagResolver, report: ImportReport, sandbox, files: AttachmentFiles | None = None
) -> list[dict]:
    """The column values of every entry to write; an entry that fails to render keeps its last good version."""
    rendered = processes.render_entries(sandbox, list(plan.parsed.values()), plan.slugs, files)
    rows = []
    for entry in plan.parsed.values():
        done = rendered[entry.path]
        if isinstance(done, ContentError):
            report.errors.append(done)
        else:
            rows.append(_row(entry, tags, report, done, files))
    return rows


def _row(entry: ParsedEntry, tags: TagResolver, report: ImportReport, done: tuple, files=None) -> dict:
    """The column values stored for one parsed entry (`done`: its rendering and the link keys it asked about)."""
    rendered, keys = done
    for line, target in rendered.broken_links:
        report.warnings.append(f"{entry.path}:{line + entry.body_line - 1}: link to '{target}' points to no entry")
    linked = _linked_files(entry, rendered, files, report)
    tag_slugs = _tag_slugs(entry, tags, report)
    return {
        "path": entry.path,
        "slug": entry.slug,
        "title": entry.title,
        "summary": entry.summary or _shorten(rendered.first_paragraph),
        "kind": entry.kind,
        "date": entry.date,
        "updated": entry.updated,
        "html": rendered.html,
        "text": rendered.text,
        "toc": rendered.toc,
        "headings": "\n".join(rendered.headings),
        "word_count": rendered.word_count,
        "reading_minutes": rendered.reading_minutes,
        "has_diagram": rendered.has_diagram,
        "link_keys": list(dict.fromkeys(keys)),
        "content_hash": entry.content_hash,
        "_tags": tag_slugs,
        "_links": rendered.links,
        "_attachments": linked,
    }


def _linked_files(entry: ParsedEntry, rendered, files: AttachmentFiles | None, report: ImportReport) -> list:
    """What the entry's links to files found (served or not), warning about each one that is not served."""
    if files is None:
        return []
    for line, target, path in rendered.broken_attachments:
        problem = files.info(path).problem or "points to a file that changed during the import"
        report.warnings.append(f"{entry.path}:{line + entry.body_line - 1}: link to '{target}' {problem}")
    paths = dict.fromkeys([*rendered.attachments, *(path for _, _, path in rendered.broken_attachments)])
    # Kept even when not served, so the entry is imported again when the file appears (a long or NUL path cannot).
    found = [files.info(path) for path in paths if len(path) <= 1024 and "\0" not in path]
    # A pool process hashed the file for the HTML; if it changed since, the next import must render it again.
    return [
        info if info.hash is None or info.hash in rendered.html else replace(info, stamp="changed") for info in found
    ]


def _tag_slugs(entry: ParsedEntry, tags: TagResolver, report: ImportReport) -> list[str]:
    """The slugs of an entry's tags; a tag that lands on another name's slug, or has none, is warned about."""
    slugs: dict[str, None] = {}
    for name in entry.tags:
        slug = tags.resolve(name)
        where = f"{entry.path}:{entry.tags_line}"
        if not slug:
            report.warnings.append(f"{where}: tag '{name}' is left out: it has no letter or digit to make a URL of")
            continue
        other = tags.clash(name)
        if other is not None:
            report.warnings.append(f"{where}: tag '{name}' and '{other}' are the same tag '{slug}'")
        slugs[slug] = None
    return list(slugs)


def _shorten(text: str, limit: int = 280) -> str:
    """A summary-sized prefix of text, cut at a word boundary."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    return text[:limit].rsplit(" ", 1)[0].rstrip(",;:") + "…"


def _render_intro(root: Path, plan: Plan, report: ImportReport, sandbox, files=None, *, follow_external=False):
    """`_intro.md`, the home page's introduction, as (html, hash); None if there is none."""
    if not os.path.lexists(root / INTRO_FILE):
        return None
    try:
        raw = read_entry_file(root, INTRO_FILE, follow_external=follow_external)
        source = raw.decode("utf-8-sig")
    except ContentError as error:
        report.errors.append(error)
        return None
    except UnicodeDecodeError as error:
        report.errors.append(ContentError(INTRO_FILE, 1, f"cannot read the introduction ({error})"))
        return None
    done = processes.render_intro(sandbox, source, plan.slugs, files)
    if isinstance(done, ContentError):
        report.errors.append(done)
        return None
    rendered, _keys = done
    for line, target in rendered.broken_links:
        report.warnings.append(f"{INTRO_FILE}:{line}: link to '{target}' points to no entry")
    # Links in the introduction are relative to /entries/; the home page is one level up.
    html = rendered.html.replace('href="./', 'href="entries/')
    return html, content_hash(raw, RENDERER_VERSION, html)


def warn_about_tag_typos(changed: dict[str, ParsedEntry], tags: TagResolver, report: ImportReport) -> None:
    """Warn about a tag used once that looks like a typo of a more common tag."""
    if not changed:
        return
    counts = dict(
        db.session.execute(
            select(Tag.slug, func.count(entry_tags.c.entry_id)).join(entry_tags).group_by(Tag.slug)
        ).all()
    )
    common = [slug for slug, n in counts.items() if n > 1] + list(tags.vocabulary)
    for path, entry in changed.items():
        for name in entry.tags:
            slug = tags.resolve(name)
            if counts.get(slug, 0) != 1 or slug in tags.vocabulary:
                continue
            near = difflib.get_close_matches(slug, [c for c in common if c != slug], n=1, cutoff=0.8)
            if near:
                report.warnings.append(
                    f"{path}:{entry.tags_line}: tag '{slug}' is used only here; did you mean '{near[0]}'?"
                )


def ensure_ready(content_dir, instance_path, *, folder_tags: bool = True, **options) -> str:
    """At start-up: import into an empty database, or bring a missing, broken or stale index up to date.

    `options`: import_content's other settings (`git_dates`, `max_attachment_bytes`, `max_render_seconds`, …).
    """
    with import_lock(instance_path, engine=db.engine):
        empty = db.session.scalar(select(func.count()).select_from(Entry)) == 0 and current_generation() == 0
        if empty and Path(content_dir).is_dir():
            report = _import_locked(Path(content_dir).resolve(), instance_path, _Options(folder_tags, **options))
            return f"imported {len(report.added)} entries ({len(report.errors)} errors)"
        outcome = sync_index(instance_path)
    if outcome.mode == "current":
        return "ready"
    log.warning("search index missing, broken or stale: %s", outcome.reason or "updated from the change log")
    return f"{'rebuilt' if outcome.mode == 'full' else 'updated'} the search index"
