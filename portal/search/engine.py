"""Running a search: ranking, relaxed matching, totals and facets over every match, snippets, typo correction.

A plain query asks for every word (function words aside). When every word together finds fewer
than `RELAX_BELOW` entries, entries that match most of the words follow the full matches,
ranked by how much of the query they cover (rare words weigh more) and then by BM25F (titles
and tags weigh more); each says which words it lacks. A word the index does not know is
corrected; when both correction and relaxation apply, the answer with the better top result is
shown and the other is offered. Queries with operators keep their strict meaning.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field
from itertools import chain

from whoosh import query

from . import snippets
from .analysis import WORD_PATTERN, WORD_RE, TextAnalyzer
from .parsing import MAX_QUERY_CHARS, QueryPlan, analyze_terms, build_filter, clean_query, plan_query
from .searchers import SearcherPool
from .spelling import Vocabulary, best_correction
from .store import IndexUnavailable, check_index

#: What views need from the rooms below, so that they import this module only.
__all__ = [
    "MAX_PER_PAGE", "MAX_QUERY_CHARS", "SORTS", "Hit", "IndexUnavailable", "SearchOutcome", "SearcherPool",
    "check_index", "more_like", "run_search", "suggest_titles",
]  # fmt: skip

MAX_PER_PAGE = 50
SORTS = ("relevance", "newest", "title")
#: Fewer full matches than this, and entries that match most of the words follow them.
RELAX_BELOW = 10
#: The share of the query's weight a partial match must cover (lowered until something matches).
MIN_COVERAGE = 0.5


@dataclass
class Hit:
    """One ranked result: which entry, how well it matched, its snippet, and the words it lacks."""

    slug: str
    score: float
    docnum: int
    snippet: str = ""
    missing: list[str] = field(default_factory=list)  # words of the query this entry lacks
    coverage: float = 1.0  # the share of the query's weight it has (rare words weigh more)


@dataclass
class SearchOutcome:
    """Everything one search page or API answer needs, and what the engine did to the query."""

    query: str
    hits: list[Hit]
    total: int
    page: int
    per_page: int
    facets: dict[str, int] = field(default_factory=dict)
    corrected: str | None = None  # the results are for this query, not the one typed
    suggestion: str | None = None  # "Did you mean …?": a correction that was not applied
    notice: str | None = None
    full_matches: int = 0  # results that have every word; the rest match most of them
    relaxed: bool = False
    ignored: list[str] = field(default_factory=list)  # function words, not required
    terms: frozenset[str] = frozenset()  # body terms the query matched, for snippets

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))

    @property
    def searched(self) -> str:
        """The query the results are for."""
        return self.corrected or self.query


@dataclass
class _Ranking:
    """The documents one plan finds: a ranked prefix of them, how many there are, and their facets."""

    hits: list[Hit]
    total: int
    full: int
    matched: frozenset[int] | list[int]
    terms: frozenset[str]
    relaxed: bool = False

    @property
    def quality(self) -> tuple[bool, float]:
        """How good the top result is: a full match beats a partial one, then by the share of words it covers."""
        if not self.hits:
            return (False, -1.0)
        return (self.full > 0, self.hits[0].coverage)


@dataclass
class _Request:
    """The parameters of one search, shared by every ranking it tries."""

    searcher: object
    doc_tags: dict
    scope: frozenset[int] | None
    filter: object
    limit: int
    sort: str
    hubs: frozenset[int] = frozenset()  # pages that list other notes: never a full match when relaxing


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
    """Search, relax or correct when that finds more, count facets over all matches, and highlight the page."""
    text, notice = clean_query(raw_query)
    searcher, doc_tags, generation = pool.get()
    filt = build_filter(tags_all, tags_any, tags_not, kind)
    scope = frozenset(searcher.docs_for_query(filt)) if filt is not None else None
    request = _Request(searcher, doc_tags, scope, filt, page * per_page, sort, _hubs(pool, generation))
    plan = plan_query(searcher.schema, text)
    ranking = _rank(request, plan)
    corrected = suggestion = None
    if correct and text:
        fixed = _correct(request, plan, _vocabulary(pool, generation).bind(searcher.reader()))
        if fixed is not None:
            other = _rank(request, fixed)
            if other.hits and other.quality > ranking.quality:
                ranking, corrected = other, fixed.text
            elif other.hits:
                suggestion = fixed.text
    outcome = _outcome(text, ranking, page, per_page, doc_tags)
    outcome.corrected, outcome.suggestion, outcome.ignored = corrected, suggestion, plan.ignored
    outcome.notice = notice
    if texts is not None and outcome.hits:
        _add_snippets(searcher, outcome, texts)
    return outcome


def _vocabulary(pool: SearcherPool, generation) -> Vocabulary:
    """This index's spelling vocabulary, read once per worker and index."""
    cache = pool.cache_for(generation)
    if "vocabulary" not in cache:
        searcher, _, _ = pool.get()
        cache["vocabulary"] = Vocabulary(searcher.reader())
    return cache["vocabulary"]


