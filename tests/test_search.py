"""Unit tests for `portal.search` through an imported app: syntax, ranking, aliases, facets, refresh."""

from __future__ import annotations

import contextlib
import os
import pickle
from pathlib import Path

import pytest
from whoosh import query
from whoosh.analysis import CompositeAnalyzer
from whoosh.filedb.filestore import RamStorage

from portal import create_app, queries
from portal.models import db
from portal.search import engine, postings
from portal.search.analysis import TextAnalyzer, make_schema
from portal.search.engine import run_search, suggest_titles
from portal.search.parsing import (
    MAX_QUERY_CHARS,
    MAX_QUERY_TERMS,
    WordPrefix,
    clean_query,
    parse,
    plan_query,
    word_query,
)
from portal.search.postings import Evaluator, ResultCache

from .conftest import BACKENDS, SAMPLE_ENTRIES, do_import, postgres_schema, write_entry

# Added to the sample entries of conftest. None of these mention celery, redis or caching, so
# the facet counts of the sample entries stay hand-countable.
EXTRA_ENTRIES = {
    # Ranking: "terraform" in a title against "terraform" twice deep in a long body.
    "technologies/terraform.md": """\
        ---
        title: Terraform
        kind: technology
        tags: [infrastructure]
        date: 2025-01-15
        ---
        Declare servers as code and review the plan before you apply it.
        """,
    "concepts/infrastructure-history.md": """\
        ---
        title: A history of infrastructure tooling
        kind: concept
        tags: [infrastructure]
        date: 2025-01-16
        ---
        Servers used to be configured by hand. Every machine drifted a little from the others, and
        nobody could say with confidence what was installed where. Shell scripts helped for a while,
        then configuration management tools arrived and described the wanted state of each machine.
        Images replaced long-lived machines, and deploying meant replacing rather than changing.
        Cloud providers then offered programmable accounts, networks and databases, and the
        description of a whole environment moved into version control next to the application.

        Later, teams adopted terraform for this, and terraform plans became part of code review.
        """,
    # Ranking: "ruff" only as a tag, against "ruff" once deep in a body.
    "practices/linting.md": """\
        ---
        title: Keep the build clean
        kind: practice
        tags: [ruff, linting]
        date: 2025-01-20
        ---
        A linter in continuous integration stops style debates before review starts.
        """,
    "concepts/tooling-notes.md": """\
        ---
        title: Notes on developer tooling
        kind: concept
        tags: [tooling]
        date: 2025-01-21
        ---
        Editors, debuggers, profilers and formatters each save a little time every day. A profiler
        shows where the time goes; a debugger shows why a value is wrong; a formatter ends arguments
        about whitespace. Over a year those minutes add up to weeks of attention given back.

        One of the formatters we tried was ruff, which also lints.
        """,
    # Aliases: each entry uses one name only.
    "technologies/postgresql.md": """\
        ---
        title: PostgreSQL indexes
        kind: technology
        tags: [postgresql, databases]
        date: 2025-02-01
        ---
        PostgreSQL picks a B-tree index by default. EXPLAIN ANALYZE shows whether the planner used it.
        """,
    "technologies/pods.md": """\
        ---
        title: Pods and deployments
        kind: technology
        tags: [containers]
        date: 2025-02-02
        ---
        On k8s a deployment keeps the wanted number of pods running.
        """,
    "technologies/promises.md": """\
        ---
        title: Promises
        kind: technology
        tags: [frontend]
        date: 2025-02-03
        ---
        A promise stands for a value that arrives later in JavaScript code.
        """,
    "technologies/serializers.md": """\
        ---
        title: Serializers
        kind: technology
        tags: [api]
        date: 2025-02-04
        ---
        In Django REST Framework a serializer turns model instances into JSON.
        """,
    "challenges/nested-viewsets.md": """\
        ---
        title: Nested viewsets
        kind: challenge
        tags: [api]
        date: 2025-02-05
        ---
        We used DRF viewsets for the nested endpoints and hit a wall with permissions.
        """,
    # Technical tokens, and a decoy that has their parts as separate words.
    "challenges/slow-list-pages.md": """\
        ---
        title: Slow list pages
        kind: challenge
        tags: [orm]
        date: 2025-02-06
        ---
        The list view triggered N+1 queries. Adding select_related to the queryset fixed it.
        The same pattern in async/await code needs care. Our CI/CD pipeline runs docker-compose
        to test it.
        """,
    "concepts/sql-joins.md": """\
        ---
        title: SQL joins
        kind: concept
        tags: [sql]
        date: 2025-02-07
        ---
        We select the related rows with a join. The docker image and compose file are separate.
        """,
    # Words that end in separators: indexed whole, as they have no parts.
    "practices/editors.md": """\
        ---
        title: Editors
        kind: practice
        tags: [tooling]
        date: 2025-02-09
        ---
        Some of us still write C++ in Notepad++.
        """,
    # An identifier that appears only in code.
    "concepts/orm-code.md": """\
        ---
        title: Fewer queries
        kind: concept
        tags: [orm]
        date: 2025-02-10
        ---
        ```python
        books = Book.objects.prefetch_related("authors")
        ```
        """,
    # Escaping: entry text holding markup-like characters (as code, so they stay text).
    "practices/escaping.md": """\
        ---
        title: Escape untrusted text
        kind: practice
        tags: [security]
        date: 2025-02-08
        ---
        Write `<b>` as text, and `&` as `&amp;`. Untrusted markup must be escaped; never render
        `<script>alert(1)</script>` from visitors.
        """,
}

