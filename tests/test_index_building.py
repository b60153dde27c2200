"""A full index build (search/building.py) writes what Whoosh's own writer writes, in one process or several."""

from __future__ import annotations

import datetime as dt
import marshal
import multiprocessing
import random
import string
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st
from whoosh import index
from whoosh.codec.whoosh3 import W3Codec

from portal.search import building, compact, internals, store
from portal.search.analysis import SPELL_RE, distinct_words, make_schema, thin_spelling

WORDS = ["cache", "redis", "select_related", "docker-compose", "N+1", "CI/CD", "the", "worker", "queue", "zeppelin"]


def documents(count: int) -> list[dict]:
    """Varied documents: repeated words (positions), compounds, stop words, tags, dates, hubs."""
    rng = random.Random(20)
    made = []
    for i in range(count):
        body = " ".join(rng.choice(WORDS) for _ in range(rng.randint(0, 60)))
        made.append(
            {
                "slug": f"doc-{i}",
                "title": f"Note {i} {rng.choice(WORDS)}",
                "summary": " ".join(rng.sample(WORDS, 3)),
                "headings": "Setup\nUsage" if i % 3 else "",
                "body": body,
                "tags": ",".join(sorted(rng.sample(["python", "c-plus-plus", "docker"], rng.randint(0, 2)))),
                "kind": rng.choice(["concept", "technology"]),
                "date": dt.datetime(2024, 1, 1) + dt.timedelta(days=i),
                "title_sort": f"note {i}",
                "spell": " ".join(dict.fromkeys(w.lower() for w in body.split() if w.isalpha()))
                + (" The İstanbul Café café to QUEUE" if i % 5 == 0 else ""),  # what `term_counts` must lower and stop
                "hub": i % 7 == 0,
            }
        )
    return list(thin_spelling(made, count))


def whoosh_build(directory, docs) -> None:
    """The same documents through Whoosh's own writer, as the index was built before."""
    ix = index.create_in(str(directory), make_schema())
    with ix.writer(**store.writer_options()) as writer:
        for document in docs:
            writer.add_document(**document)
    ix.close()


def whoosh_and_ours(tmp_path, docs, procs: int = 1) -> tuple[dict, dict]:
    """The contents of the same documents built by Whoosh's own writer and by ours (in `procs` writers)."""
    (tmp_path / "whoosh").mkdir()
    whoosh_build(tmp_path / "whoosh", docs)
    return contents(tmp_path / "whoosh"), contents(store.build_index(tmp_path / "instance", docs, 1, procs=procs))


def contents(directory) -> dict:
    """Everything a search can read of an index, by slug rather than document number."""
    ix = store.open_index(directory)
    with ix.reader() as reader:
        slugs = {docnum: fields["slug"] for docnum, fields in reader.iter_docs()}
        terms = {}
        for fieldname, text in reader.all_terms():
            matcher = reader.postings(fieldname, text)
            postings = set()
            while matcher.is_active():
                postings.add((slugs[matcher.id()], matcher.weight(), matcher.value()))
                matcher.next()
            terms[fieldname, text] = (
                reader.doc_frequency(fieldname, text),
                reader.frequency(fieldname, text),
                postings,
            )
        lengths = {
            (name, slugs[docnum]): reader.doc_field_length(docnum, name)
            for name in ix.schema.scorable_names()
            for docnum in slugs
        }
        columns = {(name, slugs[n]): reader.column_reader(name)[n] for name in ("date", "title_sort") for n in slugs}
        stored = {slugs[n]: fields for n, fields in reader.iter_docs()}
        segments = len(reader.leaf_readers())
    ix.close()
    return {"terms": terms, "lengths": lengths, "columns": columns, "stored": stored, "segments": segments}


@pytest.mark.parametrize("procs", [1, 2, 3])
def test_a_build_holds_what_whoosh_writes(tmp_path, procs):
    docs = documents(450)
    expected, got = whoosh_and_ours(tmp_path, docs, procs)
    assert got.pop("segments") == procs  # one segment per writer process
    expected.pop("segments")
    assert got == expected


def codec_build(directory, docs, codec) -> None:
    """`docs` through Whoosh's own writer with `codec`."""
    directory.mkdir()
    ix = index.create_in(str(directory), make_schema())
    with ix.writer(codec=codec, compound=False) as writer:
        for document in docs:
            writer.add_document(**document)
    ix.close()


