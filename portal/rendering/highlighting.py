"""Pygments through pymdownx, with lexers and per-style stylesheet tables built once per process."""

from __future__ import annotations

import functools
from html import escape

from pymdownx import highlight

from . import holding
from .lexing import fast_loop_for


class _Highlight(highlight.HighlightExtension):
    """pymdownx.highlight with one Pygments lexer per language and one stylesheet per style.

    For every code block pymdownx looks the lexer up by name and builds a formatter whose
    constructor turns the whole style into CSS tables (`_create_stylesheet`): most of the time
    Pygments took. The output is the same (the golden test checks it).
    """

    def get_pymdownx_highlighter(self):
        return _Highlighter

    def extendMarkdown(self, md):
        super().extendMarkdown(md)
        # pymdownx picks its formatter classes by module name at each code block: point those
        # names at subclasses that share the tables and escape each value once. They format
        # exactly as before (blocks are held only while `holding.collecting` says where), so this
        # is safe for any other user of pymdownx in the process, and doing it twice changes nothing.
        for name, mixins in (
            ("BlockHtmlFormatter", (_HeldCode, _FastLines, _SharedStylesheet)),
            ("InlineHtmlFormatter", (_FastLines, _SharedStylesheet)),
        ):
            formatter = getattr(highlight, name)
            if not issubclass(formatter, _SharedStylesheet):
                setattr(highlight, name, type(name, (*mixins, formatter), {"__module__": __name__}))


class _Highlighter(highlight.Highlight):
    """pymdownx's highlighter, with lexers kept by language (they hold no state between uses).

    A kept lexer built on Pygments' RegexLexer loops lexes with `lexing`'s: same tokens,
    fewer regular expressions tried.
    """

    _lexers: dict[tuple, tuple] = {}
    KEEP = 256  # languages; a note of thousands of made-up ones must not grow this for ever

    def get_lexer(self, src, language, inline, stripnl):
        if self.guess_lang is not False:  # a guess depends on the source
            return super().get_lexer(src, language, inline, stripnl)
        # The rest of what decides the lexer (`extend_pygments_lang`) is one setting per process.
        key = (language, inline, stripnl, self.default_lang)
        if key not in self._lexers:
            if len(self._lexers) >= self.KEEP:
                self._lexers.clear()
            lexer, name = super().get_lexer(src, language, inline, stripnl)
            loop = fast_loop_for(lexer)
            if loop:  # kept here only: other users of the class keep Pygments' loop
                lexer.get_tokens_unprocessed = functools.partial(loop, lexer)
            self._lexers[key] = lexer, name
        return self._lexers[key]


class _SharedStylesheet:
    """Pygments' HtmlFormatter, its per-style tables built once per style instead of per code block."""

    _tables: dict[tuple, tuple] = {}

    def _create_stylesheet(self):
        key = (self.style, self.classprefix, self.noclasses, self.debug_token_types)
        if key in self._tables:
            self.ttype2class, self.class2style, self.span_element_openers = self._tables[key]
            return
        super()._create_stylesheet()
        # Read-only after this, but for `span_element_openers`, a cache of `<span class="…">` by
        # token type that depends on nothing but the key.
        self._tables[key] = (self.ttype2class, self.class2style, self.span_element_openers)


class _HeldCode:
    """A code block's formatter whose `<code>` holds a marker while `holding` keeps the tokens' markup.

    See `holding`: the sanitizer then reads the marker instead of a `<span>` per token. Line
    numbers in a table count the lines inside `<code>`, so those blocks are never held.
    """

    def _wrap_code(self, inner):
        held = holding.current()
        if held is None or self.linenos == 1 or self.full:
            yield from super()._wrap_code(inner)
            return
        lines = list(inner)
        marker = held.hold("".join(line for _, line in lines))
        if marker is None:
            yield from super()._wrap_code(iter(lines))
            return
        yield 0, "<code>"
        yield 0, marker
        yield 0, "</code>"


class _FastLines:
    """Pygments' `_format_lines` (2.21) for classes without debug titles or tags files, tokens escaped once.

    Pygments escapes through an `lru_cache` of 100 values, which a code-heavy note's identifiers
    overflow: nearly every token was escaped again, behind a cache's call. Here a dict keeps
    them; the lines are the same (tests/test_highlighting.py compares them).
    """

    _parts: dict[str, list[str]] = {}
    KEEP = 20_000  # values; past it the dict starts again

    def _format_lines(self, tokensource):
        if self.noclasses or self.tagsfile or self.debug_token_types:
            yield from super()._format_lines(tokensource)
            return
        lsep = self.lineseparator
        span_openers = self.span_element_openers
        known = self._parts
        lspan = ""
        line = []
        for ttype, value in tokensource:
            cspan = span_openers.get(ttype)
            if cspan is None:
                css_class = self._get_css_classes(ttype)
                cspan = span_openers[ttype] = f'<span class="{css_class}">' if css_class else ""
            parts = known.get(value)
            if parts is None:
                if len(known) >= self.KEEP:
                    known.clear()
                parts = known[value] = escape(value, quote=False).split("\n")
            if len(parts) > 1:
                for part in parts[:-1]:
                    if line:
                        if lspan != cspan and part:
                            line.extend(((lspan and "</span>"), cspan, part, (cspan and "</span>"), lsep))
                        else:
                            line.extend((part, (lspan and "</span>"), lsep))
                        yield 1, "".join(line)
                        line = []
                    elif part:
                        yield 1, "".join((cspan, part, (cspan and "</span>"), lsep))
                    else:
                        yield 1, lsep
            last = parts[-1]
            if line and last:
                if lspan != cspan:
                    line.extend(((lspan and "</span>"), cspan, last))
                    lspan = cspan
                else:
                    line.append(last)
            elif last:
                line = [cspan, last]
                lspan = cspan
        if line:
            line.extend(((lspan and "</span>"), lsep))
            yield 1, "".join(line)
