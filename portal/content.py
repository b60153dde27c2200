"""Reading one Markdown file: front matter, title, slug, kind and tags.

Pure functions with no Flask: every problem is a `ContentError` naming the file
and line, so the importer can report it and keep the last good version.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from .kinds import KIND_ALIASES, KINDS
from .markdown_limits import markdown_problem, size_text

MAX_FILE_BYTES = 2 * 1024 * 1024
#: Limits that keep reading and rendering one file bounded (issue 21); real notes stay far below them.
MAX_TAGS = 100
#: The limits of the Markdown itself (nesting, tables, inline markup…) are in `markdown_limits`; the front
#: matter's own in `front_matter`.
H1_RE = re.compile(r"^#\s+(.+?)\s*#*\s*$")
FENCE_RE = re.compile(r"^\s*(```|~~~)")


class ContentError(Exception):
    """A file that cannot be imported, with the line to look at."""

    def __init__(self, path: str, line: int, reason: str):
        # Printed escaped: a file name with a newline must not forge another line of the report.
        super().__init__(printable(f"{path}:{line}: {reason}"))
        self.path, self.line, self.reason = path, line, reason

    def __reduce__(self):
        # Pickled by its fields, so it can come back from a process pool.
        return type(self), (self.path, self.line, self.reason)


def printable(text: str) -> str:
    """`text` with control and other invisible characters escaped as Python writes them (`\\n`, `\\x1b`)."""
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in text)


@dataclass
class ParsedEntry:
    """One Markdown file, read and checked, not yet rendered."""

    path: str
    slug: str
    title: str
    body: str
    content_hash: str
    summary: str | None = None
    kind: str | None = None
    tags: list[str] = field(default_factory=list)
    date: dt.date | None = None
    updated: dt.date | None = None
    draft: bool = False
    challenge: str | None = None
    solution: str | None = None
    slug_line: int = 1
    body_line: int = 1
    tags_line: int = 1


def slugify(text: str) -> str:
    """Lower-case words joined by hyphens; letters of any script are kept."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = re.sub(r"[^\w]+", "-", text.replace("_", "-"))
    return text.strip("-")


#: Symbols that tell tags apart (`C`, `C++`, `C#`, `.NET`), spelled out before the rest becomes hyphens.
_TAG_SYMBOLS = (
    (re.compile(r"\+"), "-plus-"),  # C++, Notepad++
    (re.compile(r"(?<=\w)#(?!\w)"), "-sharp-"),  # C#, F# (not #hashtag or a#b)
    (re.compile(r"&"), "-and-"),  # R&D, AT&T
    (re.compile(r"(?<![\w.])\.(?=\w)"), "dot"),  # .NET, .env (not Node.js)
)


def tag_slug(name: str) -> str:
    """A tag's URL name: `slugify`, with the symbols that make `C++`, `C#` and `.NET` their own tags spelled out.

    Empty when nothing is left (`🙂`, `..`). A slug is its own tag slug, so URLs can be passed again.
    """
    text = unicodedata.normalize("NFKC", name).lower()
    for pattern, word in _TAG_SYMBOLS:
        text = pattern.sub(word, text)
    return slugify(text)


def slug_for_path(relative: str) -> str:
    """`sqlite/JSON Extract.md` becomes `sqlite/json-extract`."""
    parts = PurePosixPath(relative).with_suffix("").parts
    return "/".join(filter(None, (slugify(part) for part in parts)))


def title_from_filename(relative: str) -> str:
    """`CACHING_RATE_LIMITING_GUIDE.md` becomes "Caching Rate Limiting Guide"."""
    stem = PurePosixPath(relative).stem
    words = re.split(r"[\s_\-]+", stem)
    return " ".join(w if w.isupper() and len(w) <= 3 else w.capitalize() for w in words if w) or stem


def content_hash(raw: bytes, *salt: str) -> str:
    """Hash of a file's bytes plus whatever else changes its rendering."""
    digest = hashlib.sha256(raw)
    for part in salt:
        digest.update(b"\0" + part.encode())
    return digest.hexdigest()


def parse_bytes(relative: str, raw: bytes, *, folder_tags: bool = True) -> ParsedEntry:
    """Parse a file's bytes; `relative` is its POSIX path under the content folder."""
    if len(raw) > MAX_FILE_BYTES:
        raise ContentError(relative, 1, f"file is larger than {size_text(MAX_FILE_BYTES)}")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw.count(b"\n", 0, error.start) + 1
        raise ContentError(relative, line, "not valid UTF-8 text") from None
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.strip():
        raise ContentError(relative, 1, "file is empty")
    if "\x00" in text:
        raise ContentError(relative, text.count("\n", 0, text.index("\x00")) + 1, "file contains a NUL byte")
    meta, body, body_line = _split_front_matter(relative, text)
    if not body.strip() and not meta.get("challenge"):
        raise ContentError(relative, body_line, "no content after the front matter")
    entry = _build_entry(relative, meta, text, body, folder_tags)
    entry.content_hash = content_hash(raw)
    entry.body_line = body_line
    problem = markdown_problem(entry.body)
    if problem:
        line, reason = problem
        raise ContentError(relative, line + body_line - 1, reason)
    return entry


def _split_front_matter(relative, text):
    """Front matter as a dict, the body, and the body's first line number."""
    if not text.startswith("---"):
        return {}, text, 1
    # Lazy: YAML and python-frontmatter take 20 ms to load, which an import that parses nothing never pays
    # (see `processes._load_front_matter`).
    from .front_matter import FrontMatterProblem, split

    try:
        meta, body = split(text)
    except FrontMatterProblem as problem:
        raise ContentError(relative, problem.line, problem.reason) from None
    except (ValueError, TypeError) as error:
        raise ContentError(relative, 1, f"invalid front matter: {error}") from None
    if not isinstance(meta, dict):
        raise ContentError(relative, 2, "front matter must be a mapping of keys to values")
    body_start = text.find(body) if body else -1
    body_line = text.count("\n", 0, body_start if body_start >= 0 else len(text)) + 1
    return meta, body, body_line


