"""Running a search: ranking, totals and facets over every match, snippets, typo correction, suggestions."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from itertools import chain

from whoosh import query

from ..aliases import ALIASES
from . import snippets
from .analysis import WORD_PATTERN, WORD_RE, TextAnalyzer
from .parsing import MAX_QUERY_CHARS, analyze_terms, build_filter, clean_query, parse
from .searchers import SearcherPool
from .store import IndexUnavailable, check_index

#: What views need from the rooms below, so that they import this module only.
__all__ = [
    "MAX_PER_PAGE", "MAX_QUERY_CHARS", "SORTS", "Hit", "IndexUnavailable", "SearchOutcome", "SearcherPool",
    "check_index", "more_like", "run_search", "suggest_titles",
]  # fmt: skip

MAX_PER_PAGE = 50
SORTS = ("relevance", "newest", "title")


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


def count_tags(doc_tags: list, docnums) -> Counter:
    """Tag counts over matched documents, from the worker's in-memory table (C-speed counting)."""
    # Every document, deleted or not, has a row in doc_tags (see SearcherPool._doc_tags).
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
    analyzed = [analyze_terms(searcher.schema, "title", w) for w in words[:-1]]
    parts = [query.Term("title", a[0]) for a in analyzed if a]
    parts.append(query.Or([query.Prefix("title", words[-1]), query.Prefix("tags", words[-1])]))
    results = searcher.search(query.And(parts), limit=limit)
    return [hit["slug"] for hit in results]


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
