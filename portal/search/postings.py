"""Scored sets of documents read straight from Whoosh's postings, and kept per index.

Whoosh's matchers score a query one posting at a time, through a tree of Python objects: an OR
over five fields and the word's aliases, inside an AND of the words. At 10,000 entries that was
most of a search, and every search paid it again for words another search had just used. Here a
term's postings are read a block at a time and scored once with the formula Whoosh uses (BM25F,
its IDF and field lengths), and a query's parts are combined as Whoosh combines them (OR and AND
add their parts' scores; a phrase scores as its words). Each part's result is kept for the life
of the index, so a word used again costs a dictionary look-up.

Nodes this module does not know are answered by Whoosh itself, so the results stay Whoosh's.
Whoosh's private names (its block reader) stay in internals.py.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict

from whoosh import query
from whoosh.reading import TermNotFound

from .internals import is_null, positions_decoder, value_blocks, weight_blocks

#: BM25F's free parameters, as whoosh.scoring.BM25F() uses them.
B, K1 = 0.75, 1.2
#: A prefix, wildcard or range expands to at most this many words (the first in order).
MAX_EXPANSION = 200
#: Postings kept per index (about 100 bytes each): older results are dropped first.
CACHE_POSTINGS = 300_000

Scores = dict  # docnum -> score


class SearchTooBroad(Exception):
    """A query that would read most of the index (a bare `*`): the message says how to narrow it."""


class Deadline:
    """A search's time budget: parts still to read are skipped once it has passed."""

    def __init__(self, seconds: float | None):
        self.at = None if seconds is None else time.monotonic() + seconds
        self.cut = False

    def passed(self) -> bool:
        """True (and remembered) once the budget is spent."""
        if self.at is not None and not self.cut and time.monotonic() > self.at:
            self.cut = True
        return self.cut


class ResultCache:
    """Scored sets of one index, shared by a worker's threads; least recently used go first."""

    def __init__(self, budget: int = CACHE_POSTINGS, compact: list | None = None):
        self.budget = budget
        self.compact = compact  # per segment: its arrays (compact.SegmentPostings) or None
        self.size = 0
        self._items: OrderedDict = OrderedDict()
        self._sizes: dict = {}
        self._lock = threading.Lock()
        self.lengths: dict[str, list[int]] = {}  # field -> length of that field in each document
        self.scaled: dict[str, list[float]] = {}  # field -> K1 * B * length / average length, per document
        self.deleted: frozenset[int] | None = None
        self.numbers: dict[int, list[int]] = {}  # a segment's offset -> its documents' global numbers

    def get(self, key):
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
            return found

    def put(self, key, scores, size: int | None = None):
        """Keep `scores` (or any value of `size` postings) under `key`, dropping the oldest beyond the budget."""
        size = len(scores) + 1 if size is None else size
        with self._lock:
            if key not in self._items:
                self._items[key] = scores
                self._sizes[key] = size
                self.size += size
                while self.size > self.budget and len(self._items) > 1:
                    dropped, _ = self._items.popitem(last=False)
                    self.size -= self._sizes.pop(dropped)
        return scores


