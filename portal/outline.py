"""What a collection is made of: the kinds its entries use, and its main topics; kept per worker and import.

The header, on every page, offers the kinds that entries use; a collection without kinds (most
notes folders) is offered its main topics instead: the tags of its top-level folders, then its
most used tags, each with its count and newest entry. Built from the tag graph (graph.py) and
one query of entry paths, once per worker and import, not per request.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from sqlalchemy import select
from sqlalchemy.orm import Session

from .content import slugify
from .graph import TagGraph
from .kinds import KIND_ALIASES, KINDS
from .models import Entry

#: Topics kept: the home page shows them all, the header the first few.
TOPICS = 12
HEADER_TOPICS = 5


@dataclass(frozen=True)
class Topic:
    """A tag that stands for a part of the collection, with its entry count and newest entry (slug, title)."""

    slug: str
    name: str
    count: int
    newest: tuple[str, str] | None = None


@dataclass(frozen=True)
class Outline:
    """Entries per used kind (in the fixed order of kinds) and the main topics, most prominent first."""

    kinds: dict[str, int] = field(default_factory=dict)
    topics: list[Topic] = field(default_factory=list)

    @property
    def header_topics(self) -> list[Topic]:
        """The handful of topics the header offers when there are no kinds."""
        return self.topics[:HEADER_TOPICS]


def build(session: Session, graph: TagGraph, limit: int = TOPICS) -> Outline:
    """The outline of the content `graph` describes, read in `session`."""
    kinds = {kind: len(graph.sequences[kind]) for kind in KINDS if graph.sequences.get(kind)}
    counts = graph.tag_counts()
    tag_ids = {slug: tag_id for tag_id, slug in graph.tag_slugs.items()}
    folders = Counter(
        slugify(parts[0])
        for (path,) in session.execute(select(Entry.path))
        if len(parts := PurePosixPath(path).parts) > 1
    )
    by_folder = [
        tag_ids[slug]
        for slug, _ in sorted(folders.items(), key=lambda pair: (-pair[1], pair[0]))
        if slug in tag_ids and slug not in KIND_ALIASES
    ]
    popular = sorted(counts, key=lambda tag_id: (-counts[tag_id], graph.tag_slugs[tag_id]))
    chosen = list(dict.fromkeys([*by_folder, *popular]))[:limit]
    newest = {tag_id: graph.members[tag_id][0] for tag_id in chosen if graph.members.get(tag_id)}
    titles: dict[int, tuple[str, str]] = {}
    if newest:
        rows = session.execute(select(Entry.id, Entry.slug, Entry.title).where(Entry.id.in_(set(newest.values()))))
        titles = {row.id: (row.slug, row.title) for row in rows}
    topics = [
        Topic(graph.tag_slugs[tag_id], graph.tag_names[tag_id], counts[tag_id], titles.get(newest.get(tag_id)))
        for tag_id in chosen
    ]
    return Outline(kinds, topics)


class OutlineCache:
    """This worker's outline for the content generation it last served."""

    def __init__(self):
        self._outline: Outline | None = None
        self._generation = None
        self._lock = threading.Lock()

    def get(self, session: Session, generation, graph: TagGraph) -> Outline:
        """The outline of `generation` (whose tag graph is `graph`), built when this worker has another one."""
        with self._lock:
            if self._outline is None or generation != self._generation:
                self._outline, self._generation = build(session, graph), generation
            return self._outline
