"""Search that finds what people type: function words, relaxed matching, typo correction (issue 14).

Over the shipped content, as a new user meets it, and over small folders made for one behaviour.
"""

from __future__ import annotations

import pytest

from portal import create_app, queries
from portal.importer import import_content
from portal.models import db
from portal.search.engine import run_search

from .conftest import SHIPPED_CONTENT, write_entry


@pytest.fixture(scope="module")
def shipped_app(tmp_path_factory):
    """The shipped content, imported once for the module."""
    app = create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "test",
            "INSTANCE_PATH": str(tmp_path_factory.mktemp("relevance")),
            "CONTENT_DIR": str(SHIPPED_CONTENT),
            "INDEX_CHECK_SECONDS": 0,
            "PAGE_CACHE_MB": 0,
        }
    )
    with app.app_context():
        assert not import_content(SHIPPED_CONTENT, app.instance_path).errors
        db.session.remove()
    yield app
    app.extensions["nexus.searchers"].close()
    with app.app_context():
        db.engine.dispose()


def search(app, q, **options):
    """One search as the views run it."""
    options.setdefault("per_page", 50)
    with app.app_context():
        return run_search(app.extensions["nexus.searchers"], q, texts=queries.texts_by_slugs, **options)


def full(outcome) -> list[str]:
    """Slugs of the hits that have every word, in rank order."""
    return [hit.slug for hit in outcome.hits if not hit.missing]


def everything(outcome) -> list[str]:
    return [hit.slug for hit in outcome.hits]


# --- function words ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "plain", "ignored"),
    [
        ("fixtures for pytest", "fixtures pytest", ["for"]),  # a stop word the index drops
        ("caching in redis", "caching redis", ["in"]),
        ("how do I run celery with rabbitmq", "run celery rabbitmq", ["how", "do", "I", "with"]),  # a question
        ("running docker compose with django", "running docker compose django", ["with"]),
        ("what is the N+1 problem", "N+1 problem", ["what", "is", "the"]),  # before a technical token
        ("what's an ERD", "ERD", ["what", "an"]),  # a contraction's tail is no word of its own
    ],
)
def test_function_words_never_zero_a_query(shipped_app, typed, plain, ignored):
    with_them, without = search(shipped_app, typed), search(shipped_app, plain)
    assert full(with_them) and full(with_them) == full(without)
    assert with_them.ignored == ignored


@pytest.mark.parametrize(
    "q",
    [
        "fixtures for pytest",  # "for" was answered as "few"
        "running docker compose with django",  # "with" was answered as "which"
        "how do I run celery with rabbitmq",
        "where are the docs",
    ],
)
def test_function_words_are_never_corrected(shipped_app, q):
    outcome = search(shipped_app, q)
    assert outcome.corrected is None and outcome.suggestion is None


@pytest.mark.parametrize(
    ("phrase", "finds"),
    [
        ('"what the program covered"', ["overview"]),  # the title's own words, in order
        ('"why the program covered"', []),  # inside quotes a function word still counts
    ],
)
def test_function_words_count_inside_a_phrase(shipped_app, phrase, finds):
    outcome = search(shipped_app, phrase)
    assert everything(outcome) == finds and not outcome.relaxed


def test_a_query_of_function_words_only_is_searched_as_typed(shipped_app):
    outcome = search(shipped_app, "how")  # nothing else to search for: the word itself is wanted
    assert outcome.ignored == [] and outcome.total > 0


# --- relaxed matching ---------------------------------------------------------------------------


def test_no_entry_with_every_word_shows_entries_with_most_of_them(shipped_app):
    outcome = search(shipped_app, "celery qqqqqq")  # no entry has the second word
    assert outcome.relaxed and outcome.full_matches == 0 and outcome.total > 0
    assert all(hit.missing == ["qqqqqq"] for hit in outcome.hits)
    assert outcome.hits[0].slug == "technologies/celery"


def test_full_matches_come_first_then_entries_with_most_words(shipped_app):
    outcome = search(shipped_app, "graphql jenkins pipelines")
    missing = [bool(hit.missing) for hit in outcome.hits]
    assert outcome.relaxed and outcome.total == len(outcome.hits)
    assert missing == sorted(missing)  # every full match before any partial one
    assert outcome.full_matches == missing.count(False)
    for hit in outcome.hits:
        assert set(hit.missing) < {"graphql", "jenkins", "pipelines"}


@pytest.fixture
def kitchen_app(make_app, tmp_path):
    """Notes of one length, so only the words they share with a query tell them apart."""
    content = tmp_path / "kitchen"
    notes = {
        "two-words": "kettle teapot saucer plate",  # two of "kettle teapot mug"
        "one-word": "kettle spoon saucer plate",  # one of them
        "rare-word": "zebra spoon saucer plate",  # "zebra" is in no other note: rare
        "common-word": "kettle fork saucer plate",  # "kettle" is in many notes: common
    }
    for name, words in notes.items():
        write_entry(content, f"{name}.md", f"# Note {name.replace('-', ' ')}\n\n{words}.\n")
    for n in range(8):
        write_entry(content, f"filler/kettle-{n}.md", f"# Filler {n}\n\nkettle napkin {n} lamp cloth.\n")
    app = make_app(content)
    with app.app_context():
        assert not import_content(content, app.instance_path).errors
        db.session.remove()
    return app


def test_an_entry_with_more_of_the_words_ranks_higher(kitchen_app):
    found = everything(search(kitchen_app, "kettle teapot mug"))
    assert found.index("two-words") < found.index("one-word")


def test_rare_words_weigh_more_than_common_ones(kitchen_app):
    outcome = search(kitchen_app, "kettle zebra")  # no note has both
    found = everything(outcome)
    assert outcome.full_matches == 0 and found[0] == "rare-word"
    assert found.index("rare-word") < found.index("common-word")


