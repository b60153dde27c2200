"""Limits of the Markdown itself: cheap scans for what would make rendering too deep or too slow.

Python-Markdown recurses once per level of nesting and has quadratic paths: a file past a limit
gets a `(line, reason)` to report instead of stopping the import. Pure, no Flask; reading a file
(`content.parse_bytes`) and rendering (`rendering.render`) both check. `size_text` writes a byte
limit for the messages of these and of the file and front-matter limits.
"""

from __future__ import annotations

import bisect
import re

#: Limits that keep rendering one file bounded (issue 21); real notes stay far below them.
MAX_NESTING = 50  # lists, quotes and indented blocks inside each other (Python-Markdown recurses per level)
MAX_TABLE_ROWS = 5000
MAX_HTML_NESTING = 100  # raw HTML elements inside each other (nh3's parser is quadratic in depth)
#: Characters Python's `html.parser` may scan for `<` that no `>` follows (it rescans from each).
MAX_UNCLOSED_TAG_SCAN = 4_000_000
#: Characters Python-Markdown may copy and search again after taking a heading or rule off a block:
#: it does so for each, to the end of the block (`## h` × 20,000 without blank lines took 44 s).
MAX_BLOCK_RESCAN = 20_000_000
#: Inline markup × length of the paragraph it is in, summed: Python-Markdown copies a paragraph
#: for each link, emphasis, code span or entity it finds (`*a* ` × 60,000 on one line: 18 s).
MAX_INLINE_WORK = 1_000_000_000

#: One level of nesting at a line's start: a quote marker, a list marker, or four columns of indent.
_LEVEL = r"(?> {0,3}>| {0,3}(?:[-*+]|\d{1,9}[.)])(?=[ \t]|$)[ \t]?| {4}|\t| {1,3}\t)"
_DEEP_LINE_RE = re.compile(rf"^{_LEVEL}{{{MAX_NESTING + 1}}}", re.MULTILINE)
#: A line that could be that deep: each level takes at least one of these characters. Searched
#: for after "\n" (the text gets one in front), it is many times faster than `^` with MULTILINE.
_DEEP_CANDIDATE_RE = re.compile(rf"\n[ \t>*+\-.)0-9]{{{MAX_NESTING + 1}}}")
_RULE_RE = re.compile(r"[ ]{0,3}([-*_])(?:[ ]*\1){2,}[ ]*$")  # `- - - …` is a rule, not lists
_TABLE_DELIMITER_RE = re.compile(r"\n(?=[^\n]*-)[ \t>:-]*\|[ \t>|:-]*(?=\n|\Z)")  # after "\n", as above
_BLANK_LINE_RE = re.compile(r"\n[ \t>]*(?:\n|$)")
_FENCE_RE = re.compile(r"^[ \t>]*(`{3,}|~{3,})", re.MULTILINE)
#: A line Python-Markdown takes off the block it is in: a heading, a rule or setext underline, an
#: admonition or details title (after "\n", as above).
_BREAK_LINE_RE = re.compile(r"\n[ ]{0,3}(?:#|!!!|\?\?\?|[-*_=][-*_= ]*(?=\n|\Z))")
#: A line that starts an inline text of its own: a list item, table row, heading, quote, title.
_OWN_TEXT_LINE_RE = re.compile(r"[ \t]*(?:[-*+][ \t]|\d{1,9}[.)][ \t]|[|#>]|!!!|\?\?\?)|.*\|")
_TAG_RE = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9-]*)[^<>]*>")
_TAG_START_RE = re.compile(r"<[A-Za-z]")
#: Elements that do not nest: void ones, and ones whose end tag the HTML parser implies.
_FLAT_ELEMENTS = {
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source", "track",
    "wbr", "p", "li", "dt", "dd", "tr", "td", "th", "thead", "tbody", "tfoot", "option", "optgroup", "rb",
    "rt", "rtc", "rp", "colgroup", "caption", "html", "head", "body",
}  # fmt: skip


def markdown_problem(text: str) -> tuple[int, str] | None:
    """The first (line, reason) at which Markdown `text` passes a rendering limit; None within them."""
    fences = _Fences(text)
    checks = (_too_deep, _too_long_table, _too_many_breaks, _too_much_inline, _html_too_deep, _unclosed_tags)
    for check in checks:  # positions in `text`
        problem = check(text, fences)
        if problem:
            position, reason = problem
            return text.count("\n", 0, position) + 1, reason
    return None


class _Fences:
    """Where fenced code blocks are, found roughly and only when a check needs to excuse code."""

    def __init__(self, text: str):
        self.text = text
        self._spans: list[tuple[int, int]] | None = None

    def __contains__(self, position: int) -> bool:
        if self._spans is None:
            self._spans = self._find()
        index = bisect.bisect_right(self._spans, (position, len(self.text) + 1)) - 1
        return index >= 0 and self._spans[index][0] <= position < self._spans[index][1]

    def _find(self) -> list[tuple[int, int]]:
        spans, opening, start = [], "", 0
        for match in _FENCE_RE.finditer(self.text):
            fence = match.group(1)
            if not opening:
                opening, start = fence, match.start()
            elif fence[0] == opening[0] and len(fence) >= len(opening):
                spans.append((start, match.end()))
                opening = ""
        if opening:
            spans.append((start, len(self.text)))
        return spans


