"""Running a search: ranking, relaxed matching, totals and facets over every match, snippets, typo correction.

A plain query asks for every word (function words aside). When every word together finds fewer
than `RELAX_BELOW` entries, entries that match most of the words follow the full matches,
ranked by how much of the query they cover (rare words weigh more) and then by BM25F (titles
and tags weigh more); each says which words it lacks. A word the index does not know is
corrected; when both correction and relaxation apply, the answer with the better top result is
shown and the other is offered. Queries with operators keep their strict meaning.
"""

from __future__ import annotations

import heapq
import math
import operator
import re
from collections import Counter
from dataclasses import dataclass, field
from itertools import chain

from whoosh import query

from . import snippets
from .analysis import WORD_RE, TextAnalyzer
from .parsing import MAX_QUERY_CHARS, QueryPlan, analyze_terms, build_filter, clean_query, plan_query, too_broad
from .postings import MAX_EXPANSION, Deadline, Evaluator, ResultCache
from .searchers import SearcherPool
from .spelling import Vocabulary, best_correction
from .store import IndexUnavailable, check_index

#: What views need from the rooms below, so that they import this module only.
__all__ = [
    "MAX_QUERY_CHARS", "SORTS", "Hit", "IndexUnavailable", "SearchOutcome", "SearcherPool",
    "check_index", "more_like", "run_search", "suggest_titles",
]  # fmt: skip

SORTS = ("relevance", "newest", "title")
#: Fewer full matches than this, and entries that match most of the words follow them.
RELAX_BELOW = 10
#: The share of the query's weight a partial match must cover (lowered until something matches).
MIN_COVERAGE = 0.5
#: Seconds a search may spend matching; after that it answers with what it found, and says so.
TIME_BUDGET_SECONDS = 1.0


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
    evaluator: Evaluator
    scope: frozenset[int] | None  # documents the tag and kind filters allow (None: all)
    limit: int
    sort: str
    sort_keys: dict | None = None  # docnum -> sort key, for sort=newest|title
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
    searcher, doc_tags, _generation = pool.get()
    cache = pool.cache()
    evaluator = Evaluator(searcher, _results(cache, pool, searcher), Deadline(TIME_BUDGET_SECONDS))
    filt = build_filter(tags_all, tags_any, tags_not, kind)
    scope = evaluator.docs(filt) if filt is not None else None
    sort_keys = _sort_keys(searcher, cache, sort) if sort != "relevance" else None
    request = _Request(searcher, evaluator, scope, page * per_page, sort, sort_keys, _hubs(cache, evaluator))
    plan = plan_query(searcher.schema, text)
    broad = too_broad(plan.strict) if plan.strict is not None else None
    if broad:
        outcome = SearchOutcome(query=text, hits=[], total=0, page=page, per_page=per_page, notice=broad)
        return outcome
    ranking = _rank(request, plan)
    corrected = suggestion = None
    if correct and text and not evaluator.deadline.cut:
        fixed = _correct(request, plan, _vocabulary(cache, searcher).bind(searcher.reader()))
        if fixed is not None:
            other = _rank(request, fixed)
            if other.hits and other.quality > ranking.quality:
                ranking, corrected = other, fixed.text
            elif other.hits:
                suggestion = fixed.text
    outcome = _outcome(text, ranking, page, per_page, doc_tags)
    outcome.corrected, outcome.suggestion, outcome.ignored = corrected, suggestion, plan.ignored
    outcome.notice = " ".join(filter(None, [notice, *_limits_said(evaluator)])) or None
    if texts is not None and outcome.hits:
        _add_snippets(searcher, outcome, texts)
    return outcome


def _limits_said(evaluator: Evaluator) -> list[str]:
    """What the page should say when a limit changed the answer."""
    said = []
    if evaluator.capped:
        names = ", ".join(sorted(evaluator.capped))
        said.append(f"{names} matched more than {MAX_EXPANSION} words: only the first {MAX_EXPANSION} were searched.")
    if evaluator.deadline.cut:
        said.append(f"The search was cut after {TIME_BUDGET_SECONDS:g} s: these are the entries found until then.")
    return said


def _results(cache: dict, pool: SearcherPool, searcher) -> ResultCache:
    """The index's cache of scored terms and query parts, and its postings' arrays, shared by this worker's threads."""
    if "results" not in cache:
        cache["results"] = ResultCache(compact=pool.arrays(searcher))
    return cache["results"]


