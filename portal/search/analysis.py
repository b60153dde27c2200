"""Text analysis and the index schema: what an entry's words become in the index and in queries.

Shared by the importer (documents to index) and by query parsing (the same analyzer must
read queries as it read the text). Nothing here opens an index or knows of Flask.
"""

from __future__ import annotations

import datetime as dt
import re
import sys
from collections import Counter
from itertools import compress, count, filterfalse, repeat
from operator import is_not
from typing import NamedTuple

from whoosh import fields
from whoosh.analysis import (
    CommaSeparatedTokenizer,
    CompositeAnalyzer,
    Filter,
    LowercaseFilter,
    RegexTokenizer,
    StemFilter,
    StopFilter,
    Token,
)

from ..content import tag_slug

WORD_PATTERN = r"\w+(?:[-+/.#]\w+)*[+#]*"
WORD_RE = re.compile(WORD_PATTERN)
ASCII_WORD_RE = re.compile(WORD_PATTERN, re.ASCII)  # WORD_RE's words in ASCII text, found a third faster
SPLIT_RE = re.compile(r"[-+/.#_]+")
SPELL_RE = re.compile(r"[^\W\d_]{3,}")  # the words typo correction knows
ASCII_SPELL_RE = re.compile(r"[a-z]{3,}")  # SPELL_RE's words in lowered ASCII text, found twice as fast
#: What a stop word adds to an index (`TextAnalyzer._index_terms`).
STOPPED = ()
SEARCH_FIELDS = ("title", "summary", "headings", "tags", "body")
FIELD_BOOSTS = {"title": 6.0, "tags": 4.0, "headings": 2.5, "summary": 2.0, "body": 1.0}


def compound_parts(text: str) -> list[str]:
    """The parts of `docker-compose`, `select_related` or `N+1`; fewer than two for a word (`c++`)."""
    return [part for part in SPLIT_RE.split(text) if part]


class CompoundFilter(Filter):
    """Index `docker-compose`, `N+1`, `select_related` as typed *and* as their parts.

    At index time a compound token is followed by its parts at consecutive positions, so
    both `docker-compose` and the phrase "docker compose" find it; queries keep the compound.
    """

    def __call__(self, tokens):
        shift = 0
        for token in tokens:
            if token.positions:
                token.pos += shift
            if token.mode == "query" or token.text.isalnum():  # most tokens: no separator to split at
                yield token
                continue
            parts = compound_parts(token.text)
            if len(parts) < 2:
                yield token
                continue
            compound, start, pos = token.text, getattr(token, "startchar", 0), getattr(token, "pos", 0)
            yield token  # the compound, at the position of its first part
            offset = 0
            for i, part in enumerate(parts):
                offset = compound.index(part, offset)
                token.text = part
                if token.positions:
                    token.pos = pos + i
                if token.chars:
                    token.startchar, token.endchar = start + offset, start + offset + len(part)
                offset += len(part)
                yield token
            shift += len(parts) - 1


