"""Highlighted code held out of the sanitizer, so that nh3 does not read every token's `<span>`.

Pygments' markup is most of a code-heavy note's HTML, and nh3 parsed and wrote it again only to
give it back unchanged. While a document is converted, the inside of each highlighted block's
`<code>` (what Pygments made of the tokens) is kept here and a marker stands in its place:
`<code><span class="nexus-held-NONCE-N"></span></code>`. nh3 sanitizes the document with the
markers; each marker is then replaced by the kept markup, written as nh3 would have written it.
The output is the same as nh3's over the whole document (tests/test_holding.py compares them,
hostile documents included); when that cannot be shown, it is nh3's over the whole document.

Why the put-back is safe:

1. What is put back is checked, not trusted (`Held.hold`): only `<span class="…">` with a class of
   ASCII letters, digits, `_`, `-` and spaces, `</span>`, and text without `<`, `>`, NUL, CR or
   lone surrogates, whose `&` each start `&amp;`, `&lt;` or `&gt;`. Pygments escapes every
   token's value so (`html.escape`; quotes are left, as in text they need not be), but class
   names come from token types, which the `raw` lexer reads from the author's text
   (`Token.A" onclick="…`): such a block, or one with line anchors or ids, is left in the
   document for nh3, as before. So the put-back holds no element but `span`, no attribute but
   `class`, and can end nothing it does not open.
2. A marker cannot be forged: its class holds a random nonce made for each document, which the
   author never sees (no output holds it).
3. A marker put back stood as a real element, the only child of a real `<code>`, in text
   position: nh3 writes `<` in text as `&lt;` and `"` in attribute values as `&quot;`, so
   `<span class="` in its output is a tag, not text (a `<textarea>`, a comment) nor part of an
   attribute (a link title); `<code>` before it and the end tags after it are tags for the same
   reason. Every marker of the converted document must come out so, and none elsewhere;
   otherwise (a marker nh3 dropped, escaped, moved or copied) the whole document goes through nh3.
4. Inside that `<code>` the kept markup is parsed as the marker was: in HTML content (the
   marker became a `span` in `code`, which the `select` and raw-text states would not allow),
   with nothing to reconstruct (a formatting element the parser reopens would have come between
   `<code>` and the marker). There, spans with classes and escaped text come out as they went in, but
   for what nh3's writer changes in text: a no-break space becomes `&nbsp;` (`_as_nh3_writes`). All the tags a page may show hold their children as HTML,
   so a browser reads the put-back as the markup it is.
"""

from __future__ import annotations

import contextlib
import re
import secrets
import threading
from collections.abc import Callable, Iterator

#: The tags a held block may hold; everything else in it must be text.
_TAG_RE = re.compile(r'<span class="[A-Za-z0-9_ -]*">|</span>')
#: What text may not hold: markup, what nh3 drops or changes but `\xa0`, and `&` but of these entities.
_UNSAFE_TEXT_RE = re.compile("[<>\x00\r\ud800-\udfff]|&(?!(?:amp|lt|gt);)")

_local = threading.local()


#: A marker as it stands in the document, the only child of a `<code>`: its nonce and number.
_MARKER_RE = re.compile(r'<code><span class="nexus-held-([0-9a-f]{16})-([0-9]+)"></span></code>')


class Held:
    """The code blocks held out of one document, by number, and the nonce of its markers."""

    def __init__(self) -> None:
        self.nonce = secrets.token_hex(8)
        self.prefix = f"nexus-held-{self.nonce}-"
        self.blocks: list[str] = []

    def hold(self, markup: str) -> str | None:
        """A marker to stand for `markup` (the inside of a `<code>`), or None if it must stay."""
        if _UNSAFE_TEXT_RE.search(_TAG_RE.sub("", markup)):
            return None
        self.blocks.append(markup)
        return f'<span class="{self.prefix}{len(self.blocks) - 1}"></span>'

    def put_back(self, markup: str, write: Callable[[str], str] = str) -> tuple[str, int]:
        """`markup` with each of this document's markers replaced by `<code>` and its block
        (passed through `write`), and how many were."""
        count = 0

        def block(match: re.Match) -> str:
            nonlocal count
            if match.group(1) != self.nonce:  # another's (the author's own text)
                return match.group(0)
            count += 1
            return f"<code>{write(self.blocks[int(match.group(2))])}</code>"

        return _MARKER_RE.sub(block, markup), count

    def restore(self, markup: str) -> str:
        """`markup` with each marker replaced by the block it stands for, as Pygments made it."""
        return self.put_back(markup)[0]


def current() -> Held | None:
    """Where the highlighter holds code blocks in this thread now; None: it holds none."""
    return getattr(_local, "held", None)


@contextlib.contextmanager
def collecting(held: Held) -> Iterator[Held]:
    """Hold the code blocks highlighted in this thread meanwhile in `held`."""
    before = current()
    _local.held = held
    try:
        yield held
    finally:
        _local.held = before


def sanitize_held(markup: str, held: Held | None, sanitize: Callable[[str], str]) -> str:
    """`sanitize` of `markup` with its held blocks put back: the same as over the whole of it."""
    if held is None or not held.blocks:
        return sanitize(markup)
    clean = sanitize(markup)
    put_back, found = held.put_back(clean, _as_nh3_writes)
    if found != markup.count(held.prefix) or found != clean.count(held.prefix):
        return sanitize(held.restore(markup))
    return put_back


def _as_nh3_writes(markup: str) -> str:
    """Held markup as nh3 writes it: the same, but for a no-break space, which it writes `&nbsp;`."""
    return markup.replace("\xa0", "&nbsp;") if "\xa0" in markup else markup
