"""Read-only database queries the views share."""

from __future__ import annotations

import datetime as dt
import difflib
import threading
from collections import OrderedDict
from dataclasses import dataclass, replace

from flask import current_app, has_request_context
from flask_sqlalchemy.pagination import Pagination
from sqlalchemy import func, select
from sqlalchemy.orm import defer

from . import graph, outline
from .generation import current_generation, request_generation
from .kinds import KINDS
from .models import Attachment, Entry, ImportRun, Link, SiteText, Tag, db, entry_attachments, entry_tags


def kind_counts() -> dict[str, int]:
    """Entries per kind, in the fixed order of kinds."""
    rows = dict(db.session.execute(select(Entry.kind, func.count()).group_by(Entry.kind)).all())
    return {kind: rows.get(kind, 0) for kind in KINDS}


def entries_page(page: int, per_page: int, kind: str | None = None):
    """Entries newest first (optionally of one kind), paginated."""
    stmt = select(Entry).order_by(Entry.sort_date.desc(), Entry.title)
    if kind:
        stmt = stmt.where(Entry.kind == kind)
    return db.paginate(stmt, page=page, per_page=per_page, error_out=False)


def recently_updated(limit: int = 5) -> list[Entry]:
    """Entries whose files changed most recently (by import time)."""
    stmt = select(Entry).order_by(Entry.updated.desc().nulls_last(), Entry.modified_at.desc(), Entry.title)
    return list(db.session.scalars(stmt.limit(limit)))


def entry_by_slug(slug: str) -> Entry | None:
    """One entry by its slug; a slug no entry could have (too long, control characters) is None."""
    if len(slug) > 1024 or any(ord(ch) < 32 for ch in slug):
        return None
    return db.session.scalar(select(Entry).where(Entry.slug == slug))


#: What a list of entries never shows: their rendered pages and what search and links are made of.
LISTED = (defer(Entry.html), defer(Entry.text), defer(Entry.toc), defer(Entry.headings), defer(Entry.link_keys))


def entries_by_slugs(slugs: list[str]) -> list[Entry]:
    """Entries for the given slugs, in the order given (search ranking), without their heavy columns."""
    if not slugs:
        return []
    found = {e.slug: e for e in db.session.scalars(select(Entry).options(*LISTED).where(Entry.slug.in_(slugs)))}
    return [found[s] for s in slugs if s in found]


@dataclass(frozen=True)
class TagRef:
    """A tag as a list of entries shows it."""

    slug: str
    name: str


@dataclass(frozen=True)
class Listed:
    """An entry as a search page lists it: what its card shows, and its text for the snippet.

    Read with two plain queries rather than the ORM, which cost a search page more than its search.
    """

    id: int
    slug: str
    title: str
    kind: str | None
    summary: str
    date: dt.date | None
    updated: dt.date | None
    sort_date: dt.date
    created_at: dt.datetime
    reading_minutes: int
    text: str
    tags: tuple[TagRef, ...] = ()


LISTED_COLUMNS = (
    Entry.id, Entry.slug, Entry.title, Entry.kind, Entry.summary, Entry.date, Entry.updated, Entry.sort_date,
    Entry.created_at, Entry.reading_minutes, Entry.text,
)  # fmt: skip


class ListedCache:
    """Entries as search pages list them, kept by a worker for one content generation.

    Searches keep finding the same entries; an entry changes only with a new generation. The
    cache is bounded by the size of the texts it holds (oldest dropped first).
    """

    def __init__(self, budget_bytes: int = 16 * 1024 * 1024):
        self.budget = budget_bytes
        self._generation = None
        self._items: OrderedDict[str, Listed] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def get(self, generation, slugs: list[str]) -> dict[str, Listed]:
        """The cached entries among `slugs` (none if the generation changed)."""
        with self._lock:
            if generation != self._generation:
                self._generation, self._items, self._size = generation, OrderedDict(), 0
                return {}
            found = {slug: self._items[slug] for slug in slugs if slug in self._items}
            for slug in found:
                self._items.move_to_end(slug)
            return found

    def put(self, generation, listed: dict[str, Listed]) -> None:
        """Keep entries read for `generation`."""
        with self._lock:
            if generation != self._generation:
                return
            for slug, entry in listed.items():
                if slug not in self._items:
                    self._items[slug] = entry
                    self._size += len(entry.text) + 512
            while self._size > self.budget and self._items:
                _, dropped = self._items.popitem(last=False)
                self._size -= len(dropped.text) + 512