def _hubs(pool: SearcherPool, generation) -> frozenset[int]:
    """Document numbers of the index's hub pages (see `analysis.is_hub`), found once per worker and index."""
    cache = pool.cache_for(generation)
    if "hubs" not in cache:
        searcher, _, _ = pool.get()
        hub = searcher.schema["hub"] if "hub" in searcher.schema.names() else None
        cache["hubs"] = frozenset(searcher.docs_for_query(query.Term("hub", True))) if hub else frozenset()
    return cache["hubs"]


def _outcome(text: str, ranking: _Ranking, page: int, per_page: int, doc_tags: dict) -> SearchOutcome:
    """The page of a ranking, with facets over every match."""
    start = (page - 1) * per_page
    return SearchOutcome(
        query=text,
        hits=ranking.hits[start : start + per_page],
        total=ranking.total,
        page=page,
        per_page=per_page,
        facets=dict(count_tags(doc_tags, ranking.matched).most_common()),
        full_matches=ranking.full,
        relaxed=ranking.relaxed,
        terms=ranking.terms,
    )


def _rank(request: _Request, plan: QueryPlan) -> _Ranking:
    """The plan's matches: strict for explicit queries and single words, relaxed when full matches are few."""
    if plan.strict is None:
        return _Ranking(hits=[], total=0, full=0, matched=frozenset(), terms=frozenset())
    if plan.explicit or len(plan.units) < 2:
        return _rank_strict(request, plan.strict, text=plan.text)
    searcher = request.searcher
    docs = [_scoped(frozenset(searcher.docs_for_query(unit.query)), request.scope) for unit in plan.units]
    full = frozenset.intersection(*docs)
    if len(full - request.hubs) >= RELAX_BELOW:
        return _rank_strict(request, plan.strict, matched=full)
    if not any(docs):
        return _empty()
    return _rank_relaxed(request, plan, docs, full - request.hubs)


def _scoped(docs: frozenset[int], scope: frozenset[int] | None) -> frozenset[int]:
    return docs if scope is None else docs & scope


def _rank_strict(request: _Request, q, matched: frozenset[int] | None = None, text: str | None = None) -> _Ranking:
    """Every match of one query, ranked by BM25F (or sorted by a field); the top `limit` kept."""
    searcher = request.searcher
    sortedby, reverse = {"newest": ("date", True), "title": ("title_sort", False)}.get(request.sort, (None, False))
    try:
        results = collect_results(searcher, q, request.filter, request.limit, sortedby, reverse, every=matched is None)
    except Exception:  # noqa: BLE001 - a query the index refuses (`"a, b"` or `spell:"a b"`: a phrase
        # on a field without positions; `date:"x y"`: no date) falls back to plain terms, like a parse error.
        plain = plan_query(searcher.schema, " ".join(re.findall(WORD_PATTERN, text or ""))).strict
        return _rank_strict(request, plain) if plain is not None and text else _empty()
    every = matched if matched is not None else results.docs()
    # Sorted by a field, Whoosh puts that field's sort key in `hit.score`: relevance is then unknown.
    hits = [
        Hit(slug=hit["slug"], score=float(hit.score or 0.0) if sortedby is None else 0.0, docnum=hit.docnum)
        for hit in results[: request.limit]
    ]
    return _Ranking(hits=hits, total=len(every), full=len(every), matched=every, terms=_body_terms(searcher, q))


