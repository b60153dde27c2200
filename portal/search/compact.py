"""Each segment's postings kept a second time as plain arrays, so a search reads a word without unpickling.

Whoosh stores a block of postings as one pickled tuple of document numbers, weights and
positions: reading a word's weights unpickles its positions too, about a microsecond a posting
in Python, and a common word at 10,000 entries has thousands. Beside every segment the index
step writes `<segment>.nxp`, read a slice at a time:

- for each scored field and word, the segment's document numbers (`array('I')`) and Whoosh's
  own weights (`array('f')`, the same float32 values);
- for fields with positions, each place of the word as document * 2**32 + position
  (`array('Q')`), so a phrase is a few set operations (see `postings._followed`);
- each field's length in every document, and each document's tags: read once per worker,
  where Whoosh's reader takes a call (or a stored-fields read) per document.

A full build's writers (`building.TermPool`) fill each segment's arrays from the postings they
hold, as they write the segment; an update or a merge reads its new segment back
(`write_missing`). A segment never changes once written (deletions are kept in the TOC), so an
update writes the file of its new segment only, and Whoosh deletes it with the segment (its name matches
Whoosh's pattern for a segment's files). A segment without a readable file is read from
Whoosh's postings as before.
"""

from __future__ import annotations

import contextlib
import marshal
import os
import shutil
import sys
from array import array
from pathlib import Path

from whoosh.filedb.filestore import FileStorage

from .internals import positions_decoder, posting_blocks

#: The format of the files; part of the index fingerprint, so another format means a rebuild.
VERSION = 1
#: Scorable fields searches never score: the spelling field is read as a list of words.
NOT_KEPT = {"spell"}
MASK = 2**32 - 1
SUFFIX = ".nxp"
MAGIC = f"NXP{VERSION}{sys.byteorder[0]}".encode()  # arrays are written in this machine's byte order


def segment_file(directory, segment_id: str) -> Path:
    """Where the arrays of one segment are kept."""
    return Path(directory) / f"{segment_id}{SUFFIX}"


def write_missing(directory) -> int:
    """Write the arrays of every segment of the index in `directory` that has none; how many were written.

    A full build's writers have written theirs; an update's or a merge's new segment has none yet.
    """
    missing = [segment_id for segment_id in _segment_ids(directory) if not segment_file(directory, segment_id).exists()]
    for segment_id in missing:
        _write_one(directory, segment_id)
    return len(missing)


def _segment_ids(directory) -> list[str]:
    """The segments of the index in `directory` (none for an empty index)."""
    ix = FileStorage(str(directory), supports_mmap=False).open_index()
    try:
        with ix.reader() as reader:
            segments = [getattr(leaf, "segment", lambda: None)() for leaf, _offset in reader.leaf_readers()]
    finally:
        ix.close()
    return [segment.segment_id() for segment in segments if segment is not None]


def _write_one(directory, segment_id: str) -> None:
    """Write the arrays of one segment of the index in `directory`."""
    ix = FileStorage(str(directory), supports_mmap=False).open_index()
    try:
        with ix.reader() as reader:
            for leaf, _offset in reader.leaf_readers():
                if leaf.segment().segment_id() == segment_id:
                    _write_segment(leaf, segment_file(directory, segment_id))
    finally:
        ix.close()


def _write_segment(leaf, target: Path) -> None:
    """One segment's arrays, read back from the segment Whoosh wrote (an update's, a merge's, or an older index's)."""
    with SegmentArrays(leaf.schema, target) as arrays:
        for fieldname in arrays.fieldnames():
            for word in leaf.lexicon(fieldname):
                ids, weights, values = array("I"), array("f"), []
                for block_ids, block_weights, block_values in posting_blocks(leaf.postings(fieldname, word)):
                    ids.extend(block_ids)
                    weights.extend(block_weights)
                    values.extend(block_values or ())
                arrays.add(fieldname, word, ids, weights, values=values)
        arrays.write(leaf)