def listed_by_slugs(slugs: list[str]) -> dict[str, Listed]:
    """slug -> the entry as a search page lists it, with its tags in slug order (kept per generation)."""
    if not slugs:
        return {}
    cache: ListedCache = current_app.extensions["nexus.listed"]
    generation = content_generation()
    found = cache.get(generation, slugs)
    missing = [slug for slug in slugs if slug not in found]
    if missing:
        read = _read_listed(missing)
        cache.put(generation, read)
        found.update(read)
    return found


TAGS_OF = (
    "SELECT entry_tags.entry_id, tags.slug, tags.name FROM entry_tags JOIN tags ON tags.id = entry_tags.tag_id "
    "WHERE entry_tags.entry_id IN ({marks}) ORDER BY tags.slug"
)


def _read_listed(slugs: list[str]) -> dict[str, Listed]:
    """Two queries sent as written (SQLAlchemy's compiling and typing cost five times the queries): entries, then tags."""
    connection = db.session.connection()
    mark = "?" if connection.dialect.paramstyle == "qmark" else "%s"
    columns = ", ".join(column.key for column in LISTED_COLUMNS)
    # Only column names and parameter marks are written into the text; the values are parameters.
    rows = connection.exec_driver_sql(
        f"SELECT {columns} FROM entries WHERE slug IN ({', '.join([mark] * len(slugs))})",  # noqa: S608  # nosec B608
        tuple(slugs),
    ).all()
    if not rows:
        return {}
    tags: dict[int, list[TagRef]] = {row.id: [] for row in rows}
    marks = ", ".join([mark] * len(tags))
    tag_rows = connection.exec_driver_sql(TAGS_OF.format(marks=marks), tuple(tags))  # noqa: S608  # nosec B608
    for entry_id, slug, name in tag_rows:
        tags[entry_id].append(TagRef(slug, name))
    return {row.slug: _listed(row, tags[row.id]) for row in rows}


def _listed(row, tags: list[TagRef]) -> Listed:
    """An entry from a row as the driver gave it (SQLite gives dates as ISO text)."""
    values = row._asdict()
    for name in ("date", "updated", "sort_date"):
        if isinstance(values[name], str):
            values[name] = dt.date.fromisoformat(values[name][:10])
    if isinstance(values["created_at"], str):
        values["created_at"] = dt.datetime.fromisoformat(values["created_at"])
    return Listed(**values, tags=tuple(tags))


def texts_by_slugs(slugs: list[str]) -> dict[str, str]:
    """slug -> plain text, for building search snippets."""
    if not slugs:
        return {}
    return dict(db.session.execute(select(Entry.slug, Entry.text).where(Entry.slug.in_(slugs))).all())


def popular_tags(limit: int = 20) -> list[tuple[Tag, int]]:
    """The most used tags with their entry counts."""
    graph = tag_graph()
    top = sorted(graph.tag_counts().items(), key=lambda pair: (-pair[1], graph.tag_slugs[pair[0]]))[:limit]
    return _with_tags(dict(top))


def entry_count() -> int:
    """How many entries the database holds."""
    return db.session.scalar(select(func.count()).select_from(Entry)) or 0


def last_import() -> ImportRun | None:
    """The latest import that changed content."""
    return db.session.scalar(select(ImportRun).order_by(ImportRun.id.desc()).limit(1))


@dataclass(frozen=True)
class TagFilter:
    """Tag and kind constraints: every `all` tag, at least one `any` tag, no `none` tag."""

    all: tuple[str, ...] = ()
    any: tuple[str, ...] = ()
    none: tuple[str, ...] = ()
    kind: str | None = None

    @property
    def active(self) -> bool:
        return bool(self.all or self.any or self.none or self.kind)

    def tags(self) -> set[str]:
        """Every tag the filter names."""
        return set(self.all) | set(self.any) | set(self.none)

    def params(self) -> dict[str, str]:
        """Canonical query parameters: sorted, comma-joined, empty ones left out."""
        params = {
            "all": ",".join(sorted(self.all)),
            "any": ",".join(sorted(self.any)),
            "not": ",".join(sorted(self.none)),
            "kind": self.kind or "",
        }
        return {key: value for key, value in params.items() if value}

    def without(self, group: str, tag: str | None = None) -> TagFilter:
        """The same filter with one tag (or the kind) removed."""
        if group == "kind":
            return replace(self, kind=None)
        return replace(self, **{group: tuple(t for t in getattr(self, group) if t != tag)})

    def adding(self, tag: str) -> TagFilter:
        """The same filter narrowed by one more required tag."""
        return replace(self, all=tuple(sorted({*self.all, tag})))


