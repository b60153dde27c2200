"""Typo correction: each word the index does not know, replaced by the nearest word it does know.

Distances are Damerau-Levenshtein (optimal string alignment), so `cadyd` is one edit from
`caddy`, as people swap letters more than they drop them. Among the nearest candidates the
corrector prefers one that finds entries together with the query's other words, then one that
appears in titles or tags, then the more frequent.
"""

from __future__ import annotations

from collections.abc import Callable

from rapidfuzz import process
from rapidfuzz.distance import OSA

from ..aliases import ALIASES
from .parsing import FUNCTION_WORDS

SPELL_FIELD = "spell"


def max_distance(word: str) -> int:
    """Edits allowed for a word: one for short words, where two would reach almost anything."""
    return 1 if len(word) <= 4 else 2


class Vocabulary:
    """The words typo correction may answer with: the spelling field's lexicon of one index.

    It holds plain strings only, so every thread of a worker can share it; frequencies come from
    the caller's own reader (Whoosh readers are not shared between threads).
    """

    def __init__(self, reader):
        self.reader = reader
        self._shared: dict[str, list[str]] = {}  # the words, once read, for every bound copy

    @property
    def words(self) -> list[str]:
        """Every word of the lexicon: read when a word is first corrected (a fifth of a second at 10,000 entries)."""
        found = self._shared.get("words")
        if found is None:
            found = self._shared["words"] = [word.decode("utf-8") for word in self.reader.lexicon(SPELL_FIELD)]
        return found

    def bind(self, reader) -> Vocabulary:
        """The same words, read through this thread's `reader`."""
        bound = object.__new__(Vocabulary)
        bound.reader, bound._shared = reader, self._shared
        return bound

    def knows(self, word: str) -> bool:
        """True for a word of the index, or an alias (`k8s`, `psql`), which is never corrected."""
        lowered = word.lower()
        return bool(self.reader.doc_frequency(SPELL_FIELD, lowered)) or lowered in _alias_names()

    def candidates(self, word: str) -> list[tuple[str, int]]:
        """(word, distance) of the indexed words within the allowed distance, nearest first."""
        lowered = word.lower()
        found = process.extract(
            lowered, self.words, scorer=OSA.distance, score_cutoff=max_distance(lowered), limit=None
        )
        return sorted(
            ((candidate, distance) for candidate, distance, _ in found if candidate not in FUNCTION_WORDS),
            key=lambda pair: pair[1],
        )

    def frequency(self, word: str) -> int:
        """How many entries (or blocks of entries, in a large index) use the word."""
        return self.reader.doc_frequency(SPELL_FIELD, word)


def best_correction(
    vocabulary: Vocabulary,
    word: str,
    *,
    finds_with_others: Callable[[str], bool],
    in_titles_or_tags: Callable[[str], bool],
) -> str | None:
    """The nearest candidate for an unknown word; ties go to context, then titles and tags, then frequency."""
    candidates = vocabulary.candidates(word)
    if not candidates:
        return None
    nearest = candidates[0][1]
    tied = [candidate for candidate, distance in candidates if distance == nearest]
    best = max(
        tied,
        key=lambda c: (finds_with_others(c), in_titles_or_tags(c), vocabulary.frequency(c), -len(c), c),
    )
    return best if best != word.lower() else None


def _alias_names() -> frozenset[str]:
    """Every name in the alias table, lower-case."""
    return _ALIAS_NAMES


_ALIAS_NAMES = frozenset(name.lower() for group in ALIASES for name in group)
