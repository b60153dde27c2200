"""The postings' arrays beside each segment (search/compact.py): always equal to Whoosh's postings, never required.

Searches read a word's document numbers and weights from these arrays instead of Whoosh's
pickled blocks. They must hold exactly Whoosh's postings after full builds, incremental
updates and merges; scores, rankings, totals and facets must be those of Whoosh's postings; an
index without them (or with a damaged one) must still be searched, and have them written by
the next import.
"""

from __future__ import annotations

import contextlib
import random
from array import array

import pytest
from whoosh import scoring

from portal import indexing
from portal.search import compact, engine, store
from portal.search.analysis import make_schema
from portal.search.internals import weight_blocks
from portal.search.parsing import build_filter, plan_query
from portal.search.postings import Evaluator, ResultCache

from .conftest import do_import, write_entry
from .test_incremental_index import KINDS, TAGS, WORDS, Corpus

QUERIES = [
    "cache",
    "redis celery",
    "zeppelin harbour lantern",
    '"cache redis"',
    "cach*",
    "docker-compose",
    "select_related",
    "N+1",
    "celery -redis",
    "celery OR lantern",
    "tag:python",
    "title:redis",
    "queue broker missingword",
]


@contextlib.contextmanager
def segments_of(directory):
    """(segment id, leaf reader) of each segment of the index in `directory`, while it is open."""
    ix = store.open_index(directory)
    try:
        with ix.reader() as reader:
            yield [(leaf.segment().segment_id(), leaf) for leaf, _offset in reader.leaf_readers()]
    finally:
        ix.close()


def segment_count(directory) -> int:
    with segments_of(directory) as segments:
        return len(segments)


def assert_arrays_equal_postings(directory) -> None:
    """Every segment has its file, and it holds each scored word's postings exactly as Whoosh's."""
    with segments_of(directory) as segments:
        files = {path.name for path in directory.glob(f"*{compact.SUFFIX}")}
        assert files == {f"{segment_id}{compact.SUFFIX}" for segment_id, _ in segments}  # none left over
        for segment_id, leaf in segments:
            arrays = compact.SegmentPostings(compact.segment_file(directory, segment_id))
            for fieldname in leaf.schema.scorable_names():
                if fieldname in compact.NOT_KEPT:
                    assert not arrays.has_field(fieldname)
                    continue
                for word in leaf.lexicon(fieldname):
                    ids, weights = [], []
                    for block_ids, block_weights in weight_blocks(leaf.postings(fieldname, word)):
                        ids.extend(block_ids)
                        weights.extend(block_weights)
                    # Whoosh leaves out deleted documents; the arrays keep a segment's postings as written.
                    found = [
                        (d, w) for d, w in zip(*arrays.postings(fieldname, word), strict=True) if not leaf.is_deleted(d)
                    ]
                    assert found == list(zip(ids, weights, strict=True)), (fieldname, word)
                assert arrays.postings(fieldname, b"no-such-word") == (array("I"), array("f"))
                lengths = [leaf.doc_field_length(d, fieldname, 1) or 1 for d in range(leaf.doc_count_all())]
                assert list(arrays.lengths(fieldname)) == lengths, fieldname
            stored = [leaf.stored_fields(d).get("tags") or "" for d in range(leaf.doc_count_all())]
            assert arrays.tags == [tuple(value.split(",")) if value else () for value in stored]


def scores_both_ways(directory, text: str) -> tuple[dict, dict, dict]:
    """(scores from the arrays, from Whoosh's postings read by the evaluator, from Whoosh's own search)."""
    ix = store.open_index(directory)
    with ix.searcher(weighting=scoring.BM25F()) as searcher:
        ids = [leaf.segment().segment_id() for leaf, _ in searcher.reader().leaf_readers()]
        arrays = compact.load(directory, ids, {})
        assert all(arrays)
        q = plan_query(searcher.schema, text).strict
        with_arrays = Evaluator(searcher, ResultCache(compact=arrays)).scores(q)
        without = Evaluator(searcher, ResultCache()).scores(q)
        whoosh = {hit.docnum: hit.score for hit in searcher.search(q, limit=None)}
    ix.close()
    return with_arrays, without, whoosh


def random_collection(content, seed: int, count: int = 40) -> Corpus:
    corpus = Corpus(content, seed)
    for _ in range(count):
        corpus.write(corpus.new_path())
    return corpus


def imported_collection(make_app, tmp_path, seed: int, count: int = 40):
    """A random collection in `tmp_path/content`, and an app that has imported it."""
    content = tmp_path / "content"
    corpus = random_collection(content, seed, count)
    app = make_app(content)
    do_import(app, content)
    return content, corpus, app


