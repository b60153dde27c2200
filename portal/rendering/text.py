"""The text of sanitized HTML: its words, those outside code, and its first paragraph."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

#: Elements that hold blocks: a paragraph inside one is not the first top-level paragraph.
BLOCK_CONTAINERS = {"blockquote", "div", "li", "ol", "ul", "table", "details", "dl", "pre"}

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
