"""Sync a content folder into the database, then rebuild the search index from it.

The importer is the only writer. Database changes happen in one transaction; the
index is built aside and swapped in afterwards, so readers see old or new, never half.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import difflib
import fcntl
import logging
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import yaml
from sqlalchemy import bindparam, delete, func, insert, select, text

from . import processes, search
from .content import ContentError, ParsedEntry, content_hash, parse_bytes, slugify
from .models import Entry, ImportRun, Link, SiteText, Tag, db, entry_tags, utcnow
from .rendering import RENDERER_VERSION, render

log = logging.getLogger(__name__)

MARKDOWN_SUFFIXES = {".md", ".markdown"}
VOCABULARY_FILE = "_tags.yml"
INTRO_FILE = "_intro.md"
LOCK_FILE = "import.lock"
#: Written after each import that changed content, so this node's workers notice it with a `stat`.
GENERATION_FILE = "generation"


class ImportBusy(Exception):
    """Another import holds the lock."""


@dataclass
class ImportReport:
    """What one import did, for the CLI summary and the logs."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    errors: list[ContentError] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    generation: int | None = None
    seconds: float = 0.0
    indexed: bool = False
    site_text_changed: bool = False

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.deleted or self.site_text_changed)

    def summary(self) -> str:
        """One line: added, updated, unchanged, deleted, errors."""
        return (
            f"{len(self.added)} added, {len(self.updated)} updated, {len(self.unchanged)} unchanged, "
            f"{len(self.deleted)} deleted, {len(self.errors)} errors, {len(self.warnings)} warnings"
            f" in {self.seconds:.2f}s"
        )


@dataclass
class _Existing:
    """What the database knows of one file, without loading its HTML."""

    id: int
    slug: str
    content_hash: str
    link_keys: list
    created: dt.date


# --- locking -------------------------------------------------------------------------


#: Key of the PostgreSQL advisory lock that lets one importer run across all nodes.
ADVISORY_LOCK_KEY = 0x4E455855  # "NEXU"


@contextlib.contextmanager
def import_lock(instance_path, *, wait: bool = True, timeout: float = 600.0, engine=None):
    """Hold the one-importer lock: a file lock on this node, plus an advisory lock on PostgreSQL."""
    deadline = time.monotonic() + timeout
    with _file_lock(Path(instance_path), wait, deadline), _database_lock(engine, wait, deadline):
        yield


@contextlib.contextmanager
def _file_lock(instance: Path, wait: bool, deadline: float):
    """An exclusive `flock` on `<instance>/import.lock` (released if the process dies)."""
    instance.mkdir(parents=True, exist_ok=True)
    handle = open(instance / LOCK_FILE, "a+")  # noqa: SIM115 - held for the block
    try:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not wait or time.monotonic() > deadline:
                    raise ImportBusy("another import is running; try again when it has finished") from None
                time.sleep(0.1)
        yield
    finally:
        handle.close()


@contextlib.contextmanager
def _database_lock(engine, wait: bool, deadline: float):
    """On PostgreSQL, a session advisory lock shared by every node (released if the session ends)."""
    if engine is None or engine.dialect.name != "postgresql":
        yield
        return
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        while not connection.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": ADVISORY_LOCK_KEY}).scalar():
            if not wait or time.monotonic() > deadline:
                raise ImportBusy("another import is running on another node; try again when it has finished")
            time.sleep(0.2)
        try:
            yield
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": ADVISORY_LOCK_KEY})


# --- walking and parsing -----------------------------------------------------------