def _too_deep(text, fences):
    """A line nested deeper than MAX_NESTING: Python-Markdown recurses once per level."""
    for candidate in _DEEP_CANDIDATE_RE.finditer("\n" + text):
        start = candidate.start()  # of the line in `text`: the "\n" in front shifted everything by one
        line_end = text.find("\n", start)
        line = text[start : line_end if line_end >= 0 else len(text)]
        if _DEEP_LINE_RE.match(text, start) and start not in fences and not _RULE_RE.match(line):
            return start, f"lists, quotes or indented blocks nested deeper than {MAX_NESTING} levels"
    return None


def _too_long_table(text, fences):
    """A table with more than MAX_TABLE_ROWS rows (its header line is reported)."""
    if "|" not in text:
        return None
    probe, position = "\n" + text, 0
    while match := _TABLE_DELIMITER_RE.search(probe, position):
        start, end = match.start(), match.end() - 1  # the delimiter line in `text`
        blank = _BLANK_LINE_RE.search(text, end)
        block_end = blank.start() if blank else len(text)
        if text.count("\n", end, block_end) > MAX_TABLE_ROWS and start not in fences:
            header = text.rfind("\n", 0, max(start - 1, 0)) + 1
            return header, f"table has more than {MAX_TABLE_ROWS:,} rows; split it"
        position = max(block_end, end) + 1
    return None


def _too_many_breaks(text, fences):
    """Headings or rules packed into one long block: Python-Markdown rescans the rest after each."""
    if len(text) * (text.count("\n") + 1) <= MAX_BLOCK_RESCAN:  # as if every line were one, in one block
        return None
    starts = [match.start() for match in _BREAK_LINE_RE.finditer("\n" + text)]  # of the lines in `text`
    if len(text) * len(starts) - sum(starts) <= MAX_BLOCK_RESCAN:  # as if all were one block
        return None
    rescan, block_end, first = 0, -1, 0
    for start in starts:
        if start >= block_end:  # a new block: where does it end?
            blank = _BLANK_LINE_RE.search(text, start)
            block_end, first = (blank.start() if blank else len(text)), start
        if start not in fences:
            rescan += block_end - start
        if rescan > MAX_BLOCK_RESCAN:
            return first, "too many headings or rules in one block without blank lines between them: add blank lines"
    return None


def _inline_marks(text: str) -> int:
    """How many places in `text` could start inline markup (an upper bound)."""
    marks = sum(text.count(char) for char in "*_`&<[~@")
    return marks + text.count("  \n") + text.count("://") + text.lower().count("www.")


def _too_much_inline(text, fences):
    """Long paragraphs full of inline markup: Python-Markdown copies the paragraph for each."""
    # Each character is part of at most one mark: a text this short cannot pass the limit.
    if len(text) * len(text) <= MAX_INLINE_WORK:
        return None
    if _inline_marks(text) * len(text) <= MAX_INLINE_WORK:  # as if it all were one paragraph
        return None
    work, worst, worst_at, start, lines = 0, 0, 0, 0, []
    position = 0
    for line in text.split("\n") + [""]:
        own = not line.strip() or position in fences or _OWN_TEXT_LINE_RE.match(line)
        if own and lines:  # the paragraph so far ends here
            paragraph = "\n".join(lines)
            cost = _inline_marks(paragraph) * len(paragraph)
            work += cost
            if cost > worst:
                worst, worst_at = cost, start
            lines = []
        if line.strip() and position not in fences:
            if not lines:
                start = position
            lines.append(line)
        position += len(line) + 1
    if work <= MAX_INLINE_WORK:
        return None
    return worst_at, "a long paragraph full of links, emphasis or code spans: split it with blank lines"


def _html_too_deep(text, fences):
    """Raw HTML elements nested deeper than MAX_HTML_NESTING: nh3's parser is quadratic in depth."""
    if text.count("<") <= MAX_HTML_NESTING:
        return None
    depth = 0
    for match in _TAG_RE.finditer(text):
        closing, name = match.group(1), match.group(2).lower()
        if name in _FLAT_ELEMENTS or match.group().endswith("/>") or match.start() in fences:
            continue
        depth = max(depth - 1, 0) if closing else depth + 1
        if depth > MAX_HTML_NESTING:
            return match.start(), f"HTML elements nested deeper than {MAX_HTML_NESTING} levels"
    return None


def _unclosed_tags(text, fences):
    """Many `<` that no `>` follows: Python's `html.parser` rescans the rest of the file from each one."""
    last_close = text.rfind(">")
    scan = sum(len(text) - match.start() for match in _TAG_START_RE.finditer(text, last_close + 1))
    if scan <= MAX_UNCLOSED_TAG_SCAN:
        return None
    starts = [m.start() for m in _TAG_START_RE.finditer(text, last_close + 1) if m.start() not in fences]
    if sum(len(text) - start for start in starts) <= MAX_UNCLOSED_TAG_SCAN:
        return None
    return starts[0], f"{len(starts):,} '<' that no '>' follows, from here on: write &lt; or use `code`"


def size_text(limit: int) -> str:
    """`2 MB`, `64 KB`: a byte limit as people write it."""
    for unit, factor in (("MB", 1024 * 1024), ("KB", 1024)):
        if limit >= factor and limit % factor == 0:
            return f"{limit // factor} {unit}"
    return f"{limit} bytes"
