"""Python-Markdown's slow paths swapped for processors that give the same answers in bounded time."""

from __future__ import annotations

import bisect
import re

from markdown import inlinepatterns
from markdown.blockparser import BlockParser
from markdown.extensions import Extension
from markdown.extensions.admonition import AdmonitionProcessor
from markdown.extensions.footnotes import FootnoteExtension, FootnoteInlineProcessor
from markdown.extensions.tables import TableProcessor
from markdown.extensions.toc import TocTreeprocessor
from markdown.treeprocessors import Treeprocessor
from pymdownx.details import DetailsProcessor

from .contents import _Toc
from .inline import _InlineSkipping
from .linking import _FirstOf

# Python-Markdown has quadratic paths and recurses once per level of nesting. What follows
# gives the same answers in bounded time; the golden test checks the output did not move.

_BRACKET_RE = re.compile(r"[\[\]()\"']")


class _InlineText:
    """Where each `[` and `(` of one inline text closes (-1: nowhere), and where its quotes are."""

    __slots__ = ("text", "closes", "quotes", "seen", "seen_from")

    def __init__(self, text: str):
        self.text = text
        self.seen, self.seen_from = text, 0  # the last text found equal to this one from `seen_from` on
        self.closes: dict[int, int] = {}
        self.quotes: list[int] = []
        open_squares: list[int] = []
        open_rounds: list[int] = []
        for match in _BRACKET_RE.finditer(text):
            char, at = match.group(), match.start()
            if char == "[":
                open_squares.append(at)
            elif char == "(":
                open_rounds.append(at)
            elif char == "]":
                if open_squares:
                    self.closes[open_squares.pop()] = at
            elif char == ")":
                if open_rounds:
                    self.closes[open_rounds.pop()] = at
            else:
                self.quotes.append(at)
        for at in open_squares + open_rounds:
            self.closes[at] = -1


class _ClosingBrackets:
    """The `]` or `)` closing a bracket of an inline text, looked up instead of scanned for.

    Python-Markdown's link processors scan from every `[` to its `]` (and every `(` to its `)`),
    to the end of the paragraph when there is none: `[` × 16,000 took 42 s. A table per text
    answers the same; it stays valid from a bracket on while the processors replace what they
    matched before that bracket, which is how they go through a text.
    """

    KEEP = 4  # a paragraph's text and the texts of links being processed inside it

    def __init__(self):
        self.tables: list[_InlineText] = []

    def find(self, data: str, opening: int) -> int:
        """Position in `data` of the bracket closing the one at `opening`, or -1."""
        table, shift = self._table(data, opening)
        close = table.closes[opening + shift]
        return close - shift if close >= 0 else -1

    def has_quote(self, data: str, opening: int, start: int, end: int) -> bool:
        """Whether `data[start:end]` holds a quote; `start` and `end` lie after the bracket at `opening`."""
        table, shift = self._table(data, opening)
        index = bisect.bisect_left(table.quotes, start + shift)
        return index < len(table.quotes) and table.quotes[index] < end + shift

    def _table(self, data: str, opening: int) -> tuple[_InlineText, int]:
        """A table whose text equals `data` from `opening` on, and the offset between the two."""
        for table in self.tables:
            shift = len(table.text) - len(data)
            if table.seen is data and opening >= table.seen_from:
                return table, shift
            if opening + shift >= 0 and table.text.endswith(data[opening:]):
                # Compared once per text and position, not once per bracket: later brackets of
                # the same text lie further on, where it is equal too.
                table.seen, table.seen_from = data, opening
                return table, shift
        table = _InlineText(data)
        self.tables = [table, *self.tables[: self.KEEP - 1]]
        return table, 0


class _FastLinkText:
    """`getText` of Python-Markdown's link processors, from `_ClosingBrackets`: same result, no scan."""

    brackets: _ClosingBrackets

    def getText(self, data, index):
        if index < 1 or data[index - 1] != "[":
            return super().getText(data, index)
        close = self.brackets.find(data, index - 1)
        if close < 0:
            # Python-Markdown returns the rest of the text here, which every caller drops when
            # it is not handled: copying it for each `[` made `[` × 100,000 quadratic again.
            return "", len(data), False
        return data[index:close], close + 1, True