def find_markdown_files(root: Path) -> list[Path]:
    """Markdown files under `root`, skipping hidden and `_`-prefixed names, sorted."""
    found = []
    for folder, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith((".", "_")))
        for name in filenames:
            if name.startswith((".", "_")) or Path(name).suffix.lower() not in MARKDOWN_SUFFIXES:
                continue
            found.append(Path(folder) / name)
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def load_vocabulary(root: Path) -> tuple[dict, list[ContentError]]:
    """`_tags.yml`: slug -> {name, description, aliases}; problems are reported, not fatal."""
    path = root / VOCABULARY_FILE
    if not path.is_file():
        return {}, []
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8-sig")) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        mark = getattr(error, "problem_mark", None)
        return {}, [ContentError(VOCABULARY_FILE, mark.line + 1 if mark else 1, f"tag vocabulary unreadable: {error}")]
    if not isinstance(data, dict):
        return {}, [ContentError(VOCABULARY_FILE, 1, "tag vocabulary must map tag slugs to settings")]
    vocabulary = {}
    for key, value in data.items():
        value = value if isinstance(value, dict) else {}
        aliases = value.get("aliases") or []
        vocabulary[slugify(str(key))] = {
            "name": str(value.get("name") or key),
            "description": str(value.get("description") or ""),
            "aliases": [slugify(str(a)) for a in aliases] if isinstance(aliases, list) else [],
        }
    return vocabulary, []


class TagResolver:
    """Normalise tag names to slugs, folding aliases and keeping display names."""

    def __init__(self, vocabulary: dict):
        self.vocabulary = vocabulary
        self.alias_of = {alias: slug for slug, v in vocabulary.items() for alias in v["aliases"]}
        self.names: dict[str, str] = {slug: v["name"] for slug, v in vocabulary.items()}

    def resolve(self, name: str) -> str:
        """The canonical slug of a tag name; remembers the first display name seen."""
        slug = slugify(name)
        slug = self.alias_of.get(slug, slug)
        self.names.setdefault(slug, name)
        return slug


# --- the import ------------------------------------------------------------------------


def import_content(
    content_dir,
    instance_path,
    *,
    folder_tags: bool = True,
    progress: Callable[[Iterable], Iterable] | None = None,
    wait: bool = True,
    _locked: bool = False,
) -> ImportReport:
    """Sync `content_dir` into the database and swap in a fresh search index."""
    started = time.monotonic()
    root = Path(content_dir).resolve()
    if not root.is_dir():
        raise FileNotFoundError(f"content folder not found: {root}")
    lock = contextlib.nullcontext() if _locked else import_lock(instance_path, wait=wait, engine=db.engine)
    with lock:
        report = _sync(root, folder_tags, progress)
        generation = current_generation()
        if report.changed:
            announce_generation(instance_path, generation)
        if report.changed or search.check_index(instance_path)[0] != generation:
            rebuild_index(instance_path, generation)
            report.indexed = True
    report.generation = generation
    report.seconds = time.monotonic() - started
    log.info("import of %s: %s (generation %s)", root, report.summary(), generation)
    return report


def announce_generation(instance_path, generation: int) -> None:
    """Tell this node's workers that an import committed, without their asking the database."""
    path = Path(instance_path) / GENERATION_FILE
    temporary = path.with_name(f".{GENERATION_FILE}.{os.getpid()}")
    temporary.write_text(f"{generation}\n")
    os.replace(temporary, path)


def current_generation() -> int:
    """The id of the last import that changed something (0 before any)."""
    return db.session.scalar(select(func.coalesce(func.max(ImportRun.id), 0))) or 0


