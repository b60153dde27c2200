"""Which entry a link in a note points to: a relative path to a Markdown file, or a `[[wiki]]` name.

The importer builds a resolver from the slugs of every entry that will exist; rendering asks it
about each link, in the importer's process or in a pool process (see processes.py).
"""

from __future__ import annotations

from pathlib import PurePosixPath

from .content import slugify


def link_resolver(slugs_by_path: dict[str, str]):
    """Resolve a relative file path or a `[[wiki]]` name to an entry slug (None: no such entry)."""
    by_slug = set(slugs_by_path.values())
    by_stem: dict[str, set[str]] = {}
    for slug in by_slug:
        by_stem.setdefault(slug.rsplit("/", 1)[-1], set()).add(slug)

    def resolve(key: str) -> str | None:
        if key.startswith("[["):
            name = key[2:-2].strip().removesuffix(".md")
            wanted = "/".join(slugify(part) for part in name.split("/"))
            if wanted in by_slug:
                return wanted
            matches = by_stem.get(wanted, set())
            return next(iter(matches)) if len(matches) == 1 else None
        path = PurePosixPath(key).as_posix()
        return slugs_by_path.get(path)

    return resolve