# Twelve entries sharing the word "zephyr": dates rise with the number, titles do not.
ZEPHYR_WORDS = ["mango", "apple", "kiwi", "banana", "lemon", "cherry", "fig", "date", "grape", "olive", "pear", "lime"]


def zephyr_entries() -> dict[str, str]:
    """Entries for pagination and sorting: zephyr-01 is the oldest, zephyr-12 the newest."""
    entries = {}
    for number, word in enumerate(ZEPHYR_WORDS, start=1):
        parity = "even" if number % 2 == 0 else "odd"
        entries[f"series/zephyr-{number:02}.md"] = f"""\
            ---
            title: Zephyr {word}
            kind: concept
            tags: [zephyr, {parity}]
            date: 2024-01-{number:02}
            ---
            Notes about the zephyr wind, part {number}.
            """
    return entries


@contextlib.contextmanager
def corpus_app(root: Path, backend: str, extra: dict[str, str] | None = None):
    """An app over the sample entries plus the corpus above, imported once.

    Searching never writes, so the read-only tests of a module share one app (a fresh app per
    case would spend most of the suite's time importing). Tests that change content use the
    per-test fixtures of conftest instead.
    """
    content = root / "content"
    for relative, text in {**SAMPLE_ENTRIES, **EXTRA_ENTRIES, **zephyr_entries(), **(extra or {})}.items():
        write_entry(content, relative, text)
    config = {
        "TESTING": True,
        "SECRET_KEY": "test",
        "INSTANCE_PATH": str(root / "instance"),
        "CONTENT_DIR": str(content),
        "INDEX_CHECK_SECONDS": 0,
        "PAGE_CACHE_MB": 0,
    }
    with contextlib.ExitStack() as stack:
        if backend != "sqlite":
            config["SQLALCHEMY_DATABASE_URI"] = stack.enter_context(postgres_schema())
        with pytest.MonkeyPatch.context() as patch:  # as conftest's autouse fixture, for this longer scope
            for name in list(os.environ):
                if name.startswith("NEXUS_"):
                    patch.delenv(name)
            app = create_app(config)
        report = do_import(app, content)
        assert not report.errors, report.errors
        try:
            yield app
        finally:
            app.extensions["nexus.searchers"].close()
            with app.app_context():
                db.session.remove()
                db.engine.dispose()


@pytest.fixture(scope="module", params=BACKENDS)
def search_app(request, tmp_path_factory):
    """One imported app over the whole search corpus, shared by this module's read-only tests."""
    with corpus_app(tmp_path_factory.mktemp("search"), request.param) as app:
        yield app


