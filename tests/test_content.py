"""Parsing one Markdown file: front matter, derived fields and every error with its line."""

from __future__ import annotations

import datetime as dt
import pickle
from types import SimpleNamespace

import pytest

from portal import markdown_limits
from portal.content import (
    ContentError,
    parse_bytes,
    slug_for_path,
    slugify,
    tag_slug,
    title_from_filename,
)


def parse(text: str, path: str = "notes/example.md", **kwargs):
    return parse_bytes(path, text.encode("utf-8"), **kwargs)


FULL = """---
title: Celery in practice
summary: How I run Celery.
tags: [Celery, Python, "Django REST Framework"]
kind: technology
date: 2025-03-14
updated: 2025-04-01
slug: tools/celery
---
Body text.
"""


def test_front_matter_fields():
    entry = parse(FULL)
    assert entry.title == "Celery in practice"
    assert entry.summary == "How I run Celery."
    assert entry.tags == ["Celery", "Python", "Django REST Framework"]
    assert entry.kind == "technology"
    assert entry.date == dt.date(2025, 3, 14)
    assert entry.updated == dt.date(2025, 4, 1)
    assert entry.slug == "tools/celery"
    assert entry.body.strip() == "Body text."


@pytest.mark.parametrize(
    ("path", "text", "title", "tags", "kind"),
    [
        # The first `#` heading is the title; folder gives the tag.
        ("sqlite/json-extract.md", "# JSON extract\n\nUse json_extract().\n", "JSON extract", ["sqlite"], None),
        # No heading: the title comes from the file name.
        ("CACHING_RATE_LIMITING_GUIDE.md", "Just prose.\n", "Caching Rate Limiting Guide", [], None),
        ("celery/CELERY_SETUP.md", "Steps.\n", "Celery Setup", ["celery"], None),
        # A heading inside a code fence is not a title.
        ("a.md", "```bash\n# not a title\n```\n", "A", [], None),
        # A kind folder gives the kind, not a tag.
        ("technologies/redis.md", "# Redis\n\ntext\n", "Redis", [], "technology"),
        # Nested folders all become tags.
        ("backend/db/pg.md", "# PG\n\ntext\n", "PG", ["backend", "db"], None),
    ],
)
def test_derived_fields_without_front_matter(path, text, title, tags, kind):
    entry = parse(text, path)
    assert (entry.title, entry.tags, entry.kind) == (title, tags, kind)


def test_folder_tags_can_be_switched_off():
    assert parse("# T\n\nx\n", "sqlite/t.md", folder_tags=False).tags == []


def test_front_matter_tags_replace_folder_tags():
    assert parse("---\ntags: [a]\n---\ntext\n", "sqlite/t.md").tags == ["a"]


def test_title_heading_is_removed_from_body_but_lines_are_kept():
    entry = parse("# Title\n\nBody\n", "t.md")
    assert "# Title" not in entry.body
    assert entry.body.split("\n")[2] == "Body"


@pytest.mark.parametrize(
    "raw",
    [
        "\ufeff# With BOM\n\ntext\n".encode(),  # a UTF-8 byte-order mark is fine
        b"# With BOM\r\n\r\ntext\r\n",  # Windows line endings
    ],
)
def test_bom_and_crlf(raw):
    entry = parse_bytes("x.md", raw)
    assert entry.title == "With BOM"


def test_bom_before_front_matter():
    entry = parse_bytes("x.md", "\ufeff---\ntitle: T\n---\nbody\n".encode())
    assert entry.title == "T"


@pytest.mark.parametrize(
    ("path", "slug"),
    [
        ("sqlite/JSON Extract.md", "sqlite/json-extract"),
        ("Docker/Compose_Setup.md", "docker/compose-setup"),
        ("README.md", "readme"),
        ("a/index.md", "a/index"),
        ("  spaced  name .md", "spaced-name"),
        ("Ünïcode/Café.md", "ünïcode/café"),
    ],
)
def test_slug_rules(path, slug):
    assert slug_for_path(path) == slug


def test_front_matter_slug_is_slugified():
    assert parse("---\nslug: My Custom/Slug Here\n---\nx\n").slug == "my-custom/slug-here"