class SegmentArrays:
    """One segment's arrays, filled word by word in the order Whoosh lists fields and words, then written to `target`.

    A full build fills them from the postings it holds (`building.TermPool`, with each word's
    position keys made as it was indexed); `_write_segment` from a finished segment. Both write the
    same bytes. The head's table gives each word one integer (the table stays in every worker's
    memory): where its ids and weights start and how many, and where its position keys start and
    how many. The arrays go to files beside `target` as they come (none is held in memory) and
    are copied after the head, which is known last. Used as a context manager: leaving it removes
    those files, so arrays left unwritten by a failure leave nothing behind.
    """

    PARTS = ("ids", "weights", "keys")

    def __init__(self, schema, target: Path):
        self.schema, self.target = schema, target
        self.table: dict[str, dict[bytes, int]] = {name: {} for name in schema.scorable_names() if name not in NOT_KEPT}
        self.ids = self.keys = 0  # how many written
        self._files = {}
        try:
            for part in self.PARTS:
                self._files[part] = open(self._part(part), "wb")  # noqa: SIM115 - closed by `write` or `discard`
        except BaseException:
            self.discard()
            raise

    def fieldnames(self) -> list[str]:
        """The fields kept, in the order their words must be added."""
        return list(self.table)

    def add(self, fieldname: str, word: bytes, ids, weights, keys=None, values=None) -> None:
        """Add a word's postings (`keys`: its position keys; else decoded from the encoded `values`)."""
        words = self.table.get(fieldname)
        if words is None:
            return
        start, first_key = self.ids, self.keys
        ids = ids if isinstance(ids, array) and ids.typecode == "I" else array("I", ids)
        ids.tofile(self._files["ids"])
        self.ids += len(ids)
        (weights if isinstance(weights, array) and weights.typecode == "f" else array("f", weights)).tofile(
            self._files["weights"]
        )
        field = self.schema[fieldname]
        if field.format.supports("positions"):
            if keys is None:
                decode = positions_decoder(field)
                keys = array("Q")
                for docnum, value in zip(ids, values, strict=True):
                    keys.extend(map((docnum << 32).__add__, decode(value)))
            keys.tofile(self._files["keys"])
            self.keys += len(keys)
        words[word] = _pack(start, self.ids - start, first_key, self.keys - first_key)

    def write(self, documents) -> None:
        """Write the file, with field lengths and tags from `documents` (a segment reader or a per-document reader)."""
        head = marshal.dumps(
            (self.table, self.ids, self.keys, _lengths(documents, list(self.table)), segment_tags(documents))
        )
        partial = self.target.with_name(self.target.name + ".part")
        try:
            with open(partial, "wb") as out:
                out.write(MAGIC + len(head).to_bytes(8, "little"))
                out.write(head)
                for part in self.PARTS:
                    self._files[part].close()
                    with open(self._part(part), "rb") as written:
                        shutil.copyfileobj(written, out, 1 << 20)
            os.replace(partial, self.target)
        finally:
            self.discard()

    def __enter__(self) -> SegmentArrays:
        return self

    def __exit__(self, *exc_info) -> None:
        self.discard()

    def discard(self) -> None:
        """Close and remove the arrays' files (after `write`, or instead of it)."""
        for part in self.PARTS:
            file = self._files.pop(part, None)
            if file is not None:
                file.close()
            with contextlib.suppress(OSError):
                os.unlink(self._part(part))

    def _part(self, part: str) -> Path:
        """Where one array is written until the file is."""
        return self.target.with_name(f"{self.target.name}.{part}.part")


def _pack(start: int, count: int, first_key: int, keys: int) -> int:
    """Four counts up to 2**32 in one integer."""
    return (((start << 32) + count) << 64) + (first_key << 32) + keys


def _lengths(leaf, fieldnames: list[str]) -> dict[str, bytes]:
    """Each field's length in every document of the segment (at least 1, as BM25F takes it), as array('I') bytes."""
    count = leaf.doc_count_all()
    return {
        name: array("I", [leaf.doc_field_length(docnum, name, 1) or 1 for docnum in range(count)]).tobytes()
        for name in fieldnames
    }


