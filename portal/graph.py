"""Which entries share tags, and which come before and after each other: kept in memory per import.

An entry page needs its related entries (ranked by shared tags, then recency) and its
neighbours within its kind. As SQL they cost a group-by over every tag row and a sort per
page (25 ms at 10,000 entries); from this table, loaded once per worker and import
(about 50 ms and 3 MB at 10,000 entries), they cost well under a millisecond.
"""

from __future__ import annotations

import heapq
import threading
from collections import Counter, defaultdict
from dataclasses import dataclass
from itertools import chain

from sqlalchemy import select
from sqlalchemy.orm import Session

from .models import Entry, Tag, entry_tags


@dataclass(frozen=True)
class TagGraph:
    """Entries, their tags and their order, as plain ids."""

    tags_of: dict[int, tuple[int, ...]]  # entry id -> its tag ids
    members: dict[int, list[int]]  # tag id -> entry ids, newest first
    recency: dict[int, int]  # entry id -> 0 for the newest entry, 1 for the next...
    alphabetical: dict[int, int]  # entry id -> position by title
    place: dict[int, tuple[str, int]]  # entry id -> (kind, position in that kind's sequence)
    sequences: dict[str, list[int]]  # kind -> entry ids, oldest first (ties: title descending)
    tag_slugs: dict[int, str]
    tag_names: dict[int, str]

    def related(self, entry_id: int, limit: int) -> list[tuple[int, list[str]]]:
        """Up to `limit` other entries sharing the most tags, newest first among equals, with those tags' names."""
        mine = self.tags_of.get(entry_id, ())
        counts = Counter(chain.from_iterable(self.members[tag] for tag in mine))
        counts.pop(entry_id, None)
        levels: dict[int, list[int]] = defaultdict(list)
        for other, count in counts.items():
            levels[count].append(other)
        chosen: list[int] = []
        for shared in sorted(levels, reverse=True):
            chosen += heapq.nsmallest(limit - len(chosen), levels[shared], key=self.recency.__getitem__)
            if len(chosen) >= limit:
                break
        mine_set = set(mine)
        return [(other, self.shared_names(mine_set, other)) for other in chosen]

    def shared_names(self, mine: set[int], other: int) -> list[str]:
        """Names of the tags two entries share, in tag slug order."""
        shared = sorted((self.tag_slugs[tag], self.tag_names[tag]) for tag in self.tags_of[other] if tag in mine)
        return [name for _, name in shared]

    def matching(self, all_tags: list[int], any_tags: list[int], no_tags: list[int], kind: str | None) -> set[int]:
        """Ids of entries with every `all_tags` tag, one of `any_tags` (if any), none of `no_tags`, of `kind`."""
        ids = set(self.recency) if not all_tags else None
        for tag in sorted(all_tags, key=lambda tag: len(self.members.get(tag, ()))):
            ids = set(self.members.get(tag, ())) if ids is None else ids.intersection(self.members.get(tag, ()))
        if any_tags:
            ids &= set(chain.from_iterable(self.members.get(tag, ()) for tag in any_tags))
        if no_tags:
            ids -= set(chain.from_iterable(self.members.get(tag, ()) for tag in no_tags))
        if kind:
            ids &= set(self.sequences.get(kind, ()))
        return ids

    def ordered(self, ids, sort: str) -> list[int]:
        """Ids newest first (ties by title), or by title."""
        return sorted(ids, key=(self.alphabetical if sort == "title" else self.recency).__getitem__)

    def tag_counts(self, ids=None) -> Counter:
        """tag id -> how many of `ids` (default: all entries) carry it."""
        if ids is None:
            return Counter({tag: len(members) for tag, members in self.members.items()})
        return Counter(chain.from_iterable(self.tags_of.get(entry_id, ()) for entry_id in ids))

    def neighbours(self, entry_id: int) -> tuple[int | None, int | None]:
        """Ids of the previous (older) and next (newer) entry of the same kind."""
        if entry_id not in self.place:
            return None, None
        kind, position = self.place[entry_id]
        sequence = self.sequences[kind]
        older = sequence[position - 1] if position > 0 else None
        newer = sequence[position + 1] if position + 1 < len(sequence) else None
        return older, newer


def load(session: Session) -> TagGraph:
    """Read the whole graph in the session's current transaction."""
    rows = session.execute(select(Entry.id, Entry.kind, Entry.sort_date, Entry.title)).all()
    by_title = sorted(rows, key=lambda row: (row.title, row.id))
    oldest_first = sorted(
        reversed(by_title), key=lambda row: row.sort_date
    )  # stable: equal dates keep title descending
    recency = {row.id: rank for rank, row in enumerate(reversed(oldest_first))}
    sequences: dict[str, list[int]] = defaultdict(list)
    place = {}
    for row in oldest_first:
        if row.kind:
            place[row.id] = (row.kind, len(sequences[row.kind]))
            sequences[row.kind].append(row.id)
    tags_of: dict[int, list[int]] = defaultdict(list)
    members: dict[int, list[int]] = defaultdict(list)
    for entry_id, tag_id in session.execute(select(entry_tags.c.entry_id, entry_tags.c.tag_id)):
        tags_of[entry_id].append(tag_id)
        members[tag_id].append(entry_id)
    for ids in members.values():
        ids.sort(key=recency.__getitem__)
    tags = session.execute(select(Tag.id, Tag.slug, Tag.name)).all()
    return TagGraph(
        tags_of={entry_id: tuple(ids) for entry_id, ids in tags_of.items()},
        members=dict(members),
        recency=recency,
        alphabetical={row.id: rank for rank, row in enumerate(by_title)},
        place=place,
        sequences=dict(sequences),
        tag_slugs={tag.id: tag.slug for tag in tags},
        tag_names={tag.id: tag.name for tag in tags},
    )


class GraphCache:
    """This worker's graph for the content generation it last served; reloaded when an import commits."""

    def __init__(self):
        self._graph: TagGraph | None = None
        self._generation = None
        self._lock = threading.Lock()

    def get(self, session: Session, generation) -> TagGraph:
        """The graph of `generation`, loading it in `session` when this worker has another one."""
        with self._lock:
            if self._graph is None or generation != self._generation:
                self._graph, self._generation = load(session), generation
            return self._graph
