"""The few places Nexus relies on Whoosh's private names, in one module.

whoosh-reloaded 2.7.5 has no public way to read or write a term's postings a block at a time,
to tell its null query apart, or to filter what a prefix expands to. If a Whoosh upgrade renames
any of these, this module is the one to change; each use falls back to the public API where
there is one.
"""

from __future__ import annotations

import functools
import zlib
from array import array
from itertools import accumulate, chain
from operator import sub
from pickle import dumps, loads  # nosec B403

from whoosh import formats, query
from whoosh.codec.whoosh3 import WHOOSH3_HEADER_MAGIC, W3Codec, W3PostingsWriter
from whoosh.system import pack_uint
from whoosh.util.numeric import length_to_byte
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
        # Fields Whoosh writes more than postings and lengths for take Whoosh's own `add_document`.
        self._plain = not any(field.vector or field.separate_spelling() for _, field in self.schema.items())

    def add_document(self, **fields):
        """Whoosh's `add_document`, with each field's postings handed to the pool at once (`TermPool.add_field`)."""
        if not self._plain:
            return super().add_document(**fields)
        self._check_state()
        perdocwriter, schema, docnum = self.perdocwriter, self.schema, self.docnum
        docboost = self._doc_boost(fields)
        fieldnames = sorted(name for name in fields if not name.startswith("_"))
        self._check_fields(schema, fieldnames)
        perdocwriter.start_doc(docnum)
        try:
            for fieldname in fieldnames:
                value = fields.get(fieldname)
                if value is None:
                    continue
                field = schema[fieldname]
                length = 0
                if field.indexed:
                    boost = self._field_boost(fields, fieldname, docboost)
                    length = _add_field(self.pool, fieldname, field, docnum, value, boost)
                    length = length if field.scorable else 0
                stored = fields.get(f"_stored_{fieldname}", value)
                perdocwriter.add_field(fieldname, field, stored if field.stored else None, length)
                if field.column_type and stored is not None:
                    perdocwriter.add_column_value(fieldname, field.column_type, field.to_column_value(stored))
        except Exception:
            perdocwriter.cancel_doc()
            raise
        perdocwriter.finish_doc()
        self._added = True
        self.docnum += 1

    def _flush_segment(self):
        self.perdocwriter.close()
        lengths = self.per_document_reader() if self.codec.length_stats else None
        try:
            # The pool also writes the segment's arrays beside it (search/compact.py), named after it.
            self.pool.write(self.schema, self.fieldwriter, lengths, (self.storage.folder, self.newsegment.segment_id()))
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


def _add_field(pool, fieldname: str, field, docnum: int, value, boost: float) -> int:
    """Add the postings of `value` in `field` to `pool`, as `field.index` gives them; the field's length in the document.

    A positions field whose analyzer offers `term_sequence` (search.analysis.TextAnalyzer) is
    read without Whoosh's token stream: the same terms, positions and encoded values, and the
    positions themselves (None when read through `field.index`). So is a frequency field whose
    analyzer offers `term_counts` (search.analysis.SpellingAnalyzer).
    """
    fmt, analyzer = field.format, field.analyzer
    if type(fmt) is formats.Positions and hasattr(analyzer, "term_sequence") and isinstance(value, str):
        return pool.add_positions(fieldname, docnum, *analyzer.term_sequence(value), fmt.field_boost, boost)
    if type(fmt) is formats.Frequency and hasattr(analyzer, "term_counts") and isinstance(value, str):
        return pool.add_counts(fieldname, docnum, analyzer.term_counts(value), fmt.field_boost, boost)
    return pool.add_field(fieldname, docnum, [(*posting, None) for posting in field.index(value)], boost)


def encode_positions(positions: list[int]) -> bytes:
    """Whoosh's `Positions.encode`: the count, then the deltas pickled (protocol 2); the same bytes without its loop."""
    return pack_uint(len(positions)) + dumps(list(map(sub, positions, [0, *positions])), 2)


@functools.lru_cache(maxsize=4096)
def positions_value(position: int) -> bytes:
    """Whoosh's encoding of a term seen once, at `position` (most terms of a document): made once per position."""
    return formats.Positions().encode([position])


