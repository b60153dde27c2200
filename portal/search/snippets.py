"""Search-result snippets: the passages of an entry's text around the words a search matched.

Passages are chosen as Whoosh's `ContextFragmenter` and `BasicFragmentScorer` chose them: up to
SURROUND characters of context each side, at most MAX_CHARS, the TOP passages with the most
(and most varied) matches, in text order. Finding the matches does not read every word of the
text: the search's terms give substrings to look for (`cach` for the term `cach`, which
`caching` and `cached` contain), a regular expression finds them at C speed, and only the
words around those places are checked against the analyzer's word table.
"""

from __future__ import annotations

import heapq
import html
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

MAX_CHARS = 220  # longest passage
SURROUND = 70  # context kept before the first and after the last match of a passage
TOP = 2  # passages shown, in text order
CHAR_LIMIT = 2**15  # matches further into the text are not looked for
BETWEEN = " … "
#: Characters that join the parts of one word (`docker-compose`, `N+1`, `ci/cd`, `node.js`, `C#`).
JOINERS = "-+/.#"

#: raw word -> the query term it matched, or None
MatchedTerm = Callable[[str], "str | None"]


@dataclass
class Passage:
    """A stretch of text and the (start, end, term) of each match in it."""

    start: int
    end: int = 0
    after: int = SURROUND  # context allowed after the last match
    marks: list[tuple[int, int, str]] = field(default_factory=list)

    def mark(self, start: int, end: int, term: str) -> None:
        """Add a match; the context after it starts again."""
        if self.marks:
            self.after = SURROUND
        self.marks.append((start, end, term))
        self.end = end

    def score(self) -> int:
        """More matches score higher, and more different matched words far higher."""
        return len(self.marks) * len({term for _, _, term in self.marks}) * 100


def make(text: str, matched_term: MatchedTerm, word_re: re.Pattern, hints: Iterable[str] | None = None) -> str:
    """Escaped passages of `text` with each matched word in `<mark>`; "" if no word matched.

    `hints`: lower-case substrings every matching word contains (see `hints_for`); without them
    every word of the text is checked.
    """
    if hints is None:
        found = _matches(text, matched_term, word_re)
    else:
        found = _matches_near(text, matched_term, word_re, hints)
    if not found:
        return ""
    passages = heapq.nlargest(TOP, passages_of(text, found, word_re), key=Passage.score)
    passages.sort(key=lambda passage: passage.start)
    return BETWEEN.join(_format(text, passage) for passage in passages)


def hints_for(terms: Iterable[str]) -> re.Pattern | None:
    """A pattern of what the words matching `terms` contain: each term less its last letter.

    A stem may end differently from its words (`happi` for "happy", `kei` for "key"), but the
    Porter stemmer only removes or replaces a word's ending, and the letter it may replace is
    the last one it keeps: the rest is a substring of every word the stem came from.
    """
    parts = sorted({_hint(term.lower()) for term in terms if term}, key=len, reverse=True)
    if not parts:
        return None
    return re.compile("|".join(re.escape(part) for part in parts), re.IGNORECASE)


def _hint(term: str) -> str:
    """A term less the letter stemming may have changed (short terms are kept whole unless they end so)."""
    return term[:-1] if len(term) > 3 or (len(term) > 1 and term.endswith("i")) else term


def _matches(text: str, matched_term: MatchedTerm, word_re: re.Pattern) -> list[tuple[int, int, str]]:
    """(start, end, term) of every matched word before CHAR_LIMIT, checking each word."""
    found = []
    for word in word_re.finditer(text):
        if word.end() > CHAR_LIMIT:
            break
        term = matched_term(word.group())
        if term is not None:
            found.append((word.start(), word.end(), term))
    return found


