"""Markdown to sanitized HTML, table of contents and plain text.

Rendering happens once, at import; requests only read what this module produced.
It knows nothing of Flask or the database: links to other entries, and to files
beside the notes (images, PDFs), are resolved through callables the importer passes in.
"""

from __future__ import annotations

import bisect
import functools
import html
import posixpath
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

import markdown
import nh3
from markdown import inlinepatterns
from markdown.blockparser import BlockParser
from markdown.extensions import Extension
from markdown.extensions.footnotes import FootnoteExtension, FootnoteInlineProcessor
from markdown.extensions.tables import TableProcessor
from markdown.inlinepatterns import InlineProcessor
from markdown.treeprocessors import InlineProcessor as InlineStep
from markdown.treeprocessors import Treeprocessor
from markdown.util import AtomicString
from pymdownx import highlight, superfences

from .content import ContentError, markdown_problem

#: Bump when the output of `render` changes, so unchanged files are rendered again.
RENDERER_VERSION = "7"

WORDS_PER_MINUTE = 220

ALLOWED_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "code", "dd", "del", "details", "div", "dl", "dt",
    "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "input", "ins", "kbd", "label",
    "li", "mark", "ol", "p", "pre", "s", "small", "span", "strong", "sub", "summary", "sup",
    "table", "tbody", "td", "tfoot", "th", "thead", "tr", "ul",
}  # fmt: skip
ALLOWED_ATTRIBUTES = {
    "*": {"class", "id", "title"},
    "a": {"href", "rel"},
    "abbr": {"title"},
    "img": {"src", "alt", "width", "height", "loading"},
    "input": {"type", "checked", "disabled"},
    "ol": {"start"},
    "td": {"align", "colspan", "rowspan"},
    "th": {"align", "colspan", "rowspan", "scope"},
}
URL_SCHEMES = {"http", "https", "mailto"}
BLOCK_CONTAINERS = {"blockquote", "div", "li", "ol", "ul", "table", "details", "dl", "pre"}

#: Elements nested deeper than this (after inline markup, e.g. `**` × 20,000) become plain text;
#: the other limits of the Markdown are checked before rendering (`content.markdown_problem`).
MAX_TREE_DEPTH = 200

LinkResolver = Callable[[str], "str | None"]
#: A file's path in the content folder -> its URL relative to the site root, or None if it is not served.
AttachmentResolver = Callable[[str], "str | None"]


@dataclass
class Rendered:
    """What the importer stores for one entry."""

    html: str
    text: str
    toc: list[dict]
    headings: list[str]
    first_paragraph: str
    word_count: int
    reading_minutes: int
    has_diagram: bool
    links: list[str] = field(default_factory=list)
    broken_links: list[tuple[int, str]] = field(default_factory=list)
    attachments: list[str] = field(default_factory=list)  # paths of the files linked and served
    broken_attachments: list[tuple[int, str, str]] = field(default_factory=list)  # (line, target, path)


class _LinkRewriter(Treeprocessor):
    """Point links at other Markdown files (and `[[wiki]]` links) to those entries' pages."""

    def __init__(self, md, state):
        super().__init__(md)
        self.state = state

    def run(self, root):
        for anchor in root.iter("a"):
            href = anchor.get("href", "")
            if anchor.get("data-wiki") is not None:
                target = anchor.attrib.pop("data-wiki")
                self.state.rewrite(anchor, target, wiki=True)
            elif _is_markdown_link(href):
                self.state.rewrite(anchor, href, wiki=False)
            elif _is_file_link(href):
                self.state.attach(anchor, "href", href)
        for image in root.iter("img"):
            if _is_file_link(image.get("src", "")):
                self.state.attach(image, "src", image.get("src"))


