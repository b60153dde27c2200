"""The few places Nexus relies on Whoosh's private names, in one module.

whoosh-reloaded 2.7.5 has no public way to read a term's postings a block at a time, to
tell its null query apart, or to filter what a prefix expands to. If a Whoosh upgrade renames
any of these, this module is the one to change; each use falls back to the public API where
there is one.
"""

from __future__ import annotations

from itertools import accumulate
from pickle import loads  # nosec B403

from whoosh import formats, query

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


def posting_blocks(matcher):
    """(ids, weights, encoded values) of a leaf matcher's postings, a block at a time where the codec allows."""
    if not all(hasattr(matcher, name) for name in ("_read_ids", "_read_weights", "_read_values", "_next_block")):
        ids, weights, values = [], [], []
        while matcher.is_active():
            ids.append(matcher.id())
            weights.append(matcher.weight())
            values.append(matcher.value())
            matcher.next()
        yield ids, weights, values
        return
    while matcher.is_active():
        matcher._read_ids()
        matcher._read_weights()
        matcher._read_values()
        yield matcher._ids, matcher._weights, matcher._values
        matcher._next_block()


def positions_decoder(field):
    """A function from a posting's encoded value to its positions (Whoosh's `Positions` format read directly)."""
    if type(field.format) is formats.Positions:
        return decode_positions
    return field.format.decoder("positions")


def decode_positions(value: bytes) -> list[int]:
    """Positions of one posting in Whoosh's `Positions` format: a 4-byte count, then pickled deltas.

    The pickles are Whoosh's own index files, which only the importer writes.
    """
    return list(accumulate(loads(value[4:] if value.endswith(b".") else value[4:] + b".")))  # noqa: S301  # nosec B301


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
