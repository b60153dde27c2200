"""Writing a whole new index in one go: postings grouped by term in memory, segments written by helper processes.

A full build is the largest part of a large import. Whoosh's writer keeps every posting as a
tuple, sorts them in pickled runs on disk once they pass its memory limit, and its parallel
writer (`procs`) sends documents through pickled files. Here each writer keeps its postings
grouped by term in compact arrays (a few tens of bytes each), writes them term by term at the
end, and helpers forked for a large build each take every `procs`-th batch of documents and
write a segment of them (another every `SEGMENT_POSTINGS` postings, so that memory stays bounded);
the parent names the segments in the index's table of contents. The
segments' files, terms and postings are those Whoosh's writers make of the same documents.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import multiprocessing
import traceback
from array import array
from collections import Counter, defaultdict, deque
from collections.abc import Callable
from itertools import accumulate, compress, count, islice
from typing import NamedTuple

from whoosh.filedb.filestore import FileStorage
from whoosh.system import pack_uint

from . import compact
from .internals import SegmentBuilder, add_postings, encode_positions, positions_value

MASK = 2**32 - 1  # a position key's position
#: Documents sent to a helper at a time unless the build says otherwise (round robin, so the split is the same every build).
BATCH = 100
#: Postings a writer holds (25 to 40 bytes each) before it writes its segment and starts another: about
#: 1,300,000 for 5,000 generated entries, so a 10,000-entry build on 2 cores writes 2 segments.
SEGMENT_POSTINGS = 4_000_000


class TermPool:
    """Postings of one segment, by field and term: document numbers, weights, encoded values and position keys in arrays.

    Terms are bytes, or text in fields added by `add_positions` or `add_counts` (encoded once per term
    when written). A field of `add_positions` holds each term's position keys alone (8 bytes a place).
    """

    def __init__(self):
        self.fields: dict[str, dict] = {}
        self.postings = 0
        self._unplaced: set[str] = set()  # fields with postings that came without their positions
        self._text: set[str] = set()  # fields whose terms are held as text
        # Fields of `add_positions`, with their field boost: each term's position keys alone.
        self._keyed: dict[str, float] = {}
        self._boosts: dict[str, dict[int, float]] = {}  # in those, the documents whose boost is not 1

    def add(self, item) -> None:
        """Add one posting (field name, term bytes, document number, weight, value bytes)."""
        fieldname, text, docnum, weight, value = item
        self.add_field(fieldname, docnum, [(text, 1, weight, value, None)], 1.0)

    def add_field(self, fieldname: str, docnum: int, postings, boost: float) -> int:
        """Add one document's (term bytes, frequency, weight, value bytes, positions) in a field; the sum of frequencies."""
        if fieldname in self._keyed:
            self._unkey(fieldname)
        terms = self._terms(fieldname, text=False)
        text_terms = fieldname in self._text
        length = count = 0
        base = docnum << 32  # a position key (compact.py): document * 2**32 + position
        for text, frequency, weight, value, positions in postings:
            length += frequency
            count += 1
            term = text.decode("utf-8") if text_terms else text
            held = terms.get(term)
            if held is None:
                held = terms[term] = _held()
            docs, weights, values, ends, keys = held
            docs.append(docnum)
            weights.append(weight * boost)
            if value:
                values += value
            ends.append(len(values))
            if positions is None:
                self._unplaced.add(fieldname)
            elif len(positions) == 1:
                keys.append(base + positions[0])
            else:
                keys.extend([base + position for position in positions])
        self.postings += count
        return length

    def add_positions(self, fieldname: str, docnum: int, terms, positions, field_boost: float, boost: float) -> int:
        """Add one document's terms (text) at their positions (two sequences) in a Whoosh `Positions` field; the number of positions.

        What `add_field` holds for the postings `field.index` gives, in C loops (most postings of a
        build go through here): only the position keys are held; the document numbers, weights and
        encoded values follow from them when written (`_keyed_postings`).
        """
        held = self.fields.get(fieldname)
        if held is not None and fieldname not in self._keyed:  # the field holds postings of `add_field`
            found: defaultdict[str, list[int]] = defaultdict(list)
            deque(map(list.append, map(found.__getitem__, terms), positions), 0)
            postings = [(text.encode("utf-8"), *_posting(places, field_boost)) for text, places in found.items()]
            return self.add_field(fieldname, docnum, postings, boost)
        if held is None:
            held = self.fields[fieldname] = defaultdict(_keys)
            self._keyed[fieldname] = field_boost
            self._text.add(fieldname)
        if boost != 1.0:
            self._boosts.setdefault(fieldname, {})[docnum] = boost
        # Each term's keys take the position key (compact.py) of each of its places: document * 2**32 + position.
        deque(map(array.append, map(held.__getitem__, terms), map((docnum << 32).__add__, positions)), 0)
        self.postings += len(set(terms))
        return len(terms)

    def add_counts(self, fieldname: str, docnum: int, counts, field_boost: float, boost: float) -> int:
        """Add one document's terms (text) and their frequencies in a Whoosh `Frequency` field; the sum of frequencies.

        What `add_field` holds for the postings `field.index` gives: weight frequency * boosts, value the frequency packed.
        """
        terms = self._terms(fieldname, text=True)
        self._unplaced.add(fieldname)
        length = 0
        for text, frequency in counts.items():
            held = terms.get(text)
            if held is None:
                held = terms[text] = _held()
            docs, weights, values, ends, _keys = held
            docs.append(docnum)
            length += frequency
            weights.append(float(frequency) * field_boost * boost)
            values += pack_uint(frequency)
            ends.append(len(values))
        self.postings += len(counts)
        return length

    def _unkey(self, fieldname: str) -> None:
        """Hold a field of `add_positions` as `add_field` does, for postings that come otherwise."""
        field_boost, boosts = self._keyed.pop(fieldname), self._boosts.pop(fieldname, {})
        terms = self.fields[fieldname]
        for text, keys in terms.items():
            docs, weights, values = _keyed_postings(keys, field_boost, boosts)
            ends = array("I", accumulate(map(len, values)))
            terms[text] = (docs, array("d", weights), bytearray(b"".join(values)), ends, keys)

    def _terms(self, fieldname: str, *, text: bool) -> dict:
        """The terms held in `fieldname`, keyed by text or by bytes as asked (a field that held the other kind is converted)."""
        terms = self.fields.get(fieldname)
        if terms is None:
            terms = self.fields[fieldname] = {}
            if text:
                self._text.add(fieldname)
        elif text and fieldname not in self._text:  # a text field's terms are its text in UTF-8
            terms = self.fields[fieldname] = {term.decode("utf-8"): held for term, held in terms.items()}
            self._text.add(fieldname)
        return terms

    def write(self, schema, fieldwriter, lengths, segment: tuple[str, str] | None = None) -> None:
        """Write every posting, fields and terms in order, freeing each term's arrays as it goes.

        `segment` (folder, segment id): also write the segment's arrays beside it (`compact.SegmentArrays`)
        from the postings held, so that the index step need not read them back.
        """
        if segment is None or lengths is None:
            self._write_fields(schema, fieldwriter, lengths, None)
            return
        with compact.SegmentArrays(schema, compact.segment_file(*segment)) as arrays:
            self._write_fields(schema, fieldwriter, lengths, arrays)
            arrays.write(lengths)

    def _write_fields(self, schema, fieldwriter, lengths, arrays) -> None:
        """Write every field's terms in order (and add them to `arrays`, if any)."""
        for fieldname in sorted(self.fields):
            terms = self.fields.pop(fieldname)
            field_lengths = _field_lengths(lengths, fieldname)
            placed = fieldname not in self._unplaced
            fieldwriter.start_field(fieldname, schema[fieldname])
            text_terms = fieldname in self._text
            field_boost, boosts = self._keyed.pop(fieldname, None), self._boosts.pop(fieldname, {})
            for term in sorted(terms):  # text sorts as its UTF-8 does
                if field_boost is None:
                    docs, weights, values, ends, keys = terms.pop(term)
                    split = _split(values, ends)
                else:
                    keys = terms.pop(term)
                    docs, weights, split = _keyed_postings(keys, field_boost, boosts)
                text = term.encode("utf-8") if text_terms else term
                fieldwriter.start_term(text)
                add_postings(fieldwriter, docs, weights, split, [field_lengths[d] for d in docs])
                fieldwriter.finish_term()
                if arrays is not None:
                    arrays.add(fieldname, text, docs, weights, keys if placed else None, split)
            fieldwriter.finish_field()

    def cleanup(self) -> None:
        """Forget every posting."""
        self.fields, self._keyed, self._boosts = {}, {}, {}


