"""The inline step tries on a text only the patterns whose characters it holds; the output stays Python-Markdown's."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from portal.rendering import _new_markdown
from portal.rendering.inline import _ANY_CASE, _INLINE_NEEDS, _InlineSkipping

PIECES = [
    "a", "b", " ", "\n", "  \n", ".", ":", "/", "//", "www", "WwW", "ftp", "http", "x@y.z", "[", "]", "^", "!",
    "<", ">", "&", "#", ";", "*", "_", "~", "`", "\\", "(", ")", '"', "mailto:", "@",
]  # fmt: skip


def _meets(text: str, need: tuple[str, ...]) -> bool:
    """Whether `text` holds one of the strings of a need."""
    return any(literal in (text.lower() if literal in _ANY_CASE else text) for literal in need)


@given(pieces=st.lists(st.sampled_from(PIECES), max_size=30))
def test_a_pattern_never_matches_a_text_without_what_it_needs(pieces):
    # What skipping rests on: a text that lacks every string of a pattern's need is one it cannot match.
    md, _ = _new_markdown()
    text = "".join(pieces)
    for name, need in _INLINE_NEEDS.items():
        if not _meets(text, need):
            assert md.inlinePatterns[name].getCompiledRegExp().search(text) is None, name


def test_a_plain_text_tries_no_pattern():
    md, _ = _new_markdown()
    inline = md.treeprocessors["inline"]
    assert isinstance(inline, _InlineSkipping)
    assert inline._to_try("Plain words, numbers 1-2 and a period.") == ()
    names = {name: md.inlinePatterns.get_index_for_name(name) for name in ("backtick", "em_strong", "magic-link")}
    assert inline._to_try("`code` and WWW.example.com") == (names["backtick"], names["magic-link"])
    assert inline._to_try("snake_case") == (names["em_strong"],)


def test_a_pattern_without_a_need_is_always_tried():
    md, _ = _new_markdown()
    inline = md.treeprocessors["inline"]
    inline.needs = [*inline.needs[:-1], None]
    inline.tried = {}
    assert inline._to_try("plain") == (len(inline.needs) - 1,)
