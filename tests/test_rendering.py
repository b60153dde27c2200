"""Markdown rendering: features that must survive sanitizing, and payloads that must not."""

from __future__ import annotations

import xml.etree.ElementTree as etree

import markdown
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from markdown.inlinepatterns import InlineProcessor

from portal.content import ContentError
from portal.rendering import _new_markdown, render
from portal.rendering.bounded import _BlockLevel, _Blocks, _Holding


def test_code_highlighting_classes_survive_sanitizing():
    html = render("```python\ndef f():\n    return 1\n```\n").html
    assert '<div class="highlight">' in html
    assert '<span class="k">def</span>' in html
    assert '<span class="nf">f</span>' in html


def test_headings_get_ids_permalinks_and_toc():
    rendered = render("Intro.\n\n## First part\n\ntext\n\n### Detail & more\n\ntext\n")
    assert '<h2 id="first-part">' in rendered.html
    assert 'class="headerlink" href="#first-part"' in rendered.html
    assert rendered.toc == [
        {"level": 2, "id": "first-part", "title": "First part"},
        {"level": 3, "id": "detail-more", "title": "Detail & more"},
    ]
    assert rendered.headings == ["First part", "Detail & more"]


@pytest.mark.parametrize(
    ("markdown", "expected"),
    [
        ("| a | b |\n|---|---|\n| 1 | 2 |\n", "<table>"),  # tables
        ('!!! warning "Careful"\n    Body.\n', '<div class="admonition warning">'),  # admonitions
        ("- [x] done\n- [ ] todo\n", '<input type="checkbox" disabled'),  # task lists
        ("Text[^1].\n\n[^1]: A note.\n", 'class="footnote"'),  # footnotes
        ("~~gone~~\n", "<del>gone</del>"),  # strikethrough
        ("```mermaid\nerDiagram\n  A ||--o{ B : has\n```\n", '<pre class="mermaid"><code>erDiagram'),  # diagrams
    ],
)
def test_markdown_features(markdown, expected):
    assert expected in render(markdown).html


def test_mermaid_source_stays_readable_and_is_flagged():
    rendered = render("```mermaid\nerDiagram\n  USER ||--o{ ORDER : places\n```\n")
    assert rendered.has_diagram
    assert "USER ||--o{ ORDER : places" in rendered.html


@pytest.mark.parametrize(
    ("payload", "forbidden"),
    [
        ("<script>alert(1)</script>", "<script"),
        ('<img src="x.png" onerror="alert(1)">', "onerror"),
        ('<a href="#" onclick="alert(1)">x</a>', "onclick"),
        ('<p onmouseover="alert(1)">x</p>', "onmouseover"),
        ("[click](javascript:alert(1))", "javascript:"),
        ('<a href="JaVaScRiPt:alert(1)">x</a>', "javascript:"),
        ("[data](data:text/html;base64,PHNjcmlwdD4=)", "data:"),
        ('<img src="data:image/svg+xml;base64,PHN2Zz4=">', "data:"),
        ('<iframe src="https://example.com"></iframe>', "<iframe"),
        ("<style>body{display:none}</style>", "<style"),
        ('<div style="position:fixed">x</div>', "style="),
        ('<object data="x.swf"></object>', "<object"),
        ('<form action="/x"><input name="a"></form>', "<form"),
        ("<svg><script>alert(1)</script></svg>", "<svg"),
    ],
)
def test_dangerous_html_never_reaches_the_page(payload, forbidden):
    html = render(f"Before.\n\n{payload}\n\nAfter.\n").html
    assert forbidden not in html.lower()
    assert "After." in html  # the rest of the entry survives


def test_mutation_xss_payload_is_neutralised():
    # A known mutation-XSS shape: parsers disagree on where <style> ends inside <math>.
    html = render('<math><mtext><table><mglyph><style><img src=x onerror="alert(1)">\n').html
    assert "onerror" not in html and "<style" not in html and "<math" not in html


def test_plain_text_word_count_and_reading_time():
    words = " ".join(["word"] * 440)
    rendered = render(f"{words}\n\n```python\nx = 1\n```\n")
    assert rendered.word_count == 440  # code is not prose
    assert rendered.reading_minutes == 2
    assert "x = 1" in rendered.text  # but code is searchable


def test_first_paragraph_skips_headings_and_nested_paragraphs():
    rendered = render("## Heading\n\n> quoted\n\nThe *real* first paragraph.\n\nSecond.\n")
    assert rendered.first_paragraph == "The real first paragraph."


