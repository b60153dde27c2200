"""The HTML serializer writes exactly what Python-Markdown's does, for any tree."""

from __future__ import annotations

import xml.etree.ElementTree as etree

from hypothesis import given
from hypothesis import strategies as st
from markdown.serializers import to_html_string

from portal.rendering import _markdown
from portal.rendering.serializing import to_html

TAGS = ["p", "P", "div", "br", "BR", "img", "script", "Style", "a", "hr", "code", "span", None]
TEXTS = st.one_of(st.none(), st.text(alphabet="ab &<>\"'\n;#x1", max_size=8), st.sampled_from(["&amp;", "&#1;"]))
ATTRIBUTES = st.dictionaries(
    st.sampled_from(["id", "class", "checked", "open", "title", "download"]),
    st.one_of(st.none(), st.sampled_from(["checked", "open", "x", 'a"b', "<&>", "&lt;"])),
    max_size=3,
)


@st.composite
def trees(draw, depth=0):
    """An element with text, tail, attributes and children, of any tag Python-Markdown may meet."""
    kind = draw(st.sampled_from(["element"] * 6 + ["comment", "pi"]))
    if kind == "comment":
        element = etree.Comment(draw(st.text(alphabet="ab<&-", max_size=5)))
    elif kind == "pi":
        element = etree.ProcessingInstruction("php", draw(st.text(alphabet="ab<&?", max_size=5)))
    else:
        element = etree.Element(draw(st.sampled_from(TAGS)))
        element.attrib.update(draw(ATTRIBUTES))
        element.text = draw(TEXTS)
        if depth < 3:
            element.extend(draw(st.lists(trees(depth + 1), max_size=3)))
    element.tail = draw(TEXTS)
    return element


@given(tree=trees())
def test_trees_serialize_as_python_markdown_writes_them(tree):
    assert to_html(tree) == to_html_string(tree)


def test_namespaced_names_and_deep_trees_are_left_to_python_markdown():
    # A QName tag or attribute, and a tree deeper than Python recurses, go to Python-Markdown's serializer.
    named = etree.Element(etree.QName("http://example.com/ns", "p"))
    named.text = "x"
    assert to_html(named) == to_html_string(named)
    attributed = etree.Element("p", {etree.QName("title"): "t"})
    assert to_html(attributed) == to_html_string(attributed) == '<p title="t"></p>'
    root = deep = etree.Element("div")
    for _ in range(5000):
        deep = etree.SubElement(deep, "span")
        deep.tail = "&"
    assert to_html(root) == to_html_string(root)


def test_the_converter_serializes_with_it():
    md, _ = _markdown()
    assert md.serializer is to_html
