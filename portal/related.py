"""Related entries: shared tags first, then Whoosh's more-like-this, each with a reason."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import Row

from . import queries
from .models import Entry

if TYPE_CHECKING:
    from .search import engine

MAX_RELATED = 5


@dataclass
class Related:
    """One related entry and why it is shown."""

    entry: Row  # slug, title and kind (queries.entry_refs)
    reason: str


def related_entries(entry: Entry, pool: engine.SearcherPool, limit: int = MAX_RELATED) -> list[Related]:
    """Up to `limit` entries: strong tag overlap, then similar text, then any shared tag."""
    from .search import engine  # lazy: Whoosh loads with the first page that needs it, not with the views

    by_tags = queries.related_by_tags(entry, limit=limit * 2)
    strong = [(e, names) for e, names in by_tags if len(names) >= 2]
    weak = [(e, names) for e, names in by_tags if len(names) < 2]
    chosen: list[Related] = [Related(e, "shares tags: " + ", ".join(names)) for e, names in strong[:limit]]
    seen = {entry.slug} | {r.entry.slug for r in chosen}
    if len(chosen) < limit:
        try:
            similar = engine.more_like(pool, entry.slug, entry.text, limit=limit)
        except engine.IndexUnavailable:
            similar = []
        found = queries.entry_refs([s for s in similar if s not in seen], column=Entry.slug)
        for slug in (s for s in similar if s in found):
            chosen.append(Related(found[slug], "similar content"))
            seen.add(slug)
    for other, names in weak:
        if len(chosen) >= limit:
            break
        if other.slug not in seen:
            chosen.append(Related(other, "shares tag: " + ", ".join(names)))
            seen.add(other.slug)
    return chosen[:limit]