def add_postings(fieldwriter, docs, weights, values, lengths) -> None:
    """Add a term's postings to the W3 `fieldwriter` a block at a time: what its `add` does one posting at a time.

    `docs`, `weights` and `lengths` are sequences, `values` the encoded values (empty ones left out of blocks).
    """
    writer = fieldwriter._postwriter
    if not all(hasattr(writer, name) for name in ("_blocklimit", "_ids", "_write_block", "_maxlength")):
        for docnum, weight, value, length in zip(docs, weights, values, lengths, strict=True):
            fieldwriter.add(docnum, weight, value, length)
        return
    limit = writer._blocklimit
    for start in range(0, len(docs), limit):
        if writer._ids:
            writer._write_block()
        end = start + limit
        block_weights = weights[start:end]
        block_lengths = [length for length in lengths[start:end] if length]
        writer._ids = array("I", docs[start:end])
        writer._weights = array("f", block_weights)
        writer._values = [value for value in values[start:end] if value]
        writer._maxweight = max(0, max(block_weights))
        writer._minlength = min(block_lengths) if block_lengths else None
        writer._maxlength = max(block_lengths) if block_lengths else 0


#: The pickle protocol of a posting block's data. Whoosh's W3 codec writes protocol 2, which
#: stores each encoded value (bytes) as a call to `codecs.encode` of a text: a block of 1,024
#: values took 15 times longer to pickle, 8 times longer to unpickle, and twice the space after
#: compression. Readers unpickle any protocol, so what reads W3 blocks reads these.
BLOCK_PROTOCOL = 4
#: Blocks whose pickle is shorter than this many bytes are stored uncompressed (each block's header
#: says whether it is): zlib saves nothing on a few dozen bytes.
COMPRESS_FROM = 128


def deflate(data: bytes, level: int) -> bytes:
    """`zlib.compress(data, level)` with a window no larger than `data`: what `zlib.decompress` reads.

    `zlib.compress` sets up a 32 KB window and its hash tables for every call: about 70 µs, seven
    times the compression of a block of 200 bytes. The output is about as small (a match cannot
    reach back past the start of the data), and its header names the window it needs.
    """
    bits = max(9, min(15, (len(data) - 1).bit_length()))  # zlib's windows: 2**9 to 2**15 bytes
    compressor = zlib.compressobj(level, zlib.DEFLATED, bits, bits - 7)  # memory level 8 for the full window
    return compressor.compress(data) + compressor.flush()


class BlockCodec(W3Codec):
    """Whoosh's W3 codec with posting blocks written by `BlockPostingsWriter`: the same format, read by W3's own readers."""

    def postings_writer(self, dbfile, byteids=False):
        return BlockPostingsWriter(
            dbfile,
            blocklimit=self._blocklimit,
            byteids=byteids,
            compression=self._compression,
            inlinelimit=self._inlinelimit,
        )


class BlockPostingsWriter(W3PostingsWriter):
    """W3's posting writer, pickling blocks with `BLOCK_PROTOCOL` and compressing only those worth it."""

    def _write_block(self, last=False):
        """Write the buffered block as W3's `_write_block` does: its length (negative if last), info and data."""
        if not self._blockcount:
            self._postfile.write(WHOOSH3_HEADER_MAGIC)
        self._terminfo.add_block(self)
        data = dumps((self._mini_ids(), self._mini_weights(), self._mini_values()), BLOCK_PROTOCOL)
        compression = self._compression if len(data) >= COMPRESS_FROM else 0
        if compression:
            data = deflate(data, compression)
        ids = self._ids
        lengths = (length_to_byte(self._minlength), length_to_byte(self._maxlength))
        info = dumps((len(ids), ids[-1], self._maxweight, compression, *lengths), BLOCK_PROTOCOL)
        size = len(info) + len(data)
        self._postfile.write_int(-size if last else size)
        self._postfile.write(info)
        self._postfile.write(data)
        self._blockcount += 1
        self._new_block()

    def _mini_ids(self):
        """The block's document numbers as W3 stores them: each the difference from the one before (a tuple)."""
        ids = self._ids
        if self._byteids:
            return tuple(ids)
        return tuple(map(sub, ids, chain((0,), ids)))

    def _mini_weights(self):
        """None if every weight is 1, the one weight if all are equal, else every weight: as W3 stores them."""
        weights = self._weights
        if weights.count(1.0) == len(weights):
            return None
        if weights.count(weights[0]) == len(weights):
            return weights[0]
        return tuple(weights)
