"""Pygments' RegexLexer loop, trying at each place only the rules that can start with its character.

`RegexLexer.get_tokens_unprocessed` tries a state's rules in order with one `match` call each;
on long code most of the lexing time is calls that fail at once, because the rule cannot
start with the character there. Here each rule's possible first characters are read from its
parsed pattern, when they are a plain set (a literal, a class of literals and ranges, a choice
of those); a rule whose first character is not so known (`\\w`, a negated class, ignoring case,
one that may match nothing…) is always tried. The rules kept are tried in Pygments' order, so
the same rule wins and the tokens are the same (tests/test_lexing.py compares them).
"""

from __future__ import annotations

import re
from re import _constants as sre  # the parse tree's opcodes
from re import _parser

from pygments.lexer import ExtendedRegexLexer, LexerContext, RegexLexer
from pygments.lexers.data import YamlLexer, YamlLexerContext
from pygments.token import Error, Text, Whitespace, _TokenType

#: How many characters a set may hold before it counts as unknown.
_MOST_CHARS = 512
#: Zero-width items a first character is looked for past: anchors at the start and assertions.
_ANCHORS_PAST = {sre.AT_BEGINNING, sre.AT_BEGINNING_LINE, sre.AT_BEGINNING_STRING, sre.AT_BOUNDARY}
_ANCHORS_PAST |= {sre.AT_NON_BOUNDARY, sre.AT_LOC_BOUNDARY, sre.AT_LOC_NON_BOUNDARY}
_ANCHORS_PAST |= {sre.AT_UNI_BOUNDARY, sre.AT_UNI_NON_BOUNDARY}

#: id(tokendefs) -> (tokendefs, {state: [first characters or None, per rule]}, {(state, char): rules})
_STATES: dict[int, tuple[dict, dict, dict]] = {}


def fast_loop_for(lexer):
    """`fast_tokens`, `fast_context_tokens` or `fast_yaml_tokens` if one may stand in for this lexer's loop, else None."""
    own = type(lexer).get_tokens_unprocessed
    if own is RegexLexer.get_tokens_unprocessed:
        return fast_tokens
    if own is ExtendedRegexLexer.get_tokens_unprocessed:
        return fast_context_tokens
    if own is YamlLexer.get_tokens_unprocessed:
        return fast_yaml_tokens
    return None


def first_characters(rexmatch) -> frozenset[str] | None:
    """The characters a match of this rule can start with, or None if not known as a small set."""
    pattern = getattr(rexmatch, "__self__", None)
    if not isinstance(pattern, re.Pattern) or not isinstance(pattern.pattern, str):
        return None
    if pattern.flags & re.IGNORECASE:
        return None
    try:
        tree = _parser.parse(pattern.pattern, pattern.flags)
    except Exception:  # noqa: BLE001 - an unknown rule is simply always tried
        return None
    return _first_of(list(tree))


def _first_of(items: list) -> frozenset[str] | None:
    """First characters of a sequence of parsed items; None if unknown or it may match nothing."""
    for op, value in items:
        if op is sre.AT and value in _ANCHORS_PAST or op in (sre.ASSERT, sre.ASSERT_NOT):
            continue  # zero-width: the next item starts where it stands
        return _first_of_item(op, value)
    return None  # may match the empty string


def _first_of_item(op, value) -> frozenset[str] | None:
    """First characters of one parsed item that consumes; None if unknown."""
    if op is sre.LITERAL:
        return frozenset(chr(value))
    if op is sre.IN:
        return _class_of(value)
    if op is sre.SUBPATTERN:
        _group, add_flags, _del_flags, inner = value
        return None if add_flags & re.IGNORECASE else _first_of(list(inner))
    if op is sre.BRANCH:
        found: set[str] = set()
        for alternative in value[1]:
            first = _first_of(list(alternative))
            if first is None:
                return None
            found |= first
        return frozenset(found) if len(found) <= _MOST_CHARS else None
    if op in (sre.MAX_REPEAT, sre.MIN_REPEAT):
        low, _high, inner = value
        return _first_of(list(inner)) if low >= 1 else None
    return None


def _class_of(items) -> frozenset[str] | None:
    """The characters of a class `[…]` of literals and ranges; None for anything else."""
    found: set[str] = set()
    for op, value in items:
        if op is sre.LITERAL:
            found.add(chr(value))
        elif op is sre.RANGE and value[1] - value[0] < _MOST_CHARS:
            found.update(map(chr, range(value[0], value[1] + 1)))
        else:  # NEGATE, CATEGORY (\w, \s, \d), a large range
            return None
        if len(found) > _MOST_CHARS:
            return None
    return frozenset(found)


def _rule_tables(tokendefs: dict) -> tuple[dict, dict]:
    """Per lexer class: state -> first characters of each rule, and the rules found by (state, character)."""
    entry = _STATES.get(id(tokendefs))
    if entry is None or entry[0] is not tokendefs:
        firsts = {state: [first_characters(rule[0]) for rule in rules] for state, rules in tokendefs.items()}
        entry = _STATES[id(tokendefs)] = (tokendefs, firsts, {})
    return entry[1], entry[2]


