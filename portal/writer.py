"""The database side of an import: what it holds now, and every change in one transaction.

Only the importer calls this module (the importer is the only writer): entries are
inserted, updated and deleted in batches, with their tags and links, and an `ImportRun`
row records the new content generation when anything changed. The same transaction logs
which entry slugs that generation changed (`IndexChange`, for every node's incremental index
update) and, on PostgreSQL, notifies the other nodes, a message delivered only on commit.
"""

from __future__ import annotations

import datetime as dt
from typing import NamedTuple

from sqlalchemy import bindparam, delete, func, insert, select

from .attachment_store import CHUNK, write_attachments
from .models import (
    GENERATION_CHANNEL,
    Entry,
    FileStamp,
    ImportRun,
    IndexChange,
    Link,
    SiteText,
    Tag,
    db,
    entry_tags,
    utcnow,
)
from .report import ImportReport
from .vocabulary import TagResolver


class Stamp(NamedTuple):
    """What a `stat` said of a file when it was read (see `FileStamp`)."""

    signature: str
    salt: str
    content_hash: str


class Existing(NamedTuple):
    """What the database knows of one file, without loading its HTML.

    `signature` and `salt`: the file's stamp, only while it vouches for the entry's `content_hash`
    (None when there is none, or it was taken of other bytes).
    """

    id: int
    slug: str
    content_hash: str
    signature: str | None = None
    salt: str | None = None


#: Every entry with its file's stamp: read whole by every import, so Core rows (no ORM), no column that
#: needs decoding, and on SQLite answered from one index (`ix_entries_existing`) without its HTML.
EXISTING = select(Entry.path, Entry.id, Entry.slug, Entry.content_hash, FileStamp.signature, FileStamp.salt).outerjoin(
    FileStamp, (FileStamp.entry_id == Entry.id) & (FileStamp.content_hash == Entry.content_hash)
)


def existing_entries() -> dict[str, Existing]:
    """path -> what the database holds, with the file's stamp, in one light query.

    What only a change needs is read when it happens (`stored_link_keys`, the creation dates in
    `_write_entries`).
    """
    rows = db.session.connection().execute(EXISTING).all()
    make = Existing._make
    return {row[0]: make(row[1:]) for row in rows}


def stored_link_keys() -> dict[str, list]:
    """path -> the link keys each entry asked about when it was rendered."""
    return {path: keys or [] for path, keys in db.session.execute(select(Entry.path, Entry.link_keys))}


def write_changes(
    rows, existing, gone, tags: TagResolver, report: ImportReport, started_at, intro, stamps=None
) -> None:
    """Apply every change in one write transaction (BEGIN IMMEDIATE on SQLite); `stamps`: of the files read."""
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
        write_attachments(session, rows, ids, bool(gone))
        _write_stamps(session, stamps or {}, ids, existing, set(gone))
        _refresh_tag_names(session, tags)
        if rows or gone:  # only they drop tags from entries
            session.execute(delete(Tag).where(~Tag.id.in_(select(entry_tags.c.tag_id).distinct())))
        report.site_text_changed = _store_site_text(session, "intro", intro)
        if report.changed:
            run = ImportRun(
                started_at=started_at,
                finished_at=utcnow(),
                added=len(report.added),
                updated=len(report.updated),
                unchanged=len(report.unchanged),
                deleted=len(report.deleted),
                errors=len(report.errors),
                entries=session.scalar(select(func.count()).select_from(Entry)) or 0,
            )
            session.add(run)
            session.flush()
            deleted = [existing[path].slug for path in gone] + [existing[row["path"]].slug for row in moved]
            _log_index_changes(session, run, [row["slug"] for row in rows], deleted)
            _notify_generation(session, run.id)
        session.commit()
    except BaseException:
        session.rollback()
        raise


def _write_stamps(session, stamps: dict, ids: dict[str, int], existing, gone: set[str]) -> None:
    """Replace the stamps of the files this import read (None: the file gets none); deleted entries lose theirs."""
    owners = {
        path: ids[path] if path in ids else existing[path].id for path in stamps if path in ids or path in existing
    }
    owners = {path: entry_id for path, entry_id in owners.items() if path not in gone}
    entry_ids = list(owners.values())
    for start in range(0, len(entry_ids), CHUNK):
        session.execute(delete(FileStamp).where(FileStamp.entry_id.in_(entry_ids[start : start + CHUNK])))
    kept = [{"entry_id": owners[path], **stamps[path]._asdict()} for path in owners if stamps[path] is not None]
    _insert_many(session, FileStamp.__table__, kept)


def _log_index_changes(session, run: ImportRun, changed: list[str], deleted: list[str]) -> None:
    """Record which slugs this generation changed (None: too many, rebuild) and forget old generations."""
    changed, deleted = sorted(set(changed)), sorted(set(deleted))
    if len(changed) + len(deleted) > IndexChange.incremental_limit(run.entries):
        changed = deleted = None
    session.add(IndexChange(generation=run.id, changed=changed, deleted=deleted))
    session.execute(delete(IndexChange).where(IndexChange.generation <= run.id - IndexChange.KEEP))


def _notify_generation(session, generation: int) -> None:
    """On PostgreSQL, tell every listening node of the new generation; the message leaves on commit."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.pg_notify(GENERATION_CHANNEL, str(generation))))


def _write_entries(session, rows, existing, now, report: ImportReport) -> dict[str, int]:
    """Update changed and insert new entry rows, one statement for many rows; path -> entry id."""
    table = Entry.__table__
    ids: dict[str, int] = {}
    updates, inserts = [], []
    created = _creation_dates(session, [existing[r["path"]].id for r in rows if r["path"] in existing])
    for row in rows:
        old = existing.get(row["path"])
        values = {k: v for k, v in row.items() if not k.startswith("_")}
        values["sort_date"] = row["updated"] or row["date"] or (created[old.id] if old else now.date())
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
        # A plain executemany, then the ids by path: RETURNING in parameter order makes SQLAlchemy send
        # SQLite one INSERT per row (10,000 statements at 10,000 entries).
        session.execute(table.insert(), inserts)
        ids.update(_ids_by_path(session, [i["path"] for i in inserts]))
        report.added.extend(i["path"] for i in inserts)
    return ids


def _ids_by_path(session, paths: list[str]) -> dict[str, int]:
    """path -> entry id of the given entries, a chunk of paths per query."""
    table = Entry.__table__
    found: dict[str, int] = {}
    for start in range(0, len(paths), CHUNK):
        chunk = paths[start : start + CHUNK]
        found.update(session.execute(select(table.c.path, table.c.id).where(table.c.path.in_(chunk))).all())
    return found


def _creation_dates(session, entry_ids: list[int]) -> dict[int, dt.date]:
    """entry id -> the day it was first imported (an undated entry is sorted by it)."""
    found: dict[int, dt.date] = {}
    for start in range(0, len(entry_ids), CHUNK):
        chunk = entry_ids[start : start + CHUNK]
        found.update(
            (i, at.date()) for i, at in session.execute(select(Entry.id, Entry.created_at).where(Entry.id.in_(chunk)))
        )
    return found


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
