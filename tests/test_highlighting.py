"""Pygments' formatter with our line loop (`highlighting._FastLines`) writes Pygments' lines."""

from __future__ import annotations

import pytest
from pygments.formatters import HtmlFormatter
from pygments.lexers import get_lexer_by_name
from pygments.token import Comment, Name, Text, Token

from portal.rendering import highlighting, render
from portal.rendering.highlighting import _FastLines, _SharedStylesheet

from .test_lexing import EDGES, SNIPPETS


class _Fast(_FastLines, _SharedStylesheet, HtmlFormatter):
    pass


def both(tokens, **options):
    """The lines of Pygments' `_format_lines` and of ours, for the same tokens and options."""
    return (
        list(HtmlFormatter(**options)._format_lines(iter(tokens))),
        list(_Fast(**options)._format_lines(iter(tokens))),
    )


@pytest.mark.parametrize("language", sorted(SNIPPETS))
def test_lines_are_pygments_lines(language):
    lexer = get_lexer_by_name(language)
    for text in [SNIPPETS[language], *EDGES, SNIPPETS[language] * 3]:
        pygments, ours = both(list(lexer.get_tokens(text)), cssclass="highlight", wrapcode=True)
        assert ours == pygments


@pytest.mark.parametrize(
    "tokens",
    [
        [],
        [(Text, "")],  # an empty value opens no span
        [(Name, "a"), (Name, "b"), (Comment, "c")],  # one span for two tokens of a class
        [(Comment, "# one\n# two\n"), (Name, "x"), (Text, "\n\n")],  # values across lines
        [(Name, "\n"), (Name, "a\n\nb"), (Comment, "\n")],
        [(Token.Made.Up, "<&>\"'"), (Token, "plain")],  # a type without a standard class; escaping
    ],
)
def test_lines_of_edge_tokens_are_pygments_lines(tokens):
    pygments, ours = both(tokens)
    assert ours == pygments


@pytest.mark.parametrize("options", [{"noclasses": True}, {"debug_token_types": True}, {"lineseparator": "<br>"}])
def test_other_options_give_pygments_lines(options):
    tokens = list(get_lexer_by_name("python").get_tokens(SNIPPETS["python"]))
    pygments, ours = both(tokens, **options)
    assert ours == pygments


def test_escaped_values_are_kept_within_bounds(monkeypatch):
    monkeypatch.setattr(_FastLines, "_parts", {})
    monkeypatch.setattr(_FastLines, "KEEP", 10)
    tokens = [(Name, f"n{i}<") for i in range(25)]
    pygments, ours = both(tokens)
    assert ours == pygments
    assert len(_FastLines._parts) <= 10


def test_code_blocks_use_the_fast_lines():
    render("```python\nx = 1\n```\n")  # builds the converter, which points pymdownx at our formatters
    assert issubclass(highlighting.highlight.BlockHtmlFormatter, _FastLines)
    assert issubclass(highlighting.highlight.InlineHtmlFormatter, _FastLines)
