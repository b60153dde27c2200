"""Whoosh full-text search: schema, index build and atomic swap, per-worker searchers, queries.

Only the importer calls `build_index`; every other caller reads. The live index is a
symlink (`<instance>/index`) to a directory built aside; swapping the symlink is atomic,
so a reader sees the old index or the new one, never half of one.
"""

from __future__ import annotations

import datetime as dt
import gc
import logging
import os
import re
import shutil
import threading
import time
import unicodedata
import uuid
import warnings
from collections import Counter
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path

from whoosh import fields, index, query, scoring
from whoosh.analysis import (
    CompositeAnalyzer,
    Filter,
    LowercaseFilter,
    RegexTokenizer,
    StemFilter,
    StopFilter,
    Token,
)
from whoosh.filedb.filestore import FileStorage
from whoosh.qparser import FieldAliasPlugin, MultifieldParser, PlusMinusPlugin

from . import snippets
from .aliases import ALIASES

log = logging.getLogger(__name__)

INDEX_LINK = "index"
GENERATION_FILE = "GENERATION"
MAX_QUERY_CHARS = 500
MAX_QUERY_TERMS = 32
MAX_PER_PAGE = 50
WORD_PATTERN = r"\w+(?:[-+/.#]\w+)*[+#]*"
WORD_RE = re.compile(WORD_PATTERN)
SPLIT_RE = re.compile(r"[-+/.#_]+")
SPELL_RE = re.compile(r"[^\W\d_]{3,}")  # the words typo correction knows
SEARCH_FIELDS = ("title", "summary", "headings", "tags", "body")
FIELD_BOOSTS = {"title": 6.0, "tags": 4.0, "headings": 2.5, "summary": 2.0, "body": 1.0}
SORTS = ("relevance", "newest", "title")


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

    def __getstate__(self):
        return {key: value for key, value in self.__dict__.items() if key != "_words"}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._words = {}

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
    return RegexTokenizer(SPELL_RE.pattern) | LowercaseFilter() | StopFilter()


def make_schema():
    """Fields of one indexed entry; title and tags weigh most."""
    text = text_analyzer()
    return fields.Schema(
        slug=fields.ID(stored=True, unique=True),
        title=fields.TEXT(analyzer=text, field_boost=FIELD_BOOSTS["title"]),
        summary=fields.TEXT(analyzer=text, field_boost=FIELD_BOOSTS["summary"]),
        headings=fields.TEXT(analyzer=text, field_boost=FIELD_BOOSTS["headings"]),
        body=fields.TEXT(analyzer=text),
        tags=fields.KEYWORD(stored=True, commas=True, lowercase=True, scorable=True, field_boost=FIELD_BOOSTS["tags"]),
        kind=fields.ID(stored=True),
        date=fields.DATETIME(sortable=True),
        title_sort=fields.ID(sortable=True),
        spell=fields.TEXT(analyzer=spelling_analyzer(), phrase=False),
    )


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
    }


def distinct_words(text: str) -> str:
    """Each spelling word once: typo correction needs the vocabulary, not every occurrence.

    Indexing every occurrence took about a third of the index build time.
    """
    return " ".join(dict.fromkeys(word.lower() for word in SPELL_RE.findall(text)))


#: Typo correction keeps every word, but from 200 entries on records it once per block of
#: `count // SPELLING_BLOCKS` entries: a word's frequency is then the number of blocks that use it
#: (up to 100 levels, enough to rank corrections). At 10,000 entries that is a fifth of the
#: spelling postings and a quarter less index build time.
SPELLING_BLOCKS = 100


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


# --- building and swapping ---------------------------------------------------------


def index_link(instance_path) -> Path:
    """The symlink that names the live index directory."""
    return Path(instance_path) / INDEX_LINK


def live_index_dir(instance_path) -> Path | None:
    """The directory the live symlink points to, or None if there is none."""
    link = index_link(instance_path)
    try:
        target = os.readlink(link)
    except OSError:
        return None
    return link.parent / target


