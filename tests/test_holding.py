"""Highlighted code held out of nh3 (`rendering.holding`): the same HTML as nh3 over the whole document."""

from __future__ import annotations

from html.parser import HTMLParser

import markdown
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from portal.rendering import (
    ALLOWED_ATTRIBUTES,
    ALLOWED_TAGS,
    _clean,
    _convert,
    label_challenge_parts,
    render,
    sanitize,
)
from portal.rendering.holding import Held, sanitize_held

FENCE = "```python\nx = \"<b>\" + '&' + y  # </code></pre><script>alert(1)</script>\n```\n"


def whole(converted) -> str:
    """What rendering gave before holding: nh3 over the whole document, code blocks in it."""
    return label_challenge_parts(sanitize(converted.held.restore(converted.html)))


def counting_sanitize():
    """`sanitize`, and a list that grows by one per call (two calls: the whole document again)."""
    calls = []

    def run(markup):
        calls.append(markup)
        return sanitize(markup)

    return run, calls


# Each row: Markdown whose code block lands somewhere nh3 may treat otherwise than in text, and
# what comes of it: "fast", the markers come through nh3 and the blocks are put back; "whole",
# they do not and nh3 reads the whole document again; "none", no block was held.
HOSTILE = [
    (FENCE, "fast"),  # the common case: a fence in the flow of text
    ("Text\n\n" + FENCE + "\nmore `code` and **bold**\n", "fast"),
    ("    indented = '<i>'\n    code()\n", "fast"),  # an indented block is highlighted too
    ("- item\n\n    " + FENCE.replace("\n", "\n    ") + "\n", "fast"),  # in a list
    ("!!! note\n    " + FENCE.replace("\n", "\n    ") + "\n", "fast"),  # in an admonition
    ("??? note\n    " + FENCE.replace("\n", "\n    ") + "\n", "fast"),  # in details
    ("Text[^1].\n\n[^1]: Note.\n\n    " + FENCE.replace("\n", "\n    ") + "\n", "fast"),  # in a footnote
    (FENCE + FENCE + FENCE, "fast"),  # the same block three times
    ("```python hl_lines='1'\na = 1\nb = 2\n```\n", "fast"),  # highlighted lines: spans of class hll
    ('```python linenums="1"\na = 1\n```\n', "none"),  # line numbers in a table: never held
    ('```python title="<img src=x onerror=alert(1)>"\na = 1\n```\n', "fast"),  # the title stays for nh3
    ("```{.python #an-id data-x='\"><script>'}\na = 1\n```\n", "fast"),  # id and attributes outside <code>
    ("<textarea>\n\n" + FENCE + "\n</textarea>\n", "whole"),  # RCDATA: markers would be text
    ("<title>\n\n" + FENCE + "\n</title>\n", "whole"),
    ("<script>\n\n" + FENCE + "\n</script>\n", "whole"),  # dropped with its content
    ("<style>\n\n" + FENCE + "\n</style>\n", "whole"),
    ("<xmp>\n\n" + FENCE + "\n</xmp>\n", "whole"),  # raw text
    ("<noscript>\n\n" + FENCE + "\n</noscript>\n", "whole"),
    ("<iframe>\n\n" + FENCE + "\n</iframe>\n", "whole"),
    ("<noembed>\n\n" + FENCE + "\n</noembed>\n", "whole"),
    ("<plaintext>\n\n" + FENCE, "whole"),  # the rest of the document is text
    ("<!--\n\n" + FENCE + "\n-->\n", "whole"),  # a comment: stripped
    ("<select>\n\n" + FENCE + "\n</select>\n", "fast"),  # start tags ignored, text kept
    ("<template>\n\n" + FENCE + "\n</template>\n", "whole"),
    ("<svg>\n\n" + FENCE + "\n</svg>\n", "fast"),  # foreign content, which <div> breaks out of
    ("<math><mi>\n\n" + FENCE + "\n</mi></math>\n", "whole"),
    ("<svg><![CDATA[\n\n" + FENCE + "\n]]></svg>\n", "fast"),
    ("<table>\n\n" + FENCE + "\n</table>\n", "fast"),  # fostered out of the table
    ("<table><tr><td>\n\n" + FENCE + "\n</td></tr></table>\n", "fast"),
    ("<b>bold\n\n" + FENCE + "\n\n</b>\n", "fast"),  # a formatting element to reconstruct
    ("<p><b>open</p>\n\n" + FENCE, "fast"),
    ("<a href='#'>open\n\n" + FENCE + "\n\n</a> and </b></code></span>\n", "fast"),
    ('<div title="\n\n' + FENCE + '\n">x</div>\n', "fast"),  # a marker inside an attribute value
    ("<div title='\n\n" + FENCE + "\n'>x</div>\n", "whole"),
    ('<img alt="\n\n' + FENCE + '\n">\n', "fast"),
    ("<code>\n\n" + FENCE + "\n</code>\n", "fast"),  # inside an author's <code>
    ("<pre>\n\n" + FENCE + "\n</pre>\n", "fast"),
    ("<span>\n\n" + FENCE + "\n</span></span></code>\n", "fast"),
    ('[link](http://x.org "\n\n' + FENCE + '\n")\n', "fast"),  # a title split by the fence
    # Raw HTML blocks without blank lines, which Python-Markdown passes through whole.
    ("<div><textarea>\n" + FENCE + "</textarea></div>\n", "whole"),
    ("<div><select><option>\n" + FENCE + "</select></div>\n", "fast"),  # nh3 keeps <div> in <select>
    ("<div><table>\n" + FENCE + "</table></div>\n", "fast"),  # fostered before the table
    ("<div><svg>\n" + FENCE + "</svg></div>\n", "fast"),
    ("<div><p><b><i>x</p>\n" + FENCE + "</div>\n", "fast"),  # <b><i> reopened before the block
    ("<div>\n" + FENCE + "</div>\n", "fast"),  # raw HTML around the fence, no blank lines
    ('<code><span class="nexus-held-0123456789abcdef-0"></span></code>\n\n' + FENCE, "fast"),  # a guessed marker
    ('`<span class="nexus-held-0-0"></span>`\n\n' + FENCE, "fast"),
    ("```python\nnbsp\xa0here and\x0cform feed\n```\n", "fast"),  # what nh3 writes otherwise in text
    ("```python\n" + "(" * 300 + "\n```\n", "fast"),  # many tokens
]