def _rules_at(tokendefs: dict, firsts: dict, known: dict, key: tuple[str, str]) -> list:
    """The rules of a state that may match at a character, in order; kept in `known`."""
    if len(known) > 100_000:  # characters of every script: start again rather than grow
        known.clear()
    state, char = key
    rules = known[key] = [
        rule for rule, first in zip(tokendefs[state], firsts[state], strict=True) if first is None or char in first
    ]
    return rules


def fast_tokens(lexer, text, stack=("root",)):
    """`RegexLexer.get_tokens_unprocessed` (Pygments 2.21), skipping rules that cannot start here."""
    pos = 0
    end = len(text)
    tokendefs = lexer._tokens
    firsts, known = _rule_tables(tokendefs)
    statestack = list(stack)
    while 1:
        key = statestack[-1], text[pos] if pos < end else ""
        rules = known.get(key)
        if rules is None:
            rules = _rules_at(tokendefs, firsts, known, key)
        for rexmatch, action, new_state in rules:
            m = rexmatch(text, pos)
            if m:
                if action is not None:
                    if type(action) is _TokenType:
                        yield pos, action, m.group()
                    else:
                        yield from action(lexer, m)
                pos = m.end()
                if new_state is not None:
                    # state transition
                    if isinstance(new_state, tuple):
                        for state in new_state:
                            if state == "#pop":
                                if len(statestack) > 1:
                                    statestack.pop()
                            elif state == "#push":
                                statestack.append(statestack[-1])
                            else:
                                statestack.append(state)
                    elif isinstance(new_state, int):
                        # pop, but keep at least one state on the stack
                        if abs(new_state) >= len(statestack):
                            del statestack[1:]
                        else:
                            del statestack[new_state:]
                    elif new_state == "#push":
                        statestack.append(statestack[-1])
                    else:
                        raise AssertionError(f"wrong state def: {new_state!r}")
                break
        else:
            # No rule matched.
            if pos >= end:
                break
            if text[pos] == "\n":
                # at EOL, reset state to "root"
                statestack = ["root"]
                yield pos, Whitespace, "\n"
                pos += 1
                continue
            yield pos, Error, text[pos]
            pos += 1


def fast_yaml_tokens(lexer, text=None, context=None):
    """`YamlLexer.get_tokens_unprocessed`: its own context (indentation) in `fast_context_tokens`' loop."""
    return fast_context_tokens(lexer, text, YamlLexerContext(text, 0) if context is None else context)


def fast_context_tokens(lexer, text=None, context=None):
    """`ExtendedRegexLexer.get_tokens_unprocessed` (Pygments 2.21), skipping rules that cannot start here.

    Its state is `ctx.stack[-1]` at the top of each turn, as Pygments' loop reads it again after
    every callback and transition (a callback may change the stack).
    """
    tokendefs = lexer._tokens
    firsts, known = _rule_tables(tokendefs)
    if not context:
        ctx = LexerContext(text, 0)
    else:
        ctx = context
        text = ctx.text
    while 1:
        key = ctx.stack[-1], text[ctx.pos : ctx.pos + 1] if ctx.pos < ctx.end else ""
        rules = known.get(key)
        if rules is None:
            rules = _rules_at(tokendefs, firsts, known, key)
        for rexmatch, action, new_state in rules:
            m = rexmatch(text, ctx.pos, ctx.end)
            if m:
                if action is not None:
                    if type(action) is _TokenType:
                        yield ctx.pos, action, m.group()
                        ctx.pos = m.end()
                    else:
                        yield from action(lexer, m, ctx)
                # CAUTION: callback must set ctx.pos!
                if new_state is not None:
                    # state transition
                    if isinstance(new_state, tuple):
                        for state in new_state:
                            if state == "#pop":
                                if len(ctx.stack) > 1:
                                    ctx.stack.pop()
                            elif state == "#push":
                                ctx.stack.append(ctx.stack[-1])
                            else:
                                ctx.stack.append(state)
                    elif isinstance(new_state, int):
                        if abs(new_state) >= len(ctx.stack):
                            del ctx.stack[1:]
                        else:
                            del ctx.stack[new_state:]
                    elif new_state == "#push":
                        ctx.stack.append(ctx.stack[-1])
                    else:
                        raise AssertionError(f"wrong state def: {new_state!r}")
                break
        else:
            if ctx.pos >= ctx.end or ctx.pos >= len(text):
                break
            if text[ctx.pos] == "\n":
                # at EOL, reset state to "root"
                ctx.stack = ["root"]
                yield ctx.pos, Text, "\n"
                ctx.pos += 1
                continue
            yield ctx.pos, Error, text[ctx.pos]
            ctx.pos += 1
