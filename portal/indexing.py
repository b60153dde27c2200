"""This node's search index, brought to the database's generation: updated from the change log, or rebuilt whole.

One mechanism for every caller: the importer's index step, this node's index sync (the
PostgreSQL listener and the periodic check) and start-up. `sync_index` reads the live index's
generation and the log of which entries each newer generation changed (`IndexChange`, written
in the import's own transaction). When the log covers every generation in between and the
change is small next to the index, it replaces only those entries' documents
(`store.update_index`); otherwise (no live index, a gap in the log, too many changes, other
analysis code) it rebuilds the index from the database (`store.build_index`). Either way the
new index is swapped in atomically and the old one answers until then.

Callers hold this node's import lock: one index writer at a time.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import load_only

from .generation import current_generation
from .models import Entry, ImportRun, IndexChange, Tag, db, entry_tags
from .sandbox import helpers_die_with_me, process_count
from .search import store

# The analysis and the builder (and Whoosh's fields under them) are imported by the functions that
# write documents: an import that changed nothing never writes any.

log = logging.getLogger(__name__)

#: Entries read per query when an update loads the changed ones (and per fetch when a full build streams them all).
BATCH = 500


@dataclass
class SyncOutcome:
    """What `sync_index` did: nothing ("current"), an "incremental" update or a "full" rebuild."""

    mode: str
    generation: int
    documents: int = 0  # documents written
    reason: str = ""  # why a full rebuild
    seconds: float = 0.0
    processes: int = 1  # writer processes of a full rebuild


def sync_index(instance_path) -> SyncOutcome:
    """Bring the live index to the database's current generation, incrementally when the log allows."""
    started = time.monotonic()
    with _snapshot():
        generation = current_generation()
        state = store.live_index_state(instance_path)
        slugs, reason = _changed_since(state, generation)
        if slugs is None:
            documents, procs = _build(instance_path, generation)
            outcome = SyncOutcome("full", generation, documents, reason, processes=procs)
        elif state.generation == generation and not slugs:
            return SyncOutcome("current", generation)
        else:
            outcome = SyncOutcome("incremental", generation, _update(instance_path, generation, slugs))
    outcome.seconds = time.monotonic() - started
    log.info(
        "search index at generation %s: %s, %d documents in %.2fs (%d processes)%s",
        generation,
        "updated" if outcome.mode == "incremental" else "rebuilt",
        outcome.documents,
        outcome.seconds,
        outcome.processes,
        f"; {reason}" if reason else "",
    )
    return outcome


def rebuild_index(instance_path, generation: int | None = None) -> None:
    """Build the search index from the database and swap it in (`flask reindex`)."""
    started = time.monotonic()
    with _snapshot():
        generation = current_generation() if generation is None else generation
        count, procs = _build(instance_path, generation)
    log.info(
        "search index rebuilt for generation %s: %d documents in %.2fs (%d processes)",
        generation,
        count,
        time.monotonic() - started,
        procs,
    )


def _changed_since(state: store.IndexState | None, generation: int) -> tuple[set[str] | None, str]:
    """(slugs changed between the live index and `generation`, "") or (None, why the index must be rebuilt)."""
    if state is None:
        return None, "no live index"
    if state.fingerprint != store.analysis_fingerprint():
        return None, "written with other analysis code"
    if state.generation is None or state.generation > generation:
        return None, f"index generation {state.generation} is not behind the database's {generation}"
    if state.generation == generation:
        return set(), ""
    newer = (state.generation < ImportRun.id) & (ImportRun.id <= generation)
    runs = set(db.session.scalars(select(ImportRun.id).where(newer)))
    logged = db.session.execute(
        select(IndexChange.generation, IndexChange.changed, IndexChange.deleted).where(
            (state.generation < IndexChange.generation) & (IndexChange.generation <= generation)
        )
    ).all()
    if runs != {row.generation for row in logged}:
        return None, f"the change log does not cover generations {state.generation + 1} to {generation}"
    slugs: set[str] = set()
    for row in logged:
        if row.changed is None:
            return None, f"generation {row.generation} changed too many entries"
        slugs.update(row.changed, row.deleted)
    limit = IndexChange.incremental_limit(state.documents)
    if len(slugs) + state.deleted > limit:
        return None, f"{len(slugs)} changed and {state.deleted} deleted documents exceed {limit}"
    return slugs, ""


def _update(instance_path, generation: int, slugs: set[str]) -> int:
    """Replace the documents of `slugs` with those entries as the database holds them now; the count written."""
    from .search import analysis  # lazy: see the imports

    documents = []
    ordered = sorted(slugs)
    for start in range(0, len(ordered), BATCH):
        chunk = ordered[start : start + BATCH]
        entries = db.session.scalars(_indexed(select(Entry).where(Entry.slug.in_(chunk)).order_by(Entry.id)))
        documents.extend(analysis.document_for(entry) for entry in entries)
    store.update_index(instance_path, generation, ordered, documents)
    store.merge_segments(instance_path)  # after the swap: the update is searchable meanwhile
    return len(documents)


def _build(instance_path, generation: int) -> tuple[int, int]:
    """Write a whole new index from every entry; (documents written, writer processes)."""
    from .search import analysis, building  # lazy: see the imports

    count = db.session.scalar(select(func.count()).select_from(Entry)) or 0
    with helpers_die_with_me():
        procs = process_count(count, forks=True)
        # The writers make the documents (the spelling words are most of the work), a batch at a time.
        prepare = building.Preparation(
            functools.partial(analysis.thin_batch, count=count), analysis.spelling_batch(count, building.BATCH)
        )
        store.build_index(instance_path, indexed_entries(), generation, procs=procs, prepare=prepare)
    return count, procs


def indexed_entries():
    """Every entry as an `analysis.IndexedEntry`, in id order, from Core rows (no ORM objects), streamed.

    What `IndexedEntry.of` makes of each `Entry` row (tags in slug order, as `Entry.tags`), at about
    a third of the parent's time: a full build's parent shares the cores with its writers.
    """
    from .search import analysis  # lazy: see the imports

    connection = db.session.connection()
    tags: dict[int, list] = {}
    tagged = select(entry_tags.c.entry_id, Tag.slug, Tag.name).join(Tag, Tag.id == entry_tags.c.tag_id)
    for entry_id, slug, name in connection.execute(tagged.order_by(entry_tags.c.entry_id, Tag.slug)):
        tags.setdefault(entry_id, []).append(analysis.TagName(slug, name))
    columns = [getattr(Entry, name) for name in analysis.INDEXED_COLUMNS]
    rows = connection.execute(select(Entry.id, *columns).order_by(Entry.id).execution_options(yield_per=BATCH))
    for entry_id, *values in rows:
        yield analysis.IndexedEntry(*values, tuple(tags.pop(entry_id, ())))


def _indexed(statement):
    """`statement` loading only the columns an entry's document is made of (`analysis.INDEXED_COLUMNS`), not its HTML."""
    from .search import analysis  # lazy: see the imports

    columns = (getattr(Entry, name) for name in analysis.INDEXED_COLUMNS)
    return statement.options(load_only(*columns, raiseload=True))


@contextlib.contextmanager
def _snapshot():
    """One read transaction for the generation, the log and the entries, so that they agree.

    SQLite's read transaction is a snapshot already; PostgreSQL's default (READ COMMITTED)
    would let an import that commits meanwhile show in the later queries.
    """
    session = db.session
    session.rollback()
    if session.get_bind().dialect.name == "postgresql":
        session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
    try:
        yield
    finally:
        session.rollback()