def _sync(root: Path, folder_tags: bool, progress) -> ImportReport:
    """Parse what changed, resolve slugs and links, and write it all in one transaction."""
    report = ImportReport()
    started_at = utcnow()
    salt = (RENDERER_VERSION, f"folder_tags={folder_tags}")
    vocabulary, vocab_errors = load_vocabulary(root)
    report.errors.extend(vocab_errors)
    salt += (repr(sorted(vocabulary.items())),)
    existing = _existing_entries()
    files = find_markdown_files(root)
    parsed: dict[str, ParsedEntry] = {}
    present: set[str] = set()
    changed: list[tuple[str, bytes]] = []  # files to parse (in one process per core when many)
    digests: dict[str, str] = {}
    iterator = progress(files) if progress else files
    for path in iterator:
        relative = path.relative_to(root).as_posix()
        present.add(relative)
        try:
            raw = path.read_bytes()
        except OSError as error:
            report.errors.append(ContentError(relative, 1, f"cannot read file ({error.strerror or error})"))
            continue
        digest = content_hash(raw, *salt)
        old = existing.get(relative)
        if old is not None and old.content_hash == digest:
            report.unchanged.append(relative)
            continue
        changed.append((relative, raw))
        digests[relative] = digest
    for relative, entry in zip(digests, processes.parse_entries(changed, folder_tags), strict=True):
        if isinstance(entry, ContentError):
            report.errors.append(entry)
            continue
        entry.content_hash = digests[relative]
        parsed[relative] = entry

    drafts = {p for p, e in parsed.items() if e.draft}
    gone = [p for p in existing if p not in present or p in drafts]
    for path in drafts:
        parsed.pop(path)
    slugs = _assign_slugs(existing, parsed, gone, report)
    old_slugs = {path: old.slug for path, old in existing.items()}
    resolver = _link_resolver(slugs)
    old_resolver = _link_resolver(old_slugs)

    # Unchanged entries whose links now resolve differently are rendered again.
    relink = [
        p
        for p in report.unchanged
        if any(resolver(k) != old_resolver(k) for k in existing[p].link_keys) and p not in gone
    ]
    for path in relink:
        try:
            entry = parse_bytes(path, (root / path).read_bytes(), folder_tags=folder_tags)
        except (OSError, ContentError):
            continue
        entry.content_hash = existing[path].content_hash
        parsed[path] = entry
        report.unchanged.remove(path)

    tags = TagResolver(vocabulary)
    rendering_started = time.monotonic()
    rendered = processes.render_entries(list(parsed.values()), slugs)  # empty unless many changed
    rows = [_render_entry(entry, resolver, tags, report, rendered.get(entry.path)) for entry in parsed.values()]
    intro = _render_intro(root, resolver, report)
    writing_started = time.monotonic()
    _write(rows, existing, gone, tags, report, started_at, intro)
    log.info(
        "import: %d files read, %d rendered in %.2fs, database written in %.2fs",
        len(present),
        len(rows),
        writing_started - rendering_started,
        time.monotonic() - writing_started,
    )
    _warn_about_tag_typos({p: parsed[p] for p in report.added + report.updated if p in parsed}, tags, report)
    return report


def _render_intro(root: Path, resolver, report: ImportReport) -> tuple[str, str] | None:
    """`_intro.md`, the home page's introduction, as (html, hash); None if there is none."""
    path = root / INTRO_FILE
    if not path.is_file():
        return None
    try:
        raw = path.read_bytes()
        source = raw.decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        report.errors.append(ContentError(INTRO_FILE, 1, f"cannot read the introduction ({error})"))
        return None
    rendered = render(source, source_path=INTRO_FILE, resolve_link=resolver, entry_slug="")
    for line, target in rendered.broken_links:
        report.warnings.append(f"{INTRO_FILE}:{line}: link to '{target}' points to no entry")
    # Links in the introduction are relative to /entries/; the home page is one level up.
    html = rendered.html.replace('href="./', 'href="entries/')
    return html, content_hash(raw, RENDERER_VERSION, html)


def _warn_about_tag_typos(changed: dict[str, ParsedEntry], tags: TagResolver, report: ImportReport) -> None:
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


def _existing_entries() -> dict[str, _Existing]:
    """path -> what the database holds, in one light query."""
    result = db.session.execute(
        select(Entry.path, Entry.id, Entry.slug, Entry.content_hash, Entry.link_keys, Entry.created_at)
    )
    return {
        row.path: _Existing(row.id, row.slug, row.content_hash, row.link_keys or [], row.created_at.date())
        for row in result
    }


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