@pytest.mark.parametrize(
    ("source", "text"),
    [
        ("## Install & run\n\nUse `a < b` &amp; *go*.\n", "Install & run Use a < b & go."),  # no "#" permalinks
        ('<abbr title="a > b">ORM</abbr> maps rows\n', "ORM maps rows"),  # an attribute (nh3 escapes its >)
        ("**one**<br>**two**\n", "one two"),  # a line break is a word break
        ("| a |\n|---|\n| `start`<br>`stop` |\n", "a start stop"),
        ("Caf&eacute; &#169; &copy;\n", "Café © ©"),
        ("| a | b |\n|---|---|\n| 1 | 2 |\n", "a b 1 2"),
        ("- one\n- two\n\n<script>alert(1)</script>\n", "one two"),
        ("See [the docs](https://example.com), then **re**run.\n", "See the docs, then rerun."),
    ],
)
def test_plain_text_is_the_text_a_reader_sees(source, text):
    assert render(source).text == text


def test_code_keeps_identifiers_apart_for_search():
    text = render('```python\nqs = Book.objects.select_related("author")\n```\n').text
    assert " select_related " in f" {text} " and "objects.select_related" not in text


def test_links_to_other_entries_resolve_relative_to_the_entry_url():
    slugs = {"concepts/erd.md": "concepts/erd", "[[caching]]": "concepts/caching"}
    rendered = render(
        "See [ERD](../concepts/erd.md#keys), [[caching]] and [gone](missing.md).\n",
        source_path="technologies/postgres.md",
        resolve_link=slugs.get,
        entry_slug="technologies/postgres",
    )
    assert 'href="../concepts/erd#keys"' in rendered.html
    assert 'href="../concepts/caching"' in rendered.html
    assert rendered.links == ["concepts/erd", "concepts/caching"]
    assert rendered.broken_links == [(1, "missing.md")]


def test_external_links_and_anchors_are_untouched():
    html = render("[site](https://example.com/a.md) [top](#intro)\n", resolve_link=lambda key: None).html
    assert 'href="https://example.com/a.md"' in html
    assert 'href="#intro"' in html


# --- hostile input: bounded work, and a clear error where there is a limit ------------------
# Each input below took from tens of seconds to hours before (issue 21). The sizes are chosen so the
# old quadratic scans would take minutes (measured at smaller sizes: 1.5-8 min each), and so they
# stay within `markdown_limits.MAX_INLINE_WORK`: that the tests finish proves the work is bounded, without
# timing anything.


@pytest.mark.parametrize(
    ("source", "text"),
    [
        # Every `[` was scanned to the end for its `]` (16,000 took 42 s).
        ("[" * 30_000, "[" * 30_000),
        # ... and balanced ones, which make no link but the wiki link `[[ [[…]] ]]` around the middle.
        ("[" * 20_000 + "]" * 20_000, "[" * 19_998 + "]" * 19_998),
        # The wiki-link pattern scanned each `[[` to the end of the line (8,000: over a minute).
        ("[[a " * 10_000, ("[[a " * 10_000).strip()),
        ("[[a|" * 10_000, "[[a|" * 10_000),
        ("[^" * 20_000, "[^" * 20_000),  # footnote references were scanned to the next `]`
        ("![" * 20_000, "![" * 20_000),  # images share the link scan
        ("[x](" * 15_000, "[x](" * 15_000),  # each `(` was scanned to the end for its `)`
        ("[x][" * 10_000, "[x][" * 10_000),  # references too
    ],
    ids=lambda value: repr(value[:8]),
)
def test_bracket_soup_renders_as_text(source, text):
    assert render(source).text == text


def test_repeated_footnote_references_take_ids_in_constant_time():
    # Python-Markdown counted up from 1 for each repeat: `See[^1] ` × 10,000 took 58 s.
    # 50,000 repeats would take hours that way; the ids must be the same sequence.
    from portal.rendering.bounded import _Footnotes

    footnotes = _Footnotes()
    ids = [footnotes.unique_ref("fnref:1", found=True) for _ in range(50_000)]
    assert ids[:3] == ["fnref:1", "fnref2:1", "fnref3:1"] and ids[-1] == "fnref50000:1"
    assert footnotes.found_refs == {"fnref:1": 50_000}


def test_repeated_footnote_references_link_back_from_the_footnote():
    # End to end, at the size that took 58 s; the inline step must not rescan the paragraph per reference.
    rendered = render("See[^1] " * 10_000 + "\n\n[^1]: The note.\n")
    assert rendered.html.count('class="footnote-ref"') == 10_000
    assert 'id="fnref10000:1"' in rendered.html and 'href="#fnref10000:1"' in rendered.html


@pytest.mark.parametrize(
    "source",
    [
        "**" * 5_000 + "x" + "**" * 5_000,  # nested strong: the steps after inline markup recursed per level
        "***" * 3_000 + "x" + "***" * 3_000,
        "_" * 10_000 + "x" + "_" * 10_000,
    ],
    ids=["strong", "strong-em", "underscores"],
)
def test_deeply_nested_inline_markup_renders(source):
    assert "x" in render(source).text