def build_index(instance_path, documents, generation: int, *, procs: int = 1) -> Path:
    """Write a new index aside from `documents`, then swap it in atomically."""
    instance = Path(instance_path)
    instance.mkdir(parents=True, exist_ok=True)
    name = f"index.{generation}.{uuid.uuid4().hex[:8]}"
    building = instance / (name + ".building")
    building.mkdir()
    ix = index.create_in(str(building), make_schema())
    # Each parallel writer holds its postings in memory up to `limitmb`; spilling them to disk and
    # merging back made a 10,000-entry build 40% slower at 128 MB than at 512 MB (bench/http.py).
    writer = ix.writer(limitmb=128 if procs == 1 else 512, procs=procs, multisegment=procs > 1)
    count = 0
    try:
        for document in documents:
            writer.add_document(**document)
            count += 1
        writer.commit(optimize=procs > 1)
    except BaseException:
        writer.cancel()
        ix.close()
        shutil.rmtree(building, ignore_errors=True)
        raise
    ix.close()
    (building / GENERATION_FILE).write_text(f"{generation}\n")
    final = instance / name
    os.rename(building, final)
    _swap_link(instance, name)
    _remove_stale(instance, keep={name})
    log.info("search index generation %s built with %d documents", generation, count)
    return final


def _swap_link(instance: Path, name: str) -> None:
    """Point `index` at `name` with one rename (atomic on POSIX)."""
    temporary = instance / f".index-link.{uuid.uuid4().hex[:8]}"
    os.symlink(name, temporary)
    link = instance / INDEX_LINK
    if link.is_dir() and not link.is_symlink():
        shutil.rmtree(link)  # an index from before symlinks: nothing can be reading it atomically anyway
    os.replace(temporary, link)


def _remove_stale(instance: Path, keep: set[str]) -> None:
    """Delete old and half-built index directories, keeping the previous one for open readers."""
    candidates = sorted(
        (p for p in instance.glob("index.*") if p.is_dir() and p.name not in keep),
        key=lambda p: p.stat().st_mtime,
        reverse=True,
    )
    finished = [p for p in candidates if not p.name.endswith(".building")]
    # Keep one previous generation: a worker may still be reading it for a moment.
    for path in finished[1:] + [p for p in candidates if p.name.endswith(".building")]:
        shutil.rmtree(path, ignore_errors=True)


def index_generation(directory: Path) -> int | None:
    """The content generation an index directory was built from."""
    try:
        return int((directory / GENERATION_FILE).read_text().strip())
    except (OSError, ValueError):
        return None


def check_index(instance_path) -> tuple[int | None, int | None]:
    """(generation, document count) of the live index, or (None, None) if it will not open."""
    directory = live_index_dir(instance_path)
    if directory is None:
        return None, None
    try:
        ix = open_index(directory)
    except IndexUnavailable:
        return None, None
    try:
        return index_generation(directory), ix.doc_count()
    finally:
        ix.close()


def open_index(directory: Path):
    """Open an index directory; any failure becomes `IndexUnavailable`.

    Without mmap: whoosh-reloaded copies each memory-mapped segment file into a BytesIO
    (`BufferFile`), which cost every worker 100 MB at 10,000 entries; reading the files
    on demand costs about 5 MB and searches about 15% slower.
    """
    # Whoosh leaves files open when an index fails to open: close them quietly here.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        try:
            return FileStorage(str(directory), supports_mmap=False).open_index()
        except Exception as error:  # noqa: BLE001 - any failure to open means "rebuild it"
            message = f"the search index will not open: {error}"
        gc.collect()
    raise IndexUnavailable(message)


# --- per-worker searchers -----------------------------------------------------------


