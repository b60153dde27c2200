"""Links in a note pointed at entries' pages and at served files, `[[wiki]]` links included."""

from __future__ import annotations

import bisect
import posixpath
import re
from urllib.parse import unquote, urlsplit

from markdown.extensions import Extension
from markdown.inlinepatterns import InlineProcessor
from markdown.treeprocessors import Treeprocessor


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