class Evaluator:
    """One thread's scorer over one searcher: query trees into {docnum: score}."""

    def __init__(self, searcher, cache: ResultCache, deadline: Deadline | None = None):
        self.searcher = searcher
        self.reader = searcher.reader()
        self.schema = searcher.schema
        self.cache = cache
        self.deadline = deadline or Deadline(None)
        self.leaves = [(sub.reader(), offset) for sub, offset in searcher.leaf_searchers()]
        compact = cache.compact
        self.arrays = compact if compact is not None and len(compact) == len(self.leaves) else [None] * len(self.leaves)
        self.doc_count = searcher.doc_count_all()
        self.capped: set[str] = set()  # prefixes and patterns that matched more than MAX_EXPANSION words

    # --- combining ----------------------------------------------------------------------------

    def scores(self, q) -> Scores:
        """{docnum: score} of every document `q` matches, scored as Whoosh would."""
        if type(q) is query.Term:  # kept by `term` already
            return _boosted(self.term(q.fieldname, q.text), q.boost)
        key = ("q", repr(q))
        found = self.cache.get(key)
        if found is not None:
            return found
        capped = len(self.capped)
        result = self._evaluate(q)
        if self.deadline.cut or len(self.capped) != capped:
            return result  # partial: not kept
        return self.cache.put(key, result)

    def docs(self, q) -> frozenset[int]:
        """The documents `q` matches."""
        return frozenset(self.scores(q))

    def _evaluate(self, q) -> Scores:
        kind = type(q)
        if kind is query.Term:
            return _boosted(self.term(q.fieldname, q.text), q.boost)
        if kind is query.Or:
            return _boosted(self._union([self._part(child) for child in self._until_deadline(q.subqueries)]), q.boost)
        if kind is query.And:
            return _boosted(self._conjunction(q.subqueries), q.boost)
        if kind is query.AndNot:
            wanted, unwanted = self.scores(q.a), self.scores(q.b)
            return {d: s for d, s in wanted.items() if d not in unwanted}
        if kind is query.Require:
            required = self.scores(q.b)
            return {d: s for d, s in self.scores(q.a).items() if d in required}
        if kind is query.AndMaybe:
            maybe = self.scores(q.b)
            return {d: s + maybe.get(d, 0.0) for d, s in self.scores(q.a).items()}
        if kind is query.Phrase:
            return _boosted(self.phrase(q.fieldname, q.words, q.slop), q.boost)
        if kind is query.Every and not q.fieldname:
            return dict.fromkeys(self._live_docs(), 1.0)
        if is_null(q):
            return {}
        if isinstance(q, query.MultiTerm) and q.fieldname in self.schema:
            # The words it expands to are scored and added up, as an OR of them: so `cach*` ranks an
            # entry about caching above one that mentions a cache once. (Whoosh gives some expansions
            # a constant score of 1, and others their BM25F sum, depending on the query's class.)
            return self._multiterm(q)
        return self._by_whoosh(q)

    def _part(self, child) -> Scores:
        """A part of an OR: a plain word's scores are not kept, as the OR's are (a word's five fields once, not twice)."""
        if type(child) is query.Term:
            return _boosted(self.term(child.fieldname, child.text, keep=False), child.boost)
        return self.scores(child)

    def _until_deadline(self, children):
        """Children in order, until the search's time runs out."""
        for child in children:
            if self.deadline.passed():
                return
            yield child

    @staticmethod
    def _union(parts: list[Scores]) -> Scores:
        """OR: every document of any part, with the sum of its scores."""
        parts = [p for p in parts if p]
        if not parts:
            return {}
        parts.sort(key=len, reverse=True)
        result = dict(parts[0])
        for part in parts[1:]:
            get = result.get
            for docnum, score in part.items():
                result[docnum] = get(docnum, 0.0) + score
        return result

    def _conjunction(self, children) -> Scores:
        """AND: the documents of every positive part, without those of its NOT parts; scores added."""
        positive = [c for c in children if not isinstance(c, query.Not)]
        negative = [c.query for c in children if isinstance(c, query.Not)]
        if not positive:
            return self._by_whoosh(query.And(children))
        parts = sorted((self.scores(child) for child in positive), key=len)
        common = set(parts[0])
        for part in parts[1:]:
            common.intersection_update(part.keys())
            if not common:
                return {}
        for child in negative:
            common.difference_update(self.scores(child).keys())
        # Whoosh scores each NOT part as a match of weight 1 (its InverseMatcher).
        return {d: sum(part[d] for part in parts) + len(negative) for d in common}

    # --- terms --------------------------------------------------------------------------------

    def term(self, fieldname: str, text, keep: bool = True) -> Scores:
        """BM25F scores of one term's postings (a field's own weight for fields that are not scored); `keep`: cache them."""
        if fieldname not in self.schema:
            return {}
        field = self.schema[fieldname]
        try:
            btext = field.to_bytes(text) if not isinstance(text, bytes) else text
        except ValueError:
            return {}
        key = ("t", fieldname, btext)
        found = self.cache.get(key)
        if found is not None:
            return found
        scores: Scores = {}
        if (fieldname, btext) not in self.reader:  # no postings (an empty index has no statistics either)
            return self.cache.put(key, scores)
        if field.scorable:
            idf = self.searcher.idf(fieldname, btext)
            scaled = self._scaled_lengths(fieldname)
            # bm25(idf, tf, fl, avgfl, B, K1) = idf * tf * (K1 + 1) / (tf + K1 * ((1 - B) + B * fl / avgfl)),
            # a block at a time in comprehensions: this loop is most of a first search for a word.
            top, k1b = idf * (K1 + 1), K1 * (1 - B)
            for ids, weights in self._blocks(fieldname, btext):
                pairs = zip(ids, weights, strict=True)
                scores.update(zip(ids, [top * w / (w + k1b + scaled[d]) for d, w in pairs], strict=True))
        else:
            for ids, weights in self._blocks(fieldname, btext):
                scores.update(zip(ids, weights, strict=True))
        deleted = self._deleted()
        if deleted:
            scores = {d: score for d, score in scores.items() if d not in deleted}
        return self.cache.put(key, scores) if keep else scores

    def _blocks(self, fieldname: str, btext: bytes):
        """(global docnums, weights) of a term's postings, a block at a time, segment by segment.

        A segment with arrays (compact.py) gives all its postings at once, without unpickling.
        """
        for (reader, offset), arrays in zip(self.leaves, self.arrays, strict=True):
            if arrays is not None and arrays.has_field(fieldname):
                ids, weights = arrays.postings(fieldname, btext)
                if ids:
                    # Global numbers taken from one list, not made anew: every kept score shares them.
                    yield list(map(self._numbers(offset, reader).__getitem__, ids)), weights
                continue
            try:
                matcher = reader.postings(fieldname, btext)
            except TermNotFound:
                continue
            for ids, weights in weight_blocks(matcher):
                yield ([offset + docnum for docnum in ids] if offset else ids), weights

    def _multiterm(self, q) -> Scores:
        """A prefix or wildcard: the union of the words it expands to (its first MAX_EXPANSION), scores added."""
        words = []
        for _fieldname, word in q.expanded_terms(self.reader):
            if len(words) == MAX_EXPANSION:
                self.capped.add(str(q))
                break
            words.append(word)
        return _boosted(self._union([self.term(q.fieldname, word) for word in self._until_deadline(words)]), q.boost)

    def phrase(self, fieldname: str, words, slop: int = 1) -> Scores:
        """Documents with the words in order, each within `slop` positions of the one before; scored as its words."""
        if not words or fieldname not in self.schema or not self.schema[fieldname].format.supports("positions"):
            return {}
        parts = [self.term(fieldname, word) for word in words]
        candidates = set(min(parts, key=len)).intersection(*(p.keys() for p in parts))
        if not candidates:
            return {}
        field = self.schema[fieldname]
        decode = positions_decoder(field)
        found: Scores = {}
        for (reader, offset), arrays in zip(self.leaves, self.arrays, strict=True):
            size = reader.doc_count_all()
            local = {d - offset for d in candidates if offset <= d < offset + size}
            if not local or self.deadline.passed():
                continue
            if slop == 1 and arrays is not None and arrays.has_field(fieldname):
                matched = _followed(arrays, fieldname, [field.to_bytes(word) for word in words])
            else:
                positions = [_positions(reader, fieldname, field.to_bytes(word), local, decode) for word in words]
                matched = {docnum for docnum in local if _in_order([p[docnum] for p in positions], slop)}
            for docnum in local:
                if docnum in matched:
                    found[offset + docnum] = sum(part[offset + docnum] for part in parts)
        return found

    # --- what the index holds -------------------------------------------------------------------

    def _lengths(self, fieldname: str) -> list[int]:
        """The length of `fieldname` in every document (Whoosh stores it as one byte per document)."""
        found = self.cache.lengths.get(fieldname)
        if found is None:
            found = []
            for (reader, _offset), arrays in zip(self.leaves, self.arrays, strict=True):
                count = reader.doc_count_all()
                kept = arrays.lengths(fieldname) if arrays is not None else None
                if kept is not None and len(kept) == count:
                    found.extend(kept)
                else:
                    found.extend(reader.doc_field_length(d, fieldname, 1) or 1 for d in range(count))
            self.cache.lengths[fieldname] = found
        return found

    def _numbers(self, offset: int, reader) -> list[int]:
        """The global document numbers of one segment, one int object each for the life of the index."""
        found = self.cache.numbers.get(offset)
        if found is None:
            found = self.cache.numbers[offset] = list(range(offset, offset + reader.doc_count_all()))
        return found

    def _scaled_lengths(self, fieldname: str) -> list[float]:
        """K1 * B * length / average length of `fieldname` in every document: BM25F's length part, once per index."""
        found = self.cache.scaled.get(fieldname)
        if found is None:
            b_avg = K1 * B / (self.searcher.avg_field_length(fieldname) or 1)
            found = self.cache.scaled[fieldname] = [b_avg * length for length in self._lengths(fieldname)]
        return found

    def _deleted(self) -> frozenset[int]:
        """Global numbers of deleted documents (an index updated in place has some)."""
        if self.cache.deleted is None:
            self.cache.deleted = frozenset(
                offset + d
                for reader, offset in self.leaves
                if reader.has_deletions()
                for d in range(reader.doc_count_all())
                if reader.is_deleted(d)
            )
        return self.cache.deleted

    def _live_docs(self):
        deleted = self._deleted()
        return (d for d in range(self.doc_count) if d not in deleted)

    def _by_whoosh(self, q) -> Scores:
        """A node this module does not evaluate itself: Whoosh scores it whole."""
        results = self.searcher.search(q, limit=None)
        return {hit.docnum: hit.score for hit in results}


