"""The table of contents step of Python-Markdown, without the work whose result Nexus never reads."""

from __future__ import annotations

import html

from markdown.extensions.toc import (
    TocTreeprocessor,
    escape_cdata,
    nest_toc_tokens,
    remove_fnrefs,
    render_inner_html,
    run_postprocessors,
    strip_tags,
    unescape,
    unique,
)


class _Toc(TocTreeprocessor):
    """Python-Markdown 3.11's `toc` step, building the contents as HTML only for a `[TOC]` marker.

    For every document it built the contents as elements, prettified and serialized them, and
    then searched the whole tree, joining the text of every element, for a marker to replace:
    a tenth of the time Python-Markdown took. Nexus stores `toc_tokens`; `md.toc` (the contents
    as HTML) is left empty here unless a marker may be in the document, when Python-Markdown's
    own step runs. The document and the tokens are the same either way.
    """

    def run(self, doc):
        if self.marker and self._may_hold_marker(doc):
            super().run(doc)
            return
        used_ids = {el.attrib["id"] for el in doc.iter() if "id" in el.attrib}
        id_counters: dict[str, int] = {}
        toc_tokens = []
        header = self.header_rgx.match
        for el in doc.iter():
            if isinstance(el.tag, str) and header(el.tag):
                toc_tokens.extend(self._heading(el, used_ids, id_counters))
        self.md.toc_tokens = nest_toc_tokens(toc_tokens)
        self.md.toc = ""

    def _may_hold_marker(self, doc) -> bool:
        """Whether any element's own text holds the marker (a superset of those Python-Markdown replaces)."""
        marker = self.marker
        return any(el.text and marker in el.text for el in doc.iter())

    def _heading(self, el, used_ids, id_counters) -> list[dict]:
        """Python-Markdown's work on one heading: its level, id, anchors; its token if in the TOC's depth."""
        self.set_level(el)
        innerhtml = render_inner_html(remove_fnrefs(el), self.md)
        name = strip_tags(innerhtml)
        if "id" not in el.attrib:
            el.attrib["id"] = unique(self.slugify(html.unescape(name), self.sep), used_ids, id_counters)
        data_toc_label = ""
        if "data-toc-label" in el.attrib:
            data_toc_label = run_postprocessors(unescape(el.attrib["data-toc-label"]), self.md)
            name = escape_cdata(strip_tags(data_toc_label))
            del el.attrib["data-toc-label"]
        tokens = []
        level = int(el.tag[-1])
        if self.toc_top <= level <= self.toc_bottom:
            tokens.append(
                {
                    "level": level,
                    "id": unescape(el.attrib["id"]),
                    "name": name,
                    "html": innerhtml,
                    "data-toc-label": data_toc_label,
                }
            )
        if self.use_anchors:
            self.add_anchor(el, el.attrib["id"])
        if self.use_permalinks not in [False, None]:
            self.add_permalink(el, el.attrib["id"])
        return tokens
