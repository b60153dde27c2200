"""Markdown to sanitized HTML, table of contents and plain text.

Rendering happens once, at import; requests only read what this package produced.
It knows nothing of Flask or the database: links to other entries, and to files
beside the notes (images, PDFs), are resolved through callables the importer passes in.

Here: `render` and its steps (convert, clean, describe), and the converter they share. Beside it,
each for one thing: `linking` (links to entries and files, `[[wiki]]` links), `bounded`
(Python-Markdown's slow paths, bounded; its inline step in `inline`, its TOC step in `contents`), `highlighting` (Pygments; its lexing loop in `lexing`),
`sanitizing` (what HTML a page may show), `holding` (highlighted code kept out of the sanitizer,
put back after it) and `text` (the words of the HTML, for search and counts).
"""

from __future__ import annotations

import functools
import html
from collections.abc import Callable
from dataclasses import dataclass, field

import markdown
from pymdownx import highlight, superfences

from ..content import ContentError
from ..markdown_limits import markdown_problem
from ..render_version import RENDERER_VERSION
from .bounded import MAX_TREE_DEPTH, _FasterExtension, _Footnotes
from .highlighting import _Highlight
from .holding import Held, collecting, sanitize_held
from .linking import _LinkExtension, _LinkState
from .sanitizing import ALLOWED_ATTRIBUTES, ALLOWED_TAGS, URL_SCHEMES, label_challenge_parts, sanitize
from .text import BLOCK_CONTAINERS, _text_of

__all__ = [
    "ALLOWED_ATTRIBUTES",
    "ALLOWED_TAGS",
    "BLOCK_CONTAINERS",
    "MAX_TREE_DEPTH",
    "RENDERER_VERSION",
    "URL_SCHEMES",
    "WORDS_PER_MINUTE",
    "AttachmentResolver",
    "LinkResolver",
    "Rendered",
    "label_challenge_parts",
    "render",
    "sanitize",
]

WORDS_PER_MINUTE = 220

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
    return _describe(_clean(converted), converted)


@dataclass
class _Converted:
    """Python-Markdown's output for one document, before sanitizing: its code blocks held (see `holding`)."""

    html: str
    held: Held
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
    held = Held()
    try:
        with collecting(held):
            raw = md.convert(source)
    except BaseException as error:
        # A converter stopped half-way keeps parser state (open lists…) into the next document.
        _markdown.cache_clear()
        if isinstance(error, RecursionError):  # nesting the limits checked above do not foresee
            raise ContentError(name, 1, "nested too deeply to render") from None
        raise
    return _Converted(
        raw,
        held,
        _flatten_toc(md.toc_tokens),
        list(dict.fromkeys(state.links)),
        list(state.broken),
        list(dict.fromkeys(state.attachments)),
        list(state.broken_attachments),
    )


def _clean(converted: _Converted) -> str:
    """The HTML a page may show: sanitized, held code put back, challenge and solution parts labelled."""
    return label_challenge_parts(sanitize_held(converted.html, converted.held, sanitize))


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


def _flatten_toc(tokens, out=None):
    """Nested TOC tokens as a flat list of {level, id, title}."""
    out = [] if out is None else out
    for token in tokens:
        out.append({"level": token["level"], "id": token["id"], "title": html.unescape(token["name"])})
        _flatten_toc(token["children"], out)
    return out
