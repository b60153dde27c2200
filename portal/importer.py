"""Sync a content folder into the database, then rebuild the search index from it.

The importer is the only writer. An import runs in named steps: scan the folder against the
database, plan what changes (parse, slugs, links), render, write it all in one transaction,
warn about likely mistakes; then the index is built aside and swapped in, so readers see old
or new, never half.
"""

from __future__ import annotations

import difflib
import logging
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from flask import current_app
from sqlalchemy import func, select
from sqlalchemy.exc import InternalError, OperationalError

from . import processes
from .content import ContentError, ParsedEntry, content_hash
from .folder import INTRO_FILE, Refused, read_entry_file, walk
from .generation import announce_generation, current_generation
from .links import link_resolver
from .locking import import_lock
from .models import Entry, Tag, db, entry_tags, utcnow
from .rendering import RENDERER_VERSION
from .report import ImportReport
from .search import analysis, store
from .vocabulary import TAG_SLUG_RULES, TagResolver, load_vocabulary
from .writer import Existing, existing_entries, write_changes

log = logging.getLogger(__name__)


class ImportFailed(Exception):
    """The import could not be written (a read-only or full database): one line for the operator."""


@dataclass(frozen=True)
class Safety:
    """How much one file may cost (time, memory), and whether symlinks may lead outside the folder."""

    budget: processes.Budget
    follow_external: bool

    @classmethod
    def from_config(cls, config) -> Safety:
        """The app's settings (`NEXUS_MAX_RENDER_SECONDS`, `NEXUS_MAX_RENDER_MB`, `NEXUS_FOLLOW_EXTERNAL_SYMLINKS`)."""
        budget = processes.Budget(float(config["MAX_RENDER_SECONDS"]), float(config["MAX_RENDER_MB"]))
        return cls(budget, bool(config["FOLLOW_EXTERNAL_SYMLINKS"]))


@dataclass
class Scan:
    """The folder compared with the database: which files exist, and the bytes of those that changed."""

    root: Path
    follow_external: bool = False
    present: set[str] = field(default_factory=set)
    changed: dict[str, bytes] = field(default_factory=dict)
    digests: dict[str, str] = field(default_factory=dict)

    def read(self, relative: str) -> bytes:
        """A file's bytes, if it may be published (see folder.read_entry_file); ContentError otherwise."""
        return read_entry_file(self.root, relative, follow_external=self.follow_external)


@dataclass
class Plan:
    """What the import will write: parsed entries, entries to delete, every slug, and how links resolve."""

    parsed: dict[str, ParsedEntry]
    gone: list[str]
    slugs: dict[str, str]
    resolver: Callable[[str], str | None]


def import_content(
    content_dir,
    instance_path,
    *,
    folder_tags: bool = True,
    progress: Callable[[Iterable], Iterable] | None = None,
    wait: bool = True,
) -> ImportReport:
    """Sync `content_dir` into the database and swap in a fresh search index, holding the import lock."""
    root = Path(content_dir).resolve()
    if not root.is_dir():
        raise FileNotFoundError(f"content folder not found: {root}")
    with import_lock(instance_path, wait=wait, engine=db.engine):
        return _import_locked(root, instance_path, folder_tags, progress)


def _import_locked(root: Path, instance_path, folder_tags: bool, progress) -> ImportReport:
    """The import itself; the caller holds the import lock."""
    started = time.monotonic()
    report = _sync(root, folder_tags, progress, Safety.from_config(current_app.config))
    generation = current_generation()
    if report.changed:
        announce_generation(instance_path, generation)
    with report.timed("index"):
        if report.changed or store.check_index(instance_path)[0] != generation:
            rebuild_index(instance_path, generation)
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


def _sync(root: Path, folder_tags: bool, progress, safety: Safety) -> ImportReport:
    """scan → plan → render → write → warn: the database changes of one import."""
    report = ImportReport()
    started_at = utcnow()
    vocabulary, vocab_errors = load_vocabulary(root, follow_external=safety.follow_external)
    report.errors.extend(vocab_errors)
    salt = (RENDERER_VERSION, f"folder_tags={folder_tags}", repr(sorted(vocabulary.items())), TAG_SLUG_RULES)
    existing = existing_entries()
    with report.timed("read"):
        scan = scan_folder(root, existing, salt, progress, report, follow_external=safety.follow_external)
    # Every file is parsed and rendered in sandbox processes, within its budget (see processes.py).
    with processes.Sandbox(processes.process_count(len(scan.changed)), safety.budget) as sandbox:
        with report.timed("parse"):
            plan = plan_changes(root, scan, existing, folder_tags, report, sandbox)
        tags = TagResolver(vocabulary, dict(db.session.execute(select(Tag.slug, Tag.name)).all()))
        with report.timed("render"):
            rows = render_rows(plan, tags, report, sandbox)
            intro = _render_intro(scan, plan, report, sandbox)
    with report.timed("write"):
        try:
            write_changes(rows, existing, plan.gone, tags, report, started_at, intro)
        except (OperationalError, InternalError) as error:  # read-only, full, gone: rolled back, nothing written
            log.debug("the import's write failed", exc_info=True)
            raise ImportFailed(f"cannot write to the database: {str(error.orig).strip().splitlines()[0]}") from None
    warn_about_tag_typos({p: plan.parsed[p] for p in report.added + report.updated if p in plan.parsed}, tags, report)
    return report