def search(app, q, **options):
    """Run one search the way the views do, in an app context."""
    options.setdefault("per_page", 50)
    with app.app_context():
        return run_search(app.extensions["nexus.searchers"], q, texts=queries.texts_by_slugs, **options)


def slugs(outcome) -> list[str]:
    """The slugs of an outcome's hits, in ranked order."""
    return [hit.slug for hit in outcome.hits]


def full_slugs(outcome) -> list[str]:
    """The slugs of the hits that have every word of the query (relaxed matches follow them)."""
    return [hit.slug for hit in outcome.hits if not hit.missing]


# --- ranking ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("q", "better", "worse"),
    [
        # in the title vs twice near the end of a long body
        ("terraform", "technologies/terraform", "concepts/infrastructure-history"),
        # only a tag vs once deep in a body
        ("ruff", "practices/linting", "concepts/tooling-notes"),
        # title vs body, on the sample entries
        ("redis", "technologies/redis", "technologies/celery"),
    ],
)
def test_title_and_tags_outrank_body(search_app, q, better, worse):
    found = slugs(search(search_app, q))
    assert better in found and worse in found
    assert found.index(better) < found.index(worse)


def test_relevance_scores_descend(search_app):
    scores = [hit.score for hit in search(search_app, "celery").hits]
    assert scores == sorted(scores, reverse=True) and scores[0] > 0


# --- query syntax ------------------------------------------------------------------------

CELERY, REDIS, CACHING, REPORTS = (
    "technologies/celery",
    "technologies/redis",
    "concepts/caching",
    "challenges/slow-reports",
)


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("celery", {CELERY, REDIS, REPORTS}),  # one word, in title, body or tags
        ("CELERY", {CELERY, REDIS, REPORTS}),  # case does not matter
        ("celery broker", {CELERY, REDIS}),  # several words: the full matches have all (AND)
        ("celery poll", {REPORTS}),  # AND across title-less body words
        ("celery and the broker", {CELERY, REDIS}),  # function words are not required
        ('"background tasks"', {CELERY}),  # exact phrase
        ('"tasks background"', set()),  # a phrase keeps its word order
        ("invalid*", {CACHING}),  # prefix
        ("cach*", {CACHING, REDIS}),  # prefix across title, body and tags
        ("celery -redis", {REPORTS}),  # -word excludes
        ("celery NOT redis", {REPORTS}),  # NOT word excludes
        ('celery -"background tasks"', {REDIS, REPORTS}),  # a phrase can be excluded
        ("tag:caching", {REDIS, CACHING}),  # tag: searches tags only
        ("tag:celery tag:django", {REPORTS}),  # two tag: terms are ANDed
        ("kind:challenge", {REPORTS, "challenges/nested-viewsets", "challenges/slow-list-pages"}),
        ("title:redis", {REDIS}),  # title: ignores the bodies that mention redis
        ("intitle:redis", {REDIS}),  # the alias of title:
        ("celery OR terraform", {CELERY, REDIS, REPORTS, "technologies/terraform", "concepts/infrastructure-history"}),
        ("docker-compose", {"challenges/slow-list-pages"}),  # a hyphen inside a word is not a minus
    ],
)
def test_query_syntax(search_app, q, expected):
    assert set(full_slugs(search(search_app, q))) == expected


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"tags_all": ["redis"]}, {CELERY, REDIS}),  # one tag
        ({"tags_all": ["redis", "python"]}, {CELERY}),  # all given tags must match
        ({"tags_all": ["redis", "django"]}, set()),  # no entry has both
        ({"kind": "challenge"}, {REPORTS}),  # kind filter
        ({"kind": "concept"}, set()),  # no concept mentions celery
        ({"kind": "technology", "tags_all": ["python"]}, {CELERY}),  # kind and tags together
    ],
)
def test_tag_and_kind_filters(search_app, options, expected):
    assert set(slugs(search(search_app, "celery", **options))) == expected


# --- facets and pagination ---------------------------------------------------------------


def test_facets_count_every_match_not_only_the_page(search_app):
    # celery: celery (celery, python, redis), redis (redis, caching), slow-reports (celery, django)
    outcome = search(search_app, "celery", per_page=1)
    assert len(outcome.hits) == 1 and outcome.total == 3
    assert outcome.facets == {"celery": 2, "redis": 2, "python": 1, "django": 1, "caching": 1}