def _empty() -> _Ranking:
    return _Ranking(hits=[], total=0, full=0, matched=frozenset(), terms=frozenset())


def _rank_relaxed(request: _Request, plan: QueryPlan, docs: list[frozenset[int]], full: frozenset[int]) -> _Ranking:
    """Full matches first, then entries covering most of the query's weight (rare words weigh more)."""
    searcher = request.searcher
    total_docs = max(1, searcher.doc_count())
    # A word no entry has cannot be matched: it takes no part in the share of the query covered.
    weights = [math.log(1 + total_docs / len(d)) if d else 0.0 for d in docs]
    coverage: Counter = Counter()
    for weight, matches in zip(weights, docs, strict=True):
        for docnum in matches:
            coverage[docnum] += weight
    whole = sum(weights)
    share = {docnum: value / whole for docnum, value in coverage.items()}
    candidates = _candidates(share, min(w for w in weights if w) / whole)
    scores = _bm25(searcher, query.Or([unit.query for unit in plan.units]), candidates)
    if request.sort == "relevance":
        # BM25F weighs rare words, titles and tags and discounts long pages; the share covered
        # weighs how much of the query a page answers.
        order = sorted(candidates, key=lambda d: (d not in full, -scores.get(d, 0.0) * share[d], d))
    else:
        order = _sorted_by_field(searcher, candidates, full, request.sort)
    hits = []
    for docnum in order[: request.limit]:
        missing = [unit.text for unit, matches in zip(plan.units, docs, strict=True) if docnum not in matches]
        slug = searcher.stored_fields(docnum)["slug"]
        score = scores.get(docnum, 0.0) * share[docnum] if request.sort == "relevance" else 0.0
        hits.append(Hit(slug, score, docnum, missing=missing, coverage=share[docnum] if missing else 1.0))
    return _Ranking(
        hits=hits,
        total=len(candidates),
        full=len(full),
        matched=frozenset(candidates),
        terms=_body_terms(searcher, plan.strict),
        relaxed=len(candidates) > len(full),
    )


def _candidates(share: dict[int, float], smallest: float) -> set[int]:
    """Entries covering at least MIN_COVERAGE of the query, the bar lowered (to one word) until enough are found."""
    threshold = MIN_COVERAGE
    while True:
        candidates = {docnum for docnum, value in share.items() if value >= threshold - 1e-9}
        if len(candidates) >= RELAX_BELOW or threshold <= smallest:
            return candidates
        threshold = max(threshold / 2, smallest)


def _bm25(searcher, q, docnums: set[int]) -> dict[int, float]:
    """BM25F scores of `q` for the given documents only."""
    results = searcher.search(q, filter=docnums, limit=None)
    return {hit.docnum: hit.score for hit in results}


def _sorted_by_field(searcher, candidates, full, sort: str) -> list[int]:
    """Full matches, then the rest, each newest first or by title."""
    fieldname, reverse = ("date", True) if sort == "newest" else ("title_sort", False)
    column = searcher.reader().column_reader(fieldname)
    ordered = sorted(candidates, key=lambda d: column[d], reverse=reverse)
    return sorted(ordered, key=lambda d: d not in full)  # stable: keeps the field order within each group