class TextAnalyzer(CompositeAnalyzer):
    """The text pipeline, sped up by remembering what each word becomes.

    Every filter in the pipeline works on one word at a time (only positions carry over), so
    each distinct word goes through the five generators once and every later occurrence is looked
    up: that halves the analysis part of an index build, and makes the re-reading of each hit's
    text for its snippet several times faster. Unusual options take the pipeline itself.
    """

    MAX_WORDS = 20_000  # remembered words (about 9 MB); the table starts again when it is full
    #: Keyword arguments the table supports only at these values.
    PLAIN_OPTIONS = {"keeporiginal": False, "start_pos": 0, "start_char": 0, "tokenize": True, "no_morph": False}

    def __init__(self):
        super().__init__(
            RegexTokenizer(WORD_PATTERN),
            LowercaseFilter(),
            StopFilter(minsize=1),
            CompoundFilter(),  # after StopFilter, which renumbers positions
            StemFilter(cachesize=50000),
        )
        self._words: dict[tuple[str, str], tuple[bool, tuple]] = {}
        self._indexed: dict[str, object] = {}  # word -> its terms for an index build (`_index_terms`)

    def __getstate__(self):
        return {key: value for key, value in self.__dict__.items() if key not in ("_words", "_indexed")}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._words, self._indexed = {}, {}

    def __call__(self, value, positions=False, chars=False, removestops=True, mode="", boosts=False, **kwargs):
        plain = all(kwargs.get(name, default) == default for name, default in self.PLAIN_OPTIONS.items())
        if not plain or not isinstance(value, str) or set(kwargs) - set(self.PLAIN_OPTIONS):
            options = {"positions": positions, "chars": chars, "removestops": removestops, "boosts": boosts}
            return super().__call__(value, mode=mode, **options, **kwargs)
        return self._tokens(value, positions, chars, removestops, mode, boosts)

    def _tokens(self, value: str, positions: bool, chars: bool, removestops: bool, mode: str, boosts: bool):
        """The pipeline's tokens for `value`, from the per-word table."""
        words = self._words
        token = Token(positions, chars, removestops=removestops, mode=mode, boosts=boosts)
        token.boost = 1.0
        # Positions as StopFilter and CompoundFilter number them: the first kept word keeps its
        # place and later kept words close up; a stop word (when kept) keeps its own place;
        # a compound's parts push everything after them along.
        kept, shift = None, 0
        matches = WORD_RE.finditer(value) if chars else WORD_RE.findall(value)
        for number, match in enumerate(matches):
            raw = match.group() if chars else match
            stopped, terms = words.get((raw, mode)) or self._known(raw, mode)
            if stopped:
                if removestops:
                    continue
                base = number + shift
            else:
                kept = number if kept is None else kept + 1
                base = kept + shift
                shift += terms[-1][0]
            token.stopped = stopped
            for offset, text, start, end in terms:
                token.text = text
                if positions:
                    token.pos = base + offset
                if chars:
                    token.startchar, token.endchar = match.start() + start, match.start() + end
                yield token

    def term_sequence(self, value: str) -> tuple[list[str], list[int]]:
        """Each term indexed for `value` in order, and its position (as `_tokens` numbers them): an index build's input.

        Most words are one term at the next position (`_index_terms`), so the lists are made
        with C loops (`map`, `filter`, slices, ranges); only compounds take a step of Python each.
        """
        entries = self._entries(value)
        # The first kept word keeps its place (stop words before it count), later kept words close up.
        first = next((number for number, entry in enumerate(entries) if entry is not STOPPED), None)
        if first is None:
            return [], []
        kept = list(filter(None, entries))  # STOPPED is empty; a term (`_index_terms`) never is
        compounds = list(compress(count(), map(is_not, map(type, kept), repeat(str))))
        if not compounds:
            return kept, range(first, first + len(kept))
        terms: list[str] = []
        positions: list[int] = []
        start = shift = 0
        for number in compounds:
            terms += kept[start:number]
            positions += range(first + start + shift, first + number + shift)
            entry = kept[number]
            terms += [text for _offset, text in entry]
            positions += [first + number + shift + offset for offset, _text in entry]
            shift += entry[-1][0]
            start = number + 1
        terms += kept[start:]
        positions += range(first + start + shift, first + len(kept) + shift)
        return terms, positions

    def _entries(self, value: str) -> list:
        """What each word of `value` adds to an index (`_index_terms`), in order."""
        words = (ASCII_WORD_RE if value.isascii() else WORD_RE).findall(value)
        table = self._indexed
        entries = list(map(table.get, words))
        if None in entries:
            for word in filterfalse(table.__contains__, dict.fromkeys(words)):  # each new word, once
                self._index_terms(word)
            entries = list(map(table.get, words))
            if None in entries:  # the table started again meanwhile (`MAX_WORDS`)
                entries = [
                    entry if entry is not None else self._index_terms(word)
                    for word, entry in zip(words, entries, strict=True)
                ]
        return entries

    def _index_terms(self, raw: str):
        """What one word adds to an index: `STOPPED`, its one term at its own position, or its (offset, term) pairs."""
        if len(self._indexed) > self.MAX_WORDS:
            self._indexed.clear()
        stopped, terms = self._known(raw, "index")
        if stopped:
            entry = STOPPED
        elif len(terms) == 1 and terms[0][0] == 0 and terms[0][1]:  # a term as text is never empty (`term_sequence`)
            entry = terms[0][1]
        else:
            entry = tuple((offset, text) for offset, text, _start, _end in terms)
        self._indexed[raw] = entry
        return entry

    def word_terms(self, raw: str) -> tuple[str, ...]:
        """The terms indexed for one word as it appears in text (none for a stop word)."""
        stopped, terms = self._known(raw, "index")
        return () if stopped else tuple(text for _, text, _, _ in terms)

    def _known(self, raw: str, mode: str) -> tuple[bool, tuple]:
        """The table's entry for one word, made on first sight."""
        known = self._words.get((raw, mode))
        if known is None:
            if len(self._words) > self.MAX_WORDS:
                self._words.clear()
            known = self._words[raw, mode] = self._analyze_word(raw, mode)
        return known

    def _analyze_word(self, raw: str, mode: str) -> tuple[bool, tuple]:
        """(is it a stop word, ((position offset, term, start, end), ...)) for one word, from the pipeline."""
        tokens = super().__call__(raw, positions=True, chars=True, removestops=False, mode=mode)
        terms = tuple((t.pos, t.text, t.startchar, t.endchar, t.stopped) for t in tokens)
        return terms[0][4], tuple(term[:4] for term in terms)