def segment_tags(leaf) -> list:
    """Tag slugs of every document of one segment, deleted or not, in document order (from its stored fields).

    Documents with the same tags share one tuple (and marshal writes it once), as many do.
    """
    tags, shared = [], {}
    for docnum in range(leaf.doc_count_all()):
        value = leaf.stored_fields(docnum).get("tags") or ""
        if value not in shared:
            shared[value] = tuple(sys.intern(tag) for tag in value.split(",")) if value else ()
        tags.append(shared[value])
    return tags


class SegmentPostings:
    """The arrays of one segment, read a word at a time from the file (the system's cache, not the worker's memory, holds them)."""

    def __init__(self, path: Path):
        self._fd = None
        self._fd = os.open(path, os.O_RDONLY)
        self._table, self._lengths, self.tags, self._ids_at, self._weights_at, self._keys_at = _read_head(
            self._fd, path
        )

    def close(self) -> None:
        """Close the file (an app being thrown away; otherwise when the last reference goes)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __del__(self):
        self.close()

    def has_field(self, fieldname: str) -> bool:
        """Whether this file holds the field's postings."""
        return fieldname in self._table

    def lengths(self, fieldname: str) -> array | None:
        """The field's length in each document of the segment (None if the file lacks the field)."""
        found = self._lengths.get(fieldname)
        if found is None:
            return None
        lengths = array("I")
        lengths.frombytes(found)
        return lengths

    def postings(self, fieldname: str, word: bytes) -> tuple[array, array]:
        """(document numbers in the segment, weights) of one word; empty arrays if the segment lacks it."""
        ids, weights = array("I"), array("f")
        found = self._table[fieldname].get(word)
        if found is not None:
            start, count = (found >> 96) & MASK, (found >> 64) & MASK
            ids.frombytes(os.pread(self._fd, 4 * count, self._ids_at + 4 * start))
            weights.frombytes(os.pread(self._fd, 4 * count, self._weights_at + 4 * start))
            if len(ids) != count or len(weights) != count:
                raise OSError("a postings file was cut short")
        return ids, weights

    def positions(self, fieldname: str, word: bytes) -> array:
        """Every place of one word in the field, as document number * 2**32 + position (ascending)."""
        keys = array("Q")
        found = self._table[fieldname].get(word)
        if found is not None:
            start, count = (found >> 32) & MASK, found & MASK
            keys.frombytes(os.pread(self._fd, 8 * count, self._keys_at + 8 * start))
            if len(keys) != count:
                raise OSError("a postings file was cut short")
        return keys


def _read_head(fd: int, path: Path) -> tuple[dict, dict, list, int, int, int]:
    """(table, lengths, tags, where the ids, the weights and the position keys start) of a file, checked against its size."""
    start = len(MAGIC) + 8
    head = os.pread(fd, start, 0)
    if len(head) != start or head[: len(MAGIC)] != MAGIC:
        raise ValueError(f"{path} is not in this format")
    size = int.from_bytes(head[len(MAGIC) :], "little")
    table, total, keys, lengths, tags = marshal.loads(os.pread(fd, size, start))  # noqa: S302  # nosec B302 - our own file
    ids_at = start + size
    if ids_at + 8 * total + 8 * keys != os.fstat(fd).st_size:
        raise ValueError(f"{path} is truncated")
    return table, lengths, tags, ids_at, ids_at + 4 * total, ids_at + 8 * total


def load(directory, segment_ids: list[str], known: dict) -> list[SegmentPostings | None]:
    """The arrays of each segment (None where a segment has no readable file), reusing those in `known`."""
    found = []
    for segment_id in segment_ids:
        if segment_id and segment_id not in known:
            # A file that is missing or unreadable is not remembered: a later index may have written it.
            with contextlib.suppress(OSError, ValueError, EOFError, TypeError):
                known[segment_id] = SegmentPostings(segment_file(directory, segment_id))
        found.append(known.get(segment_id))
    return found