@pytest.mark.parametrize(
    ("text", "words"),
    [("Django REST Framework", "django-rest-framework"), ("django-rest-framework", "django-rest-framework")],
)
def test_tag_slugs_are_case_and_space_insensitive(text, words):
    assert slugify(text) == words
    assert tag_slug(text) == words


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("C++", "c-plus-plus"),  # was `c`, the slug of C
        ("C#", "c-sharp"),  # was `c` too
        ("F#", "f-sharp"),
        ("C", "c"),
        (".NET", "dotnet"),  # was `net`
        ("Ｃ＋＋", "c-plus-plus"),  # full-width letters are the same name (NFKC)
        ("Notepad++", "notepad-plus-plus"),
        ("C++11", "c-plus-plus-11"),
        ("R&D", "r-and-d"),  # was `r-d`
        ("#hashtag", "hashtag"),  # a leading # is decoration, not C#
        ("a#b", "a-b"),  # not C#-like: the importer warns when it meets a-b as well
        ("Node.js", "node-js"),  # a dot inside a name is a separator, as before
        ("ASP.NET", "asp-net"),
        ("a/b", "a-b"),
        ("django_rest_framework", "django-rest-framework"),
        ("Sécurité", "sécurité"),  # letters of any script stay
        ("🙂", ""),  # nothing left: the importer drops it with a warning
        ("..", ""),
        ("c-plus-plus", "c-plus-plus"),  # a slug is its own slug: URLs can be looked up again
    ],
)
def test_tag_slugs_keep_symbol_names_apart(name, slug):
    assert tag_slug(name) == slug
    assert tag_slug(slug) == slug


@pytest.mark.parametrize(
    "path",
    [
        "C++/intro.md",  # entry slugs keep their rules: only tags spell symbols out
        "notes/.NET tips.md",
    ],
)
def test_entry_slugs_do_not_change_with_tag_slugs(path):
    assert slug_for_path(path) == "/".join(slugify(part) for part in path.removesuffix(".md").split("/"))


def test_title_from_filename_keeps_short_acronyms():
    assert title_from_filename("API_DESIGN_NOTES.md") == "API Design Notes"


@pytest.mark.parametrize(
    ("raw", "line", "reason"),
    [
        # Invalid YAML: the line of the problem inside the file.
        (b"---\ntitle: ok\ntags: [a, b\n---\nbody\n", 3, "invalid YAML"),
        (b"---\ntitle: [unclosed\n---\nbody\n", 2, "invalid YAML"),
        (b"---\ntitle: x\nfoo: : bar\n---\nbody\n", 3, "invalid YAML"),
        # Wrong types.
        (b"---\ntitle: [a, b]\n---\nbody\n", 2, "'title' must be text"),
        (b"---\ntags: {a: 1}\n---\nbody\n", 2, "'tags' must be a list"),
        (b"---\ntags: [[a]]\n---\nbody\n", 2, "each tag must be text"),
        (b"---\ndate: yesterday\n---\nbody\n", 2, "'date' must be a date"),
        (b"---\ntitle: x\nupdated: 2025-13-45\n---\nbody\n", 3, "'updated' must be a date"),
        (b"---\ndraft: maybe\n---\nbody\n", 2, "'draft' must be true or false"),
        (b"---\n- a\n- b\n---\nbody\n", 2, "front matter must be a mapping"),
        # Unknown kind, with the allowed ones named.
        (b"---\ntitle: x\nkind: tutorial\n---\nbody\n", 3, "unknown kind 'tutorial'; use one of: technology"),
        # Not UTF-8: the line of the first bad byte.
        (b"# ok\n\nline two\n\xff\xfe bad\n", 4, "not valid UTF-8"),
        # Empty files and files with only front matter.
        (b"", 1, "file is empty"),
        (b"  \n\n\t\n", 1, "file is empty"),
        (b"---\ntitle: Only meta\n---\n", 4, "no content after the front matter"),
        # Binary junk.
        (b"# t\n\x00\x00", 2, "NUL byte"),
    ],
)
def test_errors_name_file_line_and_reason(raw, line, reason):
    with pytest.raises(ContentError) as info:
        parse_bytes("notes/bad.md", raw)
    error = info.value
    assert error.path == "notes/bad.md"
    assert error.line == line
    assert reason in error.reason
    assert str(error).startswith(f"notes/bad.md:{line}: ")