def text_analyzer():
    """Stemmed English text that keeps technical tokens findable as typed."""
    return TextAnalyzer()


def spelling_analyzer():
    """Unstemmed words: the vocabulary that typo correction draws from."""
    return SpellingAnalyzer()


class SpellingAnalyzer(CompositeAnalyzer):
    """The spelling pipeline (words of letters, lowercased, stop words out), which can also count an index build's terms.

    `term_counts` gives the terms and frequencies Whoosh's `Frequency` format takes from the
    token stream, without making a token per word: the `spell` field is in every document.
    """

    def __init__(self):
        super().__init__(RegexTokenizer(SPELL_RE.pattern), LowercaseFilter(), StopFilter())

    def term_counts(self, value: str) -> Counter:
        """Each term indexed for `value`, in the order first seen, with how many times (what the token stream gives)."""
        stop = self.items[-1]
        stops, shortest = stop.stops, stop.min
        longest = sys.maxsize if stop.max is None else stop.max
        words = map(str.lower, self.items[0].expression.findall(value))
        return Counter(word for word in words if shortest <= len(word) <= longest and word not in stops)


class TagSlugFilter(Filter):
    """Tags are indexed and queried as slugs: `tag:C++` finds `c-plus-plus`, the slug the importer gave C++.

    In a query, `*` and `?` stay (`tag:c++*`), so prefixes and wildcards on tags work as before.
    """

    def __call__(self, tokens):
        for token in tokens:
            token.text = _tag_pattern(token.text)
            if token.text:
                yield token


def _tag_pattern(text: str) -> str:
    """The tag slug of `text`, keeping the wildcards of a query in place."""
    if "*" not in text and "?" not in text:
        return tag_slug(text)
    return "".join(part if part in ("*", "?") else tag_slug(part) for part in re.split(r"([*?])", text) if part)


def make_schema():
    """Fields of one indexed entry; title and tags weigh most."""
    text = text_analyzer()
    tags = fields.KEYWORD(stored=True, commas=True, scorable=True, field_boost=FIELD_BOOSTS["tags"])
    tags.analyzer = CommaSeparatedTokenizer() | TagSlugFilter()
    return fields.Schema(
        slug=fields.ID(stored=True, unique=True),
        title=fields.TEXT(analyzer=text, field_boost=FIELD_BOOSTS["title"]),
        summary=fields.TEXT(analyzer=text, field_boost=FIELD_BOOSTS["summary"]),
        headings=fields.TEXT(analyzer=text, field_boost=FIELD_BOOSTS["headings"]),
        body=fields.TEXT(analyzer=text),
        tags=tags,
        kind=fields.ID(stored=True),
        date=fields.DATETIME(sortable=True),
        title_sort=fields.ID(sortable=True),
        spell=fields.TEXT(analyzer=spelling_analyzer(), phrase=False),
        hub=fields.BOOLEAN(),
    )