def tags_by_slug(slugs) -> dict[str, Tag]:
    """Tags for the given slugs (unknown ones are simply absent)."""
    if not slugs:
        return {}
    return {t.slug: t for t in db.session.scalars(select(Tag).where(Tag.slug.in_(list(slugs))))}


class IdPagination(Pagination):
    """A page of entries from an ordered list of ids (the tag graph's answer to a filter)."""

    def _query_items(self) -> list[Entry]:
        ids = self._query_args["ids"][self._query_offset : self._query_offset + self.per_page]
        if not ids:
            return []
        found = {e.id: e for e in db.session.scalars(select(Entry).where(Entry.id.in_(ids)))}
        return [found[i] for i in ids if i in found]

    def _query_count(self) -> int:
        return len(self._query_args["ids"])


def _matching(tag_filter: TagFilter, tag_ids: dict[str, int]) -> set[int]:
    """Ids of the entries that pass the filter."""
    return tag_graph().matching(
        [tag_ids[s] for s in tag_filter.all],
        [tag_ids[s] for s in tag_filter.any],
        [tag_ids[s] for s in tag_filter.none],
        tag_filter.kind,
    )


def filtered_entries(tag_filter: TagFilter, tag_ids: dict[str, int], page: int, per_page: int, sort: str):
    """Entries passing a tag filter, paginated, newest first or by title."""
    ids = tag_graph().ordered(_matching(tag_filter, tag_ids), sort)
    return IdPagination(page=page, per_page=per_page, max_per_page=None, error_out=False, ids=ids)


def _with_tags(counts) -> list[tuple[Tag, int]]:
    """(Tag, count) for tag ids with counts, most first, then by slug."""
    tags = {t.id: t for t in db.session.scalars(select(Tag).where(Tag.id.in_(list(counts))))} if counts else {}
    return sorted(
        ((tags[i], n) for i, n in counts.items() if n and i in tags), key=lambda pair: (-pair[1], pair[0].slug)
    )


def tag_counts_within(tag_filter: TagFilter, tag_ids: dict[str, int]) -> list[tuple[Tag, int]]:
    """For every tag, how many of the filtered entries carry it (most first)."""
    return _with_tags(tag_graph().tag_counts(_matching(tag_filter, tag_ids)))


def all_tags(sort: str = "count") -> list[tuple[Tag, int]]:
    """Every tag with its entry count, by count (then name) or by name."""
    count = func.count(entry_tags.c.entry_id)
    order = (Tag.name,) if sort == "name" else (count.desc(), Tag.name)
    stmt = select(Tag, count).join(entry_tags, entry_tags.c.tag_id == Tag.id).group_by(Tag.id).order_by(*order)
    return [(tag, n) for tag, n in db.session.execute(stmt).all()]


def tag_aliases() -> dict[str, str]:
    """alias slug -> tag slug, from the tag vocabulary."""
    return {
        alias: slug for slug, aliases in db.session.execute(select(Tag.slug, Tag.aliases)) for alias in aliases or ()
    }


def nearest_tags(slug: str, limit: int = 5) -> list[Tag]:
    """Known tags whose slugs look most like an unknown one."""
    slugs = list(db.session.scalars(select(Tag.slug)))
    close = difflib.get_close_matches(slug, slugs, n=limit, cutoff=0.5)
    close += [s for s in slugs if slug and (slug in s or s in slug) and s not in close]
    found = tags_by_slug(close[:limit])
    return [found[s] for s in close[:limit] if s in found]