class SearcherPool:
    """One open searcher per thread of a worker, reopened only when the index changed."""

    def __init__(self, instance_path):
        self.instance_path = instance_path
        self._local = threading.local()
        self.opened = 0  # how many times this process opened an index (for tests and benchmarks)
        self._open: list = []  # (searcher, index) of every thread, so that close() reaches them all
        self._open_lock = threading.Lock()
        self._cache: dict = {}
        self._cache_generation = None

    def cache_for(self, generation) -> dict:
        """A small per-process cache that is emptied whenever the index generation changes."""
        if generation != self._cache_generation or len(self._cache) > 4096:
            self._cache, self._cache_generation = {}, generation
        return self._cache

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
            self._close(state)
            ix = open_index(directory)
            state.searcher = ix.searcher(weighting=scoring.BM25F())
            state.index, state.directory, state.pid = ix, directory, os.getpid()
            state.generation = index_generation(directory)
            state.tags = _load_doc_tags(state.searcher)
            self.opened += 1
            with self._open_lock:
                self._open.append((state.searcher, ix))
        return state.searcher, state.tags, state.generation

    def close(self) -> None:
        """Close every thread's searcher and its open files (an app being thrown away)."""
        with self._open_lock:
            handles, self._open = self._open, []
        for searcher, ix in handles:
            _close_quietly(searcher, ix)

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


def _load_doc_tags(searcher):
    """Tag slugs per document number, kept in memory for fast facet counts."""
    tags = {}
    for docnum, stored in searcher.reader().iter_docs():
        value = stored.get("tags") or ""
        tags[docnum] = tuple(value.split(",")) if value else ()
    return tags


def more_like(pool: SearcherPool, slug: str, text: str, limit: int = 5) -> list[str]:
    """Slugs of entries whose bodies resemble this one's (Whoosh's more-like-this), cached per index."""
    searcher, _, generation = pool.get()
    cache = pool.cache_for(generation)
    key = ("more_like", slug, limit)
    if key not in cache:
        docnum = searcher.document_number(slug=slug)
        if docnum is None or not text.strip():
            # No text to compare: Whoosh would fall back to the stored body, which is not stored.
            cache[key] = []
        else:
            hits = searcher.more_like(docnum, "body", text=text, top=limit, numterms=15)
            cache[key] = [hit["slug"] for hit in hits]
    return cache[key]


class IndexUnavailable(Exception):
    """The index is missing or will not open; the operator must reindex."""


# --- queries ------------------------------------------------------------------------


@dataclass
class Hit:
    """One ranked result: which entry, how well it matched, and a highlighted snippet."""

    slug: str
    score: float
    docnum: int
    snippet: str = ""


@dataclass
class SearchOutcome:
    """Everything one search page or API answer needs."""

    query: str
    hits: list[Hit]
    total: int
    page: int
    per_page: int
    facets: dict[str, int] = field(default_factory=dict)
    corrected: str | None = None
    suggestion: str | None = None
    notice: str | None = None

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


def clean_query(raw: str) -> tuple[str, str | None]:
    """Strip control characters and cap length and term count; return a notice if cut."""
    text = "".join(ch if unicodedata.category(ch)[0] != "C" else " " for ch in raw or "")
    text = " ".join(text.split())
    notice = None
    if len(text) > MAX_QUERY_CHARS:
        text, notice = text[:MAX_QUERY_CHARS].rsplit(" ", 1)[0], f"Your query was cut to {MAX_QUERY_CHARS} characters."
    words = text.split()
    if len(words) > MAX_QUERY_TERMS:
        text, notice = " ".join(words[:MAX_QUERY_TERMS]), f"Only the first {MAX_QUERY_TERMS} words were used."
    return text, notice


def make_parser(schema):
    """AND by default; phrases, prefix*, -word, NOT, field:term; fields weighted by boost."""
    parser = MultifieldParser(list(SEARCH_FIELDS), schema)
    parser.add_plugin(FieldAliasPlugin({"tags": ["tag"], "title": ["intitle"]}))
    parser.add_plugin(PlusMinusPlugin(plusexpr=r"(?<![^\s(])\+(?=\S)", minusexpr=r"(?<![^\s(])-(?=\S)"))
    return parser


def parse(schema, text: str):
    """A Whoosh query for the text; anything the parser rejects falls back to plain terms."""
    parser = make_parser(schema)
    try:
        parsed = parser.parse(text)
    except Exception:  # noqa: BLE001 - user input must never raise
        parsed = None
    if parsed is None or parsed is query.NullQuery or isinstance(parsed, query.qcore._NullQuery):
        parsed = None
    if parsed is None or _has_error(parsed):
        text = " ".join(re.findall(WORD_PATTERN, text))
        try:
            parsed = parser.parse(text) if text else None
        except Exception:  # noqa: BLE001
            parsed = None
    if parsed is None or isinstance(parsed, query.qcore._NullQuery):
        return None
    return expand_aliases(split_phrase_compounds(word_prefixes(parsed), schema, text), schema)