def _matches_near(text: str, matched_term: MatchedTerm, word_re: re.Pattern, hints) -> list[tuple[int, int, str]]:
    """(start, end, term) of every matched word before CHAR_LIMIT, checking only words that contain a hint."""
    if hints is None:
        return []
    found = []
    seen = -1
    for hit in hints.finditer(text, 0, CHAR_LIMIT):
        if hit.start() < seen:
            continue  # inside a word already checked
        start = _word_start(text, hit.start())
        word = word_re.match(text, start)
        if word is None or word.end() <= hit.start():
            continue
        if word.end() > CHAR_LIMIT:
            break
        seen = word.end()
        term = matched_term(word.group())
        if term is not None:
            found.append((start, word.end(), term))
    return found


def _word_start(text: str, at: int) -> int:
    """The start of the word that position `at` is in (words join their parts with JOINERS)."""
    start = at
    while start > 0 and (
        _is_word_char(text[start - 1]) or (text[start - 1] in JOINERS and start > 1 and _is_word_char(text[start - 2]))
    ):
        start -= 1
    return start


def _is_word_char(char: str) -> bool:
    """What `\\w` matches."""
    return char.isalnum() or char == "_"


def passages_of(text: str, matches: list[tuple[int, int, str]], word_re: re.Pattern):
    """Passages around the matches: up to SURROUND characters of context each side, MAX_CHARS in all."""
    floor = 0  # passages do not overlap
    passage: Passage | None = None
    for start, end, term in matches:
        if passage is not None:
            # The words between the last match and this one must all fit the context after it,
            # and this match the passage's length.
            gap_end = _last_word_end(text, passage.end, start, word_re)
            fits_gap = gap_end is None or gap_end - passage.marks[-1][1] <= passage.after
            if fits_gap and end - passage.start <= MAX_CHARS and (gap_end or end) - passage.start <= MAX_CHARS:
                passage.mark(start, end, term)
                continue
            passage.end = _context_end(text, passage, start, word_re)
            yield passage
            floor, passage = passage.end, None
        first = _context_start(text, floor, start, end, word_re)
        passage = Passage(first, after=2 * SURROUND - (start - first))  # unused context before goes after
        passage.mark(start, end, term)
    if passage is not None:
        passage.end = _context_end(text, passage, len(text), word_re)
        yield passage


def _last_word_end(text: str, after: int, before: int, word_re: re.Pattern) -> int | None:
    """The end of the last word between two positions (None if there is none), read backwards from `before`."""
    at = before
    while at > after:
        char = text[at - 1]
        if _is_word_char(char):
            return at
        if char in "+#":  # a word may end in them (`c++`, `C#`)
            inner = at - 1
            while inner > after and text[inner - 1] in "+#":
                inner -= 1
            if inner > after and _is_word_char(text[inner - 1]):
                return at
        at -= 1
    return None


def _context_start(text: str, floor: int, start: int, end: int, word_re: re.Pattern) -> int:
    """The first word start at or after `floor` whose word lies within SURROUND of the match's end."""
    lowest = max(floor, end - SURROUND)
    for word in word_re.finditer(text, max(floor, lowest - 64), start):
        # A scan that began inside a word sees its tail as a word of its own: skip it.
        if word.start() >= lowest and _word_start(text, word.start()) == word.start():
            return word.start()
    return start


def _context_end(text: str, passage: Passage, stop: int, word_re: re.Pattern) -> int:
    """The end of the last word after the passage's last match that fits its context and length."""
    last_end = passage.marks[-1][1]
    bound = min(last_end + passage.after, passage.start + MAX_CHARS, CHAR_LIMIT)
    end = last_end
    for word in word_re.finditer(text, last_end, min(stop, bound + 64)):
        if word.end() > bound:
            break
        end = word.end()
    return end


def _format(text: str, passage: Passage) -> str:
    """The passage's text, escaped, with `<mark>` around each match."""
    out, at = [], passage.start
    for start, end, _term in passage.marks:
        out += [
            html.escape(text[at:start], quote=False),
            "<mark>",
            html.escape(text[start:end], quote=False),
            "</mark>",
        ]
        at = end
    out.append(html.escape(text[at : passage.end], quote=False))
    return "".join(out)