def backlinks(entry: Entry) -> list:
    """Entries whose bodies link to this one, by title (slug, title and kind only)."""
    stmt = select(Entry.id, Entry.slug, Entry.title, Entry.kind).join(Link, Link.source_id == Entry.id)
    return db.session.execute(
        stmt.where(Link.target_slug == entry.slug, Entry.id != entry.id).order_by(Entry.title)
    ).all()


def content_generation() -> int:
    """The generation this request answers from (the one its validators name); the database's outside a request."""
    return request_generation()[0] if has_request_context() else current_generation()


def tag_graph() -> graph.TagGraph:
    """This worker's tag graph for the content this request sees."""
    return current_app.extensions["nexus.graph"].get(db.session, content_generation())


def entry_refs(keys, column=Entry.id) -> dict:
    """key -> (id, slug, title, kind) row of the entries whose `column` is one of `keys`; enough to link to them."""
    keys = [key for key in keys if key is not None]
    if not keys:
        return {}
    rows = db.session.execute(select(Entry.id, Entry.slug, Entry.title, Entry.kind).where(column.in_(keys)))
    return {getattr(row, column.key): row for row in rows}


def neighbours(entry: Entry) -> tuple:
    """The previous (older) and next (newer) entry of the same kind, as references."""
    older, newer = tag_graph().neighbours(entry.id)
    found = entry_refs([older, newer])
    return found.get(older), found.get(newer)


def related_by_tags(entry: Entry, limit: int = 5) -> list[tuple]:
    """Entries sharing the most tags with this one (newest first among equals), with the shared tag names."""
    ranked = tag_graph().related(entry.id, limit)
    found = entry_refs([i for i, _ in ranked])
    return [(found[i], names) for i, names in ranked if i in found]


def site_text(key: str) -> str | None:
    """A piece of site text kept by the importer (e.g. the home page introduction)."""
    return db.session.scalar(select(SiteText.html).where(SiteText.key == key))


def feed_entries(tag_filter: TagFilter, tag_ids: dict[str, int], limit: int) -> list[Entry]:
    """The newest entries passing a filter (all entries when it is empty), for a feed."""
    return list(filtered_entries(tag_filter, tag_ids, 1, limit, "newest").items)


def sitemap_dates() -> tuple[list[tuple[str, dt.datetime]], list[tuple[str, dt.datetime]], dict[str, dt.datetime]]:
    """When each entry page, tag page and kind page last changed.

    An entry's updated date, else its date (front matter or git), else when it was imported;
    a tag or kind page changes with its latest entry.
    """
    rows = db.session.execute(
        select(Entry.id, Entry.slug, Entry.kind, Entry.date, Entry.updated, Entry.modified_at).order_by(Entry.slug)
    ).all()
    changed = {row.id: _midnight(row.updated or row.date) or row.modified_at for row in rows}
    entries = [(row.slug, changed[row.id]) for row in rows]
    tags: dict[str, dt.datetime] = {}
    pairs = select(Tag.slug, entry_tags.c.entry_id).join(entry_tags, entry_tags.c.tag_id == Tag.id)
    for slug, entry_id in db.session.execute(pairs):
        tags[slug] = max(tags.get(slug, changed[entry_id]), changed[entry_id])
    kinds: dict[str, dt.datetime] = {}
    for row in rows:
        if row.kind:
            kinds[row.kind] = max(kinds.get(row.kind, changed[row.id]), changed[row.id])
    return entries, sorted(tags.items()), kinds


def _midnight(day: dt.date | None) -> dt.datetime | None:
    """A day as the time it starts, to compare with import times."""
    return dt.datetime.combine(day, dt.time()) if day else None


def attachment(digest: str, name: str) -> Attachment | None:
    """A stored file by its hash, if some entry links to it under this file name (no other name serves it)."""
    if len(digest) != 64 or not all(ch in "0123456789abcdef" for ch in digest):
        return None
    paths = db.session.scalars(select(entry_attachments.c.path).where(entry_attachments.c.hash == digest))
    if name not in {path.rsplit("/", 1)[-1] for path in paths}:
        return None
    return db.session.get(Attachment, digest)


def collection_outline() -> outline.Outline:
    """The kinds entries use and the collection's main topics, for the header and the home page."""
    cache = current_app.extensions.setdefault("nexus.outline", outline.OutlineCache())
    return cache.get(db.session, content_generation(), tag_graph())