def _key_line(text, key):
    """The line on which a front-matter key is set, for error messages."""
    match = re.search(rf"^{re.escape(key)}\s*:", text, re.MULTILINE)
    return text.count("\n", 0, match.start()) + 1 if match else 1


def _expect_str(relative, text, meta, key):
    """A front-matter value that must be text (or absent)."""
    value = meta.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ContentError(relative, _key_line(text, key), f"'{key}' must be text, not {_type_name(value)}")
    return str(value).strip() or None


def _type_name(value):
    return {list: "a list", dict: "a mapping", bool: "true/false"}.get(type(value), type(value).__name__)


def _expect_date(relative, text, meta, key):
    """A front-matter date: YAML dates, datetimes or ISO strings."""
    value = meta.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value.strip()[:10])
        except ValueError:
            pass
    raise ContentError(relative, _key_line(text, key), f"'{key}' must be a date like 2025-03-14, got {value!r}")


def _expect_tags(relative, text, meta):
    """Tags as a list of display names; a comma-separated string is accepted."""
    value = meta.get("tags")
    if value is None:
        return None
    if isinstance(value, str):
        value = [part for part in value.split(",")]
    if not isinstance(value, list):
        raise ContentError(relative, _key_line(text, "tags"), f"'tags' must be a list, not {_type_name(value)}")
    tags: dict[str, None] = {}  # insertion-ordered and linear to de-duplicate
    for item in value:
        if isinstance(item, bool) or not isinstance(item, str | int | float):
            raise ContentError(relative, _key_line(text, "tags"), f"each tag must be text, not {_type_name(item)}")
        name = " ".join(str(item).split())
        if name and name not in tags:  # a name with no slug is dropped by the importer, with a warning
            tags[name] = None
            if len(tags) > MAX_TAGS:
                raise ContentError(
                    relative, _key_line(text, "tags"), f"more than {MAX_TAGS} tags; keep the few that matter"
                )
    return list(tags)


def _expect_kind(relative, text, meta):
    """One of the four kinds (plural and 'best practice' spellings accepted)."""
    value = meta.get("kind")
    if value is None:
        return None
    if not isinstance(value, str) or slugify(value) not in KIND_ALIASES:
        allowed = ", ".join(KINDS)
        raise ContentError(relative, _key_line(text, "kind"), f"unknown kind {value!r}; use one of: {allowed}")
    return KIND_ALIASES[slugify(value)]


def _build_entry(relative, meta, text, body, folder_tags):
    """Turn front matter and body into a `ParsedEntry`, deriving what is missing."""
    title = _expect_str(relative, text, meta, "title")
    if title is None:
        title, body = _title_from_body(body)
    title = title or title_from_filename(relative)
    draft = meta.get("draft", False)
    if not isinstance(draft, bool):
        raise ContentError(relative, _key_line(text, "draft"), "'draft' must be true or false")
    slug_value = _expect_str(relative, text, meta, "slug")
    slug = slug_for_path(slug_value) if slug_value else slug_for_path(relative)
    if not slug:
        raise ContentError(relative, _key_line(text, "slug"), "cannot make a URL slug from this name")
    folders = list(PurePosixPath(relative).parent.parts)
    tags = _expect_tags(relative, text, meta)
    if tags is None:
        tags = [f for f in folders if tag_slug(f) and slugify(f) not in KIND_ALIASES] if folder_tags else []
    kind = _expect_kind(relative, text, meta) or _kind_from_folders(folders)
    challenge = _expect_str(relative, text, meta, "challenge")
    solution = _expect_str(relative, text, meta, "solution")
    return ParsedEntry(
        path=relative,
        slug=slug,
        slug_line=_key_line(text, "slug") if slug_value else 1,
        tags_line=_key_line(text, "tags"),
        title=title,
        body=_with_challenge_sections(body, challenge, solution),
        content_hash="",
        summary=_expect_str(relative, text, meta, "summary"),
        kind=kind,
        tags=tags,
        date=_expect_date(relative, text, meta, "date"),
        updated=_expect_date(relative, text, meta, "updated"),
        draft=draft,
        challenge=challenge,
        solution=solution,
    )


def _with_challenge_sections(body, challenge, solution):
    """Front-matter `challenge:`/`solution:` become `## Challenge`/`## Solution` sections before the body."""
    parts = [f"## {label}\n\n{text}\n" for label, text in (("Challenge", challenge), ("Solution", solution)) if text]
    if not parts:
        return body
    # Blank lines in front keep the body's line numbers meaningful for warnings after the sections.
    return "\n".join(parts) + "\n" + body


def _kind_from_folders(folders):
    """A file under `technologies/` (or `challenges/`…) takes that kind."""
    for folder in folders:
        kind = KIND_ALIASES.get(slugify(folder))
        if kind:
            return kind
    return None


def _title_from_body(body):
    """The first `# Heading` outside code fences becomes the title and leaves the body."""
    lines = body.split("\n")
    in_fence = False
    for index, line in enumerate(lines):
        if FENCE_RE.match(line):
            in_fence = not in_fence
            continue
        if in_fence:
            continue
        match = H1_RE.match(line)
        if match:
            rest = "\n".join(lines[:index] + [""] + lines[index + 1 :])  # keeps line numbers
            return match.group(1).strip(), rest
        if line.strip() and not line.startswith("#"):
            # Prose before any heading: the note has no title heading.
            break
    return None, body