def outcome_figures(app, text: str, **options) -> tuple:
    """What a search page shows: slugs, scores, missing words, total, full matches, facets, snippets."""
    pool = app.extensions["nexus.searchers"]
    with app.app_context():
        texts = lambda slugs: {slug: f"{text} in the body of {slug}" for slug in slugs}  # noqa: E731
        outcome = engine.run_search(pool, text, per_page=50, texts=texts, **options)
    hits = [(hit.slug, hit.score, tuple(hit.missing), hit.snippet) for hit in outcome.hits]
    return hits, outcome.total, outcome.full_matches, outcome.facets, outcome.corrected, outcome.suggestion


@pytest.mark.parametrize("seed", [1, 2])
def test_arrays_hold_whooshs_postings_after_builds_updates_and_merges(make_app, tmp_path, seed):
    content, corpus, app = imported_collection(make_app, tmp_path, seed)
    assert_arrays_equal_postings(store.live_index_dir(app.instance_path))
    counts = []
    for kind in KINDS:  # each an incremental update: a new segment, deletions in older ones; merges after
        corpus.repair()
        corpus.change(kind)
        corpus.change()
        do_import(app, content)
        assert_arrays_equal_postings(store.live_index_dir(app.instance_path))
        counts.append(segment_count(store.live_index_dir(app.instance_path)))
    assert max(counts) > 1 and any(
        later < earlier for earlier, later in zip(counts, counts[1:], strict=False)
    )  # merged
    merged = store.merge_segments(app.instance_path)
    if merged is not None:
        assert_arrays_equal_postings(merged)
    with app.app_context():
        indexing.rebuild_index(app.instance_path)
    assert_arrays_equal_postings(store.live_index_dir(app.instance_path))


@pytest.mark.parametrize("seed", [3, 4])
def test_scores_from_the_arrays_are_those_of_whooshs_postings(make_app, tmp_path, seed):
    content, corpus, app = imported_collection(make_app, tmp_path, seed)
    for _ in range(3):  # several segments, with deleted documents
        corpus.change("edit")
        corpus.change("delete")
        corpus.change("add")
        do_import(app, content)
    directory = store.live_index_dir(app.instance_path)
    assert segment_count(directory) > 1
    for text in QUERIES:
        with_arrays, without, whoosh = scores_both_ways(directory, text)
        assert with_arrays == without, text  # the very same floats
        if text == "celery -redis":
            # Whoosh's own NOT, over several segments with deletions, may keep a document that has the
            # word (its matchers' bug); the evaluator's never does.
            continue
        assert with_arrays.keys() == whoosh.keys(), text
        assert all(abs(with_arrays[d] - whoosh[d]) < 1e-9 for d in whoosh), text


def remove_arrays(app) -> list:
    """Delete the live index's arrays; the files deleted."""
    removed = list(store.live_index_dir(app.instance_path).glob(f"*{compact.SUFFIX}"))
    for path in removed:
        path.unlink()
    return removed


@pytest.mark.parametrize("damage", ["missing", "truncated", "garbage"])
def test_searches_are_the_same_without_the_arrays(make_app, tmp_path, damage):
    content, corpus, app = imported_collection(make_app, tmp_path, 5, count=60)
    corpus.change("edit")
    corpus.change("delete")
    do_import(app, content)
    cases = [(text, {}) for text in [*QUERIES, "zepelin harbour", "cache queue worker broker"]]
    cases += [("cache", {"tags_all": [TAGS[0].lower()]}), ("redis", {"sort": "newest"}), ("cache", {"sort": "title"})]
    expected = [outcome_figures(app, text, **options) for text, options in cases]
    assert any(figures[1] for figures in expected)
    files = store.live_index_dir(app.instance_path).glob(f"*{compact.SUFFIX}")
    for path in files:
        if damage == "missing":
            path.unlink()
        elif damage == "truncated":
            path.write_bytes(path.read_bytes()[:-5])
        else:
            path.write_bytes(b"not arrays at all")
    other = make_app(content)  # a new worker: nothing read yet
    with other.app_context():
        pool = other.extensions["nexus.searchers"]
        searcher, _, _ = pool.get()
        assert not any(pool.arrays(searcher))  # the searches below read Whoosh's postings
    assert [outcome_figures(other, text, **options) for text, options in cases] == expected


def test_an_index_without_arrays_gets_them_with_the_next_import(make_app, tmp_path):
    content, corpus, app = imported_collection(make_app, tmp_path, 6)
    assert remove_arrays(app)
    corpus.change("add")
    do_import(app, content)  # an incremental update: every segment gets its file, not only the new one
    assert_arrays_equal_postings(store.live_index_dir(app.instance_path))