def test_every_match_is_counted_however_the_scores_rise():
    # Documents that outscored the page so far made Whoosh swap in a matcher that skipped the rest.
    ix = RamStorage().create_index(make_schema())
    with ix.writer() as writer:
        for n in range(15):  # shorter titles, higher scores, as the document numbers rise
            writer.add_document(slug=f"t{n}", title="celery " + "word " * (15 - n), body="text")
        for n in range(15):
            writer.add_document(slug=f"b{n}", title="other", body="celery in the body " + "filler " * 30)
    with ix.searcher() as searcher:
        q = parse(searcher.schema, "celery")
        everything = searcher.search(q, limit=None)
        scores = Evaluator(searcher, ResultCache()).scores(q)
        assert len(scores) == len(everything) == 30
        best = sorted(scores, key=lambda docnum: (-scores[docnum], docnum))[:10]
        assert [searcher.stored_fields(d)["slug"] for d in best] == [hit["slug"] for hit in everything[:10]]


def test_facets_follow_filters(search_app):
    # celery restricted to tag redis: celery (celery, python, redis), redis (redis, caching)
    outcome = search(search_app, "celery", tags_all=["redis"])
    assert outcome.facets == {"redis": 2, "celery": 1, "python": 1, "caching": 1}


def test_facets_on_the_last_page(search_app):
    # 12 zephyr entries: every one tagged zephyr, six even and six odd
    outcome = search(search_app, "zephyr", per_page=5, page=3)
    assert len(outcome.hits) == 2
    assert outcome.facets == {"zephyr": 12, "even": 6, "odd": 6}


@pytest.mark.parametrize(
    ("page", "per_page", "hits", "pages"),
    [
        (1, 5, 5, 3),  # a full first page
        (3, 5, 2, 3),  # a partial last page
        (4, 5, 0, 3),  # past the end: empty, not an error
        (1, 50, 12, 1),  # the maximum page size holds everything
        (2, 11, 1, 2),  # an odd page size
    ],
)
def test_pagination(search_app, page, per_page, hits, pages):
    outcome = search(search_app, "zephyr", page=page, per_page=per_page)
    assert (len(outcome.hits), outcome.total, outcome.pages) == (hits, 12, pages)


@pytest.mark.parametrize("sort", ["relevance", "newest", "title"])
def test_pages_partition_the_results(search_app, sort):
    seen = []
    for page in (1, 2, 3):
        seen += slugs(search(search_app, "zephyr", page=page, per_page=5, sort=sort))
    assert len(seen) == len(set(seen)) == 12


def test_sort_newest(search_app):
    found = slugs(search(search_app, "zephyr", sort="newest"))
    assert found == [f"series/zephyr-{n:02}" for n in range(12, 0, -1)]


def test_sort_title(search_app):
    found = slugs(search(search_app, "zephyr", sort="title"))
    by_title = sorted(range(1, 13), key=lambda n: ZEPHYR_WORDS[n - 1])
    assert found == [f"series/zephyr-{n:02}" for n in by_title]


@pytest.mark.parametrize("sort", ["newest", "title"])
def test_sorted_results_have_no_sort_key_as_score(search_app, sort):
    # Regression: Whoosh puts the sort key in `hit.score` when sorting (bytes for titles: a 500).
    outcome = search(search_app, "celery", sort=sort)
    assert outcome.total == 3
    assert [hit.score for hit in outcome.hits] == [0.0, 0.0, 0.0]


# --- highlighting --------------------------------------------------------------------------


def test_snippet_marks_the_query_words(search_app):
    outcome = search(search_app, '"background tasks"')
    assert "<mark>background</mark> <mark>tasks</mark>" in outcome.hits[0].snippet