def _vocabulary(cache: dict, searcher) -> Vocabulary:
    """This index's spelling vocabulary, read once per worker and index."""
    if "vocabulary" not in cache:
        cache["vocabulary"] = Vocabulary(searcher.reader())
    return cache["vocabulary"]


def _hubs(cache: dict, evaluator: Evaluator) -> frozenset[int]:
    """Document numbers of the index's hub pages (see `analysis.is_hub`), found once per worker and index."""
    if "hubs" not in cache:
        has_hubs = "hub" in evaluator.schema.names()
        cache["hubs"] = evaluator.docs(query.Term("hub", True)) if has_hubs else frozenset()
    return cache["hubs"]


def _sort_keys(searcher, cache: dict, sort: str) -> dict:
    """docnum -> the value a sort orders by (newest: the date; title: the title), read once per index."""
    fieldname = "date" if sort == "newest" else "title_sort"
    key = ("sort", fieldname)
    if key not in cache:
        column = searcher.reader().column_reader(fieldname)
        cache[key] = {docnum: column[docnum] for docnum in range(searcher.doc_count_all())}
    return cache[key]


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
        return _empty()
    evaluator = request.evaluator
    if plan.explicit or len(plan.units) < 2:
        try:
            scores = evaluator.scores(plan.strict)
        except Exception:  # noqa: BLE001 - a query the index refuses (a range over a field without
            # ranges, say) falls back to its plain words, like a query the parser refuses.
            plain = plan_query(request.searcher.schema, " ".join(WORD_RE.findall(plan.text)))
            return _empty() if plain.explicit or plain.strict is None else _rank(request, plain)
        return _ranked(request, _scoped(scores, request.scope), plan.strict)
    units = [_scoped(evaluator.scores(unit.query), request.scope) for unit in plan.units]
    smallest = min(units, key=len)
    full = set(smallest).intersection(*(u.keys() for u in units if u is not smallest))
    if len(full - request.hubs) >= RELAX_BELOW:
        return _ranked(request, _summed(units, full), plan.strict)
    if not any(units):
        return _empty()
    return _rank_relaxed(request, plan, units, frozenset(full - request.hubs))


def _summed(units: list[dict], docnums) -> dict:
    """Each document's scores in `units` added up, in order, as Whoosh scores an AND (the same floats as `sum`)."""
    order = list(docnums)
    totals = list(map(units[0].__getitem__, order))
    for unit in units[1:]:
        totals = list(map(operator.add, totals, map(unit.__getitem__, order)))
    return dict(zip(order, totals, strict=True))


def _scoped(scores: dict, scope: frozenset[int] | None) -> dict:
    """The scores of the documents the filters allow."""
    if scope is None:
        return scores
    if len(scope) < len(scores):
        return {d: scores[d] for d in scope if d in scores}
    return {d: s for d, s in scores.items() if d in scope}


def _ranked(request: _Request, scores: dict, q) -> _Ranking:
    """Every match of one query, the best `limit` first by score (or by a field), with their slugs."""
    if request.sort_keys is None:
        # (score, -docnum) pairs compare in C: the best score first, then the lower document number.
        best = heapq.nlargest(request.limit, zip(scores.values(), map(operator.neg, scores), strict=True))
        top = [(-negative, score) for score, negative in best]
    else:
        top = [(docnum, 0.0) for docnum in _by_field(request, scores)[: request.limit]]
    stored = request.searcher.stored_fields
    hits = [Hit(slug=stored(docnum)["slug"], score=float(score), docnum=docnum) for docnum, score in top]
    matched = frozenset(scores)
    return _Ranking(hits=hits, total=len(matched), full=len(matched), matched=matched, terms=_body_terms(request, q))


def _by_field(request: _Request, docnums) -> list[int]:
    """Documents newest first, or by title (ties by document number, as Whoosh's sort)."""
    keys = request.sort_keys
    if request.sort == "newest":
        return sorted(docnums, key=lambda d: (keys[d], -d), reverse=True)
    return sorted(docnums, key=lambda d: (keys[d], d))


def _empty() -> _Ranking:
    return _Ranking(hits=[], total=0, full=0, matched=frozenset(), terms=frozenset())