def test_the_index_fingerprint_names_the_arrays_format(monkeypatch):
    # An index written with another format of the arrays is rebuilt, not updated.
    before = store.analysis_fingerprint()
    store.analysis_fingerprint.cache_clear()
    monkeypatch.setattr(compact, "VERSION", compact.VERSION + 1)
    try:
        assert store.analysis_fingerprint() != before
    finally:
        store.analysis_fingerprint.cache_clear()


def test_a_worker_opens_each_segments_arrays_once(make_app, tmp_path):
    content = tmp_path / "content"
    for i in range(12):
        write_entry(content, f"n/{i}.md", f"# Note {i}\n\n{' '.join(random.Random(i).sample(WORDS, 6))}\n")
    app = make_app(content)
    do_import(app, content)
    pool = app.extensions["nexus.searchers"]
    with app.app_context():
        searcher, _, _ = pool.get()
        first = pool.arrays(searcher)
    write_entry(content, "n/new.md", "# New\n\nzeppelin quixotic\n")
    do_import(app, content)
    with app.app_context():
        searcher, _, _ = pool.get()
        second = pool.arrays(searcher)
    assert len(second) == len(first) + 1 and all(second)
    assert second[0] is first[0]  # the old segment's arrays were not read again
    with app.app_context():
        outcome = engine.run_search(pool, "quixotic")
    assert [hit.slug for hit in outcome.hits] == ["n/new"]
    pool.close()  # an app thrown away closes the arrays' files with its searchers
    assert all(arrays._fd is None for arrays in second)


def test_filters_and_arrays_agree(make_app, tmp_path):
    content, _corpus, app = imported_collection(make_app, tmp_path, 7)
    directory = store.live_index_dir(app.instance_path)
    ix = store.open_index(directory)
    with ix.searcher(weighting=scoring.BM25F()) as searcher:
        ids = [leaf.segment().segment_id() for leaf, _ in searcher.reader().leaf_readers()]
        arrays = compact.load(directory, ids, {})
        for tags in ([TAGS[0].lower()], [TAGS[2].lower(), TAGS[3].lower()]):
            filt = build_filter(tags, (), (), None)
            assert Evaluator(searcher, ResultCache(compact=arrays)).docs(filt) == Evaluator(
                searcher, ResultCache()
            ).docs(filt)
    ix.close()


def test_phrases_from_position_keys_are_those_of_whooshs_positions(make_app, tmp_path):
    # Every two- and three-word run of the texts as a phrase, plus words in the wrong order, repeated
    # words and compounds (indexed at consecutive positions): the same matches and scores both ways.
    content = tmp_path / "content"
    rng = random.Random(8)
    texts = []
    for i in range(40):
        words = [rng.choice(WORDS[:12]) for _ in range(rng.randrange(4, 30))]
        text = " ".join(words) + (" cache cache redis" if i % 5 == 0 else "")
        texts.append(text)
        write_entry(content, f"n/{i}.md", f"# {' '.join(words[:3])}\n\n{text}\n\nRun docker-compose up now.\n")
    app = make_app(content)
    do_import(app, content)
    write_entry(content, "n/3.md", "# Changed\n\nworker queue broker\n")  # a second segment, a deletion
    do_import(app, content)
    phrases = {'"docker-compose up"', '"cache cache redis"', '"redis cache"', '"queue worker"', '"up docker"'}
    for text in texts[:10]:
        words = text.split()
        phrases.update(f'"{" ".join(words[i : i + n])}"' for n in (2, 3) for i in range(len(words) - n + 1))
    directory = store.live_index_dir(app.instance_path)
    found_any = 0
    for phrase in sorted(phrases):
        with_arrays, without, whoosh = scores_both_ways(directory, phrase)
        assert with_arrays == without, phrase
        assert with_arrays.keys() == whoosh.keys(), phrase
        found_any += bool(with_arrays)
    assert found_any > len(phrases) // 2


def test_arrays_left_unwritten_by_a_failure_leave_no_files(tmp_path):
    # The arrays go to files beside the segment as they come: a build that fails midway removes them.
    target = tmp_path / "segment.nxp"
    with pytest.raises(RuntimeError), compact.SegmentArrays(make_schema(), target) as arrays:
        arrays.add("body", b"word", array("I", [0, 1]), array("f", [1.0, 2.0]), array("Q", [0, 1 << 32]))
        assert list(tmp_path.iterdir())  # written as they come
        raise RuntimeError("the writer failed")
    assert list(tmp_path.iterdir()) == []