@pytest.mark.parametrize(
    ("q", "escaped", "raw"),
    [
        ("untrusted", "Write &lt;b&gt; as text", "<b>"),  # a tag in the entry text stays text
        ("untrusted", "and &amp; as &amp;amp;", " & "),  # ampersands are escaped once, as text
        ("visitors", "&lt;script&gt;alert(1)&lt;/script&gt;", "<script>"),  # no script leaks
    ],
)
def test_snippet_is_escaped_text(search_app, q, escaped, raw):
    snippet = search(search_app, q).hits[0].snippet
    assert escaped in snippet
    assert raw not in snippet
    assert snippet.replace("<mark>", "").replace("</mark>", "").count("<") == 0


# --- typo correction ---------------------------------------------------------------------------


def test_the_spelling_vocabulary_is_read_when_a_word_is_first_corrected(search_app):
    # Reading the whole lexicon costs a worker a fifth of a second at 10,000 entries.
    pool = search_app.extensions["nexus.searchers"]
    search(search_app, "celery redis")
    with search_app.app_context():
        pool.get()
        vocabulary = pool.cache()["vocabulary"]
    assert "words" not in vocabulary._shared
    assert search(search_app, "celary").corrected == "celery"
    assert "celery" in vocabulary._shared["words"]


def test_a_query_that_finds_nothing_is_corrected(search_app):
    outcome = search(search_app, "celary")
    assert outcome.corrected == "celery"
    assert outcome.query == "celary"  # what was typed, for "search instead for"
    assert set(slugs(outcome)) == {CELERY, REDIS, REPORTS}


def test_a_query_that_finds_a_little_gets_a_suggestion(search_app):
    outcome = search(search_app, "plain OR celary")
    assert outcome.corrected is None
    assert outcome.suggestion == "plain OR celery"
    assert slugs(outcome) == ["notes/plain-note"]


@pytest.mark.parametrize(
    ("q", "options"),
    [
        ("celery", {}),  # a known word is left alone
        ("celary", {"correct": False}),  # "search instead for" turns correction off
        ("qqqqqqqqqq", {}),  # nothing near it in the vocabulary
        ("tag:celary", {}),  # field terms are not corrected
    ],
)
def test_no_correction(search_app, q, options):
    outcome = search(search_app, q, **options)
    assert outcome.corrected is None and outcome.suggestion is None


# --- aliases and technical tokens ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("postgres", "technologies/postgresql"),  # the entry says PostgreSQL
        ("psql", "technologies/postgresql"),
        ("postgresql", "technologies/postgresql"),
        ("kubernetes", "technologies/pods"),  # the entry says k8s
        ("k8s", "technologies/pods"),
        ("js", "technologies/promises"),  # the entry says JavaScript
        ("javascript", "technologies/promises"),
        ("drf", "technologies/serializers"),  # the entry says Django REST Framework
        ("drf", "challenges/nested-viewsets"),  # and this one says DRF
        ('"django rest framework"', "technologies/serializers"),
        ('"django rest framework"', "challenges/nested-viewsets"),  # a quoted multi-word alias (regression)
        ("mq", CELERY),  # the celery entry says RabbitMQ
        ("rabbitmq", CELERY),
        ("CI/CD", "practices/linting"),  # the entry says "continuous integration"
        ('"continuous integration"', "challenges/slow-list-pages"),  # and this one says CI/CD
    ],
)
def test_aliases_find_each_other(search_app, q, expected):
    assert expected in slugs(search(search_app, q))


@pytest.mark.parametrize(
    "q",
    [
        "select_related",
        "N+1",
        "n+1",  # case-insensitive
        "async/await",
        "docker-compose",
        "CI/CD pipeline",  # CI/CD alone also finds "continuous integration" (an alias)
        '"docker compose"',  # the compound's parts, as a phrase
        '"N+1 queries"',  # a phrase that starts with a compound (regression)
        '"docker-compose to test"',  # a compound inside a phrase (regression)
        '"adding select_related"',  # a phrase that ends with a compound
        "title:slow select_related",
    ],
)
def test_technical_tokens_are_findable_as_typed(search_app, q):
    assert full_slugs(search(search_app, q)) == ["challenges/slow-list-pages"]


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("selec*", {"challenges/slow-list-pages", "concepts/sql-joins"}),  # the first one has select_related only
        ("select_rel*", {"challenges/slow-list-pages"}),  # a prefix with a separator: compounds only
        ("relat*", {"challenges/slow-list-pages", "concepts/sql-joins", "concepts/orm-code"}),  # later parts too
        ("docker-comp*", {"challenges/slow-list-pages"}),
        ("tag:sq*", {"concepts/sql-joins"}),  # tags keep compounds whole
        ("notepa*", {"practices/editors"}),  # notepad++ has no parts: it is a word
        ("c+*", {"practices/editors"}),
    ],
)
def test_prefixes_find_compounds_by_their_parts(search_app, q, expected):
    assert set(slugs(search(search_app, q))) == expected