class _WikiLinkPattern(InlineProcessor):
    r"""`[[slug]]` or `[[slug|label]]` becomes a link the rewriter resolves.

    It matches what `\[\[([^\]|\n]+?)(?:\|([^\]\n]+))?\]\]` does, but the pattern finds `[[` only and
    the rest is found with `_FirstOf`: as that regular expression, every `[[` scanned to the end
    of its line (`[[a ` × 8,000 took over a minute).
    """

    def __init__(self, pattern, md=None):
        super().__init__(pattern, md)
        self.target_end, self.label_end = _FirstOf("]|\n"), _FirstOf("]\n")

    def handleMatch(self, m, data):
        import xml.etree.ElementTree as etree  # builds elements, parses no XML  # nosec B405

        start = m.end()
        stop = self.target_end(data, start)
        if stop == start or stop == len(data) or data[stop] == "\n":
            return None, None, None
        end, label = stop, None
        if data[stop] == "|":
            end = self.label_end(data, stop + 1)
            if end == stop + 1 or end == len(data) or data[end] == "\n":
                return None, None, None
            label = data[stop + 1 : end]
        if not data.startswith("]]", end):
            return None, None, None
        target = data[start:stop]
        el = etree.Element("a")
        el.set("data-wiki", target.strip())
        el.set("href", "#")
        el.text = (label or target).strip()
        return el, m.start(0), end + 2


class _FirstOf:
    """Where the first of some characters is from a position on, remembered for the last text.

    Inline patterns go through a text from left to right: where a character was found from one
    `[[` on holds for every later `[[` before it, so a line of `[[` without a `]` is not scanned
    again from each. Kept per character: `|` may be near while `]` is nowhere.
    """

    def __init__(self, chars: str):
        self.text: str | None = None
        self.known = {char: (0, -1) for char in chars}  # char -> (searched from, found at or len)

    def __call__(self, text: str, start: int) -> int:
        """Position of the first of the characters in `text` from `start` on, or len(text)."""
        if text is not self.text:
            self.text, self.known = text, dict.fromkeys(self.known, (0, -1))
        first = len(text)
        for char, (since, at) in self.known.items():
            if not since <= start <= at:
                found = text.find(char, start)
                since, at = start, found if found >= 0 else len(text)
                self.known[char] = since, at
            first = min(first, at)
        return first


class _LinkExtension(Extension):
    def __init__(self, state, **kwargs):
        self.state = state
        super().__init__(**kwargs)

    def extendMarkdown(self, md):
        md.inlinePatterns.register(_WikiLinkPattern(r"\[\[", md), "nexus_wikilink", 175)
        md.treeprocessors.register(_LinkRewriter(md, self.state), "nexus_links", 1)


class _LinkState:
    """Per-render context for link rewriting; reset before each document."""

    def __init__(self):
        self.reset(None, None, "", "")

    def reset(self, source_path, resolver, source, entry_slug, attachment_resolver=None):
        self.source_path = source_path
        self.resolver = resolver
        self.attachment_resolver = attachment_resolver
        self.source = source
        self.entry_slug = entry_slug
        self.links: list[str] = []
        self.broken: list[tuple[int, str]] = []
        self.attachments: list[str] = []
        self.broken_attachments: list[tuple[int, str, str]] = []
        self._lines: dict[str, int] = {}
        self._newlines: list[int] | None = None

    def rewrite(self, anchor, target, wiki):
        """Resolve one link target, or record it as broken with its source line."""
        if self.resolver is None or self.source_path is None:
            return
        if wiki:
            path, fragment = target, ""
            slug = self.resolver("[[" + path + "]]")
        else:
            parts = urlsplit(target)
            path = posixpath.normpath(posixpath.join(posixpath.dirname(self.source_path), unquote(parts.path)))
            fragment = parts.fragment
            slug = self.resolver(path)
        if slug is None:
            self.broken.append((self._line_of(target), target))
            anchor.set("class", "broken-link")
            return
        self.links.append(slug)
        anchor.set("href", _relative_entry_href(self.entry_slug, slug, fragment))

    def attach(self, element, attribute, target):
        """Point a relative link to a file (or an image's source) at the file's served URL, or mark it broken."""
        if self.attachment_resolver is None or self.source_path is None:
            return
        parts = urlsplit(target)
        path = posixpath.normpath(posixpath.join(posixpath.dirname(self.source_path), unquote(parts.path)))
        url = self.attachment_resolver(path)
        if url is None:
            self.broken_attachments.append((self._line_of(target), target, path))
            element.set("class", "broken-link")
            return
        self.attachments.append(path)
        # From /entries/<slug>, one `../` per slash of the slug and one more climb to the site root.
        href = "../" * (self.entry_slug.count("/") + 1) + url
        element.set(attribute, href + ("#" + parts.fragment if parts.fragment else ""))

    def _line_of(self, target):
        """The first source line linking to a target (`](target)`), else mentioning it, for warnings."""
        # Remembered, and counted from a list of line ends: a note of 50,000 broken links
        # would otherwise count lines from the top for each.
        if target not in self._lines:
            for spelling in (f"]({target})", f"]({target}", target):
                index = self.source.find(spelling)
                if index >= 0:
                    break
            if self._newlines is None:
                self._newlines = [match.start() for match in re.finditer("\n", self.source)]
            self._lines[target] = bisect.bisect_left(self._newlines, index) + 1 if index >= 0 else 1
        return self._lines[target]