class WordPrefix(query.Prefix):
    """`load*`: the words that start with `load`, not also every compound that does (`load_event`).

    In text fields a compound's parts are indexed as well, so its first part already matches the
    prefix. Expanding to hundreds of compounds made one such search take seconds at 10,000
    entries. A prefix with a separator in it (`select_rel*`) still expands to compounds, and so
    does a prefix on a field that keeps compounds whole (tags).
    """

    def _btexts(self, ixreader):
        words = super()._btexts(ixreader)
        field = ixreader.schema[self.fieldname] if self.fieldname in ixreader.schema else None  # noqa: SIM401 - Schema has no get()
        if SPLIT_RE.search(self.text) or not isinstance(getattr(field, "analyzer", None), TextAnalyzer):
            return words
        return (word for word in words if len(compound_parts(word.decode())) < 2)


def word_prefixes(q):
    """The query with each prefix term expanding to words only (see `WordPrefix`)."""
    if type(q) is query.Prefix:
        return WordPrefix(q.fieldname, q.text, boost=q.boost, constantscore=q.constantscore)
    if q.is_leaf():
        return q
    return q.apply(word_prefixes)


def split_phrase_compounds(q, schema, text: str):
    """Match a compound inside a phrase by its parts, as the index holds them at consecutive positions.

    `docker-compose` is indexed at the position of `docker`, so the phrase "docker-compose up"
    must be searched as "docker compose up".
    """
    if isinstance(q, query.Phrase):
        if not q.char_ranges or q.fieldname not in schema or not any(SPLIT_RE.search(w) for w in q.words):
            return q
        analyzer = schema[q.fieldname].analyzer
        words = []
        for word, (start, end) in zip(q.words, q.char_ranges, strict=False):
            # In index mode the analyzer yields the compound and then its parts.
            parts = [t.text for t in analyzer(text[start:end], mode="index")][1:] if SPLIT_RE.search(word) else []
            words.extend(parts or [word])
        return query.Phrase(q.fieldname, words, slop=q.slop, boost=q.boost)
    if q.is_leaf():
        return q
    return q.apply(lambda child: split_phrase_compounds(child, schema, text))


def _has_error(q) -> bool:
    """True if the parser produced an error node anywhere (e.g. an open range)."""
    if getattr(q, "error", None):
        return True
    return not q.is_leaf() and any(_has_error(child) for child in q.children())


def _analyze(schema, fieldname, text):
    """The tokens a field's analyzer makes of `text` in query mode (tags are slugs)."""
    if fieldname == "tags":
        return [re.sub(r"[^\w+#/]+", "-", text.lower()).strip("-")]
    fieldobj = schema[fieldname]
    return [t.text for t in fieldobj.analyzer(text, mode="query")]


def expand_aliases(q, schema):
    """Replace each term that has aliases with an OR of the term and its aliases."""
    if isinstance(q, query.Term) and q.fieldname in SEARCH_FIELDS:
        alternatives = _alias_queries(schema, q.fieldname, q.text, q.boost)
        return query.Or([q, *alternatives]) if alternatives else q
    if isinstance(q, query.Phrase) and q.fieldname in SEARCH_FIELDS:
        # "django rest framework" finds drf, as drf finds "django rest framework"
        alternatives = _alias_queries(schema, q.fieldname, tuple(q.words), q.boost)
        return query.Or([q, *alternatives]) if alternatives else q
    if q.is_leaf():
        return q
    return q.apply(lambda child: expand_aliases(child, schema))


def _alias_queries(schema, fieldname, analyzed, boost):
    """Queries for every alias of an analyzed term, in the same field."""
    table = _alias_table(schema, fieldname)
    result = []
    for words in table.get(analyzed, ()):
        if len(words) == 1:
            if words[0] != analyzed:
                result.append(query.Term(fieldname, words[0], boost=boost))
        elif words:
            result.append(query.Phrase(fieldname, list(words), boost=boost))
    return result


