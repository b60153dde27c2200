"""Search-result snippets: which passages are shown, how long they are, and that they are escaped text."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from portal.search import snippets
from portal.search.analysis import WORD_RE as SEARCH_WORD_RE
from portal.search.analysis import TextAnalyzer

WORD_RE = re.compile(r"\w+")
FILLER = " ".join(["filler"] * 200)  # 1,399 characters without a match


def make(text: str, *terms: str) -> str:
    """A snippet of `text` for a search that matched `terms` (whole words, any case)."""
    return snippets.make(text, lambda word: word.lower() if word.lower() in terms else None, WORD_RE)


def unmarked(snippet: str) -> str:
    return snippet.replace("<mark>", "").replace("</mark>", "")


@pytest.mark.parametrize(
    ("text", "terms", "expected"),
    [
        ("", ("celery",), ""),
        ("Nothing to see here.", ("celery",), ""),
        ("Celery runs tasks.", ("celery",), "<mark>Celery</mark> runs tasks"),
        (
            "Queue it: Celery, then Redis.",
            ("celery", "redis"),
            "Queue it: <mark>Celery</mark>, then <mark>Redis</mark>",
        ),
        ("Use <b> & celery", ("celery",), "Use &lt;b&gt; &amp; <mark>celery</mark>"),  # escaped text, real marks
    ],
)
def test_snippets_mark_the_matched_words(text, terms, expected):
    assert make(text, *terms) == expected


def test_context_is_kept_on_both_sides_of_a_match():
    text = f"{FILLER} alpha beta celery gamma delta {FILLER}"
    snippet = make(text, "celery")
    before, after = unmarked(snippet).split("celery")
    assert before.endswith("alpha beta ") and after.startswith(" gamma delta")
    assert len(before) <= snippets.SURROUND and len(before) + len(after) <= 2 * snippets.SURROUND
    assert not before.startswith(" ")  # passages start and end on whole words


def test_a_match_at_the_start_gets_its_unused_context_after():
    snippet = unmarked(make(f"celery {FILLER}", "celery"))
    assert snippets.SURROUND < len(snippet) <= 2 * snippets.SURROUND + len("celery ")


def test_passages_are_capped_in_length():
    text = " ".join(["celery"] * 300)
    assert len(unmarked(make(text, "celery")).split(snippets.BETWEEN)[0]) <= snippets.MAX_CHARS


def test_the_two_best_passages_are_shown_in_text_order():
    text = f"celery once. {FILLER} redis and celery together. {FILLER} redis alone. {FILLER} redis celery redis."
    passages = unmarked(make(text, "celery", "redis")).split(snippets.BETWEEN)
    assert len(passages) == snippets.TOP
    # The passages with both words win over those with one, and keep the order of the text.
    assert "redis and celery together" in passages[0] and "redis celery redis" in passages[1]


def test_matches_past_the_character_limit_are_not_looked_for():
    text = "x" * snippets.CHAR_LIMIT + " celery"
    assert make(text, "celery") == ""


def test_a_word_crossing_the_character_limit_is_not_marked():
    text = "x" * (snippets.CHAR_LIMIT - 7) + " celeryworkers"
    assert make(text, "celery", "celeryworkers") == ""


@pytest.mark.parametrize(
    ("text", "terms", "expected"),
    [
        ("Add select_related here.", {"select_relat"}, "Add <mark>select_related</mark> here"),
        ("Run docker-compose up.", {"compos"}, "Run <mark>docker-compose</mark> up"),  # a part marks its word
        ("Retries retried.", {"retri"}, "<mark>Retries</mark> <mark>retried</mark>"),  # stemmed terms
    ],
)
def test_search_words_are_matched_by_their_indexed_terms(text, terms, expected):
    analyzer = TextAnalyzer()

    def matched_term(word):
        return next((term for term in analyzer.word_terms(word) if term in terms), None)

    assert snippets.make(text, matched_term, SEARCH_WORD_RE) == expected


VOCABULARY = ["celery", "Celery", "caching", "cached", "key", "keys", "day", "days", "docker-compose", "N+1", "c++",
              "retries", "happy", "x", "select_related", "node.js", "ci/cd", "naïve", "über"]  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(
    words=st.lists(st.sampled_from(VOCABULARY + ["and", "the", ",", ".", "\n"]), max_size=400),
    picked=st.lists(st.sampled_from(VOCABULARY), min_size=1, max_size=3),
)
def test_looking_for_the_terms_finds_what_reading_every_word_finds(words, picked):
    # The search's terms give substrings to look for; a stem may end differently from its word
    # (`kei` for "key", `happi` for "happy"), and no match may be lost for it.
    text = " ".join(words)
    analyzer = TextAnalyzer()
    terms = {term for word in picked for term in analyzer.word_terms(word)}

    def matched_term(word):
        return next((term for term in analyzer.word_terms(word) if term in terms), None)

    hints = snippets.hints_for(terms)
    everything = snippets.make(text, matched_term, SEARCH_WORD_RE)
    assert snippets.make(text, matched_term, SEARCH_WORD_RE, hints) == everything