@pytest.mark.parametrize(
    "q",
    [
        '"celery qqqqqq"',  # a phrase is one thing: all of it or nothing
        "celery AND qqqqqq",  # an explicit AND
        "title:celery qqqqqq",  # a field term makes the query explicit
        "+celery +qqqqqq",  # required words
        "celery -celery",  # an exclusion
    ],
)
def test_operators_stay_strict(shipped_app, q):
    outcome = search(shipped_app, q)
    assert outcome.total == 0 and not outcome.relaxed and outcome.hits == []


def test_strict_operators_still_narrow(shipped_app):
    outcome = search(shipped_app, "celery -redis")
    assert outcome.total and not outcome.relaxed
    assert not set(everything(outcome)) & set(everything(search(shipped_app, "redis")))


def test_relaxed_matching_is_said_on_the_page_and_in_the_api(shipped_app):
    client = shipped_app.test_client()
    page = client.get("/search", query_string={"q": "celery qqqqqq"}).get_data(as_text=True)
    assert "No entry has all of these words — showing entries that match most of them." in page
    assert "Missing: <s>qqqqqq</s>" in page
    body = client.get("/api/search", query_string={"q": "how do I use celery qqqqqq"}).get_json()
    assert (body["relaxed"], body["full_matches"]) == (True, 0)
    assert body["ignored_words"] == ["how", "do", "I"]
    assert all(result["missing_words"] == ["qqqqqq"] for result in body["results"])
    some = client.get("/search", query_string={"q": "fixtures for pytest"}).get_data(as_text=True)
    assert "Only 1 entry has all of these words; entries that match most of them follow." in some


# --- typo correction -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "corrected"),
    [
        ("cleery", "celery"),  # two letters swapped: one edit
        ("rdeis", "redis"),
        ("kubernetse", "kubernetes"),
        ("pyhton djnago", "python django"),  # two typos in one query
        ("cleery with rabbitmq", "celery with rabbitmq"),  # the known word and the function word stay
        ("postgrse indexing", "postgres indexing"),  # the nearest word, not the longer one it begins
    ],
)
def test_transposed_letters_are_one_edit(shipped_app, typed, corrected):
    outcome = search(shipped_app, typed)
    assert outcome.corrected == corrected and outcome.query == typed
    assert outcome.total > 0


@pytest.mark.parametrize(
    "q",
    [
        "orm",  # a short word the index knows, close to "form"
        "drf",  # known, and an alias
        "k8s",  # an alias: never "corrected"
        "pytest fixtures",
        "celery",
    ],
)
def test_a_known_word_is_never_corrected(shipped_app, q):
    outcome = search(shipped_app, q)
    assert outcome.corrected is None and outcome.suggestion is None and outcome.total > 0


def test_exact_turns_correction_off(shipped_app):
    outcome = search(shipped_app, "cleery", correct=False)
    assert outcome.corrected is None and outcome.total == 0


def test_the_corrected_page_offers_the_query_as_typed(shipped_app):
    page = shipped_app.test_client().get("/search", query_string={"q": "cleery broker"}).get_data(as_text=True)
    assert "Showing results for" in page and "celery broker" in page
    assert "search instead for" in page and "q=cleery+broker&amp;exact=1" in page


def test_relaxation_wins_when_no_correction_does_better(shipped_app):
    # "qqqqqq" has no correction: the answer is the relaxed query, with no "did you mean".
    outcome = search(shipped_app, "celery qqqqqq")
    assert outcome.corrected is None and outcome.suggestion is None and outcome.relaxed


@pytest.fixture
def typo_app(make_app, tmp_path):
    """Notes where a frequent English word is farther from a typo than a technical word is."""
    content = tmp_path / "notes"
    for n in range(6):  # "card" is common, and one plain edit-distance-2 step from "cadyd"
        write_entry(content, f"cards/card-{n}.md", f"# Card game {n}\n\nA card, another card, and a card.\n")
    write_entry(content, "web/caddy.md", "# Caddy\n\nCaddy serves sites over HTTPS with automatic certificates.\n")
    write_entry(content, "web/proxy.md", "# Reverse proxy\n\nPut caddy in front of gunicorn.\n")
    app = make_app(content)
    with app.app_context():
        import_content(content, app.instance_path)
        db.session.remove()
    return app


@pytest.mark.parametrize(
    ("typed", "corrected"),
    [
        ("cadyd", "caddy"),  # a swap is one edit: caddy (1) beats the more frequent card (2)
        ("cadyd proxy", "caddy proxy"),
        ("acrd game", "card game"),  # and a swap in the common word is one edit too
    ],
)
def test_the_nearest_word_wins_over_a_frequent_one(typo_app, typed, corrected):
    assert search(typo_app, typed).corrected == corrected


# --- pages that list other pages -----------------------------------------------------------------


def test_an_index_page_listing_every_note_is_not_a_full_match(make_app, tmp_path):
    content = tmp_path / "til"
    lines = ["# TIL", ""]
    for n in range(25):
        write_entry(content, f"topic/note-{n}.md", f"# Note {n}\n\nAbout word{n} and nothing else.\n")
        lines.append(f"- [About word{n}](topic/note-{n}.md)")
    write_entry(content, "README.md", "\n".join(lines) + "\n")
    app = make_app(content)
    with app.app_context():
        assert not import_content(content, app.instance_path).errors
        db.session.remove()
    outcome = search(app, "word3 word7")  # only the index has both words
    assert outcome.full_matches == 0 and outcome.relaxed
    assert set(everything(outcome)[:2]) == {"topic/note-3", "topic/note-7"}