@pytest.mark.parametrize(
    ("source", "line", "reason"),
    [
        # A few of the limits `markdown_limits.markdown_problem` sets, through `render` as the importer
        # calls it for `_intro.md`: the rest are tested with `parse_bytes` in test_content.py.
        ("Intro.\n\n" + "- " * 600 + "x\n", 3, "nested deeper than 50 levels"),
        ("| a |\n|---|\n" + "| 1 |\n" * 5_001, 1, "table has more than 5,000 rows"),
        ("<div>" * 101 + "x\n", 1, "HTML elements nested deeper than 100 levels"),
    ],
    ids=["lists", "table", "html"],
)
def test_render_refuses_markdown_past_a_limit(source, line, reason):
    with pytest.raises(ContentError) as info:
        render(source, source_path="_intro.md")
    assert (info.value.path, info.value.line) == ("_intro.md", line) and reason in info.value.reason


def test_a_recursion_error_is_a_content_error():
    # The last guard, for nesting no limit foresees: here an unusually low recursion limit.
    from markdown.test_tools import recursionlimit

    with recursionlimit(60), pytest.raises(ContentError) as info:
        render("- " * 45 + "x\n", source_path="deep.md")
    assert info.value.path == "deep.md" and "nested too deeply" in info.value.reason
    # The converter it stopped in is not reused half-way: the next document renders as usual.
    assert render("- a\n- b\n\nText.\n").html == "<ul>\n<li>a</li>\n<li>b</li>\n</ul>\n<p>Text.</p>"


def test_a_link_urllib_cannot_split_renders():
    # `urlsplit("http://[")` raises "Invalid IPv6 URL": it stopped the whole render.
    assert render("[x](http://[) and [y](http://[::1)\n").text == "x and y"


# --- the faster processors answer exactly what Python-Markdown's own do ----------------------


class _RegexWikiLinks(InlineProcessor):
    """The wiki-link pattern as it was: one regular expression, the reference to compare with."""

    def handleMatch(self, m, data):
        import xml.etree.ElementTree as etree

        el = etree.Element("a")
        el.set("data-wiki", m.group(1).strip())
        el.set("href", "#")
        el.text = (m.group(2) or m.group(1)).strip()
        return el, m.start(0), m.end(0)


@pytest.fixture(scope="module")
def converters():
    """(ours, Python-Markdown's own) converters, configured alike."""
    fast, _ = _new_markdown()
    stock, _ = _new_markdown(fast=False)
    wiki = _RegexWikiLinks(r"\[\[([^\]\|\n]+?)(?:\|([^\]\n]+))?\]\]", stock)
    stock.inlinePatterns.register(wiki, "nexus_wikilink", 175)
    return fast, stock


# Pieces that reach every path the faster processors replace: brackets, parentheses, quotes,
# titles, references and their definitions, footnotes, wiki links, headings and rules in a block,
# and what each inline pattern needs to match (entities, line breaks, autolinks, e-mail, `~`, `_`).
PIECES = [
    "[", "]", "(", ")", "[[", "]]", "|", "!", "^", '"', "'", " ", "\n", "\n\n", "a", "b", "<", ">", "*", "`",
    "[^1]", "[^1]: note\n\n", "[r]: /url\n\n", "](a \"t\")", "](<u>)", "[[a|b]]", "## ", "---\n", "| --- |\n",
    "!!! note\n", "??? x\n", "=\n", "\\", "&amp;", "&", "  \n", "~~", "_", "<https://x.y>", "<a@b.cd>",
    "https://x.y/z", "WWW.x.y", "a@b.cd", "<b>", "<!-- c -->", "`#!py x`", "[TOC]", "### ", "#", "\n    ",
]  # fmt: skip


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pieces=st.lists(st.sampled_from(PIECES), max_size=40))
def test_faster_processors_give_python_markdowns_output(converters, pieces):
    fast, stock = converters
    source = "".join(pieces)
    fast.reset()
    stock.reset()
    html = fast.convert(source)
    assert html == stock.convert(source)
    assert fast.toc_tokens == stock.toc_tokens
    if '<div class="toc">' in html:  # the contents as HTML are built only where a marker stands for them
        assert fast.toc == stock.toc


def test_blocks_are_parsed_with_processors_listed_once_per_document(monkeypatch):
    # The registry sorted and copied its processors for every block a document has.
    md, _ = _new_markdown()
    registry = md.parser.blockprocessors
    listed = []
    iterate = type(registry).__iter__
    monkeypatch.setattr(type(registry), "__iter__", lambda self: listed.append(self is registry) or iterate(self))
    md.reset()
    html = md.convert("\n\n".join(f"Paragraph {n}, *one*." for n in range(50)) + "\n\n- a\n\n    b\n")
    assert html.count("<p>") == 52
    assert listed.count(True) == 1