# --- bounded work ----------------------------------------------------------------------
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
    """Python-Markdown's block parser, with the blocks of a chunk in `_Blocks`."""

    def parseChunk(self, parent, text):
        self.parseBlocks(parent, _Blocks(text.split("\n\n")))


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


#: What the text must hold for each inline pattern to match anywhere in it (by pattern name).
_INLINE_NEEDS: dict[str, Callable[[str], bool]] = {
    "backtick": lambda text: "`" in text,
    "escape": lambda text: "\\" in text,
    "footnote": lambda text: "[^" in text,
    "nexus_wikilink": lambda text: "[[" in text,
    "reference": lambda text: "[" in text,
    "link": lambda text: "[" in text,
    "image_link": lambda text: "![" in text,
    "image_reference": lambda text: "![" in text,
    "short_reference": lambda text: "[" in text,
    "short_image_ref": lambda text: "![" in text,
    "autolink": lambda text: "<" in text,
    "automail": lambda text: "<" in text,
    "linebreak": lambda text: "  \n" in text,
    "html": lambda text: "<" in text,
    "entity": lambda text: "&" in text,
    "em_strong": lambda text: "*" in text or "_" in text,
    "delimiter": lambda text: "~" in text,
    "magic-link": lambda text: "://" in text or "www." in text.lower(),
    "magic-mail": lambda text: "@" in text,
}


class _InlineSkipping(InlineStep):
    """Python-Markdown's inline step, skipping the patterns a text lacks the characters for.

    It tries each of the 19 patterns on every text in turn (about 280 tries a note), each a
    regular-expression search and a dozen lines of Python; most texts have no `[`, `<`, `&` or
    backtick at all. A skipped pattern is one that would not have matched, so what follows is
    the same: this is Python-Markdown 3.11's `__handleInline` with that test added.
    """

    can_match: list[Callable[[str], bool] | None]

    def _InlineProcessor__handleInline(self, data, patternIndex=0):  # the name-mangled private method
        if isinstance(data, AtomicString):
            return data
        patterns, can_match = self.inlinePatterns, self.can_match
        start = 0
        while patternIndex < len(patterns):
            test = can_match[patternIndex]
            # Tested once per pattern (`start` is 0 until it matches): after a match it goes on from there.
            if start == 0 and test is not None and not test(data):
                patternIndex += 1  # as after a pattern that did not match
                continue
            data, matched, start = self._InlineProcessor__applyPattern(
                patterns[patternIndex], data, patternIndex, start
            )
            if not matched:
                patternIndex += 1
        return data


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
        blocks["admonition"].RE = _LineStart(blocks["admonition"].RE, "!!!")
        blocks["details"].START = _LineStart(blocks["details"].START, "???")
        blocks["hashheader"].RE = _LineStart(blocks["hashheader"].RE, "#")
        md.treeprocessors.register(_DepthLimit(md), "nexus_depth_limit", 19)

    @staticmethod
    def after_all(md):
        """What needs every extension's patterns registered: called once the converter is built."""
        inline = md.treeprocessors["inline"]
        inline.__class__ = _InlineSkipping
        # Looked up by position, about 280 times a note: a list answers several times faster than
        # the registry, which sorts and type-checks on each lookup.
        inline.inlinePatterns = list(md.inlinePatterns)
        inline.can_match = [None] * len(inline.inlinePatterns)
        for name, test in _INLINE_NEEDS.items():
            if name in md.inlinePatterns:
                inline.can_match[md.inlinePatterns.get_index_for_name(name)] = test


def _is_markdown_link(href):
    """A relative link to a `.md` file (with an optional #fragment)."""
    try:
        parts = urlsplit(href)
    except ValueError:  # e.g. `http://[` ("Invalid IPv6 URL"): no link to an entry
        return False
    return not parts.scheme and not parts.netloc and parts.path.lower().endswith(".md")