def _posting(positions: list[int], field_boost: float) -> tuple:
    """(frequency, weight before the document's boost, encoded value, positions) of a term at `positions` in a document."""
    return len(positions), len(positions) * field_boost, _encoded(positions), positions


def _keyed_postings(keys, field_boost: float, boosts: dict[int, float]) -> tuple[array, list, list[bytes]]:
    """(document numbers, weights, encoded values) of a term held by `add_positions`, from its position keys.

    The keys ascend (documents are added in order, and positions in each): a document's run of
    keys is its positions. The weights are those `add_field` holds: frequency * field boost * boost.
    Each step maps a whole term's keys at once: no Python step a posting but the encoding of repeated terms.
    """
    if len(keys) == 1:  # one place in one document: the commonest term of all
        return (
            array("I", [keys[0] >> 32]),
            [1 * field_boost * boosts.get(keys[0] >> 32, 1.0)],
            [positions_value(keys[0] & MASK)],
        )
    every = array("I", map((32).__rrshift__, keys))  # key >> 32: the document
    positions = list(map(MASK.__and__, keys))
    if len(set(every)) == len(every):  # once in each document: most terms
        values = list(map(positions_value, positions))
        if boosts:
            return every, [1 * field_boost * boosts.get(doc, 1.0) for doc in every], values
        return every, [field_boost] * len(every), values  # 1 * field boost (* 1.0)
    counts = Counter(every)  # frequencies, in document order
    docs, ends = array("I", counts), list(accumulate(counts.values()))
    starts = [0, *ends[:-1]]
    values = list(map(positions_value, map(positions.__getitem__, starts)))  # right for those seen once
    for number in compress(count(), map((1).__lt__, counts.values())):
        values[number] = encode_positions(positions[starts[number] : ends[number]])
    if boosts:
        weights = [frequency * field_boost * boosts.get(doc, 1.0) for doc, frequency in counts.items()]
    else:
        weights = list(map(field_boost.__rmul__, counts.values()))  # frequency * field boost (* 1.0)
    return docs, weights, values


