"""Tags: the vocabulary in `_tags.yml` (display names, descriptions, aliases) and tag names to slugs."""

from __future__ import annotations

import functools
import os
import re
import unicodedata
from pathlib import Path

from .content import ContentError, tag_slug
from .folder import VOCABULARY_FILE, read_entry_file

#: Changes whenever `tag_slug` maps names differently: the importer re-imports every file then.
TAG_SLUG_RULES = "tag-slugs=2"


def load_vocabulary(root: Path, *, follow_external: bool = False) -> tuple[dict, list[ContentError]]:
    """`_tags.yml`: slug -> {name, description, aliases}; problems are reported, not fatal."""
    if not os.path.lexists(root / VOCABULARY_FILE):
        return {}, []
    import yaml  # lazy: 20 ms to load, for a folder that has a vocabulary

    try:
        data = (
            yaml.safe_load(read_entry_file(root, VOCABULARY_FILE, follow_external=follow_external).decode("utf-8-sig"))
            or {}
        )
    except ContentError as error:
        return {}, [error]
    except (UnicodeDecodeError, yaml.YAMLError) as error:
        mark = getattr(error, "problem_mark", None)
        return {}, [ContentError(VOCABULARY_FILE, mark.line + 1 if mark else 1, f"tag vocabulary unreadable: {error}")]
    if not isinstance(data, dict):
        return {}, [ContentError(VOCABULARY_FILE, 1, "tag vocabulary must map tag slugs to settings")]
    vocabulary = {}
    for key, value in data.items():
        value = value if isinstance(value, dict) else {}
        aliases = value.get("aliases") or []
        vocabulary[tag_slug(str(key))] = {
            "name": str(value.get("name") or key),
            "description": str(value.get("description") or ""),
            "aliases": [tag_slug(str(a)) for a in aliases] if isinstance(aliases, list) else [],
        }
    return vocabulary, []


class TagResolver:
    """Normalise tag names to slugs, folding aliases and keeping display names."""

    def __init__(self, vocabulary: dict, known_names: dict[str, str] | None = None):
        """`known_names`: slug -> the name of each tag already on the site, to notice names that collide."""
        self.vocabulary = vocabulary
        self.alias_of = {alias: slug for slug, v in vocabulary.items() for alias in v["aliases"]}
        self.names: dict[str, str] = {slug: v["name"] for slug, v in vocabulary.items()}
        # slug -> the first name seen for it (names from older slug rules that now map elsewhere are left out)
        self.first_names = {slug: name for slug, name in (known_names or {}).items() if tag_slug(name) == slug}
        # Each worked out once per name: 10,000 entries repeat a few hundred names, each resolved twice or more.
        self._slug = functools.cache(tag_slug)
        self._spelling = functools.cache(_spelling)

    def resolve(self, name: str) -> str:
        """The canonical slug of a tag name ("" if nothing of it makes a slug); remembers the first display name seen."""
        plain = self._slug(name)
        if not plain:
            return ""
        self.first_names.setdefault(plain, name)
        slug = self.alias_of.get(plain, plain)
        self.names.setdefault(slug, name)
        return slug

    def clash(self, name: str) -> str | None:
        """The name first seen for this name's slug, when it is written differently (more than case, spaces, hyphens).

        `a/b` and `a-b` are one tag `a-b`: likely a mistake. Tags the vocabulary names or aliases are
        merged on purpose and never clash.
        """
        plain = self._slug(name)
        first = self.first_names.get(plain)
        if first is None or plain in self.vocabulary or plain in self.alias_of:
            return None
        return None if self._spelling(first) == self._spelling(name) else first


def _spelling(name: str) -> str:
    """A tag name as written, ignoring case and how words are separated (`Django REST` = `django-rest`)."""
    return re.sub(r"[\s_-]+", "-", unicodedata.normalize("NFKC", name).lower()).strip("-")