@pytest.mark.parametrize("blocklimit", [3, 1024])
def test_posting_blocks_read_back_as_whoosh_writes_them(tmp_path, monkeypatch, blocklimit):
    # BlockCodec pickles blocks another way and compresses only the larger: what is read back is the same.
    docs = documents(300)
    codec_build(tmp_path / "whoosh", docs, W3Codec(blocklimit=blocklimit, compression=store.COMPRESSION))
    written, compressed = [], []
    write_block, deflate = internals.BlockPostingsWriter._write_block, internals.deflate
    monkeypatch.setattr(
        internals.BlockPostingsWriter, "_write_block", lambda *a, **k: written.append(1) or write_block(*a, **k)
    )
    monkeypatch.setattr(internals, "deflate", lambda *a: compressed.append(1) or deflate(*a))
    codec_build(tmp_path / "ours", docs, internals.BlockCodec(blocklimit=blocklimit, compression=store.COMPRESSION))
    assert 0 < len(compressed) < len(written)  # blocks of both kinds were written
    assert contents(tmp_path / "ours") == contents(tmp_path / "whoosh")


@pytest.mark.parametrize("size", [0, 1, 127, 128, 511, 512, 513, 4096, 40_000])
@pytest.mark.parametrize("kind", ["repetitive", "random"])
def test_a_deflated_block_is_what_zlib_reads_back(size, kind):
    rng = random.Random(size)
    data = bytes(rng.randrange(256) for _ in range(size)) if kind == "random" else (b"positions " * size)[:size]
    packed = internals.deflate(data, store.COMPRESSION)
    assert zlib.decompress(packed) == data
    assert len(packed) <= len(zlib.compress(data, store.COMPRESSION)) * 1.1 + 8  # about as small as zlib's own


def test_few_documents_for_many_helpers(tmp_path):
    # A helper that is sent nothing writes no segment.
    ours = store.build_index(tmp_path / "instance", documents(3), 1, procs=3)
    assert contents(ours)["segments"] == 1
    assert store.check_index(tmp_path / "instance") == (1, 3)


@pytest.mark.parametrize("bad", [20, 150, 250])
def test_a_helper_that_fails_fails_the_build_and_leaves_the_live_index(tmp_path, bad):
    instance = tmp_path / "instance"
    store.build_index(instance, documents(10), 1)
    broken = documents(1000)
    broken[bad]["date"] = "not a date"  # the first helper's first batch, the second's first, the first's second
    with pytest.raises(RuntimeError, match="index writer process .* failed"):
        store.build_index(instance, broken, 2, procs=2)
    assert store.check_index(instance) == (1, 10)
    assert not list(instance.glob("index.*.building"))
    assert not multiprocessing.active_children()


def test_a_failure_while_feeding_stops_the_helpers(tmp_path):
    def failing():
        yield from documents(250)
        raise OSError("the database went away")

    with pytest.raises(OSError, match="went away"):
        store.build_index(tmp_path / "instance", failing(), 1, procs=2)
    assert not list((tmp_path / "instance").glob("index.*"))
    assert not multiprocessing.active_children()


@pytest.mark.parametrize(
    "text",
    ["", "the a an", "The N+1 query in docker-compose.yml, and the CI/CD of c++ and C#", "a b-c d/e/f the g_h i"],
)
def test_term_positions_are_those_of_the_token_stream(text):
    assert_term_sequence_is_the_token_stream(text)


@given(st.text(alphabet=string.printable + "-+/.#_") | st.text())
def test_term_positions_of_any_text_are_those_of_the_token_stream(text):
    assert_term_sequence_is_the_token_stream(text)


def assert_term_sequence_is_the_token_stream(text: str) -> None:
    """`term_sequence` gives each term the positions the analyzer's token stream gives it."""
    analyzer = make_schema()["body"].analyzer
    expected: dict[str, list[int]] = {}
    for token in analyzer(text, positions=True, mode="index"):
        expected.setdefault(token.text, []).append(token.pos)
    got: dict[str, list[int]] = {}
    for term, position in zip(*analyzer.term_sequence(text), strict=True):
        got.setdefault(term, []).append(position)
    assert got == expected


def boosted_and_mixed(count: int) -> list[dict]:
    """Documents with document and field boosts, and bodies given as lists of words (Whoosh's general path) among text."""
    docs = documents(count)
    for number, document in enumerate(docs):
        if number % 4 == 1:
            document["_boost"] = 1.5  # every field's weights
        if number % 6 == 2:
            document["_body_boost"] = 3.0  # the body's alone
        if number % 9 == 5:
            document["body"] = document["body"].lower().split()  # pre-split words, held as `add_field` holds them
    return docs


