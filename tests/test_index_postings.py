"""The build's own steps a posting (search/building.py, search/internals.py) give what Whoosh's do."""

from __future__ import annotations

import datetime as dt
import functools
import random

import pytest
from whoosh import formats

from portal.search import building, store
from portal.search.analysis import IndexedEntry, TagName, document_for, spelling_batch, thin_batch, thin_spelling
from portal.search.internals import encode_positions

from .test_index_building import WORDS, contents, documents, whoosh_build


@pytest.mark.parametrize(
    "positions",
    [
        [0, 1],
        [3, 3, 7],  # a delta of 0
        [5, 300, 70_000, 2**31 + 5, 2**40],  # deltas in each of pickle's integer sizes
        list(range(0, 3000, 2)),  # more than one batch of pickled list items (1,000)
        list(range(1000)),
        list(range(1001)),
    ],
)
def test_positions_are_encoded_as_whoosh_encodes_them(positions):
    assert encode_positions(positions) == formats.Positions().encode(positions)


def test_a_text_field_given_tokens_in_some_documents_holds_what_whoosh_writes(tmp_path):
    # A field's terms are held as text; a document whose body is a list of tokens (Whoosh's way,
    # without positions) comes in as bytes, before and after others, and is merged in.
    docs = documents(40)
    for number in (0, 17, 39):
        docs[number]["body"] = ["cache", "zeppelin", "cache", "ünïcode"]
    (tmp_path / "whoosh").mkdir()
    whoosh_build(tmp_path / "whoosh", docs)
    ours = store.build_index(tmp_path / "instance", docs, 1)
    expected, got = contents(tmp_path / "whoosh"), contents(ours)
    assert got == expected


def entries(count: int) -> list[IndexedEntry]:
    """Rows as the index build reads them, with spelling words shared between entries."""
    rng = random.Random(7)
    return [
        IndexedEntry(
            slug=f"entry-{i}",
            title=f"Entry {i} {rng.choice(WORDS)}",
            summary=None if i % 4 else "a summary",
            headings="Setup" if i % 3 else None,
            text=" ".join(rng.choice(WORDS) for _ in range(rng.randint(0, 30))),
            kind="concept",
            sort_date=dt.date(2024, 1, 1) + dt.timedelta(days=i),
            link_keys=None,
            word_count=10,
            tags=(TagName("python", "Python"),) if i % 2 else (),
        )
        for i in range(count)
    ]


@pytest.mark.parametrize("count", [450, 1000, 2999])
def test_batches_of_whole_spelling_blocks_thin_spelling_as_the_whole(count):
    rows = entries(count)
    size = spelling_batch(count, building.BATCH)
    batched = [
        document for start in range(0, count, size) for document in thin_batch(rows[start : start + size], count)
    ]
    assert batched == list(thin_spelling(map(document_for, rows), count))


@pytest.mark.parametrize("procs", [1, 2])
def test_writers_that_make_the_documents_write_what_whoosh_writes(tmp_path, procs):
    rows = entries(450)
    (tmp_path / "whoosh").mkdir()
    whoosh_build(tmp_path / "whoosh", list(thin_spelling(map(document_for, rows), len(rows))))
    prepare = building.Preparation(functools.partial(thin_batch, count=len(rows)), spelling_batch(len(rows), 100))
    ours = store.build_index(tmp_path / "instance", iter(rows), 1, procs=procs, prepare=prepare)
    expected, got = contents(tmp_path / "whoosh"), contents(ours)
    assert got.pop("segments") == procs
    expected.pop("segments")
    assert got == expected
