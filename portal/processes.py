"""Reading, parsing and rendering files in the sandbox (`sandbox.py`): the jobs, and what each worker keeps.

Each worker keeps what the import's reads share (the folder, the hash's salt: set once by
`_set_reading`), so a read job carries only a path, and the link and attachment resolvers (set
once by `_set_links`), so a render job carries only a path, a slug and a body. Files are read,
hashed and parsed by the workers, on every core: the importer sends paths, not bytes.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from .content import ContentError, ParsedEntry, content_hash, parse_bytes
from .folder import INTRO_FILE, read_entry
from .links import link_resolver
from .sandbox import Sandbox

if TYPE_CHECKING:
    from .rendering import Rendered

log = logging.getLogger(__name__)

_resolve = None  # the link resolver of a worker process, set by `_set_links`
_attach = None  # its attachment resolver (an AttachmentFiles), likewise
_reading: ReadSettings | None = None  # what every read job of the import shares, set by `_set_reading`


def render(body: str, **options) -> Rendered:
    """`rendering.render`, loaded on first use: an import that changed nothing never loads Markdown and Pygments."""
    from .rendering import render as render_markdown  # lazy: see `_load_renderer`

    return render_markdown(body, **options)


def _load_renderer() -> None:
    """Load the renderer only when something is parsed or rendered; workers forked after inherit it.

    Workers forked to read files (`read_entries`) before anything is known to have changed load it at
    their first render job: an import whose files all turn out unchanged by their hash never loads it.
    """
    from . import rendering  # noqa: F401 - lazy: only imports with something to parse or render need it


def _load_front_matter() -> None:
    """Load the front matter's YAML reader before the sandbox's processes fork, so none loads it again.

    Like the renderer: workers forked to read files load it at the first file whose hash changed.
    """
    from . import front_matter  # noqa: F401 - lazy: only imports with something to parse need it


def render_entry(entry, resolve, attach=None) -> tuple[Rendered, list[str]]:
    """Render one parsed entry, recording every link key it asked `resolve` about; `attach` resolves files."""
    keys: list[str] = []

    def recording(key):
        keys.append(key)
        return resolve(key)

    rendered = render(
        entry.body, source_path=entry.path, resolve_link=recording, entry_slug=entry.slug, resolve_attachment=attach
    )
    return rendered, keys


class ReadSettings(NamedTuple):
    """What every read job of an import shares: the folder, the hash's salt and how files are read and parsed."""

    root: Path
    salt: tuple
    follow_external: bool
    folder_tags: bool


class ReadJob(NamedTuple):
    """One file to read: its path, the part of its hash its git dates make, and the hash that means unchanged."""

    path: str
    git_salt: str
    unchanged_hash: str | None  # None: parse it whatever its hash (a file it links to changed, or it is new)


class Read(NamedTuple):
    """A file read: its hash, the `stat` of what was read, and its parsed entry (None when its hash is unchanged)."""

    digest: str
    info: os.stat_result
    entry: ParsedEntry | ContentError | None


def read_entries(sandbox: Sandbox, settings: ReadSettings, jobs: list[ReadJob]) -> list[Read | ContentError]:
    """Read, hash and parse files in the sandbox, results in order; a file that cannot be read is its ContentError
    (a `folder.Refused` if it is not published at all), one that cannot be parsed has the ContentError as its entry."""
    sandbox.setup(_set_reading, settings)
    results = sandbox.run(_read_job, [(job.path, (job,)) for job in jobs])
    if jobs:
        log.info("parsed %d files in %d processes", len(jobs), sandbox.used)
    return results


def parse_entries(
    sandbox: Sandbox, files: list[tuple[str, bytes]], folder_tags: bool
) -> list[ParsedEntry | ContentError]:
    """Parse (relative path, bytes) pairs in the sandbox, results in order."""
    if files:  # the entries parsed are rendered next, in the same workers
        _load_front_matter()
        _load_renderer()
    results = sandbox.run(_parse, [(relative, (relative, raw, folder_tags)) for relative, raw in files])
    if files:
        log.info("parsed %d files in %d processes", len(files), sandbox.used)
    return results


def render_entries(sandbox: Sandbox, entries: list, slugs_by_path: dict[str, str], attach=None) -> dict:
    """path -> (Rendered, link keys), or the ContentError that stopped it, for every entry; `attach` resolves files."""
    if entries:
        _load_renderer()
    sandbox.setup(_set_links, slugs_by_path, attach)
    jobs = [RenderJob(e.path, e.slug, e.body) for e in entries]
    results = sandbox.run(_render_job, [(job.path, (job,)) for job in jobs])
    if jobs:
        log.info("rendered %d entries in %d processes", len(jobs), sandbox.used)
    return dict(zip((job.path for job in jobs), results, strict=True))


def render_intro(sandbox: Sandbox, source: str, slugs_by_path: dict[str, str], attach=None):
    """`_intro.md` rendered (its links resolved, no files served), or the ContentError that stopped it."""
    _load_renderer()
    sandbox.setup(_set_links, slugs_by_path, attach)  # as for the entries: nothing sent again
    job = RenderJob(INTRO_FILE, "", source)
    return sandbox.run(_render_intro_job, [(INTRO_FILE, (job,))])[0]


class RenderJob(NamedTuple):
    """What a worker needs to render one entry (small to pickle: no front matter)."""

    path: str
    slug: str
    body: str


def _parse(relative: str, raw: bytes, folder_tags: bool) -> ParsedEntry:
    return parse_bytes(relative, raw, folder_tags=folder_tags)


def _set_reading(settings: ReadSettings) -> None:
    global _reading
    _reading = settings


def _read_job(job: ReadJob) -> Read:
    """Read one file with all of `folder.read_entry`'s checks, hash it, and parse it unless its hash is unchanged."""
    root, salt, follow_external, folder_tags = _reading
    raw, info = read_entry(root, job.path, follow_external=follow_external)  # a ContentError is the job's result
    digest = content_hash(raw, *salt, job.git_salt)
    if digest == job.unchanged_hash:
        return Read(digest, info, None)
    try:
        entry = parse_bytes(job.path, raw, folder_tags=folder_tags)
    except ContentError as error:  # read, but not usable: the file is present, its last good version stays
        entry = error
    return Read(digest, info, entry)


def _set_links(slugs_by_path: dict[str, str], attach=None) -> None:
    global _resolve, _attach
    _resolve = link_resolver(slugs_by_path)
    _attach = attach


def _render_job(job: RenderJob) -> tuple[Rendered, list[str]]:
    return render_entry(job, _resolve, _attach)


def _render_intro_job(job: RenderJob) -> tuple[Rendered, list[str]]:
    return render_entry(job, _resolve)
