"""Python-Markdown's inline step, trying on each text only the patterns it holds the characters for."""

from __future__ import annotations

from markdown.treeprocessors import InlineProcessor as InlineStep
from markdown.util import AtomicString

#: What the text must hold for each inline pattern to match anywhere in it (by pattern name): one of these.
_INLINE_NEEDS: dict[str, tuple[str, ...]] = {
    "backtick": ("`",),
    "escape": ("\\",),
    "footnote": ("[^",),
    "nexus_wikilink": ("[[",),
    "reference": ("[",),
    "link": ("[",),
    "image_link": ("![",),
    "image_reference": ("![",),
    "short_reference": ("[",),
    "short_image_ref": ("![",),
    "autolink": ("<",),
    "automail": ("<",),
    "linebreak": ("  \n",),
    "html": ("<",),
    "entity": ("&",),
    "em_strong": ("*", "_"),
    "delimiter": ("~",),
    "magic-link": ("://", "www."),
    "magic-mail": ("@",),
}
#: Needs looked for in the text's lower case (`WWW.` starts a link too).
_ANY_CASE = frozenset({"www."})


class _InlineSkipping(InlineStep):
    """Python-Markdown's inline step, skipping the patterns a text lacks the characters for.

    It tries each of the 19 patterns on every text in turn, each a regular-expression search and
    a dozen lines of Python; three texts in four have no `[`, `<`, `&`, `*`, `_` or backtick at
    all. Which needs a text meets is found once, with one `in` per character string, and names the
    patterns to try. A skipped pattern is one that would not have matched, so what follows is the
    same: this is Python-Markdown 3.11's `__handleInline` with that test added. A match only puts a
    placeholder (none of those characters) in place of text, so a pattern skipped for the text it
    was given would have been skipped for the text after the matches before it.
    """

    inlinePatterns: list
    literals: tuple[tuple[str, bool], ...]  # every character string a need names, and whether in any case
    needs: list[frozenset[str] | None]  # by pattern: the strings one of which it needs (None: always tried)
    tried: dict[tuple[str, ...], tuple[int, ...]]  # the strings a text holds -> the patterns to try on it

    @classmethod
    def install(cls, md) -> None:
        """Make `md`'s inline step this one, once every extension has registered its patterns."""
        inline = md.treeprocessors["inline"]
        inline.__class__ = cls
        # Looked up by position, about 280 times a note: a list answers several times faster than
        # the registry, which sorts and type-checks on each lookup.
        inline.inlinePatterns = list(md.inlinePatterns)
        inline.needs = [None] * len(inline.inlinePatterns)
        for name, need in _INLINE_NEEDS.items():
            if name in md.inlinePatterns:
                inline.needs[md.inlinePatterns.get_index_for_name(name)] = frozenset(need)
        literals = sorted({literal for need in inline.needs if need for literal in need})
        inline.literals = tuple((literal, literal in _ANY_CASE) for literal in literals)
        inline.tried = {}

    def _to_try(self, data: str) -> tuple[int, ...]:
        """The positions of the patterns that may match somewhere in `data`, in order."""
        present = []
        lowered = None
        for literal, any_case in self.literals:
            if any_case:
                if lowered is None:
                    lowered = data.lower()
                if literal in lowered:
                    present.append(literal)
            elif literal in data:
                present.append(literal)
        key = tuple(present)
        tried = self.tried.get(key)
        if tried is None:
            held = set(key)
            tried = tuple(i for i, need in enumerate(self.needs) if need is None or not need.isdisjoint(held))
            self.tried[key] = tried  # at most one entry per set of the strings: a few thousand at worst
        return tried

    def _InlineProcessor__handleInline(self, data, patternIndex=0):  # the name-mangled private method
        if isinstance(data, AtomicString):
            return data
        patterns = self.inlinePatterns
        for index in self._to_try(data):
            if index < patternIndex:
                continue
            start = 0
            while True:  # after a match it goes on from there, until the pattern matches no more
                data, matched, start = self._InlineProcessor__applyPattern(patterns[index], data, index, start)
                if not matched:
                    break
        return data