@pytest.mark.parametrize(
    ("path", "shown"),
    [
        ("bad\nerror: forged.md", "bad\\nerror: forged.md:1: "),  # a newline would forge a report line
        ("a\rb.md", "a\\rb.md:1: "),  # a carriage return would overwrite the line on a terminal
        ("\x1b[31mred.md", "\\x1b[31mred.md:1: "),  # terminal escape sequences
        ("\u202egnp.md", "\\u202egnp.md:1: "),  # right-to-left override: the name would read backwards
        ("café/naïve 🙂.md", "café/naïve 🙂.md:1: "),  # ordinary letters and emoji stay as they are
    ],
)
def test_errors_print_names_escaped_and_keep_them_whole(path, shown):
    error = ContentError(path, 1, "file is empty")
    assert str(error) == shown + "file is empty"
    assert "\n" not in str(error) and error.path == path
    copy = pickle.loads(pickle.dumps(error))  # errors come back from sandbox processes
    assert (type(copy), copy.path, copy.line, copy.reason, str(copy)) == (
        ContentError,
        path,
        1,
        "file is empty",
        str(error),
    )


def test_kind_spellings_are_accepted():
    for spelling in ("Technologies", "best practice", "challenge-and-solution", "concepts"):
        assert parse(f"---\nkind: {spelling}\n---\nx\n").kind in {"technology", "practice", "challenge", "concept"}


def test_draft_flag():
    assert parse("---\ndraft: true\n---\nx\n").draft is True


def test_comma_separated_tags_string():
    assert parse("---\ntags: redis, caching ,  ttl\n---\nx\n").tags == ["redis", "caching", "ttl"]


# --- hostile input: limits with a line and a reason, and none for real notes ----------------

NESTED_ADMONITIONS = "".join("    " * depth + "!!! note\n" for depth in range(500)) + "    " * 500 + "x\n"


@pytest.mark.parametrize(
    ("raw", "line", "reason"),
    [
        # Python-Markdown recursed once per level into a RecursionError that stopped every import.
        (b"# T\n\n" + b"- " * 600 + b"x\n", 3, "nested deeper than 50 levels"),
        (NESTED_ADMONITIONS.encode(), 52, "nested deeper than 50 levels"),  # line 52 opens level 51
        (b"> " * 1_000 + b"x\n", 1, "nested deeper than 50 levels"),
        ("".join("    " * depth + "- item\n" for depth in range(60)).encode(), 51, "nested deeper than 50 levels"),
        # ... and PyYAML builds nested values recursively too.
        (
            b"---\ntitle: T\nx: " + b"[" * 1_000 + b"]" * 1_000 + b"\n---\nbody\n",
            3,
            "front matter is nested too deeply",
        ),
        (b"---\nx: " + b"{a: " * 1_000 + b"}" * 1_000 + b"\n---\nbody\n", 2, "front matter is nested too deeply"),
        # An error elsewhere sends it to PyYAML's own parser, which recursed into a RecursionError.
        (b"---\nx: " + b"[" * 600 + b"]" * 600 + b"\ny: : bad\n---\nbody\n", 2, "front matter is nested too deeply"),
        # Sizes past what a note needs, refused before the slow part.
        (b"---\nsummary: " + b"x" * 70_000 + b"\n---\nbody\n", 2, "front matter is larger than 64 KB"),
        (
            b"---\ntitle: T\ntags: [" + b", ".join(b"t%d" % i for i in range(101)) + b"]\n---\nx\n",
            3,
            "more than 100 tags",
        ),
        (b"---\ntags: " + b", ".join(b"t%d" % i for i in range(5_000)) + b"\n---\nx\n", 2, "more than 100 tags"),
        (b"Intro.\n\n| a | b |\n|---|---|\n" + b"| 1 | 2 |\n" * 5_001, 3, "table has more than 5,000 rows"),
        (b"x\n\n" + b"<div>" * 101 + b"y\n", 3, "HTML elements nested deeper than 100 levels"),
        # Quadratic in Python-Markdown or Python's html.parser: refused rather than minutes of work.
        (b"## h\n" * 20_000, 1, "headings or rules in one block"),  # 44 s
        (b"x\n\n" + b"---\n" * 40_000, 3, "headings or rules in one block"),  # 89 s
        (b"a\n-\n" * 10_000, 2, "headings or rules in one block"),  # setext headings
        (b"ok > fine\n" + b"<a " * 6_000, 2, "'<' that no '>' follows"),  # 11 s at 16 KB
        # Python-Markdown copies a paragraph for each piece of inline markup in it: quadratic.
        (b"Intro.\n\n" + b"*a* " * 60_000, 3, "long paragraph full of links, emphasis or code"),  # 18 s
        (b"a  \n" * 60_000, 1, "long paragraph full of links, emphasis or code"),  # line breaks: over 2 min
    ],
    ids=[
        "list-markers",
        "admonitions",
        "quotes",
        "indented-lists",
        "yaml-lists",
        "yaml-maps",
        "yaml-python",
        "front-matter-size",
        "tags",
        "tag-string",
        "table",
        "html",
        "headings",
        "rules",
        "setext",
        "unclosed-tags",
        "inline-markup",
        "line-breaks",
    ],
)
def test_limits_name_the_line_and_reason(raw, line, reason):
    with pytest.raises(ContentError) as info:
        parse_bytes("notes/hostile.md", raw)
    assert (info.value.line, reason in info.value.reason) == (line, True), info.value.reason