def _is_file_link(href):
    """A relative link to anything but a Markdown file: a file beside the note (absolute paths are the site's own)."""
    if "\x02" in href:  # Markdown's placeholder: an autolinked e-mail address, spelled in entities
        return False
    try:
        parts = urlsplit(href)
    except ValueError:  # e.g. an unclosed IPv6 bracket: not a path either
        return False
    return not parts.scheme and not parts.netloc and bool(parts.path) and not parts.path.startswith("/")


def _relative_entry_href(entry_slug, target_slug, fragment):
    """A link relative to the linking entry's URL, so it works under any path prefix."""
    # An entry `a/b` is served at /entries/a/b: `../` per slash climbs back to /entries/.
    depth = entry_slug.count("/")
    href = ("../" * depth if depth else "./") + target_slug
    return href + ("#" + fragment if fragment else "")


@functools.cache
def _markdown():
    """One configured Markdown converter per process (building one costs milliseconds)."""
    return _new_markdown()


def _new_markdown(*, fast: bool = True):
    """A converter and its link state; `fast=False` keeps Python-Markdown's own (slower) processors."""
    state = _LinkState()
    md = markdown.Markdown(
        extensions=[
            "toc",
            "tables",
            _Footnotes() if fast else "footnotes",
            "admonition",
            "sane_lists",
            "pymdownx.superfences",
            (_Highlight if fast else highlight.HighlightExtension)(
                use_pygments=True, css_class="highlight", guess_lang=False
            ),
            "pymdownx.inlinehilite",
            "pymdownx.tasklist",
            "pymdownx.details",
            "pymdownx.tilde",
            "pymdownx.magiclink",
            _LinkExtension(state),
            *([_FasterExtension()] if fast else []),
        ],
        extension_configs={
            "toc": {"permalink": "#", "permalink_title": "Link to this section", "toc_depth": "2-4"},
            "pymdownx.superfences": {
                "custom_fences": [{"name": "mermaid", "class": "mermaid", "format": superfences.fence_code_format}]
            },
            "pymdownx.tasklist": {"custom_checkbox": False},
        },
        output_format="html",
    )
    if fast:
        _FasterExtension.after_all(md)
    return md, state


class _Highlight(highlight.HighlightExtension):
    """pymdownx.highlight with one Pygments lexer per language and one stylesheet per style.

    For every code block pymdownx looks the lexer up by name and builds a formatter whose
    constructor turns the whole style into CSS tables (`_create_stylesheet`): most of the time
    Pygments took. The output is the same (the golden test checks it).
    """

    def get_pymdownx_highlighter(self):
        return _Highlighter

    def extendMarkdown(self, md):
        super().extendMarkdown(md)
        # pymdownx picks its formatter classes by module name at each code block: point those
        # names at subclasses that share the tables. They format exactly as before, so this is
        # safe for any other user of pymdownx in the process, and doing it twice changes nothing.
        for name in ("BlockHtmlFormatter", "InlineHtmlFormatter"):
            formatter = getattr(highlight, name)
            if not issubclass(formatter, _SharedStylesheet):
                setattr(highlight, name, type(name, (_SharedStylesheet, formatter), {"__module__": __name__}))


class _Highlighter(highlight.Highlight):
    """pymdownx's highlighter, with lexers kept by language (they hold no state between uses)."""

    _lexers: dict[tuple, tuple] = {}
    KEEP = 256  # languages; a note of thousands of made-up ones must not grow this for ever

    def get_lexer(self, src, language, inline, stripnl):
        if self.guess_lang is not False:  # a guess depends on the source
            return super().get_lexer(src, language, inline, stripnl)
        # The rest of what decides the lexer (`extend_pygments_lang`) is one setting per process.
        key = (language, inline, stripnl, self.default_lang)
        if key not in self._lexers:
            if len(self._lexers) >= self.KEEP:
                self._lexers.clear()
            self._lexers[key] = super().get_lexer(src, language, inline, stripnl)
        return self._lexers[key]


class _SharedStylesheet:
    """Pygments' HtmlFormatter, its per-style tables built once per style instead of per code block."""

    _tables: dict[tuple, tuple] = {}

    def _create_stylesheet(self):
        key = (self.style, self.classprefix, self.noclasses, self.debug_token_types)
        if key in self._tables:
            self.ttype2class, self.class2style, self.span_element_openers = self._tables[key]
            return
        super()._create_stylesheet()
        # Read-only after this, but for `span_element_openers`, a cache of `<span class="…">` by
        # token type that depends on nothing but the key.
        self._tables[key] = (self.ttype2class, self.class2style, self.span_element_openers)


