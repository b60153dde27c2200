"""The build's own steps a posting (search/building.py, search/internals.py) give what Whoosh's do."""

from __future__ import annotations

import pytest
from whoosh import formats

from portal.search import store
from portal.search.internals import encode_positions

from .test_index_building import contents, documents, whoosh_build


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
