"""Tags: the vocabulary in `_tags.yml` (display names, descriptions, aliases) and tag names to slugs."""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from .content import ContentError, slugify
from .folder import VOCABULARY_FILE, read_entry_file


def load_vocabulary(root: Path, *, follow_external: bool = False) -> tuple[dict, list[ContentError]]:
    """`_tags.yml`: slug -> {name, description, aliases}; problems are reported, not fatal."""
    if not os.path.lexists(root / VOCABULARY_FILE):
        return {}, []
    try:
        raw = read_entry_file(root, VOCABULARY_FILE, follow_external=follow_external)
        data = yaml.safe_load(raw.decode("utf-8-sig")) or {}
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
        vocabulary[slugify(str(key))] = {
            "name": str(value.get("name") or key),
            "description": str(value.get("description") or ""),
            "aliases": [slugify(str(a)) for a in aliases] if isinstance(aliases, list) else [],
        }
    return vocabulary, []


class TagResolver:
    """Normalise tag names to slugs, folding aliases and keeping display names."""

    def __init__(self, vocabulary: dict):
        self.vocabulary = vocabulary
        self.alias_of = {alias: slug for slug, v in vocabulary.items() for alias in v["aliases"]}
        self.names: dict[str, str] = {slug: v["name"] for slug, v in vocabulary.items()}

    def resolve(self, name: str) -> str:
        """The canonical slug of a tag name; remembers the first display name seen."""
        slug = slugify(name)
        slug = self.alias_of.get(slug, slug)
        self.names.setdefault(slug, name)
        return slug
