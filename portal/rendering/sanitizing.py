"""The HTML a page may show: nh3's allow-lists, and challenge and solution parts labelled."""

from __future__ import annotations

import functools
import re

import nh3

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
