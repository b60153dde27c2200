"""Markdown to sanitized HTML, table of contents and plain text.

Rendering happens once, at import; requests only read what this module produced.
It knows nothing of Flask or the database: links to other entries, and to files
beside the notes (images, PDFs), are resolved through callables the importer passes in.
"""

from __future__ import annotations

import functools
import html
import posixpath
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

import markdown
import nh3
from markdown.extensions import Extension
from markdown.inlinepatterns import InlineProcessor
from markdown.treeprocessors import Treeprocessor
from pymdownx import superfences

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
WIKI_LINK_RE = r"\[\[([^\]\|\n]+?)(?:\|([^\]\n]+))?\]\]"

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
    """`[[slug]]` or `[[slug|label]]` becomes a link the rewriter resolves."""

    def handleMatch(self, m, data):
        import xml.etree.ElementTree as etree  # builds elements, parses no XML  # nosec B405

        target, label = m.group(1).strip(), (m.group(2) or m.group(1)).strip()
        el = etree.Element("a")
        el.set("data-wiki", target)
        el.set("href", "#")
        el.text = label
        return el, m.start(0), m.end(0)


class _LinkExtension(Extension):
    def __init__(self, state, **kwargs):
        self.state = state
        super().__init__(**kwargs)

    def extendMarkdown(self, md):
        md.inlinePatterns.register(_WikiLinkPattern(WIKI_LINK_RE, md), "nexus_wikilink", 175)
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
        for spelling in (f"]({target})", f"]({target}", target):
            index = self.source.find(spelling)
            if index >= 0:
                break
        return self.source.count("\n", 0, index) + 1 if index >= 0 else 1


def _is_markdown_link(href):
    """A relative link to a `.md` file (with an optional #fragment)."""
    parts = urlsplit(href)
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
    state = _LinkState()
    md = markdown.Markdown(
        extensions=[
            "toc",
            "tables",
            "footnotes",
            "admonition",
            "sane_lists",
            "pymdownx.superfences",
            "pymdownx.highlight",
            "pymdownx.inlinehilite",
            "pymdownx.tasklist",
            "pymdownx.details",
            "pymdownx.tilde",
            "pymdownx.magiclink",
            _LinkExtension(state),
        ],
        extension_configs={
            "toc": {"permalink": "#", "permalink_title": "Link to this section", "toc_depth": "2-4"},
            "pymdownx.highlight": {"use_pygments": True, "css_class": "highlight", "guess_lang": False},
            "pymdownx.superfences": {
                "custom_fences": [{"name": "mermaid", "class": "mermaid", "format": superfences.fence_code_format}]
            },
            "pymdownx.tasklist": {"custom_checkbox": False},
        },
        output_format="html",
    )
    return md, state


def sanitize(raw_html: str) -> str:
    """Strip everything that could run script or load active content."""
    return nh3.clean(
        raw_html,
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
    """Render Markdown to sanitized HTML plus the text, TOC and counts stored with it."""
    md, state = _markdown()
    md.reset()
    state.reset(source_path, resolve_link, source, entry_slug or "", resolve_attachment)
    raw = md.convert(source)
    links, broken = list(dict.fromkeys(state.links)), list(state.broken)
    attachments, broken_attachments = list(dict.fromkeys(state.attachments)), list(state.broken_attachments)
    toc = _flatten_toc(md.toc_tokens)
    safe = label_challenge_parts(sanitize(raw))
    extractor = _TextExtractor()
    extractor.feed(safe)
    text = extractor.text()
    prose_words = len(extractor.prose_text().split())
    return Rendered(
        html=safe,
        text=text,
        toc=toc,
        headings=[item["title"] for item in toc],
        first_paragraph=extractor.first_paragraph.strip(),
        word_count=prose_words,
        reading_minutes=max(1, round(len(text.split()) / WORDS_PER_MINUTE)),
        has_diagram='class="mermaid"' in safe,
        links=links,
        broken_links=broken,
        attachments=attachments,
        broken_attachments=broken_attachments,
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


class _TextExtractor:
    """Plain text of sanitized HTML and its first top-level paragraph.

    nh3 writes well-formed HTML (text escaped, attribute values double-quoted), so a regular
    expression splits it into tags and text: a fifth of the time `html.parser` took.
    """

    VOID = {"br", "hr", "img", "input"}
    #: Elements inside a line of text: outside code, their end is not a word break ("*go*." reads "go.").
    INLINE = {
        "a",
        "abbr",
        "b",
        "code",
        "del",
        "em",
        "i",
        "ins",
        "kbd",
        "mark",
        "s",
        "small",
        "span",
        "strong",
        "sub",
        "sup",
    }
    TAG_RE = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9]*)((?:[^>\"']|\"[^\"]*\"|'[^']*')*)>")

    def __init__(self):
        self.parts: list[str] = []
        self.prose: list[str] = []
        self.stack: list[str] = []
        self.first_paragraph = ""
        self._in_first = False
        self._done_first = False

    def feed(self, markup: str) -> None:
        """Walk the tags and the text between them."""
        at = 0
        for match in self.TAG_RE.finditer(markup):
            if match.start() > at:
                self.handle_data(html.unescape(markup[at : match.start()]))
            closing, tag, attrs = match.groups()
            if closing:
                self.handle_endtag(tag.lower())
            else:
                self.handle_starttag(tag.lower(), attrs)
            at = match.end()
        if at < len(markup):
            self.handle_data(html.unescape(markup[at:]))

    def handle_starttag(self, tag, attrs):
        if tag in self.VOID:
            if tag in {"br", "hr"}:  # a line break is a word break: "start<br>stop"
                self.parts.append(" ")
                self.prose.append(" ")
            return
        if tag == "a" and 'class="headerlink"' in attrs:
            self.stack.append("headerlink")
            return
        if tag == "p" and not self._done_first and not self._container_open():
            self._in_first = True
        self.stack.append(tag)

    def handle_endtag(self, tag):
        if tag not in self.stack and not (tag == "a" and "headerlink" in self.stack):
            return
        while self.stack:
            top = self.stack.pop()
            if top == tag or (tag == "a" and top == "headerlink"):
                break
        if tag == "p" and self._in_first:
            self._in_first, self._done_first = False, True
        # In code, Pygments wraps each token in a span: its end keeps `Book.objects.select_related`
        # three words for search, as the tokenizer would otherwise read one.
        if tag not in self.INLINE or "pre" in self.stack:
            self.parts.append(" ")
            self.prose.append(" ")

    def handle_data(self, data):
        if "headerlink" in self.stack:
            return
        self.parts.append(data)
        if "pre" not in self.stack:
            self.prose.append(data)
        if self._in_first:
            self.first_paragraph += data

    def _container_open(self):
        return any(tag in BLOCK_CONTAINERS for tag in self.stack)

    def text(self):
        """All text, whitespace folded."""
        return " ".join("".join(self.parts).split())

    def prose_text(self):
        """Text outside code blocks, for word counts."""
        return " ".join("".join(self.prose).split())