def sanitize(raw_html: str) -> str:
    """Strip everything that could run script or load active content."""
    return _cleaner().clean(raw_html)


@functools.cache
def _cleaner() -> nh3.Cleaner:
    """One nh3 cleaner per process: `nh3.clean` converted the allowed sets on every call."""
    return nh3.Cleaner(
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=URL_SCHEMES,
        link_rel=None,
        strip_comments=True,
    )


def render(
    source: str,
    *,
    source_path: str | None = None,
    resolve_link: LinkResolver | None = None,
    entry_slug: str | None = None,
    resolve_attachment: AttachmentResolver | None = None,
) -> Rendered:
    """Render Markdown to sanitized HTML plus the text, TOC and counts stored with it.

    Raises `ContentError` (line numbers counted in `source`) for Markdown past a rendering limit.
    """
    converted = _convert(source, source_path, resolve_link, entry_slug, resolve_attachment)
    return _describe(_clean(converted.html), converted)


@dataclass
class _Converted:
    """Python-Markdown's output for one document, before sanitizing."""

    html: str
    toc: list[dict]
    links: list[str]
    broken_links: list[tuple[int, str]]
    attachments: list[str]
    broken_attachments: list[tuple[int, str, str]]


def _convert(source, source_path, resolve_link, entry_slug, resolve_attachment=None) -> _Converted:
    """Markdown to unsanitized HTML, with the TOC and the links found on the way."""
    name = source_path or "<markdown>"
    problem = markdown_problem(source.replace("\r\n", "\n") if "\r" in source else source)
    if problem:
        raise ContentError(name, *problem)
    md, state = _markdown()
    md.reset()
    state.reset(source_path, resolve_link, source, entry_slug or "", resolve_attachment)
    try:
        raw = md.convert(source)
    except BaseException as error:
        # A converter stopped half-way keeps parser state (open lists…) into the next document.
        _markdown.cache_clear()
        if isinstance(error, RecursionError):  # nesting the limits checked above do not foresee
            raise ContentError(name, 1, "nested too deeply to render") from None
        raise
    return _Converted(
        raw,
        _flatten_toc(md.toc_tokens),
        list(dict.fromkeys(state.links)),
        list(state.broken),
        list(dict.fromkeys(state.attachments)),
        list(state.broken_attachments),
    )


def _clean(raw_html: str) -> str:
    """The HTML a page may show: sanitized, challenge and solution parts labelled."""
    return label_challenge_parts(sanitize(raw_html))


def _describe(safe: str, converted: _Converted) -> Rendered:
    """`Rendered` for sanitized HTML: its text, first paragraph and counts."""
    text = _text_of(safe)
    return Rendered(
        html=safe,
        text=" ".join(text.words),
        toc=converted.toc,
        headings=[item["title"] for item in converted.toc],
        first_paragraph=text.first_paragraph,
        word_count=len(text.prose_words),
        reading_minutes=max(1, round(len(text.words) / WORDS_PER_MINUTE)),
        has_diagram='class="mermaid"' in safe,
        links=converted.links,
        broken_links=converted.broken_links,
        attachments=converted.attachments,
        broken_attachments=converted.broken_attachments,
    )


_SECTION_RE = re.compile(r'(<h2 id="(challenge|solution)">.*?)(?=<h2[ >]|<div class="footnote">|\Z)', re.DOTALL)
_BOLD_PAIR_RE = re.compile(r"<p><strong>(Challenge|Solution):?</strong>:?\s*(.*?)</p>", re.DOTALL | re.IGNORECASE)


def label_challenge_parts(html: str) -> str:
    """Wrap `## Challenge`/`## Solution` sections and `**Challenge**:` pairs in labelled parts."""
    html = _SECTION_RE.sub(
        lambda m: f'<section class="part part-{m.group(2)}" aria-labelledby="{m.group(2)}">{m.group(1)}</section>\n',
        html,
    )
    return _BOLD_PAIR_RE.sub(
        lambda m: (
            f'<div class="part part-{m.group(1).lower()}"><p class="part-label">{m.group(1).capitalize()}</p>'
            f"<p>{m.group(2)}</p></div>"
        ),
        html,
    )