class _FastLink(_FastLinkText):
    """`getLink` too: Python-Markdown's scan is kept only where a quote may start a title."""

    def getLink(self, data, index):
        match = self.RE_LINK.match(data, pos=index)
        if not match or match.group(1):
            return super().getLink(data, index)
        close = self.brackets.find(data, index)
        if self.brackets.has_quote(data, index, match.end(), close if close >= 0 else len(data)):
            return super().getLink(data, index)
        if close < 0:
            return "", None, len(data), False
        return self.unescape(data[match.end() : close]).strip(), None, close + 1, True


class _Reference(_FastLinkText, inlinepatterns.ReferenceInlineProcessor):
    pass


class _ShortReference(_FastLinkText, inlinepatterns.ShortReferenceInlineProcessor):
    pass


class _ImageReference(_FastLinkText, inlinepatterns.ImageReferenceInlineProcessor):
    pass


class _ShortImageReference(_FastLinkText, inlinepatterns.ShortImageReferenceInlineProcessor):
    pass


class _Link(_FastLink, inlinepatterns.LinkInlineProcessor):
    pass


class _Image(_FastLink, inlinepatterns.ImageInlineProcessor):
    pass


#: Python-Markdown's processor class -> ours.
_FAST_INLINE = {
    cls.__bases__[1]: cls for cls in (_Reference, _ShortReference, _ImageReference, _ShortImageReference, _Link, _Image)
}


class _FastTableProcessor(TableProcessor):
    """Tables, deciding from a block's first two lines whether it can be one.

    Python-Markdown tries every block processor again on what follows each heading or rule it
    takes off a block, and this test split the whole rest into rows each time: `## h` × 20,000
    without blank lines took 44 s. The full test runs only when the first two rows pass it,
    which they must for the whole block to pass.
    """

    def test(self, parent, block):
        first, newline, rest = block.partition("\n")
        if "|" not in first:  # one cell and no border: never a table
            return False
        head = first + newline + rest.partition("\n")[0]
        return super().test(parent, head) and (head == block or super().test(parent, block))


class _LineStart:
    """A block pattern that can match only where a line starts with `literal`, checked first.

    Python-Markdown searches the whole rest of a block with these after each line it takes off
    (see `_FastTableProcessor`); `in` finds that the literal is missing many times faster.
    """

    def __init__(self, pattern: re.Pattern, literal: str):
        self.pattern, self.literal, self.after_newline = pattern, literal, "\n" + literal

    def search(self, text, *args):
        if not text.startswith(self.literal) and self.after_newline not in text:
            return None
        return self.pattern.search(text, *args)

    def __getattr__(self, name):
        return getattr(self.pattern, name)


class _Holding:
    """A block pattern that can match only a text holding one of `literals`, checked first.

    Python-Markdown tries the block quote, setext heading, rule, footnote and reference patterns
    on every block (and again on what follows each line taken off one); with no literal prefix a
    regular expression tries each position of the block in turn. `in` finds that the character
    each needs is missing many times faster, and then nothing can match.
    """

    def __init__(self, pattern: re.Pattern, *literals: str):
        self.pattern, self.literals = pattern, literals

    def search(self, text, *args):
        if not any(literal in text for literal in self.literals):
            return None
        return self.pattern.search(text, *args)

    def match(self, text, *args):
        if not any(literal in text for literal in self.literals):
            return None
        return self.pattern.match(text, *args)

    def __getattr__(self, name):
        return getattr(self.pattern, name)


class _Unindented:
    """Admonitions' and details' `parse_content`, answering at once for a block that is not indented.

    Both processors ask it of every block (their `test`), and it looks for the element the block
    could continue before it checks the indent that continuing one takes: the same answer, sooner.
    """

    def parse_content(self, parent, block):
        if self.current_sibling is None and not block.startswith(" " * self.tab_length):
            return None, block, ""
        return super().parse_content(parent, block)


class _Admonitions(_Unindented, AdmonitionProcessor):
    pass


class _Details(_Unindented, DetailsProcessor):
    pass


