"""One open searcher per worker thread, reopened only when a new index is swapped in.

Never ask a Whoosh searcher to refresh itself: whoosh-reloaded 2.7.5 then returns deleted and duplicate
documents. A new searcher is opened instead.
A reopen after an incremental update reads the stored tags of the new segments only: the tags
of a segment never change (deletions are kept apart, in the TOC), so each process keeps them
per segment.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING

from .store import IndexUnavailable, index_generation, live_index_dir, open_index

if TYPE_CHECKING:
    from . import compact

# Whoosh and the arrays (compact.py) are imported by the first search: the app factory makes a
# pool in every process, and most processes (an import, a command) never search.

log = logging.getLogger(__name__)


class SearcherPool:
    """One open searcher per thread of a worker, reopened only when the index changed."""

    def __init__(self, instance_path):
        self.instance_path = instance_path
        self._local = threading.local()
        self.opened = 0  # how many times this process opened an index (for tests and benchmarks)
        self._open: list = []  # (searcher, index) of every thread, so that close() reaches them all
        self._open_lock = threading.Lock()
        self._caches: OrderedDict[Path, dict] = OrderedDict()
        self._cache_lock = threading.Lock()
        self._segment_tags: dict[str, list] = {}  # segment id -> tags of each of its documents
        self._segment_arrays: dict[str, compact.SegmentPostings] = {}  # segment id -> its postings' arrays

    def cache(self) -> dict:
        """A per-process cache for the index this thread's searcher reads, shared by the worker's threads.

        Keyed by the index directory, not its generation: what is kept (scored document numbers,
        hub pages, the spelling vocabulary) belongs to one index, and an index can be replaced under
        the same generation (merged segments renumber documents). The two most recent are kept, as
        a thread may still read the previous index for a moment.
        """
        directory = self._local.directory
        with self._cache_lock:
            found = self._caches.get(directory)
            if found is None:
                found = self._caches[directory] = {}
                while len(self._caches) > 2:
                    self._caches.popitem(last=False)
            return found

    def get(self):
        """The current searcher, reopening it if the live index was swapped."""
        state = self._local
        directory = live_index_dir(self.instance_path)
        if directory is None:
            raise IndexUnavailable("the search index has not been built yet")
        searcher = getattr(state, "searcher", None)
        stale = (
            searcher is None
            or getattr(state, "pid", None) != os.getpid()
            or state.directory != directory
            or not searcher.up_to_date()
        )
        if stale:
            from whoosh import scoring  # lazy: see the imports

            self._close(state)
            ix = open_index(directory)
            state.searcher = ix.searcher(weighting=scoring.BM25F())
            state.index, state.directory, state.pid = ix, directory, os.getpid()
            state.generation = index_generation(directory)
            state.tags = self._doc_tags(state.searcher.reader(), directory)
            self.opened += 1
            with self._open_lock:
                self._open.append((state.searcher, ix))
        return state.searcher, state.tags, state.generation

    def _doc_tags(self, reader, directory) -> list:
        """Tag slugs per document number of `reader`, for facet counts, read only for segments not seen before.

        A multi-segment reader numbers documents segment after segment (`leaf_readers` gives each
        segment's offset), so the table is the segments' tables end to end. Deleted documents keep
        their row: they never match, and the numbering stays that of the segment.
        """
        leaves = [
            (leaf.segment().segment_id(), leaf, offset)
            for leaf, offset in reader.leaf_readers()
            if getattr(leaf, "segment", lambda: None)() is not None  # an empty index's reader has no segment
        ]
        new = [segment for segment, _leaf, _offset in leaves if segment not in self._segment_tags]
        arrays = dict(zip(new, self._load_arrays(directory, new), strict=True))
        with self._open_lock:
            known = self._segment_tags
            tables = {
                segment: known[segment] if segment in known else _segment_tags(leaf, arrays.get(segment))
                for segment, leaf, _ in leaves
            }
            self._segment_tags = tables  # the newest index's segments: older ones are not opened again
        doc_tags: list = []
        for segment, _leaf, offset in leaves:
            doc_tags[offset:] = tables[segment]
        return doc_tags

    def arrays(self, searcher) -> list:
        """The postings' arrays of each segment of this thread's searcher (None for a segment without them).

        Opened once per process and segment: a segment's arrays never change, so an update opens
        the new segment's only.
        """
        segments = [getattr(leaf, "segment", lambda: None)() for leaf, _offset in searcher.reader().leaf_readers()]
        ids = [segment.segment_id() if segment is not None else "" for segment in segments]
        found = self._load_arrays(self._local.directory, ids)
        with self._open_lock:
            self._segment_arrays = {i: self._segment_arrays[i] for i in ids if i in self._segment_arrays}
        return found  # the newest index's segments only are kept

    def _load_arrays(self, directory, ids: list[str]) -> list:
        """The arrays of these segments of the index in `directory`, each opened once per process."""
        from . import compact  # lazy: see the imports

        with self._open_lock:
            return compact.load(directory, ids, self._segment_arrays)

    def close(self) -> None:
        """Close every thread's searcher and its open files (an app being thrown away)."""
        with self._open_lock:
            handles, self._open = self._open, []
            arrays, self._segment_arrays = self._segment_arrays, {}
        for searcher, ix in handles:
            _close_quietly(searcher, ix)
        for segment_arrays in arrays.values():
            segment_arrays.close()

    def _close(self, state):
        """Close this thread's searcher (after a swap); a forked child leaves its parent's alone."""
        searcher = getattr(state, "searcher", None)
        if searcher is not None and getattr(state, "pid", None) == os.getpid():
            with self._open_lock:
                self._open = [(s, ix) for s, ix in self._open if s is not searcher]
            _close_quietly(searcher, state.index)
        state.searcher = None


def _close_quietly(searcher, ix) -> None:
    """Close a searcher and its index; closing a deleted index can fail harmlessly."""
    try:
        searcher.close()
        ix.close()
    except Exception:  # noqa: BLE001
        log.debug("closing an old searcher failed", exc_info=True)


def _segment_tags(segment_reader, arrays) -> list:
    """Tag slugs of every document of one segment, deleted or not, in document order: kept beside it, or read."""
    from . import compact  # lazy: see the imports

    kept = arrays.tags if arrays is not None else None
    if kept is not None and len(kept) == segment_reader.doc_count_all():
        return kept
    return compact.segment_tags(segment_reader)
