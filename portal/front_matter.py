"""Front matter: the YAML at the top of a note, read with safe loaders and bounded (issue 21).

Its own module because YAML and python-frontmatter take 20 ms to load: `content.parse_bytes` loads
it on the first file with front matter, so an import that parses nothing never does.
"""

from __future__ import annotations

import frontmatter
import yaml

from .markdown_limits import size_text

#: Front matter larger than this is refused (real notes stay far below it).
MAX_FRONT_MATTER_BYTES = 64 * 1024


def split(text: str) -> tuple[dict, str]:
    """(front matter, body) of a note's text; every problem with the YAML is a FrontMatterProblem."""
    try:
        post = frontmatter.loads(text, handler=_FrontMatterHandler())
    except yaml.YAMLError as error:
        mark = getattr(error, "context_mark", None) or getattr(error, "problem_mark", None)
        # Marks are 0-based within the front matter, which starts after the opening `---` line.
        line = _front_matter_line(mark) if mark else 1
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise FrontMatterProblem(line, f"invalid YAML front matter: {problem}") from None
    return post.metadata, post.content


def _front_matter_line(mark):
    """The file line of a 0-based YAML mark; the front matter starts after the `---` line."""
    leading_newline = 1 if (getattr(mark, "buffer", None) or "").startswith("\n") else 0
    return mark.line + 2 - leading_newline


def _without_dates(loader: type) -> type:
    """`loader` with no implicit dates, so a bad date is reported by key and line, not as a crash."""
    resolvers = {
        first: [(tag, regexp) for tag, regexp in found if tag != "tag:yaml.org,2002:timestamp"]
        for first, found in loader.yaml_implicit_resolvers.items()
    }
    return type(f"Dateless{loader.__name__}", (loader,), {"yaml_implicit_resolvers": resolvers})


#: libyaml's parser (PyYAML's wheels ship it) reads front matter several times faster than
#: PyYAML's own, whose error messages point at the line to fix: it reads only what libyaml refused.
_FAST_LOADER = _without_dates(getattr(yaml, "CSafeLoader", yaml.SafeLoader))
_CLEAR_LOADER = _without_dates(yaml.SafeLoader)


class _FrontMatterHandler(frontmatter.YAMLHandler):
    """python-frontmatter's YAML handler, with our loaders and a check that the result is a mapping."""

    def load(self, fm, **kwargs):
        if len(fm) > MAX_FRONT_MATTER_BYTES:
            raise FrontMatterProblem(2, f"front matter is larger than {size_text(MAX_FRONT_MATTER_BYTES)}")
        try:
            try:
                data = yaml.load(fm, Loader=_FAST_LOADER)  # noqa: S506 - SafeLoader subclasses  # nosec B506
            except yaml.YAMLError as error:
                if "nesting depth" in str(error):  # libyaml's own limit: PyYAML's parser would recurse on
                    line = error.problem_mark.line + (1 if fm.startswith("\n") else 2)  # 0-based, after `---`
                    raise FrontMatterProblem(line, _TOO_DEEP) from None
                data = yaml.load(fm, Loader=_CLEAR_LOADER)  # noqa: S506  # nosec B506
        except RecursionError:
            # PyYAML's own parser recurses once per level (libyaml stops at 1,000 levels by itself).
            raise FrontMatterProblem(_deepest_line(fm), _TOO_DEEP) from None
        if data is not None and not isinstance(data, dict):
            raise FrontMatterProblem(2, "front matter must be a mapping of keys to values")
        return data or {}


_TOO_DEEP = "front matter is nested too deeply"


class FrontMatterProblem(Exception):
    """Front matter that cannot be used, with the line of the file to look at."""

    def __init__(self, line: int, reason: str):
        super().__init__(reason)
        self.line, self.reason = line, reason


def _deepest_line(fm: str) -> int:
    """The file line where front matter `fm` first goes deepest in brackets or indentation."""
    # `fm` starts after the opening `---` (with that line's newline, as python-frontmatter splits it).
    first = 1 if fm.startswith("\n") else 2
    deepest, depth, found = -1, 0, first
    for number, line in enumerate(fm.split("\n"), start=first):
        indent = len(line) - len(line.lstrip(" "))
        for char in line:
            depth += 1 if char in "[{" else -1 if char in "]}" else 0
            if depth + indent > deepest:
                deepest, found = depth + indent, number
    return found