class _Blocks:
    """The blocks of text still to parse, kept last one first.

    Python-Markdown takes blocks off the front of a list (`pop(0)`) and puts what remains of one
    back in front (`insert(0, …)`): each moves every block after it, so 80,000 paragraphs took
    6 s there. Block processors use nothing but those, `[0]` (read and written) and truth; the
    rest of a list's indexing is here too, for any that would.
    """

    __slots__ = ("_reversed",)

    def __init__(self, blocks: list[str]):
        self._reversed = blocks[::-1]

    def __bool__(self):
        return bool(self._reversed)

    def __len__(self):
        return len(self._reversed)

    def __iter__(self):
        return reversed(self._reversed)

    def __getitem__(self, index: int) -> str:
        return self._reversed[-1 - self._position(index)]

    def __setitem__(self, index: int, block: str) -> None:
        self._reversed[-1 - self._position(index)] = block

    def pop(self, index: int = -1) -> str:
        return self._reversed.pop(-1 - self._position(index))

    def insert(self, index: int, block: str) -> None:
        size = len(self._reversed)
        position = min(max(index + size, 0) if index < 0 else index, size)  # as list.insert clamps
        self._reversed.insert(size - position, block)

    def _position(self, index: int) -> int:
        position = index + len(self._reversed) if index < 0 else index
        if not 0 <= position < len(self._reversed):
            raise IndexError("block index out of range")
        return position


class _BlockParser(BlockParser):
    """Python-Markdown's block parser: its processors listed once per document, long chunks in `_Blocks`.

    It asked the registry for its processors for every block (a sort check and a new list each
    time). They do not change while a document is parsed; outside one, the registry is asked.
    """

    #: Up to this many blocks a list's `pop(0)` moves too little to matter, and answers faster.
    SHORT = 1000

    _listed: list | None = None

    def parseDocument(self, lines):
        self._listed = list(self.blockprocessors)
        try:
            return super().parseDocument(lines)
        finally:
            self._listed = None

    def parseChunk(self, parent, text):
        blocks = text.split("\n\n")
        self.parseBlocks(parent, blocks if len(blocks) <= self.SHORT else _Blocks(blocks))

    def parseBlocks(self, parent, blocks):
        processors = self._listed if self._listed is not None else self.blockprocessors
        while blocks:
            for processor in processors:
                if processor.test(parent, blocks[0]) and processor.run(parent, blocks) is not False:
                    break  # run returns True or None


class _Footnotes(FootnoteExtension):
    """Footnotes whose repeated references get their ids in constant time.

    Python-Markdown counts up from the first id for every repeat (`See[^1] ` × 10,000 took
    58 s); resuming from the id the last repeat took gives the same ids, as ids are never freed.
    """

    def reset(self):
        super().reset()
        self.last_unique: dict[str, str] = {}
        self.ordered: set[str] = set()

    def unique_ref(self, reference, found=False):
        if not found:
            return reference
        original = reference
        reference = self.last_unique.get(original, original)
        separator = self.get_separator()
        while reference in self.used_refs:
            ref, rest = reference.split(separator, 1)
            numbered = re.match(r"(fnref)(\d+)", ref)
            if numbered:
                reference = f"{numbered.group(1)}{int(numbered.group(2)) + 1}{separator}{rest}"
            else:
                reference = f"{ref}2{separator}{rest}"
        self.used_refs.add(reference)
        self.last_unique[original] = reference
        self.found_refs[original] = self.found_refs.get(original, 0) + 1
        return reference

    def addFootnoteRef(self, id):
        if id not in self.ordered:
            self.ordered.add(id)
            self.footnote_order.append(id)

    def extendMarkdown(self, md):
        super().extendMarkdown(md)
        definitions = md.parser.blockprocessors["footnote"]
        definitions.RE = _Holding(definitions.RE, "[^")
        references = md.inlinePatterns["footnote"]
        references.__class__ = _FootnoteReferences
        references.compiled_re = re.compile(r"\[\^")
        references.closing = _FirstOf("]")


class _FootnoteReferences(FootnoteInlineProcessor):
    r"""`[^id]` references: the pattern finds `[^`, `_FirstOf` its `]`.

    As the regular expression `\[\^([^\]]*)\]`, every `[^` scanned to the next `]`: `[^` × 8,000 took seconds.
    """

    closing: _FirstOf

    def handleMatch(self, m, data):
        close = self.closing(data, m.end())
        if close == len(data):
            return None, None, None
        element, _, _ = super().handleMatch(_Span(m.start(), close + 1, data[m.end() : close]), data)
        # Not a footnote: go on after the `]`, as the regular expression's next match would.
        return element, m.start(), close + 1


