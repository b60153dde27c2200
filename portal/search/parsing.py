"""Query text into Whoosh queries: the words that must match, operators, prefixes, compounds, aliases, filters.

A query of plain words is planned word by word, so the engine can require every word or, when
that finds too little, most of them (see engine.py). Function words ("how do I … in …") are never
required. A query with operators (quotes, AND/OR/NOT, -word, field:term, prefix*) keeps its strict
meaning and goes through Whoosh's parser whole.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass, field

from whoosh import query
from whoosh.analysis import STOP_WORDS
from whoosh.qparser import FieldAliasPlugin, MultifieldParser, PlusMinusPlugin

from ..aliases import ALIASES
from .analysis import SEARCH_FIELDS, SPLIT_RE, WORD_PATTERN, WORD_RE, TextAnalyzer, compound_parts
from .internals import FilteredPrefix, is_null

MAX_QUERY_CHARS = 500
MAX_QUERY_TERMS = 32

#: Words that say nothing about a topic: never required and never corrected. The index drops
#: Whoosh's stop words from text; the others (question words, pronouns, auxiliaries) are indexed
#: but would make "how do I … in my …" demand words that notes rarely use. Inside a quoted phrase
#: they still count.
FUNCTION_WORDS = frozenset(STOP_WORDS) | frozenset(
    """about above across after again against all along also am among any anything around because been
    before behind being below beside between beyond both but could did do does doing done don doesn
    didn down during each either else even ever every few further had has hasn
    have haven having he her here hers herself him himself his how however i im into isn its itself
    just let lets me mine more most much must my myself neither no nor now off once only onto
    other others our ours ourselves out over own per please rather same shall she should shouldn
    since so some someone something such than then there these they those though
    through thru till too toward towards under until unto up upon very via was wasn were
    weren what whatever whether which while who whom whose why within without won would wouldn
    aren couldn ll ve re""".split()  # noqa: SIM905 - a paragraph of words reads better than 200 strings
)
#: Field names a query may use as `field:term` (and the aliases of make_parser).
QUERY_FIELDS = ("title", "intitle", "tag", "tags", "kind", "summary", "headings", "body")
#: Syntax that makes a query explicit: it then keeps Whoosh's strict meaning.
EXPLICIT_RE = re.compile(
    r'["()\[\]{}^~*]|(?<![^\s(])[-+](?=\S)|\b(?:AND|OR|NOT|ANDNOT|ANDMAYBE)\b|\w\?\w|\?\w'
    rf"|\b(?:{'|'.join(QUERY_FIELDS)}):"
)
#: `what's`, `don't`, `you'll`: the contraction's tail is not a word of its own.
CONTRACTION_RE = re.compile(r"(\w)['’](?:s|t|re|ve|ll|d|m)\b", re.IGNORECASE)
#: Outside quotes: a bare word, for dropping function words from an explicit query.
BARE_WORD_RE = re.compile(r'"[^"]*"?|(?<![^\s(])([^\W\d_]+)(?=[\s)]|$)')


@dataclass(frozen=True)
class Unit:
    """One thing a plain query asks for: a word, or a multi-word name with aliases ("docker compose")."""

    text: str
    query: query.Query
    correctable: bool  # a single word of letters, which typo correction may replace


@dataclass
class QueryPlan:
    """What a query asks for: its units (plain queries), or one strict query (explicit ones)."""

    text: str
    units: list[Unit] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)  # function words, not required
    strict: query.Query | None = None  # every unit, or the explicit query
    explicit: bool = False

    @property
    def words(self) -> list[str]:
        """The units as typed, for notices and corrections."""
        return [unit.text for unit in self.units]


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


def plan_query(schema, text: str) -> QueryPlan:
    """Plan a cleaned query: explicit syntax goes to the parser whole; plain words become units."""
    if not text:
        return QueryPlan(text=text)
    if EXPLICIT_RE.search(text):
        kept, ignored = strip_function_words(text)
        return QueryPlan(text=text, ignored=ignored, strict=parse(schema, kept or text), explicit=True)
    words = WORD_RE.findall(CONTRACTION_RE.sub(r"\1", text))
    content = [w for w in words if w.lower() not in FUNCTION_WORDS]
    ignored = [w for w in words if w.lower() in FUNCTION_WORDS] if content else []
    units = [unit for unit in _units(schema, content or words) if unit.query is not None]
    strict = units[0].query if len(units) == 1 else query.And([u.query for u in units]) if units else None
    return QueryPlan(text=text, units=units, ignored=ignored, strict=strict)


def _units(schema, words: list[str]):
    """Units of the words, joining runs that name an alias group ("django rest framework")."""
    names = _multiword_names()
    lowered = [w.lower() for w in words]
    at = 0
    while at < len(words):
        for size in range(min(4, len(words) - at), 1, -1):
            name = " ".join(lowered[at : at + size])
            if name in names:
                yield Unit(" ".join(words[at : at + size]), parse(schema, f'"{name}"'), correctable=False)
                at += size
                break
        else:
            word = words[at]
            yield Unit(word, word_query(schema, word), correctable=word.isalpha() and len(word) >= 3)
            at += 1


_WORD_QUERIES: dict[str, query.Query | None] = {}


def word_query(schema, word: str):
    """One plain word in every search field, with its aliases: what `parse` gives for it, without the parser.

    Whoosh's parser costs a millisecond or two per word; a plain word needs none of it. The
    queries of words already seen are kept (a few thousand; the schema never changes).
    """
    if word in _WORD_QUERIES:
        return _WORD_QUERIES[word]
    parts = []
    for fieldname in SEARCH_FIELDS:
        terms = analyze_terms(schema, fieldname, word)
        if len(terms) > 1:  # a word the analyzer splits: the parser knows how to join its pieces
            return parse(schema, word)
        parts.extend(query.Term(fieldname, term) for term in terms if term)
    q = (parts[0] if len(parts) == 1 else query.Or(parts)) if parts else None
    q = expand_aliases(q, schema) if q is not None else None
    if len(_WORD_QUERIES) > 4096:
        _WORD_QUERIES.clear()
    _WORD_QUERIES[word] = q
    return q


@functools.cache
def _multiword_names() -> frozenset[str]:
    """Alias names of several words, which a plain query matches as phrases."""
    return frozenset(name.lower() for group in ALIASES for name in group if " " in name)


#: Letters a prefix or wildcard needs besides `*` and `?`: fewer would read most of the index.
MIN_PATTERN_LETTERS = 1


def too_broad(q) -> str | None:
    """Why a query would read most of the index (a bare `*` or `?*`), with how to narrow it; None if it is fine."""
    for leaf in q.leaves() if not q.is_leaf() else [q]:
        if isinstance(leaf, query.Every):
            return "“*” alone matches every entry: add at least one letter before the star, like “redi*”."
        if isinstance(leaf, query.Wildcard | query.Prefix):
            letters = len(re.sub(r"[*?]", "", leaf.text))
            if letters < MIN_PATTERN_LETTERS:
                return f"“{leaf.text}” matches almost every word: add at least one letter, like “redi*”."
    return None


def strip_function_words(text: str) -> tuple[str, list[str]]:
    """Drop bare function words outside quotes (not operators, prefixes or field:terms); return what was dropped."""
    dropped: list[str] = []

    def drop(match):
        word = match.group(1)
        if word and word.lower() in FUNCTION_WORDS and word not in ("AND", "OR", "NOT"):
            dropped.append(word)
            return ""
        return match.group(0)

    return " ".join(BARE_WORD_RE.sub(drop, text).split()), dropped


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
    if is_null(parsed):
        parsed = None
    if parsed is None or _has_error(parsed):
        text = " ".join(re.findall(WORD_PATTERN, text))
        try:
            parsed = parser.parse(text) if text else None
        except Exception:  # noqa: BLE001
            parsed = None
    if is_null(parsed):
        return None
    return expand_aliases(split_phrase_compounds(word_prefixes(parsed), schema, text), schema)


class WordPrefix(FilteredPrefix):
    """`load*`: the words that start with `load`, not also every compound that does (`load_event`).

    In text fields a compound's parts are indexed as well, so its first part already matches the
    prefix. Expanding to hundreds of compounds made one such search take seconds at 10,000
    entries. A prefix with a separator in it (`select_rel*`) still expands to compounds, and so
    does a prefix on a field that keeps compounds whole (tags).
    """

    def keep(self, word: str, ixreader) -> bool:
        field = ixreader.schema[self.fieldname] if self.fieldname in ixreader.schema else None  # noqa: SIM401 - Schema has no get()
        if SPLIT_RE.search(self.text) or not isinstance(getattr(field, "analyzer", None), TextAnalyzer):
            return True
        return len(compound_parts(word)) < 2


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


def analyze_terms(schema, fieldname, text):
    """The tokens a field's analyzer makes of `text` in query mode (tags are slugs)."""
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
            forms = [tuple(analyze_terms(schema, fieldname, name)) for name in group]
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
