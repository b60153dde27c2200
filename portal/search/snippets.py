"""Search-result snippets: the passages of an entry's text around the words a search matched.

Whoosh's highlighter passed every token of every hit's text through its generic token
machinery, which was half the time of a typical search. This walks the words once with a
regular expression and asks a per-word table whether each one matched; the passages are
chosen as Whoosh's `ContextFragmenter` and `BasicFragmentScorer` chose them.
"""

from __future__ import annotations

import heapq
import html
import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

MAX_CHARS = 220  # longest passage
SURROUND = 70  # context kept before the first and after the last match of a passage
TOP = 2  # passages shown, in text order
CHAR_LIMIT = 2**15  # matches further into the text are not looked for
BETWEEN = " … "

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

    def takes(self, start: int, end: int, term: str | None) -> bool:
        """Whether the word at start:end belongs in this passage."""
        if end - self.start > MAX_CHARS:
            return False
        return term is not None or end - self.marks[-1][1] <= self.after

    def score(self) -> int:
        """More matches score higher, and more different matched words far higher."""
        return len(self.marks) * len({term for _, _, term in self.marks}) * 100


def make(text: str, matched_term: MatchedTerm, word_re: re.Pattern) -> str:
    """Escaped passages of `text` with each matched word in `<mark>`; "" if no word matched."""
    passages = heapq.nlargest(TOP, passages_of(text, matched_term, word_re), key=Passage.score)
    passages.sort(key=lambda passage: passage.start)
    return BETWEEN.join(_format(text, passage) for passage in passages)


def passages_of(text: str, matched_term: MatchedTerm, word_re: re.Pattern):
    """Passages around matches: up to SURROUND characters of context each side, MAX_CHARS in all."""
    before: deque[int] = deque()  # starts of the words just before this one, within SURROUND
    passage: Passage | None = None
    floor = 0  # passages do not overlap
    for word in word_re.finditer(text):
        start, end = word.span()
        if end > CHAR_LIMIT:
            break
        term = matched_term(word.group())
        while before and end - before[0] > SURROUND:
            before.popleft()
        if passage is not None:
            if passage.takes(start, end, term):
                if term is None:
                    passage.end = end
                else:
                    passage.mark(start, end, term)
            else:
                yield passage
                floor, passage = passage.end, None
        if passage is None and term is not None:
            first = next((s for s in before if s >= floor), start)
            passage = Passage(first, after=2 * SURROUND - (start - first))  # unused context before goes after
            passage.mark(start, end, term)
        before.append(start)
    if passage is not None:
        yield passage


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