def _boosted(scores: Scores, boost: float) -> Scores:
    return scores if boost == 1.0 else {d: s * boost for d, s in scores.items()}


def _positions(reader, fieldname: str, btext: bytes, wanted: set[int], decode) -> dict[int, list[int]]:
    """The positions of a term in each of the `wanted` documents of one segment, read a block at a time."""
    found: dict[int, list[int]] = {}
    try:
        matcher = reader.postings(fieldname, btext)
    except TermNotFound:
        return found
    for ids, values in value_blocks(matcher):
        for index, docnum in enumerate(ids):
            if docnum in wanted:
                found[docnum] = decode(values[index])
    return found


def _followed(arrays, fieldname: str, words: list[bytes]) -> set[int]:
    """Documents of a segment where the words stand one right after another, from its position keys (C-speed sets).

    A key is document * 2**32 + position: adding 1 to every key of a word gives the places right
    after it, so each step keeps the places where the next word stands right after the chain so far.
    """
    chain = arrays.positions(fieldname, words[0])
    for word in words[1:]:
        following = arrays.positions(fieldname, word)
        after = map((1).__add__, chain)
        # A set of the smaller side, looked up with the other: fewer objects made.
        chain = (
            set(after).intersection(following) if len(chain) <= len(following) else set(following).intersection(after)
        )
        if not chain:
            break
    return {key >> 32 for key in chain}


def _in_order(positions: list, slop: int) -> bool:
    """True if some position of the first word is followed by the next word's, and so on, each within `slop`."""
    later = [set(p) for p in positions[1:]]
    if slop == 1:  # the usual phrase: each word right after the one before
        return any(all(start + step in following for step, following in enumerate(later, 1)) for start in positions[0])
    for start in positions[0]:
        at = start
        for following in later:
            step = next((at + gap for gap in range(1, slop + 1) if at + gap in following), None)
            if step is None:
                break
            at = step
        else:
            return True
    return False
