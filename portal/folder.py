"""The content folder: which files are entries, and the site files beside them.

Files and folders whose names start with `.` or `_` are skipped (they hold the tag
vocabulary, the introduction, drafts in progress, editors' swap files).
"""

from __future__ import annotations

import os
from pathlib import Path

MARKDOWN_SUFFIXES = {".md", ".markdown"}
VOCABULARY_FILE = "_tags.yml"
INTRO_FILE = "_intro.md"


def is_skipped(name: str) -> bool:
    """Hidden and `_`-prefixed files and folders are not entries."""
    return name.startswith((".", "_"))


def is_markdown(name: str) -> bool:
    """A file name that an entry can have."""
    return not is_skipped(name) and Path(name).suffix.lower() in MARKDOWN_SUFFIXES


def find_markdown_files(root: Path) -> list[Path]:
    """Markdown files under `root`, skipping hidden and `_`-prefixed names, sorted by relative path."""
    found = []
    for folder, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not is_skipped(d))
        found.extend(Path(folder) / name for name in filenames if is_markdown(name))
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())