_ALIAS_CACHE: dict[str, dict] = {}


def _alias_table(schema, fieldname):
    """analyzed term (or tuple of phrase words) -> analyzed forms of its aliases, for one field."""
    if fieldname not in _ALIAS_CACHE:
        table: dict[str | tuple[str, ...], list[tuple[str, ...]]] = {}
        for group in ALIASES:
            forms = [tuple(_analyze(schema, fieldname, name)) for name in group]
            for form in forms:
                if form:
                    key = form[0] if len(form) == 1 else form
                    table.setdefault(key, []).extend(f for f in forms if f != form)
        _ALIAS_CACHE[fieldname] = table
    return _ALIAS_CACHE[fieldname]


def build_filter(tags_all=(), tags_any=(), tags_not=(), kind=None):
    """A Whoosh filter query for tag and kind constraints (None when unfiltered)."""
    parts = [query.Term("tags", tag) for tag in tags_all]
    if tags_any:
        parts.append(query.Or([query.Term("tags", tag) for tag in tags_any]))
    if kind:
        parts.append(query.Term("kind", kind))
    if tags_not:
        base = query.And(parts) if parts else query.Every()
        return query.AndNot(base, query.Or([query.Term("tags", tag) for tag in tags_not]))
    return query.And(parts) if parts else None


def run_search(
    pool: SearcherPool,
    raw_query: str,
    *,
    page: int = 1,
    per_page: int = 10,
    sort: str = "relevance",
    tags_all=(),
    tags_any=(),
    tags_not=(),
    kind=None,
    texts=None,
    correct: bool = True,
) -> SearchOutcome:
    """Search, count facets over all matches, highlight the page, and correct typos."""
    text, notice = clean_query(raw_query)
    searcher, doc_tags, _generation = pool.get()
    outcome = _search_once(searcher, doc_tags, text, page, per_page, sort, tags_all, tags_any, tags_not, kind)
    outcome.notice = notice
    if correct and text:
        corrected = correct_text(searcher, text)
        if corrected and outcome.total == 0:
            retry = _search_once(
                searcher, doc_tags, corrected, page, per_page, sort, tags_all, tags_any, tags_not, kind
            )
            if retry.total:
                retry.corrected, retry.notice = corrected, notice
                retry.query = text
                outcome = retry
        elif corrected and outcome.total < 3:
            outcome.suggestion = corrected
    if texts is not None and outcome.hits:
        _add_snippets(searcher, outcome, texts)
    return outcome


def _search_once(searcher, doc_tags, text, page, per_page, sort, tags_all, tags_any, tags_not, kind):
    """One pass of query, filter, sort and facet counting."""
    q = parse(searcher.schema, text) if text else None
    filt = build_filter(tags_all, tags_any, tags_not, kind)
    if q is None:
        return SearchOutcome(query=text, hits=[], total=0, page=page, per_page=per_page)
    sortedby, reverse = {"newest": ("date", True), "title": ("title_sort", False)}.get(sort, (None, False))
    try:
        results = collect_results(searcher, q, filt, page * per_page, sortedby, reverse)
    except Exception:  # noqa: BLE001 - a query the index refuses (`"a, b"` or `spell:"a b"`: a phrase
        # on a field without positions; `date:"x y"`: no date) falls back to plain terms, like a parse error.
        q = parse(searcher.schema, " ".join(re.findall(WORD_PATTERN, text)))
        if q is None:
            return SearchOutcome(query=text, hits=[], total=0, page=page, per_page=per_page)
        results = collect_results(searcher, q, filt, page * per_page, sortedby, reverse)
    matched = results.docs()
    facets = count_tags(doc_tags, matched)
    start = (page - 1) * per_page
    window = results[start : start + per_page]
    # Sorted by a field, Whoosh puts that field's sort key in `hit.score`: relevance is then unknown.
    hits = [
        Hit(slug=hit["slug"], score=float(hit.score or 0.0) if sortedby is None else 0.0, docnum=hit.docnum)
        for hit in window
    ]
    outcome = SearchOutcome(
        query=text, hits=hits, total=len(matched), page=page, per_page=per_page, facets=dict(facets.most_common())
    )
    outcome._results = results  # kept for highlighting this page
    return outcome