def _flatten_toc(tokens, out=None):
    """Nested TOC tokens as a flat list of {level, id, title}."""
    out = [] if out is None else out
    for token in tokens:
        out.append({"level": token["level"], "id": token["id"], "title": html.unescape(token["name"])})
        _flatten_toc(token["children"], out)
    return out


#: Void elements (no end tag); of them, a line break or rule is a word break: "start<br>stop".
_VOID = {"br", "hr", "img", "input"}
#: Elements inside a line of text: outside code, their end is not a word break ("*go*." reads "go.").
_INLINE = {
    "a", "abbr", "b", "code", "del", "em", "i", "ins", "kbd", "mark", "s", "small", "span", "strong", "sub", "sup",
}  # fmt: skip
#: nh3 writes well-formed HTML (text escaped, `<` and `>` in attribute values too), so a regular
#: expression splits it into tags and text: a fifth of the time `html.parser` took.
_TAG_RE = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9]*)([^>]*)>")
#: In code every end tag, line break and rule is a word break; other tags are no text at all.
_CODE_BREAK_RE = re.compile(r"</[^>]*>|<(?:br|hr)\b[^>]*>")
_CODE_TAG_RE = re.compile(r"<[^>]*>")


@dataclass
class _Text:
    """The words of sanitized HTML: all of them, those outside code, and the first top-level paragraph."""

    words: list[str]
    prose_words: list[str]
    first_paragraph: str


def _text_of(markup: str) -> _Text:
    """Walk the tags of sanitized HTML and the text between them, in one loop.

    Heading permalinks (`a.headerlink`) are left out. Code is text but not prose. Which
    elements are open is kept as counts, so each tag costs the same however deep it is; a
    `<pre>` is taken whole with two substitutions, as Pygments puts a tag around every token.
    """
    parts: list[str] = []  # all text, with a space where a block or a line ends
    prose: list[str] = []  # the same outside <pre>
    first: list[str] = []  # the first <p> outside any container
    stack: list[str] = []  # open elements; "headerlink" for a permalink
    open_count: dict[str, int] = {}
    containers = 0  # open elements of BLOCK_CONTAINERS
    in_first = done_first = False
    unescape, search = html.unescape, _TAG_RE.search
    at = 0
    while match := search(markup, at):
        if match.start() > at and not open_count.get("headerlink"):
            data = unescape(markup[at : match.start()])
            parts.append(data)
            if not open_count.get("pre"):
                prose.append(data)
            if in_first:
                first.append(data)
        at = match.end()
        closing, tag, attrs = match.groups()
        tag = tag.lower()
        if closing:
            if not open_count.get(tag) and not (tag == "a" and open_count.get("headerlink")):
                continue  # an end tag with no start: nothing to close
            while stack:
                top = stack.pop()
                open_count[top] -= 1
                containers -= top in BLOCK_CONTAINERS
                if top == tag or (tag == "a" and top == "headerlink"):
                    break
            if tag == "p" and in_first:
                in_first, done_first = False, True
            # In code, Pygments wraps each token in a span: its end keeps `Book.objects.select_related`
            # three words for search, as the tokenizer would otherwise read one.
            if tag not in _INLINE or open_count.get("pre"):
                parts.append(" ")
                prose.append(" ")
            continue
        if tag in _VOID:
            if tag in ("br", "hr"):
                parts.append(" ")
                prose.append(" ")
            continue
        if tag == "pre" and not in_first and not open_count.get("headerlink"):
            end = markup.find("</pre>", at)
            code = markup[at:end] if end >= 0 else ""
            # What the loop would give, given nh3's output: every tag closed, every `&` an entity.
            if end >= 0 and "<pre" not in code and "headerlink" not in code:
                parts.append(unescape(_CODE_TAG_RE.sub("", _CODE_BREAK_RE.sub(" ", code))))
                parts.append(" ")  # for the </pre>, as below
                prose.append(" ")
                at = end + len("</pre>")
                continue
        if tag == "a" and 'class="headerlink"' in attrs:
            tag = "headerlink"
        elif tag == "p" and not done_first and not containers:
            in_first = True
        stack.append(tag)
        open_count[tag] = open_count.get(tag, 0) + 1
        containers += tag in BLOCK_CONTAINERS
    if at < len(markup) and not open_count.get("headerlink"):
        data = unescape(markup[at:])
        parts.append(data)
        if not open_count.get("pre"):
            prose.append(data)
        if in_first:
            first.append(data)
    return _Text("".join(parts).split(), "".join(prose).split(), "".join(first).strip())