def test_contents_as_html_are_built_only_for_a_marker(monkeypatch):
    # Nexus stores the TOC's tokens; building, prettifying and serializing its HTML for every
    # document, and searching the tree for a `[TOC]` marker, was a tenth of Python-Markdown's time.
    md, _ = _new_markdown()
    toc = md.treeprocessors["toc"]
    built = []
    build = type(toc).build_toc_div
    monkeypatch.setattr(type(toc), "build_toc_div", lambda self, tokens: built.append(1) or build(self, tokens))
    md.reset()
    html = md.convert("## One\n\ntext\n\n### Two\n\nmore\n")
    assert not built and [token["id"] for token in md.toc_tokens] == ["one"]
    assert [child["id"] for child in md.toc_tokens[0]["children"]] == ["two"]
    assert '<h2 id="one">One<a class="headerlink"' in html
    md.reset()
    html = md.convert("## One\n\n[TOC]\n")
    assert built and '<div class="toc">' in html and md.toc.startswith('<div class="toc">')


@given(pieces=st.lists(st.sampled_from([*PIECES, "=", "-", "_", "*", "   ", "]:", "> "]), max_size=30))
def test_block_patterns_never_match_a_text_without_what_they_need(pieces):
    # The block quote, setext heading, rule, footnote and reference patterns are searched only
    # when the text holds one of their characters (`_Holding`): without them they cannot match.
    md, _ = _new_markdown()
    text = "".join(pieces)
    held = [p for b in md.parser.blockprocessors for p in (getattr(b, "RE", None), getattr(b, "SEARCH_RE", None))]
    held = [pattern for pattern in held if isinstance(pattern, _Holding)]
    assert len(held) == 5
    for pattern in held:
        if not any(literal in text for literal in pattern.literals):
            assert pattern.pattern.search(text) is None and pattern.pattern.match(text) is None
            assert pattern.search(text) is None and pattern.match(text) is None


def test_admonitions_and_details_answer_for_unindented_blocks_without_looking(monkeypatch):
    # Only an indented block can continue an admonition or details: the others need no search for one.
    md, _ = _new_markdown()
    blocks = md.parser.blockprocessors
    monkeypatch.setattr(type(blocks["admonition"]), "lastChild", lambda *args: pytest.fail("looked"))
    parent = etree.Element("div")
    for name in ("admonition", "details"):
        assert not blocks[name].test(parent, "Plain paragraph.")
        assert blocks[name].parse_content(parent, "Plain") == (None, "Plain", "")


@given(
    blocks=st.lists(st.text(max_size=3), max_size=6),
    operations=st.lists(
        st.tuples(st.sampled_from(["pop", "insert", "get", "set"]), st.integers(-8, 8), st.text(max_size=3)),
        max_size=20,
    ),
)
def test_blocks_behave_as_the_list_python_markdown_expects(blocks, operations):
    # Python-Markdown's block processors use the blocks to parse as a list; `_Blocks` stands in
    # for it (its pop(0) and insert(0, …) in constant time) and must answer exactly the same.
    expected, actual = list(blocks), _Blocks(list(blocks))
    for name, index, value in operations:
        outcomes = []
        for target in (expected, actual):
            try:
                if name == "pop":
                    outcomes.append(target.pop(index))
                elif name == "insert":
                    outcomes.append(target.insert(index, value))
                elif name == "get":
                    outcomes.append(target[index])
                else:
                    target[index] = value
                    outcomes.append(None)
            except IndexError:
                outcomes.append(IndexError)
        assert outcomes[0] == outcomes[1]
        assert list(actual) == expected and len(actual) == len(expected) and bool(actual) == bool(expected)


@pytest.mark.parametrize(
    "tag", ["div", "DIV", "p/", "span", "pre", "custom-tag", "", "details", "summary", 12, None, print]
)
def test_block_level_tags_by_set_answer_as_python_markdown(tag):
    md, _ = _new_markdown()
    assert isinstance(md.is_block_level, _BlockLevel)  # the set, not Python-Markdown's list scan
    assert md.is_block_level(tag) is markdown.Markdown.is_block_level(md, tag)


def test_block_level_tags_follow_a_list_changed_after_the_build():
    md, _ = _new_markdown()
    assert not md.is_block_level("custom-tag")
    md.block_level_elements.append("custom-tag")
    assert md.is_block_level("custom-tag")
    md.block_level_elements = ["span"]
    assert md.is_block_level("span") and not md.is_block_level("div")