@pytest.mark.parametrize(("markdown", "outcome"), HOSTILE)
def test_held_code_gives_what_nh3_over_the_whole_document_gives(markdown, outcome):
    converted = _convert(markdown, None, None, None)
    assert _clean(converted) == whole(converted)
    run, calls = counting_sanitize()
    sanitize_held(converted.html, converted.held, run)
    assert ("none" if not converted.held.blocks else "fast" if len(calls) == 1 else "whole") == outcome


class _Tags(HTMLParser):
    """The (tag, attribute names) of every start tag in a page's HTML."""

    def __init__(self):
        super().__init__()
        self.found: list[tuple[str, set[str]]] = []

    def handle_starttag(self, tag, attrs):
        self.found.append((tag, {name for name, _ in attrs}))


@pytest.mark.parametrize("markdown", [case for case, _ in HOSTILE])
def test_held_code_leaves_only_allowed_tags_and_attributes(markdown):
    html = render(markdown).html
    tags = _Tags()
    tags.feed(html)
    for tag, names in tags.found:
        assert tag in ALLOWED_TAGS
        assert names <= ALLOWED_ATTRIBUTES["*"] | ALLOWED_ATTRIBUTES.get(tag, set())
    assert html.count("nexus-held-") == markdown.count("nexus-held-")  # no marker left but the author's own


@pytest.mark.parametrize(
    ("markup", "held"),
    [
        ('<span class="k">def</span> <span class="nf">f</span>()', True),  # Pygments' own
        ('<span class="l l-Scalar l-Scalar-Plain">.</span>\n', True),  # classes of subtypes
        ('<span class="s2">"a"</span> <span class="s1">\'b\'</span>', True),  # quotes in text
        ("a &amp;&amp; b &lt;&gt; c\xa0d", True),
        ('<span class="A" onclick="alert(1)">x</span>', False),  # a token type named by the author
        ('<span class="n" title="x">x</span>', False),  # any other attribute
        ('<span style="color: red">x</span>', False),  # inline styles
        ('<span id="__span-0-1">x</span>', False),  # line spans
        ('<a id="__codelineno-0-1" name="__codelineno-0-1"></a>x', False),  # line anchors
        ("<b>x</b>", False),  # any other element
        ("x < y", False),  # unescaped markup
        ("x > y", False),
        ("&quot;", False),  # an entity Pygments does not write
        ("&", False),
        ("a\x00b", False),  # nh3 drops NUL
        ("a\rb", False),  # and turns CR into LF
        ("a\ud800b", False),  # nh3 cannot take a lone surrogate
    ],
)
def test_only_spans_with_plain_classes_and_escaped_text_are_held(markup, held):
    assert (Held().hold(markup) is not None) == held


def test_a_marker_is_unguessable_and_stands_alone_in_code():
    first, second = Held(), Held()
    assert first.prefix != second.prefix
    marker = first.hold("x")
    assert marker == f'<span class="{first.prefix}0"></span>'


def test_blocks_are_held_while_converting_only():
    converted = _convert(FENCE, None, None, None)
    assert len(converted.held.blocks) == 1
    assert "<script>" not in converted.html and converted.held.prefix in converted.html
    # Outside `_convert` pymdownx formats as it always did.
    plain = markdown.markdown(FENCE, extensions=["pymdownx.superfences", "pymdownx.highlight"])
    assert "nexus-held-" not in plain and '<span class="n">x</span>' in plain


_PIECES = [
    FENCE,
    "```js\nlet s = '<\\/script>' && a < b\n```\n",
    "    indented()\n",
    "Text with *em* and `code`.\n",
    "<div>\n",
    "</div>\n",
    '<div title="\n',
    '">\n',
    "<textarea>\n",
    "</textarea>\n",
    "<b>\n",
    "</b>\n",
    "<table>\n",
    "<select>\n",
    "<!--\n",
    "-->\n",
    "<svg>\n",
    "- item\n",
    "    ",
    "\n",
]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(_PIECES), min_size=1, max_size=12))
def test_any_mix_of_raw_html_and_fences_gives_what_nh3_gives(pieces):
    converted = _convert("".join(pieces), None, None, None)
    assert _clean(converted) == whole(converted)