def _encoded(positions: list[int]) -> bytes:
    """Whoosh's `Positions` value of a term at `positions` in a document."""
    return positions_value(positions[0]) if len(positions) == 1 else encode_positions(positions)


def _keys() -> array:
    """A term's position keys in a field of `add_positions`."""
    return array("Q")


def _held() -> tuple:
    """A term's arrays: document numbers, weights, encoded values end to end, where each value ends, position keys."""
    return array("I"), array("d"), bytearray(), array("I"), array("Q")


def _split(values: bytearray, ends) -> list[bytes]:
    """The encoded values held end to end, one per posting (empty ones when the field encodes none)."""
    if not values:
        return [b""] * len(ends)
    data, start, split = bytes(values), 0, []
    for end in ends:
        split.append(data[start:end])
        start = end
    return split


def _field_lengths(lengths, fieldname: str):
    """Every document's length in `fieldname` as Whoosh stores it (one byte), read once; zeros without lengths."""
    if lengths is None:
        return _Zeros()
    return [lengths.doc_field_length(docnum, fieldname) for docnum in range(lengths.doc_count_all())]


class _Zeros:
    """Length 0 for every document."""

    def __getitem__(self, docnum: int) -> int:
        return 0


class Preparation(NamedTuple):
    """How a build's items become documents, in the process that writes them: `make(batch)` for each batch of `size` items."""

    make: Callable[[list], list[dict]]
    size: int = BATCH


def write_index(ix, documents, procs: int, options: dict, prepare: Preparation | None = None) -> int:
    """Add `documents` to the empty index `ix` in segments written by `procs` processes and commit; the count.

    With `prepare`, `documents` are items that its `make` turns into documents a batch at a time,
    in the writer processes rather than in this one.
    """
    prepare = prepare or Preparation(list)
    writer = SegmentBuilder(ix, TermPool(), **options)  # holds the index's lock and writes its table of contents
    try:
        if procs <= 1:
            series, count = _Series(ix, options), 0
            for batch in _batches(documents, prepare.size):
                for document in prepare.make(batch):
                    series.add(document)
                count += len(batch)
            writer.publish(series.finish())
            return count
        helpers = _Helpers(ix.storage.folder, procs, options, prepare.make)
        try:
            count = helpers.feed(documents, prepare.size)
            segments = helpers.segments()
        finally:
            helpers.stop()
        writer.publish(segments)
        return count
    except BaseException:
        if not writer.is_closed:
            writer.cancel()
        raise