class _Span:
    r"""What `FootnoteInlineProcessor.handleMatch` reads of a match of `\[\^([^\]]*)\]`."""

    def __init__(self, start: int, end: int, inside: str):
        self._start, self._end, self.inside = start, end, inside

    def group(self, number=0):
        return self.inside

    def start(self, number=0):
        return self._start

    def end(self, number=0):
        return self._end


#: Elements nested deeper than this (after inline markup, e.g. `**` × 20,000) become plain text;
#: the other limits of the Markdown are checked before rendering (`markdown_limits.markdown_problem`).
MAX_TREE_DEPTH = 200


class _DepthLimit(Treeprocessor):
    """Elements nested deeper than MAX_TREE_DEPTH become their plain text.

    Inline markup nests without limit (`**` × 20,000), and the steps after this one recurse
    once per level: past Python's recursion limit the whole import stopped.
    """

    def run(self, root):
        stack = [(root, 0)]
        while stack:
            element, depth = stack.pop()
            for child in element:
                if depth + 1 < MAX_TREE_DEPTH:
                    stack.append((child, depth + 1))
                elif len(child):
                    text = "".join(child.itertext())
                    for grandchild in list(child):
                        child.remove(grandchild)
                    child.text = text


class _FasterExtension(Extension):
    """Swap in the processors above: Python-Markdown's answers with less work.

    Same instances in the same order, only the slow methods replaced: bounded where they were
    quadratic, skipped where they cannot match. `_new_markdown(fast=False)` leaves them out,
    to compare with.
    """

    def __init__(self):
        super().__init__()

    def extendMarkdown(self, md):
        brackets = _ClosingBrackets()
        for name in ("reference", "link", "image_link", "image_reference", "short_reference", "short_image_ref"):
            processor = md.inlinePatterns[name]
            processor.__class__ = _FAST_INLINE[type(processor)]
            processor.brackets = brackets
        md.parser.__class__ = _BlockParser
        blocks = md.parser.blockprocessors
        blocks["table"].__class__ = _FastTableProcessor
        # Each of these patterns starts with `(?:^|\n)` and a literal.
        blocks["admonition"].__class__ = _Admonitions
        blocks["details"].__class__ = _Details
        blocks["admonition"].RE = _LineStart(blocks["admonition"].RE, "!!!")
        blocks["details"].START = _LineStart(blocks["details"].START, "???")
        blocks["hashheader"].RE = _LineStart(blocks["hashheader"].RE, "#")
        # What each of these patterns cannot match without (see `_Holding`).
        blocks["quote"].RE = _Holding(blocks["quote"].RE, ">")
        blocks["setextheader"].RE = _Holding(blocks["setextheader"].RE, "\n=", "\n-")
        blocks["hr"].SEARCH_RE = _Holding(blocks["hr"].SEARCH_RE, "-", "_", "*")
        blocks["reference"].RE = _Holding(blocks["reference"].RE, "]:")
        md.treeprocessors.register(_DepthLimit(md), "nexus_depth_limit", 19)
        if type(md.treeprocessors["toc"]) is TocTreeprocessor:
            md.treeprocessors["toc"].__class__ = _Toc

    @staticmethod
    def after_all(md):
        """What needs every extension's patterns registered: called once the converter is built."""
        _InlineSkipping.install(md)
        md.is_block_level = _BlockLevel(md)


class _BlockLevel:
    """`Markdown.is_block_level` by a set: it scanned a list of 50 tags, 200 times a code-heavy note.

    Extensions add their tags while the converter is built; should the list change later, the
    set is made again (the list grows or is replaced; nothing here edits it in place).
    """

    def __init__(self, md):
        self.md = md
        self._known(md.block_level_elements)

    def _known(self, elements: list[str]) -> None:
        self.elements, self.size, self.tags = elements, len(elements), frozenset(elements)

    def __call__(self, tag) -> bool:
        if self.md.block_level_elements is not self.elements or len(self.elements) != self.size:
            self._known(self.md.block_level_elements)
        return isinstance(tag, str) and tag.lower().rstrip("/") in self.tags