def collect_results(searcher, q, filt, limit: int, sortedby, reverse: bool, *, every: bool = True):
    """Whoosh results for one query: sorted by a field, or the best `limit` by score.

    For the best by score Whoosh skips documents that cannot reach the top, then runs the query
    again, unscored, when asked for every match (`Results.docs()`, for the total and facets).
    Matching a phrase costs most in that second run, so a query with a phrase is scored whole in
    one pass instead: at 10,000 entries that made phrase searches a third faster. For words the
    pruning wins. `every=False`: the caller knows every match already; only the best are wanted.
    """
    if sortedby is None and (not every or not any(isinstance(leaf, query.Phrase) for leaf in q.leaves())):
        return searcher.search(q, filter=filt, limit=limit)
    return searcher.search(q, filter=filt, limit=None, sortedby=sortedby, reverse=reverse)


def _body_terms(searcher, q) -> frozenset[str]:
    """The body-field terms of a query (prefixes expanded), for snippets.

    Not Whoosh's `existing_terms`: its loop variable overwrites its `fieldname` argument, so it
    skips the leaves of every field but the first.
    """
    reader = searcher.reader()
    found = set()
    for leaf in q.leaves():
        if leaf.field() != "body":
            continue
        try:
            terms = leaf.expanded_terms(reader, phrases=True)
        except Exception:  # noqa: BLE001, S112  # nosec B112
            continue  # a leaf the index refuses has no terms to mark
        found.update(text.decode() if isinstance(text, bytes) else text for _, text in terms)
    return frozenset(found)


def _correct(request: _Request, plan: QueryPlan, vocabulary: Vocabulary) -> QueryPlan | None:
    """The plan with each unknown word replaced by its best correction, or None if none changed."""
    searcher = request.searcher
    schema = searcher.schema
    reader = searcher.reader()
    words = _correctable_words(plan)
    replaced = {}
    for word in words:
        if vocabulary.knows(word):
            continue
        others = [w for w in words if w != word and vocabulary.knows(w)]
        others_docs = _docs_of_words(searcher, schema, others)
        if others_docs is not None:
            others_docs -= request.hubs  # a page listing every note has every word: no evidence

        def finds_with_others(candidate, others_docs=others_docs):
            if others_docs is None:
                return True
            return bool(_docs_of_words(searcher, schema, [candidate]) & others_docs)

        def in_titles_or_tags(candidate):
            terms = analyze_terms(schema, "title", candidate)
            return bool(
                (terms and reader.doc_frequency("title", terms[0])) or reader.doc_frequency("tags", candidate)
            )

        fix = best_correction(
            vocabulary, word, finds_with_others=finds_with_others, in_titles_or_tags=in_titles_or_tags
        )
        if fix:
            replaced[word] = fix
    if not replaced:
        return None
    text = re.sub(r"[^\W\d_]+", lambda m: replaced.get(m.group(), m.group()), plan.text)
    return plan_query(schema, text)


def _correctable_words(plan: QueryPlan) -> list[str]:
    """Words a correction may replace: single words of letters, not function words, not in field:terms."""
    if plan.explicit:
        bare = re.findall(r'"[^"]*"|(?<![^\s(])([^\W\d_]{3,})(?=[\s)]|$)', plan.text)
        return [word for word in bare if word and word not in ("AND", "OR", "NOT")]
    return [unit.text for unit in plan.units if unit.correctable]


def _docs_of_words(searcher, schema, words: list[str]) -> frozenset[int] | None:
    """Entries that have every one of the words (None for no words)."""
    if not words:
        return None
    found = None
    for word in words:
        q = plan_query(schema, word).strict
        docs = frozenset(searcher.docs_for_query(q)) if q is not None else frozenset()
        found = docs if found is None else found & docs
    return found


def count_tags(doc_tags: dict, docnums) -> Counter:
    """Tag counts over matched documents, from the worker's in-memory table (C-speed counting)."""
    # Every matched document has an entry in doc_tags: the index is built whole, never edited.
    return Counter(chain.from_iterable(map(doc_tags.__getitem__, docnums)))


def _add_snippets(searcher, outcome: SearchOutcome, texts) -> None:
    """Escaped passages around the matched words, with `<mark>` around each match."""
    query_terms = outcome.terms
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
