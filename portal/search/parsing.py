"""Query text into a Whoosh query: operators, prefixes, compounds inside phrases, aliases, filters."""

from __future__ import annotations

import re
import unicodedata

from whoosh import query
from whoosh.qparser import FieldAliasPlugin, MultifieldParser, PlusMinusPlugin

from ..aliases import ALIASES
from .analysis import SEARCH_FIELDS, SPLIT_RE, WORD_PATTERN, TextAnalyzer, compound_parts

MAX_QUERY_CHARS = 500
MAX_QUERY_TERMS = 32


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


def analyze_terms(schema, fieldname, text):
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
