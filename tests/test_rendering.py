"""Markdown rendering: features that must survive sanitizing, and payloads that must not."""

from __future__ import annotations

import pytest

from portal.rendering import render


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
