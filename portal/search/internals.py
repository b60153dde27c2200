"""The few places Nexus relies on Whoosh's private names, in one module.

whoosh-reloaded 2.7.5 has no public way to read a term's postings a block at a time, to
tell its null query apart, or to filter what a prefix expands to. If a Whoosh upgrade renames
any of these, this module is the one to change; each use falls back to the public API where
there is one.
"""

from __future__ import annotations

from whoosh import query
from whoosh.writing import SegmentWriter

#: The class of Whoosh's `NullQuery` singleton (`query.qcore._NullQuery`).
NullQueryType = type(query.NullQuery)


def is_null(q) -> bool:
    """True for Whoosh's query that matches nothing (what its parser gives for an empty query)."""
    return q is None or isinstance(q, NullQueryType)


def weight_blocks(matcher):
    """(ids, weights) of a leaf matcher's postings, a block at a time (Whoosh's W3 codec), else one by one."""
    return _blocks(matcher, "_read_weights", "_weights", matcher.weight)


def value_blocks(matcher):
    """(ids, encoded values) of a leaf matcher's postings, a block at a time (Whoosh's W3 codec), else one by one."""
    return _blocks(matcher, "_read_values", "_values", matcher.value)


def _blocks(matcher, read: str, held: str, one):
    """(ids, `held`) of each block the matcher reads with `read`; `one` gives them a posting at a time otherwise."""
    if not all(hasattr(matcher, name) for name in ("_read_ids", read, "_next_block")):
        yield from _one_by_one(matcher, one)
        return
    while matcher.is_active():
        matcher._read_ids()
        getattr(matcher, read)()
        yield matcher._ids, getattr(matcher, held)
        matcher._next_block()


def _one_by_one(matcher, read):
    """The public, slower way: one posting at a time."""
    ids, values = [], []
    while matcher.is_active():
        ids.append(matcher.id())
        values.append(read())
        matcher.next()
    yield ids, values


class FilteredPrefix(query.Prefix):
    """A prefix query whose expansion a subclass filters (Whoosh's hook for it, `_btexts`, is private)."""

    def keep(self, word: str, ixreader) -> bool:
        """Whether an indexed word that starts with the prefix is searched."""
        return True

    def _btexts(self, ixreader):
        return (word for word in super()._btexts(ixreader) if self.keep(word.decode(), ixreader))


class SegmentBuilder(SegmentWriter):
    """A Whoosh segment writer whose postings go to `pool` (a `building.TermPool`) and are written term by term.

    Whoosh's own pool holds one tuple per posting, spills them to pickled runs past `limitmb`
    and merges the runs back in a heap; its `add_postings` then reads each posting's field
    length back from the column file just written. Here `pool.write(fieldwriter, lengths)`
    writes the same postings from memory, and the lengths are read once per field.
    """

    def __init__(self, ix, pool, **kwargs):
        super().__init__(ix, **kwargs)
        self.pool = pool

    def _flush_segment(self):
        self.perdocwriter.close()
        lengths = self.per_document_reader() if self.codec.length_stats else None
        try:
            self.pool.write(self.schema, self.fieldwriter, lengths)
        finally:
            if lengths is not None:
                lengths.close()
        self.fieldwriter.close()

    def finish_segment(self):
        """Write this writer's segment and return it (None if it holds no document), for `publish` elsewhere."""
        if not self._added:
            self._close_segment()
            return None
        return self._finalize_segment()

    def publish(self, segments) -> None:
        """Write the index's table of contents naming `segments`, and release the index."""
        if self._added:
            segments = [*segments, self._finalize_segment()]
        else:
            self._close_segment()
        self._commit_toc(segments)
        self._finish()
