"""The lexing loop that skips rules which cannot start at a character gives Pygments' tokens."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pygments.lexers import get_all_lexers, get_lexer_by_name

from portal.rendering import render
from portal.rendering.highlighting import _Highlighter
from portal.rendering.lexing import fast_loop_for, fast_tokens, fast_yaml_tokens, first_characters

SNIPPETS = {
    "python": 'def f(x: int = 0x1F) -> str:\n    """doc\'s"""\n    return f"{x!r:>10}" + r"\\d" if x else None\n',
    "bash": 'for f in *.md; do\n  echo "$f ${f%.md} $(wc -l < "$f")" >&2 # note\ndone\ncat <<EOF\nhi $USER\nEOF\n',
    "javascript": "const re = /a[/]b/g; let s = `t ${x + 1}`;\nclass A extends B { #p = 1; }\n",
    "typescript": "type T<U> = { [K in keyof U]?: U[K] };\nexport async function* g(): AsyncGenerator<number> {}\n",
    "go": 'package main\nimport "fmt"\nfunc main() { ch := make(chan int, 3); fmt.Println(`raw\n`, 1e-3i) }\n',
    "rust": "fn f<'a>(x: &'a str) -> Option<u8> { let r = br#\"x\"#; x.bytes().next() }\n#[derive(Debug)]\n",
    "sql": "SELECT a.id, COUNT(*) FROM t AS a WHERE a.x LIKE '%it''s%' -- c\nGROUP BY 1;\n",
    "toml": '[tool.x]\nkey = "v"\narr = [1, 2.5, true, 1979-05-27T07:32:00Z]\n',
    "ini": "[section]\nkey = value ; comment\n# other\n",
    "docker": 'FROM python:3.11 AS build\nRUN apt-get update && \\\n    apt-get install -y x\nCMD ["run"]\n',
    "c": "#include <stdio.h>\nint main(void) { char *s = \"a\\n\"; return s[0] == '\\''; }\n",
    "html": '<!doctype html><p class="x">a &amp; b<script>if (a < b) {}</script>\n',
    "css": "a:hover > b::after { content: '\\201C'; color: #fff !important; }\n",
    "diff": "--- a\n+++ b\n@@ -1 +1 @@\n-old\n+new\n",
    "text": "plain\n",
    "ruby": "def f(a, *b, **c) = a&.b\nx = <<~EOS\n  hi #{name}\nEOS\n%w[a b].map { |s| s =~ /x/i }\n",
    "yaml": "a: &x\n  - b: 'c'\n    d: |\n      text\n  - *x\n? e\n: [1, {f: g}]\n--- # doc\n",
}
#: What may trip a lexer: an empty text, no final newline, tabs, CR, Unicode, stray characters.
EDGES = [
    "",
    "\n",
    "\n\n\n",
    "x",
    "\t\tx = 1\r\n",
    "é = 'ü' # ∑ \U0001f600\n",
    "<&>\"'\x00\x0c",
    "   \n \t\n",
    "}}}]]))",
]


def pygments_tokens(lexer, text):
    """The tokens of Pygments' own loop (the class's: a kept lexer has ours on the instance)."""
    return list(type(lexer).get_tokens_unprocessed(lexer, text))


#: Lexers with a loop of their own, which keep it (and Pygments' speed).
OWN_LOOPS = {"c", "text"}


def test_lexers_with_their_own_loop_keep_it():
    assert {language for language in SNIPPETS if not fast_loop_for(get_lexer_by_name(language))} == OWN_LOOPS


@pytest.mark.parametrize("language", sorted(set(SNIPPETS) - OWN_LOOPS))
@pytest.mark.parametrize("edge", ["", *EDGES])
def test_fast_tokens_are_pygments_tokens(language, edge):
    lexer = get_lexer_by_name(language)
    for text in (SNIPPETS[language] + edge, edge + SNIPPETS[language], SNIPPETS[language][: len(edge) * 3]):
        assert list(fast_loop_for(lexer)(lexer, text)) == pygments_tokens(lexer, text)


def _regex_lexer_names():
    """One alias of every Pygments lexer that runs RegexLexer's or ExtendedRegexLexer's own loop."""
    names = []
    for _name, aliases, _files, _mimes in get_all_lexers():
        if aliases:
            try:
                lexer = get_lexer_by_name(aliases[0])
            except Exception:  # noqa: BLE001 - a lexer that needs a plugin
                continue
            if fast_loop_for(lexer):
                names.append(aliases[0])
    return names


REGEX_LEXERS = _regex_lexer_names()
SAMPLE = "".join(SNIPPETS.values()) + "".join(EDGES)


@pytest.mark.parametrize("language", REGEX_LEXERS)
def test_every_regex_lexer_gives_pygments_tokens_on_mixed_code(language):
    lexer = get_lexer_by_name(language)
    assert list(fast_loop_for(lexer)(lexer, SAMPLE)) == pygments_tokens(lexer, SAMPLE)


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(["python", "bash", "javascript", "rust", "go", "sql", "ruby", "toml"]), st.text(max_size=80))
def test_any_text_gives_pygments_tokens(language, text):
    lexer = get_lexer_by_name(language)
    assert list(fast_loop_for(lexer)(lexer, text)) == pygments_tokens(lexer, text)


@pytest.mark.parametrize(
    ("pattern", "flags", "first"),
    [
        ("def", 0, {"d"}),
        ("[a-c_]x", 0, {"a", "b", "c", "_"}),
        ("(?:if|else|\\$)\\b", 0, {"i", "e", "$"}),
        ("\\b(?=x)y+", 0, {"y"}),  # zero-width items before the first character are passed
        ("(?<![.])#", 0, {"#"}),
        ("def", re.IGNORECASE, None),  # "ſ" matches "s" ignoring case: not a plain set
        ("(?i:x)", 0, None),
        ("\\w+", 0, None),
        ("[^a]", 0, None),
        ("a?b", 0, None),
        ("(?:a|)b", 0, None),  # may start with "b"
        ("", 0, None),
        ("$", re.MULTILINE, None),
        ("(a)\\1", 0, {"a"}),
    ],
)
def test_first_characters_are_those_a_match_can_start_with(pattern, flags, first):
    assert first_characters(re.compile(pattern, flags).match) == (None if first is None else frozenset(first))


def test_kept_lexers_use_the_fast_loop():
    render("```python\nx = 1\n```\n")
    lexer = next(lexer for lexer, _name in _Highlighter._lexers.values() if lexer.name == "Python")
    assert lexer.get_tokens_unprocessed.func is fast_tokens
    assert list(lexer.get_tokens("x = 1\n")) == list(type(lexer)().get_tokens("x = 1\n"))


def test_yaml_keeps_its_indentation_context_in_the_fast_loop():
    lexer = get_lexer_by_name("yaml")
    assert fast_loop_for(lexer) is fast_yaml_tokens
    text = SNIPPETS["yaml"] + "b: |\n  x\n  y\nc: >-\n  z\n"
    assert list(fast_yaml_tokens(lexer, text)) == pygments_tokens(lexer, text)