def collect_results(searcher, q, filt, limit: int, sortedby, reverse: bool):
    """Whoosh results for one query: sorted by a field, or the best `limit` by score.

    For the best by score Whoosh skips documents that cannot reach the top, then runs the query
    again, unscored, when asked for every match (`Results.docs()`, for the total and facets).
    Matching a phrase costs most in that second run, so a query with a phrase is scored whole in
    one pass instead: at 10,000 entries that made phrase searches a third faster. For words the
    pruning wins.
    """
    if sortedby is None and not any(isinstance(leaf, query.Phrase) for leaf in q.leaves()):
        return searcher.search(q, filter=filt, limit=limit, terms=True)
    return searcher.search(q, filter=filt, limit=None, sortedby=sortedby, reverse=reverse, terms=True)


def count_tags(doc_tags: dict, docnums) -> Counter:
    """Tag counts over matched documents, from the worker's in-memory table (C-speed counting)."""
    # Every matched document has an entry in doc_tags: the index is built whole, never edited.
    return Counter(chain.from_iterable(map(doc_tags.__getitem__, docnums)))


def _add_snippets(searcher, outcome, texts):
    """Escaped passages around the matched words, with `<mark>` around each match."""
    results = outcome._results
    query_terms = {text.decode() for fieldname, text in results.matched_terms() if fieldname == "body"}
    terms_of = _word_terms(searcher.schema["body"].analyzer)
    found: dict[str, str | None] = {}

    def matched_term(word: str) -> str | None:
        if word not in found:
            found[word] = next((term for term in terms_of(word) if term in query_terms), None)
        return found[word]

    bodies = texts([hit.slug for hit in outcome.hits])
    for hit in outcome.hits:
        body = bodies.get(hit.slug, "")
        hit.snippet = snippets.make(body, matched_term, WORD_RE) if body and query_terms else ""


def _word_terms(analyzer):
    """raw word -> the terms the index holds for it (an index built by an older Nexus has no word table)."""
    if isinstance(analyzer, TextAnalyzer):
        return analyzer.word_terms
    return lambda word: [token.text for token in analyzer(word, mode="index")]


def correct_text(searcher, text: str) -> str | None:
    """The query with unknown words replaced by the nearest indexed words, if any changed."""
    reader = searcher.reader()
    corrector = searcher.corrector("spell")
    changed = False
    out = []
    for token in re.split(r"(\s+)", text):
        word = token.strip()
        lowered = word.lower()
        if not word or ":" in word or not re.fullmatch(r"[^\W\d_]{3,}", word) or lowered in ("and", "or", "not"):
            out.append(token)
            continue
        if reader.doc_frequency("spell", lowered) or _is_alias(lowered):
            out.append(token)
            continue
        suggestions = corrector.suggest(lowered, limit=1, maxdist=2, prefix=1)
        if suggestions and suggestions[0] != lowered:
            out.append(suggestions[0])
            changed = True
        else:
            out.append(token)
    return "".join(out) if changed else None


def _is_alias(word):
    return any(word == name.lower() for group in ALIASES for name in group)


def suggest_titles(pool: SearcherPool, raw: str, limit: int = 8) -> list[str]:
    """Slugs of entries whose title words start with what was typed, best first."""
    text, _ = clean_query(raw)
    words = re.findall(r"\w+", text.lower())
    if not words:
        return []
    searcher, _, _ = pool.get()
    analyzed = [_analyze(searcher.schema, "title", w) for w in words[:-1]]
    parts = [query.Term("title", a[0]) for a in analyzed if a]
    parts.append(query.Or([query.Prefix("title", words[-1]), query.Prefix("tags", words[-1])]))
    results = searcher.search(query.And(parts), limit=limit)
    return [hit["slug"] for hit in results]


def wait_for_index(instance_path, timeout: float = 10.0) -> bool:
    """True once a live index exists (used right after start-up)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if live_index_dir(instance_path) is not None:
            return True
        time.sleep(0.05)
    return False
