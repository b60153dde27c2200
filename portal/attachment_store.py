"""The database side of attachments for the importer: what each entry linked to, and writing the files' bytes.

Only the importer calls this module (the importer is the only writer), inside its write
transaction: an entry's links to files are replaced with the entry, new bytes are stored once
under their hash, and bytes no entry links to any more are deleted.
"""

from __future__ import annotations

import logging

from sqlalchemy import delete, exists, insert, select

from .attachments import FileInfo, read_blob
from .models import Attachment, Entry, db, entry_attachments

log = logging.getLogger(__name__)

#: Bound parameters per IN (...) list: well under SQLite's and PostgreSQL's limits.
CHUNK = 500


def stored_references() -> dict[str, list[tuple[str, str]]]:
    """Entry path -> the (file path, stamp) pairs its last import linked to, in one query."""
    rows = db.session.execute(
        select(Entry.path, entry_attachments.c.path, entry_attachments.c.stamp).join(
            entry_attachments, entry_attachments.c.entry_id == Entry.id
        )
    )
    found: dict[str, list[tuple[str, str]]] = {}
    for entry_path, path, stamp in rows:
        found.setdefault(entry_path, []).append((path, stamp))
    return found


def write_attachments(session, rows: list[dict], ids: dict[str, int], deleted_any: bool) -> None:
    """Replace the written entries' links to files, store bytes not yet stored, delete bytes nobody links to."""
    if not rows and not deleted_any:
        return
    entry_ids = [ids[row["path"]] for row in rows]
    for start in range(0, len(entry_ids), CHUNK):
        chunk = entry_ids[start : start + CHUNK]
        session.execute(delete(entry_attachments).where(entry_attachments.c.entry_id.in_(chunk)))
    links = [
        {"entry_id": ids[row["path"]], "path": info.path, "stamp": info.stamp, "hash": info.hash}
        for row in rows
        for info in row.get("_attachments", ())
    ]
    if links:
        session.execute(insert(entry_attachments), links)
    _store_new(session, {info.hash: info for row in rows for info in row.get("_attachments", ()) if info.hash})
    linked = exists().where(entry_attachments.c.hash == Attachment.hash)
    session.execute(delete(Attachment).where(~linked))


def _store_new(session, wanted: dict[str, FileInfo]) -> None:
    """Insert the bytes of the hashes not stored yet, one file at a time (they can be large)."""
    hashes = list(wanted)
    known: set[str] = set()
    for start in range(0, len(hashes), CHUNK):
        chunk = hashes[start : start + CHUNK]
        known.update(session.scalars(select(Attachment.hash).where(Attachment.hash.in_(chunk))))
    for digest in hashes:
        if digest in known:
            continue
        info = wanted[digest]
        data = read_blob(info)
        if data is None:
            # Changed since it was hashed: its stamp changed too, so the next import links the new bytes.
            log.warning("%s changed while it was imported; the next import stores it", info.path)
            continue
        session.execute(insert(Attachment).values(hash=digest, size=info.size, type=info.type, data=data))