def test_a_prefix_expands_to_words_not_to_every_compound(search_app):
    # Hundreds of compounds (load_event, load_invoice, ...) under one prefix made a search take seconds.
    with search_app.app_context():
        reader = search_app.extensions["nexus.searchers"].get()[0].reader()
        assert b"select_relat" in set(query.Prefix("body", "select")._btexts(reader))
        assert set(WordPrefix("body", "select")._btexts(reader)) == {b"select"}
        assert b"select_relat" in set(WordPrefix("body", "select_")._btexts(reader))


def test_identifiers_in_code_are_findable(search_app):
    assert slugs(search(search_app, "prefetch_related")) == ["concepts/orm-code"]


def test_technical_tokens_do_not_match_their_parts_apart(search_app):
    # "We select the related rows": select and related, but not select_related
    assert "concepts/sql-joins" in slugs(search(search_app, "select related"))
    assert "concepts/sql-joins" not in slugs(search(search_app, "select_related"))


def analyzed(tokens):
    return [
        (
            t.text,
            getattr(t, "pos", None),
            getattr(t, "startchar", None),
            getattr(t, "endchar", None),
            t.stopped,
            t.boost,
        )
        for t in tokens
    ]


ANALYZER_OPTIONS = [
    {"positions": True, "boosts": True, "mode": "index"},  # indexing
    {"positions": True, "chars": True, "removestops": False, "mode": "index"},  # snippets
    {"mode": "query"},  # parsing a query
    {"chars": True, "mode": "query", "removestops": False},
]


@pytest.mark.parametrize("options", ANALYZER_OPTIONS)
@pytest.mark.parametrize(
    "text",
    [
        "",
        "the a of",  # nothing but stop words
        "When the index recovers, pagination matters",  # leading stop words keep their positions
        "docker-compose up, then the N+1 queries and select_related",
        "The docker-compose.yml of a C# or C++ service",
        "async/await in Python 3.11: asyncio.gather() vs. await",
        "Running running runs RUN ran",  # stems, case
        "Ünïcode café naïve façade",
        "a-b-c x.y.z 1+1 foo#bar",
        "Celery Celery celery " * 50,  # repeated words come from the table
    ],
)
def test_the_word_table_analyzes_text_exactly_as_the_pipeline(text, options):
    analyzer = TextAnalyzer()
    expected = analyzed(CompositeAnalyzer.__call__(analyzer, text, **options))
    for _ in range(2):  # the second pass reads every word from the table
        assert analyzed(analyzer(text, **options)) == expected


def test_a_pickled_analyzer_leaves_its_table_behind():
    analyzer = TextAnalyzer()
    list(analyzer("celery workers", positions=True, mode="index"))
    copy = pickle.loads(pickle.dumps(analyzer))
    assert copy == analyzer and not copy._words
    assert [t.text for t in copy("celery workers", mode="index")] == ["celeri", "worker"]


# --- bad input -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "q",
    [
        '"unclosed',
        "AND",
        "OR",
        "NOT",
        "*",
        "-",
        "+",
        "A/~/4",
        "title:",
        "(",
        "[a TO",
        "celery^",
        '"0,0"',  # regression: a phrase of two tags (the tags field keeps no positions) was a QueryError
        'tag:"celery, python"',
        'spell:"celery redis"',  # regression: the same on the spelling field
        'date:"x y"',  # regression: an unparseable date raised at search time
        "\x00\x07\x1b",
        "שלום עולם",
        "🙂 celery",
        "<script>alert(1)</script>",
        "x" * 5000,
        "word " * 2000,
    ],
)
def test_bad_input_never_raises(search_app, q):
    outcome = search(search_app, q)
    assert outcome.total >= 0


