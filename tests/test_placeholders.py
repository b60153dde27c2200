"""Escaped characters and raw HTML are put back as Python-Markdown does, texts without placeholders left alone."""

from __future__ import annotations

from types import SimpleNamespace

from hypothesis import given
from hypothesis import strategies as st
from markdown.postprocessors import RawHtmlPostprocessor
from markdown.treeprocessors import UnescapeTreeprocessor
from markdown.util import STX

from portal.rendering import _new_markdown
from portal.rendering.placeholders import _RawHtml, _Unescape

TEXTS = st.lists(st.sampled_from(["a", "<p>", "</p>", STX, "\x03", "42", "0", "wzxhzdk:", "&", " "]), max_size=12)


@given(pieces=TEXTS)
def test_escaped_characters_come_back_as_python_markdown_puts_them(pieces):
    text = "".join(pieces)
    assert _Unescape().unescape(text) == UnescapeTreeprocessor().unescape(text)


@given(pieces=TEXTS)
def test_raw_html_comes_back_as_python_markdown_puts_it(pieces):
    md, _ = _new_markdown()
    md.reset()
    for block in ("<div>x</div>", "<b>y</b>"):
        md.htmlStash.store(block)
    text = "".join(pieces)
    assert _RawHtml(md).run(text) == RawHtmlPostprocessor(md).run(text)


def test_a_text_without_placeholders_is_not_searched(monkeypatch):
    def searched(*args):
        raise AssertionError("searched")

    monkeypatch.setattr(_Unescape, "RE", SimpleNamespace(sub=searched))
    assert _Unescape().unescape("plain & <b>") == "plain & <b>"
    md, _ = _new_markdown()
    md.reset()
    md.htmlStash.store("<div>x</div>")
    monkeypatch.setattr(RawHtmlPostprocessor, "run", searched)
    assert md.postprocessors["raw_html"].run("<p>plain</p>") == "<p>plain</p>"
    assert isinstance(md.treeprocessors["unescape"], _Unescape)