def _batches(items, size: int):
    """Lists of `size` items in order (the last one shorter)."""
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


class _Series:
    """Documents written into one segment after another, each closed at `SEGMENT_POSTINGS`: memory stays bounded."""

    def __init__(self, ix, options: dict):
        self.ix, self.options = ix, options
        self.writer: SegmentBuilder | None = None
        self.pool: TermPool | None = None  # the current writer's
        self.segments: list = []

    def add(self, document: dict) -> None:
        """Add one document to the current segment, starting one if needed."""
        if self.writer is None:
            self.pool = TermPool()
            self.writer = SegmentBuilder(self.ix, self.pool, _lk=False, **self.options)
        self.writer.add_document(**document)
        if self.pool.postings >= SEGMENT_POSTINGS:
            self._close()

    def finish(self) -> list:
        """Every segment written, the last one included."""
        if self.writer is not None:
            self._close()
        return self.segments

    def _close(self) -> None:
        """Write the current segment and forget its postings."""
        self.segments.append(self.writer.finish_segment())
        self.writer = self.pool = None


class _Helpers:
    """Forked processes that each write one segment of the documents they are sent."""

    def __init__(self, directory: str, procs: int, options: dict, make):
        context = multiprocessing.get_context("fork")  # Whoosh's own writers fork too; nothing is pickled but documents
        self.connections, self.processes = [], []
        _lean_before_fork()
        for _ in range(procs):
            ours, theirs = context.Pipe()
            process = context.Process(target=_helper, args=(directory, theirs, options, make), daemon=True)
            process.start()
            theirs.close()
            self.connections.append(ours)
            self.processes.append(process)

    def feed(self, items, size: int) -> int:
        """Send the items in batches of `size`, helper after helper; how many were sent."""
        count = turn = 0
        for batch in _batches(items, size):
            self._send(turn % len(self.connections), batch)
            count, turn = count + len(batch), turn + 1
        for number in range(len(self.connections)):
            self._send(number, None)
        return count

    def _send(self, number: int, batch) -> None:
        """Send one batch (None: the end) to helper `number`; a helper that failed raises its error."""
        try:
            self.connections[number].send(batch)
        except OSError:  # it has gone: it says why, unless it died
            self._answer(number)
            raise

    def segments(self) -> list:
        """The segments the helpers wrote, in the helpers' order."""
        return [segment for number in range(len(self.connections)) for segment in self._answer(number)]

    def _answer(self, number: int):
        """Helper `number`'s segments; its failure as a RuntimeError."""
        process = self.processes[number]
        try:
            status, value = self.connections[number].recv()
        except (EOFError, OSError):
            raise RuntimeError(f"index writer process {process.pid} died") from None
        if status != "done":
            raise RuntimeError(f"index writer process {process.pid} failed:\n{value}")
        return value

    def stop(self) -> None:
        """End every helper (they have finished unless the build failed)."""
        for connection in self.connections:
            connection.close()
        for process in self.processes:
            process.join(timeout=5)
            if process.is_alive():
                process.kill()
                process.join()


def _lean_before_fork() -> None:
    """Before forking the helpers: the parent's garbage collected and its free memory handed back to the system.

    A helper shares the parent's pages until either writes to one: memory the parent freed but
    malloc kept would be written over by the helper's postings, a copy each.
    """
    gc.collect()
    _trim()


def _trim() -> None:
    """Give the memory malloc holds free back to the system (glibc's `malloc_trim`; nothing elsewhere)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).malloc_trim(0)


def _helper(directory: str, connection, options: dict, make) -> None:
    """A helper's life: add the documents `make` gives of every batch it receives to its segments, then send the segments back."""
    # What it inherited stays out of its collections, which would write to every object's header (a page copy each).
    gc.freeze()
    try:
        series = _Series(FileStorage(directory, supports_mmap=False).open_index(), options)
        while (batch := connection.recv()) is not None:
            for document in make(batch):
                series.add(document)
        connection.send(("done", series.finish()))
    except EOFError:  # the parent stopped the build
        return
    except BaseException:  # noqa: BLE001 - reported to the parent, which fails the build
        with contextlib.suppress(OSError):
            connection.send(("failed", traceback.format_exc()))