@pytest.mark.parametrize("procs", [1, 2])
def test_boosts_and_words_given_as_lists_are_held_as_whoosh_writes_them(tmp_path, procs):
    docs = boosted_and_mixed(450)
    expected, got = whoosh_and_ours(tmp_path, docs, procs)
    expected.pop("segments")
    got.pop("segments")
    assert got == expected


def test_a_field_of_positions_turns_to_general_postings_and_back(tmp_path):
    # The body's postings held as position keys alone (`add_positions`) are converted when a
    # document's body comes as a list (`add_field`), and later text bodies join them.
    docs = documents(30)
    docs[10]["body"] = ["cache", "redis", "cache"]
    docs[11]["_body_boost"] = 2.0
    expected, got = whoosh_and_ours(tmp_path, docs)
    assert got == expected


# Texts whose words lowering lengthens or splits (İ), stop words in any case, short and repeated words.
TRICKY_SPELLING = [
    "",
    "The the THE a an to of",
    "İstanbul straße STRASSE ǅemal café Café CAFÉ naïve",
    "x yy zzz zzz Zzz zzz_zzz 3zzz zzz3 Σίσυφος ΣΊΣΥΦΟΣ",
    "Redis redis REDIS worker, queue; the worker-queue",
]


@pytest.mark.parametrize("text", TRICKY_SPELLING)
def test_spelling_counts_are_those_of_the_token_stream(text):
    field = make_schema()["spell"]
    expected = {word: frequency for word, frequency, _weight, _value in field.format.word_values(text, field.analyzer)}
    counts = field.analyzer.term_counts(text)
    assert dict(counts) == expected
    assert list(counts) == list(expected)  # in the order first seen


ASCII_SPELLING = "Select_related N+1 x86_64 abc123def HTTP2 IPv6 don't CamelCase __init__ ab abc ABC\tdef\n"


@pytest.mark.parametrize(
    "text", [*TRICKY_SPELLING, ASCII_SPELLING, "Cache cache CACHE cachE redis Redis", "Ünïcode ünïcode UNICODE"]
)
def test_distinct_words_lowers_each_word_and_keeps_the_order_of_first_use(text):
    assert distinct_words(text) == spelling_words(text)


@given(st.text(alphabet=string.printable) | st.text())
def test_distinct_words_of_any_text_are_the_spelling_words(text):
    assert distinct_words(text) == spelling_words(text)


def spelling_words(text: str) -> str:
    """What `distinct_words` is defined as: each word typo correction knows, lowered, once, in order of first use."""
    return " ".join(dict.fromkeys(word.lower() for word in SPELL_RE.findall(text)))


@pytest.mark.parametrize("procs", [1, 2])
def test_a_writer_starts_a_new_segment_past_its_postings_limit(tmp_path, monkeypatch, procs):
    monkeypatch.setattr(building, "SEGMENT_POSTINGS", 2_000)  # a few batches of these documents
    docs = documents(450)
    expected, got = whoosh_and_ours(tmp_path, docs, procs)
    assert got.pop("segments") > procs
    expected.pop("segments")
    assert got == expected


@pytest.mark.parametrize("procs", [1, 2])
def test_a_build_writes_the_arrays_its_segments_would_give(tmp_path, monkeypatch, procs):
    # Each writer writes its segment's arrays from the postings it holds (no reading back), and
    # they are byte for byte those read back from the segment Whoosh's reader sees.
    monkeypatch.setattr(building, "SEGMENT_POSTINGS", 2_000)  # several segments per writer
    read_back = []
    monkeypatch.setattr(compact, "_write_one", lambda *args: read_back.append(args))
    ours = store.build_index(tmp_path / "instance", documents(450), 1, procs=procs)
    assert read_back == []  # nothing was missing: the writers wrote every segment's arrays
    written = arrays_files(ours)
    assert len(written) == contents(ours)["segments"] > procs
    monkeypatch.undo()
    for path in ours.glob(f"*{compact.SUFFIX}"):
        path.unlink()
    assert compact.write_missing(ours) == len(written)
    assert arrays_files(ours) == written


def arrays_files(directory) -> dict:
    """Each arrays file of an index as (its head's values, the arrays' bytes): strings may be interned or not."""
    found = {}
    for path in directory.glob(f"*{compact.SUFFIX}"):
        data = path.read_bytes()
        start = len(compact.MAGIC) + 8
        size = int.from_bytes(data[len(compact.MAGIC) : start], "little")
        found[path.name] = (data[: len(compact.MAGIC)], marshal.loads(data[start : start + size]), data[start + size :])  # noqa: S302
    return found