def test_body_limits_count_lines_in_the_file():
    # The body starts after the front matter: a limit's line is the file's, not the body's.
    raw = b"---\ntitle: T\n---\n\nText.\n\n" + b"- " * 600 + b"x\n"
    with pytest.raises(ContentError) as info:
        parse_bytes("n.md", raw)
    assert info.value.line == 7


@pytest.mark.parametrize(
    "text",
    [
        "| a | b |\n|---|---|\n" + "| 1 | 2 |\n" * 5_000,  # a table at the limit
        "- " * 50 + "x\n",  # nesting at the limit
        "- - - " * 30 + "\n",  # a rule of spaced dashes, not 90 nested lists
        "```python\n" + "".join(" " * 4 * depth + "pass\n" for depth in range(80)) + "```\n",  # deep code is code
        "```bash\n" + "# a comment\n" * 20_000 + "```\n",  # `#` lines in code are no headings
        "## h\n\n" * 2_000,  # headings with blank lines between them
        "<ul>" + "<li>item" * 500 + "</ul>\n",  # elements whose end tag is implied do not nest
        "Compare a<b and c<d.\n" * 200,  # a few `<` that no `>` follows
        "- item with *emphasis* and `code`\n" * 5_000,  # each list item is a short text of its own
        "| *a* | `b` |\n|---|---|\n" + "| *a* | `b` |\n" * 5_000,  # so is each table cell
        "```\n" + "*a* " * 30_000 + "\n```\n",  # and code is no markup
    ],
    ids=[
        "table",
        "nesting",
        "rule",
        "code-indent",
        "code-comments",
        "headings",
        "html-li",
        "less-than",
        "list-markup",
        "table-markup",
        "code-markup",
    ],  # fmt: skip
)
def test_real_notes_stay_within_the_limits(text):
    assert parse_bytes("n.md", text.encode()).body == text


def test_an_ordinary_note_skips_the_costly_counts(monkeypatch):
    # A text of n characters holds at most n marks of inline markup and n lines that may rescan their
    # block: when n × n (n × lines) is within a limit, the limit cannot be passed, so nothing is counted.
    def counted(*args):
        raise AssertionError("counted")

    monkeypatch.setattr(markdown_limits, "_inline_marks", counted)
    monkeypatch.setattr(markdown_limits, "_BREAK_LINE_RE", SimpleNamespace(finditer=counted))
    text = "## A heading\nA line with *some* `code`, a <b>tag</b> & [a](link).\n" * 60  # 4 KB, 120 lines
    assert markdown_limits.markdown_problem(text) is None


def test_tags_are_deduplicated_in_order():
    # Duplicates do not count towards the limit; de-duplication is linear (it was quadratic: 91 s).
    raw = b"---\ntags: [" + b", ".join([b"b", b"a", b"B", b"a"] * 3_000) + b"]\n---\nx\n"
    assert parse_bytes("n.md", raw).tags == ["b", "a", "B"]


def test_content_errors_survive_a_process_pool():
    # They travel back from pool processes by pickle.
    error = pickle.loads(pickle.dumps(ContentError("a.md", 3, "bad")))
    assert (error.path, error.line, error.reason, str(error)) == ("a.md", 3, "bad", "a.md:3: bad")