def _link_resolver(slugs_by_path: dict[str, str]):
    """Resolve a relative file path or a `[[wiki]]` name to an entry slug."""
    by_slug = set(slugs_by_path.values())
    by_stem: dict[str, set[str]] = {}
    for slug in by_slug:
        by_stem.setdefault(slug.rsplit("/", 1)[-1], set()).add(slug)

    def resolve(key: str) -> str | None:
        if key.startswith("[["):
            name = key[2:-2].strip().removesuffix(".md")
            wanted = "/".join(slugify(part) for part in name.split("/"))
            if wanted in by_slug:
                return wanted
            matches = by_stem.get(wanted, set())
            return next(iter(matches)) if len(matches) == 1 else None
        path = PurePosixPath(key).as_posix()
        return slugs_by_path.get(path)

    return resolve


def _render_entry(entry: ParsedEntry, resolver, tags: TagResolver, report: ImportReport, done=None) -> dict:
    """The column values stored for one parsed entry (`done`: its rendering from the process pool)."""
    rendered, keys = done or processes.render_entry(entry, resolver)
    for line, target in rendered.broken_links:
        report.warnings.append(f"{entry.path}:{line + entry.body_line - 1}: link to '{target}' points to no entry")
    tag_slugs = list(dict.fromkeys(tags.resolve(name) for name in entry.tags))
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