def test_clean_query_caps_length_and_terms():
    text, notice = clean_query("x" * 5000)
    assert len(text) <= MAX_QUERY_CHARS and notice
    text, notice = clean_query("word " * 2000)
    assert len(text.split()) == MAX_QUERY_TERMS and notice
    assert clean_query("a\x00b\tc\u200fd") == ("a b c d", None)  # control and format characters become spaces


def test_title_suggestions(search_app):
    with search_app.app_context():
        pool = search_app.extensions["nexus.searchers"]
        assert suggest_titles(pool, "cel") == [CELERY, REPORTS]  # a title prefix outranks a tag prefix
        assert suggest_titles(pool, "caching str") == [CACHING]
        assert suggest_titles(pool, "  ") == []


# --- refresh, deletion and the per-process searcher ---------------------------------------------


def test_updated_entry_is_found_exactly_once(imported_app, content_dir):
    assert search(imported_app, "celery").total == 3  # the searcher is open before the update
    text = (content_dir / "technologies/celery.md").read_text()
    (content_dir / "technologies/celery.md").write_text(text.replace("outside the request cycle", "in kumquat workers"))
    assert do_import(imported_app, content_dir).updated == ["technologies/celery.md"]
    assert slugs(search(imported_app, "kumquat")) == [CELERY]
    assert slugs(search(imported_app, "celery")).count(CELERY) == 1
    assert search(imported_app, "celery").total == 3
    assert search(imported_app, '"request cycle"').total == 0  # the old text is gone


def test_repeated_updates_never_duplicate(imported_app, content_dir):
    path = content_dir / "technologies/redis.md"
    original = path.read_text()
    for round_ in range(3):
        search(imported_app, "redis")
        path.write_text(original + f"\nRound {round_} of edits.\n")
        do_import(imported_app, content_dir)
        found = slugs(search(imported_app, "redis"))
        assert found.count(REDIS) == 1 and len(found) == len(set(found)) == 3


def test_deleted_entry_is_not_found(imported_app, content_dir):
    assert REDIS in slugs(search(imported_app, "redis"))
    (content_dir / "technologies/redis.md").unlink()
    assert do_import(imported_app, content_dir).deleted == ["technologies/redis.md"]
    found = slugs(search(imported_app, "redis"))
    assert REDIS not in found and found  # the entries that mention redis remain
    assert search(imported_app, "title:redis").total == 0


def test_searcher_reopens_only_when_the_index_changed(imported_app, content_dir):
    pool = imported_app.extensions["nexus.searchers"]
    search(imported_app, "celery")
    opened = pool.opened
    for q in ("celery", "redis", "caching", "celary", "tag:celery"):
        search(imported_app, q)
    assert pool.opened == opened  # no import, no reopening
    assert not do_import(imported_app, content_dir).indexed  # nothing changed: index untouched
    search(imported_app, "celery")
    assert pool.opened == opened
    write_entry(content_dir, "technologies/flower.md", "# Flower\n\nA dashboard for celery.\n")
    assert do_import(imported_app, content_dir).indexed
    search(imported_app, "celery")
    assert pool.opened == opened + 1  # one reopening after the swap
    for _ in range(3):
        search(imported_app, "celery")
    assert pool.opened == opened + 1


def test_every_worker_reopens_once_after_an_import(imported_app, make_app, content_dir):
    # A second app over the same instance folder stands for a second gunicorn worker.
    other = make_app(content_dir)
    first, second = imported_app.extensions["nexus.searchers"], other.extensions["nexus.searchers"]
    for app in (imported_app, other):
        assert search(app, "celery").total == 3
    before = (first.opened, second.opened)
    write_entry(content_dir, "technologies/flower.md", "# Flower\n\nA dashboard for celery.\n")
    do_import(imported_app, content_dir)  # the first worker's process imports
    for app in (other, imported_app, other, imported_app):
        assert search(app, "celery").total == 4
    assert (first.opened, second.opened) == (before[0] + 1, before[1] + 1)