def scan_folder(
    root: Path, existing: dict[str, Existing], salt: tuple, progress, report: ImportReport, *, follow_external=False
) -> Scan:
    """Read every Markdown file; unchanged ones (same hash) are only noted."""
    scan = Scan(root, follow_external)
    found = walk(root, follow_external=follow_external)
    report.errors.extend(found.problems)
    for path in progress(found.files) if progress else found.files:
        relative = path.relative_to(root).as_posix()
        try:
            raw = scan.read(relative)
        except Refused as error:  # not published at all: an entry it made before is deleted
            report.errors.append(error)
            continue
        except ContentError as error:  # unreadable: its last good version stays
            scan.present.add(relative)
            report.errors.append(error)
            continue
        scan.present.add(relative)
        digest = content_hash(raw, *salt)
        old = existing.get(relative)
        if old is not None and old.content_hash == digest:
            report.unchanged.append(relative)
            continue
        scan.changed[relative] = raw
        scan.digests[relative] = digest
    return scan


def plan_changes(
    root: Path, scan: Scan, existing: dict[str, Existing], folder_tags: bool, report, sandbox: processes.Sandbox
) -> Plan:
    """Parse what changed, drop drafts and deleted files, give every entry its slug and resolve links."""
    parsed: dict[str, ParsedEntry] = {}
    results = processes.parse_entries(sandbox, list(scan.changed.items()), folder_tags)
    for relative, entry in zip(scan.changed, results, strict=True):
        if isinstance(entry, ContentError):
            report.errors.append(entry)
            continue
        entry.content_hash = scan.digests[relative]
        parsed[relative] = entry
    drafts = {p for p, e in parsed.items() if e.draft}
    gone = [p for p in existing if p not in scan.present or p in drafts]
    for path in drafts:
        parsed.pop(path)
    slugs = _assign_slugs(existing, parsed, gone, report)
    resolver = link_resolver(slugs)
    _relink(scan, existing, gone, parsed, resolver, folder_tags, report, sandbox)
    return Plan(parsed=parsed, gone=gone, slugs=slugs, resolver=resolver)


def _relink(scan: Scan, existing, gone, parsed, resolver, folder_tags: bool, report: ImportReport, sandbox) -> None:
    """Unchanged entries whose links now resolve differently are parsed again, to be rendered again."""
    old_resolver = link_resolver({path: old.slug for path, old in existing.items()})
    relink = [
        p
        for p in report.unchanged
        if p not in gone and any(resolver(k) != old_resolver(k) for k in existing[p].link_keys)
    ]
    files = []
    for path in relink:
        try:
            files.append((path, scan.read(path)))
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


def render_rows(plan: Plan, tags: TagResolver, report: ImportReport, sandbox: processes.Sandbox) -> list[dict]:
    """The column values of every entry to write; an entry that fails to render keeps its last good version."""
    rendered = processes.render_entries(sandbox, list(plan.parsed.values()), plan.slugs)
    rows = []
    for entry in plan.parsed.values():
        done = rendered[entry.path]
        if isinstance(done, ContentError):
            report.errors.append(done)
        else:
            rows.append(_row(entry, tags, report, done))
    return rows


def _row(entry: ParsedEntry, tags: TagResolver, report: ImportReport, done: tuple) -> dict:
    """The column values stored for one parsed entry (`done`: its rendering and the link keys it asked about)."""
    rendered, keys = done
    for line, target in rendered.broken_links:
        report.warnings.append(f"{entry.path}:{line + entry.body_line - 1}: link to '{target}' points to no entry")
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
    }


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


def _render_intro(scan: Scan, plan: Plan, report: ImportReport, sandbox) -> tuple[str, str] | None:
    """`_intro.md`, the home page's introduction, as (html, hash); None if there is none."""
    if not os.path.lexists(scan.root / INTRO_FILE):
        return None
    try:
        raw = scan.read(INTRO_FILE)
        source = raw.decode("utf-8-sig")
    except ContentError as error:
        report.errors.append(error)
        return None
    except UnicodeDecodeError as error:
        report.errors.append(ContentError(INTRO_FILE, 1, f"cannot read the introduction ({error})"))
        return None
    job = processes.RenderJob(INTRO_FILE, "", source)
    done = processes.render_entries(sandbox, [job], plan.slugs)[INTRO_FILE]
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


def rebuild_index(instance_path, generation: int | None = None) -> None:
    """Build the search index from the database and swap it in."""
    started = time.monotonic()
    generation = current_generation() if generation is None else generation
    count = db.session.scalar(select(func.count()).select_from(Entry)) or 0
    entries = db.session.scalars(select(Entry).order_by(Entry.id).execution_options(yield_per=500))
    with processes.helpers_die_with_me():
        procs = processes.process_count(count, forks=True)
        documents = analysis.thin_spelling((analysis.document_for(e) for e in entries), count)
        store.build_index(instance_path, documents, generation, procs=procs)
    db.session.rollback()
    log.info(
        "search index rebuilt for generation %s: %d documents in %.2fs (%d processes)",
        generation,
        count,
        time.monotonic() - started,
        procs,
    )


def ensure_ready(content_dir, instance_path, *, folder_tags: bool = True) -> str:
    """At start-up: import into an empty database, or rebuild a missing or broken index."""
    with import_lock(instance_path, engine=db.engine):
        empty = db.session.scalar(select(func.count()).select_from(Entry)) == 0 and current_generation() == 0
        if empty and Path(content_dir).is_dir():
            report = _import_locked(Path(content_dir).resolve(), instance_path, folder_tags, None)
            return f"imported {len(report.added)} entries ({len(report.errors)} errors)"
        generation = current_generation()
        index_generation, _documents = store.check_index(instance_path)
        if index_generation != generation:
            log.warning(
                "search index missing, broken or stale (index %s, database %s): rebuilding from the database",
                index_generation,
                generation,
            )
            rebuild_index(instance_path, generation)
            return "rebuilt the search index"
    return "ready"
