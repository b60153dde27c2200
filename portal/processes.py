"""Parsing and rendering files in the sandbox (`sandbox.py`): the jobs, and what each worker keeps.

Each worker keeps the link and attachment resolvers of the import (set once by `_set_links`),
so a render job carries only a path, a slug and a body.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, NamedTuple

from .content import ContentError, ParsedEntry, parse_bytes
from .folder import INTRO_FILE
from .links import link_resolver
from .sandbox import Sandbox

if TYPE_CHECKING:
    from .rendering import Rendered

log = logging.getLogger(__name__)

_resolve = None  # the link resolver of a worker process, set by `_set_links`
_attach = None  # its attachment resolver (an AttachmentFiles), likewise


def render(body: str, **options) -> Rendered:
    """`rendering.render`, loaded on first use: an import that changed nothing never loads Markdown and Pygments."""
    from .rendering import render as render_markdown  # lazy: see `_load_renderer`

    return render_markdown(body, **options)


def _load_renderer() -> None:
    """Load the renderer before the sandbox forks its workers, so that they inherit it instead of each loading it."""
    from . import rendering  # noqa: F401 - lazy: only imports with something to parse or render need it


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


def parse_entries(
    sandbox: Sandbox, files: list[tuple[str, bytes]], folder_tags: bool
) -> list[ParsedEntry | ContentError]:
    """Parse (relative path, bytes) pairs in the sandbox, results in order."""
    if files:  # the entries parsed are rendered next, in the same workers
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


def _set_links(slugs_by_path: dict[str, str], attach=None) -> None:
    global _resolve, _attach
    _resolve = link_resolver(slugs_by_path)
    _attach = attach


def _render_job(job: RenderJob) -> tuple[Rendered, list[str]]:
    return render_entry(job, _resolve, _attach)


def _render_intro_job(job: RenderJob) -> tuple[Rendered, list[str]]:
    return render_entry(job, _resolve)