def _shorten(text: str, limit: int = 280) -> str:
    """A summary-sized prefix of text, cut at a word boundary."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    return text[:limit].rsplit(" ", 1)[0].rstrip(",;:") + "…"


def _write(rows, existing, gone, tags: TagResolver, report: ImportReport, started_at, intro) -> None:
    """Apply every change in one write transaction (BEGIN IMMEDIATE on SQLite)."""
    session = db.session
    session.rollback()
    session.connection(execution_options={"nexus_write": True})
    now = utcnow()
    try:
        if gone:
            session.execute(delete(Entry).where(Entry.path.in_(gone)))
            report.deleted.extend(sorted(gone))
        # Slugs freed by deletions or moves must be released before others take them.
        moved = [r for r in rows if r["path"] in existing and existing[r["path"]].slug != r["slug"]]
        for row in moved:
            session.execute(
                Entry.__table__.update().where(Entry.path == row["path"]).values(slug=f"~moving~{row['path']}")
            )
        tag_ids = _ensure_tags(session, tags, {slug for row in rows for slug in row["_tags"]})
        ids = _write_entries(session, rows, existing, now, report)
        tag_rows = [{"entry_id": ids[r["path"]], "tag_id": tag_ids[slug]} for r in rows for slug in r["_tags"]]
        link_rows = [{"source_id": ids[r["path"]], "target_slug": slug} for r in rows for slug in r["_links"]]
        _insert_many(session, entry_tags, tag_rows)
        _insert_many(session, Link.__table__, link_rows)
        _refresh_tag_names(session, tags)
        session.execute(delete(Tag).where(~Tag.id.in_(select(entry_tags.c.tag_id).distinct())))
        report.site_text_changed = _store_site_text(session, "intro", intro)
        if report.changed:
            session.add(
                ImportRun(
                    started_at=started_at,
                    finished_at=utcnow(),
                    added=len(report.added),
                    updated=len(report.updated),
                    unchanged=len(report.unchanged),
                    deleted=len(report.deleted),
                    errors=len(report.errors),
                    entries=session.scalar(select(func.count()).select_from(Entry)) or 0,
                )
            )
            session.flush()
        session.commit()
    except BaseException:
        session.rollback()
        raise


def _write_entries(session, rows, existing, now, report: ImportReport) -> dict[str, int]:
    """Update changed and insert new entry rows, one statement for many rows; path -> entry id."""
    table = Entry.__table__
    ids: dict[str, int] = {}
    updates, inserts = [], []
    for row in rows:
        old = existing.get(row["path"])
        values = {k: v for k, v in row.items() if not k.startswith("_")}
        values["sort_date"] = row["updated"] or row["date"] or (old.created if old else now.date())
        values["modified_at"] = now
        if old is None:
            inserts.append({**values, "created_at": now})
        else:
            ids[row["path"]] = old.id
            updates.append({**values, "entry_id": old.id})
    if updates:
        # Their tags and links are written again below, like those of new entries.
        for child, column in ((entry_tags, entry_tags.c.entry_id), (Link.__table__, Link.source_id)):
            session.execute(
                delete(child).where(column == bindparam("entry_id")), [{"entry_id": u["entry_id"]} for u in updates]
            )
        session.execute(table.update().where(table.c.id == bindparam("entry_id")), updates)
        report.updated.extend(u["path"] for u in updates)
    if inserts:
        inserted = session.execute(
            table.insert().returning(table.c.id, table.c.path, sort_by_parameter_order=True), inserts
        )
        ids.update((path, entry_id) for entry_id, path in inserted)
        report.added.extend(i["path"] for i in inserts)
    return ids


def _insert_many(session, table, rows: list[dict]) -> None:
    """One INSERT for all `rows` (none when there are none)."""
    if rows:
        session.execute(insert(table), rows)


def _store_site_text(session, key: str, value: tuple[str, str] | None) -> bool:
    """Insert, update or delete one piece of site text; True if it changed."""
    current = session.get(SiteText, key)
    if value is None:
        if current is None:
            return False
        session.delete(current)
        return True
    html, digest = value
    if current is not None and current.content_hash == digest:
        return False
    if current is None:
        session.add(SiteText(key=key, html=html, content_hash=digest))
    else:
        current.html, current.content_hash = html, digest
    return True


def _ensure_tags(session, tags: TagResolver, slugs: set[str]) -> dict[str, int]:
    """Ids for the given tag slugs, creating missing tags."""
    known = dict(session.execute(select(Tag.slug, Tag.id).where(Tag.slug.in_(slugs))).all()) if slugs else {}
    for slug in sorted(slugs - known.keys()):
        info = tags.vocabulary.get(slug, {})
        known[slug] = session.execute(
            insert(Tag).values(
                slug=slug,
                name=tags.names.get(slug, slug),
                description=info.get("description", ""),
                aliases=info.get("aliases", []),
            )
        ).inserted_primary_key[0]
    return known


def _refresh_tag_names(session, tags: TagResolver) -> None:
    """Keep vocabulary names and descriptions current on existing tags."""
    for slug, info in tags.vocabulary.items():
        session.execute(
            Tag.__table__.update()
            .where(Tag.slug == slug)
            .values(name=info["name"], description=info["description"], aliases=info["aliases"])
        )


def rebuild_index(instance_path, generation: int | None = None) -> None:
    """Build the search index from the database and swap it in."""
    started = time.monotonic()
    generation = current_generation() if generation is None else generation
    count = db.session.scalar(select(func.count()).select_from(Entry)) or 0
    entries = db.session.scalars(select(Entry).order_by(Entry.id).execution_options(yield_per=500))
    with processes.helpers_die_with_me():
        procs = processes.process_count(count, forks=True)
        documents = search.thin_spelling((search.document_for(e) for e in entries), count)
        search.build_index(instance_path, documents, generation, procs=procs)
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
            report = import_content(content_dir, instance_path, folder_tags=folder_tags, _locked=True)
            return f"imported {len(report.added)} entries ({len(report.errors)} errors)"
        generation = current_generation()
        index_generation, _documents = search.check_index(instance_path)
        if index_generation != generation:
            log.warning(
                "search index missing, broken or stale (index %s, database %s): rebuilding from the database",
                index_generation,
                generation,
            )
            rebuild_index(instance_path, generation)
            return "rebuilt the search index"
    return "ready"