def _rank_relaxed(request: _Request, plan: QueryPlan, units: list[dict], full: frozenset[int]) -> _Ranking:
    """Full matches first, then entries covering most of the query's weight (rare words weigh more)."""
    total_docs = max(1, request.searcher.doc_count_all())
    # A word no entry has cannot be matched: it takes no part in the share of the query covered.
    weights = [math.log(1 + total_docs / len(u)) if u else 0.0 for u in units]
    coverage: Counter = Counter()
    scores: dict[int, float] = {}
    for weight, matches in zip(weights, units, strict=True):
        for docnum, score in matches.items():
            coverage[docnum] += weight
            scores[docnum] = scores.get(docnum, 0.0) + score  # as Whoosh scores an OR of the words
    whole = sum(weights)
    share = {docnum: value / whole for docnum, value in coverage.items()}
    candidates = _candidates(share, min(w for w in weights if w) / whole)
    if request.sort_keys is None:
        # BM25F weighs rare words, titles and tags and discounts long pages; the share covered
        # weighs how much of the query a page answers.
        order = sorted(candidates, key=lambda d: (d not in full, -scores[d] * share[d], d))
    else:
        by_field = _by_field(request, candidates)
        order = sorted(by_field, key=lambda d: d not in full)  # stable: the field's order within each group
    hits = []
    stored = request.searcher.stored_fields
    for docnum in order[: request.limit]:
        missing = [unit.text for unit, matches in zip(plan.units, units, strict=True) if docnum not in matches]
        score = scores[docnum] * share[docnum] if request.sort_keys is None else 0.0
        coverage_of = share[docnum] if missing else 1.0
        hits.append(Hit(stored(docnum)["slug"], score, docnum, missing=missing, coverage=coverage_of))
    return _Ranking(
        hits=hits,
        total=len(candidates),
        full=len(full),
        matched=frozenset(candidates),
        terms=_body_terms(request, plan.strict),
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


def _body_terms(request: _Request, q) -> frozenset[str]:
    """The body-field terms of a query (prefixes expanded), for snippets.

    Not Whoosh's `existing_terms`: its loop variable overwrites its `fieldname` argument, so it
    skips the leaves of every field but the first.
    """
    reader = request.searcher.reader()
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
    schema = request.searcher.schema
    reader = request.searcher.reader()
    words = _correctable_words(plan)
    replaced = {}
    for word in words:
        if vocabulary.knows(word):
            continue
        others = _docs_of_words(request, [w for w in words if w != word and vocabulary.knows(w)])
        if others is not None:
            others -= request.hubs  # a page listing every note has every word: no evidence

        def finds_with_others(candidate, others=others):
            return others is None or bool(_docs_of_words(request, [candidate]) & others)

        def in_titles_or_tags(candidate):
            terms = analyze_terms(schema, "title", candidate)
            return bool((terms and reader.doc_frequency("title", terms[0])) or reader.doc_frequency("tags", candidate))

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


def _docs_of_words(request: _Request, words: list[str]) -> frozenset[int] | None:
    """Entries that have every one of the words (None for no words)."""
    if not words:
        return None
    found = None
    for word in words:
        q = plan_query(request.searcher.schema, word).strict
        docs = request.evaluator.docs(q) if q is not None else frozenset()
        found = docs if found is None else found & docs
    return found


def count_tags(doc_tags: list, docnums) -> Counter:
    """Tag counts over matched documents, from the worker's in-memory table (C-speed counting)."""
    # Every document, deleted or not, has a row in doc_tags (see SearcherPool._doc_tags).
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

    hints = snippets.hints_for(query_terms)
    bodies = texts([hit.slug for hit in outcome.hits])
    for hit in outcome.hits:
        body = bodies.get(hit.slug, "")
        hit.snippet = snippets.make(body, matched_term, WORD_RE, hints) if body and hints else ""


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
    searcher, _, _generation = pool.get()
    cache = pool.cache().setdefault("more_like", {})
    if len(cache) > 4096:
        cache.clear()
    key = (slug, limit)
    if key not in cache:
        docnum = searcher.document_number(slug=slug)
        if docnum is None or not text.strip():
            # No text to compare: Whoosh would fall back to the stored body, which is not stored.
            cache[key] = []
        else:
            hits = searcher.more_like(docnum, "body", text=text, top=limit, numterms=15)
            cache[key] = [hit["slug"] for hit in hits]
    return cache[key]