#: A page with at least this many links to other notes, and a link for every this many words or
#: fewer, is an index of the collection (a README listing every note), not an answer.
HUB_MIN_LINKS = 20
HUB_WORDS_PER_LINK = 20


def is_hub(entry) -> bool:
    """True for a page that mostly lists other notes: it has most words of any query, and answers none."""
    links = len(entry.link_keys or ())
    return links >= HUB_MIN_LINKS and (entry.word_count or 0) <= HUB_WORDS_PER_LINK * links


#: The `Entry` columns `document_for` and `is_hub` read (besides its tags): an index build loads no others.
INDEXED_COLUMNS = ("slug", "title", "summary", "headings", "text", "kind", "sort_date", "link_keys", "word_count")


class TagName(NamedTuple):
    """A tag as `document_for` reads it."""

    slug: str
    name: str


class IndexedEntry(NamedTuple):
    """What `document_for` reads of an `Entry` row, as a plain tuple: sent to an index writer process, no database."""

    slug: str
    title: str
    summary: str | None
    headings: str | None
    text: str
    kind: str | None
    sort_date: dt.date
    link_keys: list | None
    word_count: int | None
    tags: tuple[TagName, ...]

    @classmethod
    def of(cls, entry) -> IndexedEntry:
        """The indexed columns and tags of an `Entry` row."""
        tags = tuple(TagName(tag.slug, tag.name) for tag in entry.tags)
        return cls(*(getattr(entry, name) for name in INDEXED_COLUMNS), tags)


def document_for(entry) -> dict:
    """The indexed fields of one `Entry` row."""
    tag_slugs = [tag.slug for tag in entry.tags]
    tag_words = " ".join(tag.name for tag in entry.tags)
    return {
        "slug": entry.slug,
        "title": entry.title,
        "summary": entry.summary or "",
        "headings": entry.headings or "",
        "body": entry.text,
        "tags": ",".join(tag_slugs),
        "kind": entry.kind or "",
        "date": dt.datetime.combine(entry.sort_date, dt.time()),
        "title_sort": entry.title.casefold()[:200],
        "spell": distinct_words(" ".join([entry.title, tag_words, entry.headings or "", entry.text])),
        "hub": is_hub(entry),
    }


def distinct_words(text: str) -> str:
    """Each spelling word once: typo correction needs the vocabulary, not every occurrence.

    Indexing every occurrence took about a third of the index build time. Lowering each distinct
    written form rather than every word (or the whole text, when ASCII) gives the same words in the same order.
    """
    if text.isascii():  # lowering ASCII changes no word's bounds: the whole text at once
        return " ".join(dict.fromkeys(ASCII_SPELL_RE.findall(text.lower())))
    # Each written form lowered once: a word's first form comes first, so the order stays that of first use.
    return " ".join(dict.fromkeys(map(str.lower, dict.fromkeys(SPELL_RE.findall(text)))))


#: Typo correction keeps every word, but from 200 entries on records it once per block of
#: `count // SPELLING_BLOCKS` entries: a word's frequency is then the number of blocks that use it
#: (up to 100 levels, enough to rank corrections). At 10,000 entries that is a fifth of the
#: spelling postings and a quarter less index build time.
SPELLING_BLOCKS = 100


def spelling_batch(count: int, about: int) -> int:
    """A number of documents near `about` made of whole blocks of `thin_spelling`'s (for `count` documents)."""
    block = max(1, count // SPELLING_BLOCKS)
    return block * max(1, round(about / block))


def thin_batch(entries: list, count: int) -> list[dict]:
    """The documents of a batch of `count` entries' (`IndexedEntry`), thinned as `thin_spelling` thins the whole.

    The batch starts a block of `thin_spelling` (`spelling_batch`): each block is thinned on its own.
    """
    return list(thin_spelling(map(document_for, entries), count))


def thin_spelling(documents, count: int):
    """Documents with each spelling word kept once per block of `count // SPELLING_BLOCKS` documents."""
    block = max(1, count // SPELLING_BLOCKS)
    seen: set[str] = set()
    for number, document in enumerate(documents):
        if block > 1:
            if number % block == 0:
                seen = set()
            words = document["spell"].split()
            document["spell"] = " ".join(w for w in words if w not in seen)
            seen.update(words)
        yield document