# --- cost limits ---------------------------------------------------------------------------------


@pytest.mark.parametrize("q", ["*", "?*", "*?*", "celery *", "tag:*", "title:?*"])
def test_a_query_that_would_read_everything_is_refused_with_advice(search_app, q):
    outcome = search(search_app, q)
    assert outcome.total == 0 and outcome.hits == []
    assert "add at least one letter" in outcome.notice


def test_a_prefix_that_expands_to_too_many_words_is_capped_and_says_so(search_app, monkeypatch):
    monkeypatch.setattr(postings, "MAX_EXPANSION", 2)
    monkeypatch.setattr(engine, "MAX_EXPANSION", 2)
    capped = search(search_app, "c*")  # celery, caching, cache, cycle...: more than two words
    assert "only the first 2 were searched" in capped.notice
    assert capped.total > 0


def test_a_search_past_its_time_budget_answers_with_what_it_found(search_app, monkeypatch):
    monkeypatch.setattr(engine, "TIME_BUDGET_SECONDS", 0.0)
    outcome = search(search_app, "celery OR redis OR zephyr OR caching")
    assert "The search was cut after" in outcome.notice


@pytest.mark.parametrize(
    "q",
    [
        "celery",
        "celery redis",
        '"background tasks"',
        "celery -redis",
        "celery NOT redis",
        "celery OR terraform",
        "tag:caching",
        "title:redis",
        "+celery redis",
        "celery ANDMAYBE redis",
        "docker-compose",
        "k8s",
    ],
)
def test_scores_are_whooshs_own(search_app, q):
    # The evaluator reads postings itself; every match and every score must be what Whoosh gives.
    pool = search_app.extensions["nexus.searchers"]
    with search_app.app_context():
        searcher, _, _ = pool.get()
        parsed = plan_query(searcher.schema, q).strict
        expected = {hit.docnum: hit.score for hit in searcher.search(parsed, limit=None)}
        found = Evaluator(searcher, ResultCache()).scores(parsed)
    assert found.keys() == expected.keys() and expected
    assert all(abs(found[d] - expected[d]) < 1e-9 for d in expected)


def test_a_prefix_ranks_its_matches_by_the_words_they_have(search_app):
    # Scored as an OR of the words it expands to (Whoosh would give many prefix matches a flat 1).
    outcome = search(search_app, "cach*")
    assert outcome.hits[0].slug == CACHING  # "caching" in its title and tags
    assert len({hit.score for hit in outcome.hits}) == len(outcome.hits)


def test_deleted_documents_are_never_found():
    ix = RamStorage().create_index(make_schema())
    with ix.writer() as writer:
        for n in range(5):
            writer.add_document(slug=f"d{n}", title=f"zephyr {n}", body="zephyr text")
    with ix.writer() as writer:
        writer.delete_by_term("slug", "d2")
    with ix.searcher() as searcher:
        q = parse(searcher.schema, "zephyr")
        found = Evaluator(searcher, ResultCache()).scores(q)
        assert {searcher.stored_fields(d)["slug"] for d in found} == {"d0", "d1", "d3", "d4"}
        assert found.keys() == {hit.docnum for hit in searcher.search(q, limit=None)}


@pytest.mark.parametrize(
    "word",
    ["celery", "Celery", "postgres", "k8s", "select_related", "docker-compose", "N+1", "c++", "C#", "ci/cd",
     "async/await", "café", "py", "drf", "1234", "v2", "erd", "caching"],
)  # fmt: skip
def test_a_plain_word_is_queried_as_the_parser_would(word):
    # Plain words skip Whoosh's parser (a millisecond or two each); the query must be the same.
    schema = make_schema()
    assert word_query(schema, word) == parse(schema, word)


def test_an_empty_index_answers_searches_and_related_entries(make_app, tmp_path):
    # A site imported from an empty folder has an index without segments: pages still answer.
    empty = tmp_path / "empty"
    empty.mkdir()
    app = make_app(empty)
    do_import(app, empty)
    assert search(app, "anything").total == 0
    assert app.test_client().get("/search?q=anything").status_code == 200
