"""The content folder: which files are entries, and the site files beside them.

Files and folders whose names start with `.` or `_` are skipped (they hold the tag
vocabulary, the introduction, drafts in progress, editors' swap files).

Only what is in the folder is published: a symlink whose target is outside it is refused
(unless the operator allows it), and only regular files are read, so a FIFO cannot hang an
import and `/dev/zero` cannot fill the memory.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from .content import MAX_FILE_BYTES, ContentError
from .markdown_limits import size_text

MARKDOWN_SUFFIXES = (".md", ".markdown")
VOCABULARY_FILE = "_tags.yml"
INTRO_FILE = "_intro.md"
#: What a file that is not a regular file is, for the report.
FILE_KINDS = {
    stat.S_IFIFO: "a FIFO",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFDIR: "a folder",
}
OUTSIDE = (
    "leads outside the content folder through a symlink; not published (NEXUS_FOLLOW_EXTERNAL_SYMLINKS=1 allows it)"
)


def is_skipped(name: str) -> bool:
    """Hidden and `_`-prefixed files and folders are not entries."""
    return name.startswith((".", "_"))


def is_markdown(name: str) -> bool:
    """A file name that an entry can have."""
    # Not os.path.splitext: the walk asks this of every file, and the name's ending is the same question.
    return not is_skipped(name) and name.lower().endswith(MARKDOWN_SUFFIXES)


class Refused(ContentError):
    """A file that is not published at all, not even a last good version: outside the folder, or not a file."""


@dataclass
class Found:
    """The Markdown files of a folder, and the symlinked folders that were not followed, as errors."""

    root: Path
    relative: list[str] = field(default_factory=list)  # POSIX paths under `root`, sorted
    problems: list[ContentError] = field(default_factory=list)

    @property
    def files(self) -> list[Path]:
        """The files as paths."""
        return [self.root / relative for relative in self.relative]


def find_markdown_files(root: Path, *, follow_external: bool = False) -> list[Path]:
    """Markdown files under `root`, skipping hidden and `_`-prefixed names, sorted by relative path."""
    return walk(root, follow_external=follow_external).files


def walk(root: Path, *, follow_external: bool = False) -> Found:
    """Markdown files under `root`, sorted by relative path; symlinked folders outside it are reported.

    A symlinked folder whose target is inside `root` is not followed: its files are found under
    their own path, once. One whose target is outside is refused, or followed with
    `follow_external` (each real folder once, so a symlink loop ends).
    """
    root = Path(root)
    real_root = os.path.realpath(root)
    found, seen = Found(root), {_identity(root)}
    for folder, dirnames, filenames in os.walk(root, followlinks=follow_external):
        # Strings, not Path objects: at 10,000 files pathlib would cost more than the walk itself.
        prefix = os.path.relpath(folder, root).replace(os.sep, "/") + "/"
        prefix = "" if prefix == "./" else prefix
        kept = []
        for name in sorted(d for d in dirnames if not is_skipped(d)):
            path = Path(folder) / name
            if not path.is_symlink():
                kept.append(name)
            elif not _inside(os.path.realpath(path), real_root):
                if not follow_external:
                    relative = path.relative_to(root).as_posix()
                    found.problems.append(Refused(f"{relative}/", 1, OUTSIDE))
                elif _identity(path) not in seen:
                    seen.add(_identity(path))
                    kept.append(name)
        dirnames[:] = kept
        found.relative.extend(prefix + name for name in filenames if is_markdown(name))
    found.relative.sort()
    return found


def read_entry_file(
    root: Path, relative: str, *, follow_external: bool = False, max_bytes: int = MAX_FILE_BYTES
) -> bytes:
    """The bytes of a file in the content folder: a regular file, inside the folder, at most `max_bytes`."""
    return read_entry(root, relative, follow_external=follow_external, max_bytes=max_bytes)[0]


def read_entry(
    root: Path, relative: str, *, follow_external: bool = False, max_bytes: int = MAX_FILE_BYTES
) -> tuple[bytes, os.stat_result]:
    """A file's bytes (see `read_entry_file`) and the `stat` of what was read, taken before reading it.

    Everything is checked before the file is opened (opening a FIFO waits for a writer, opening
    a device can do things), and again on the open descriptor, which is what is read.
    """
    real = os.path.realpath(Path(root) / relative)
    if not follow_external and not _inside(real, os.path.realpath(root)):
        raise Refused(relative, 1, OUTSIDE)
    try:
        _check_regular(relative, os.stat(real), max_bytes)
        # The real path, so the checked target is what is opened; never blocking, never following.
        fd = os.open(real, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as error:
        raise ContentError(relative, 1, f"cannot read file ({error.strerror or error})") from None
    with open(fd, "rb") as handle:
        info = os.fstat(fd)
        _check_regular(relative, info, max_bytes)
        try:
            raw = handle.read(max_bytes + 1)  # +1: a file that grew since fstat is still caught
        except OSError as error:
            raise ContentError(relative, 1, f"cannot read file ({error.strerror or error})") from None
    if len(raw) > max_bytes:
        raise ContentError(relative, 1, f"file is larger than {size_text(max_bytes)}")
    return raw, info


def _check_regular(relative: str, info: os.stat_result, max_bytes: int) -> None:
    """Refuse anything but a regular file, and a regular file over the size limit, before reading it."""
    if not stat.S_ISREG(info.st_mode):
        kind = FILE_KINDS.get(stat.S_IFMT(info.st_mode), "not a file")
        raise Refused(relative, 1, f"not a regular file ({kind}); only regular files are read")
    if info.st_size > max_bytes:
        raise ContentError(relative, 1, f"file is larger than {size_text(max_bytes)}")


def _inside(real_path: str, real_root: str) -> bool:
    """Whether a resolved path is the resolved root or under it."""
    return real_path == real_root or real_path.startswith(real_root.rstrip(os.sep) + os.sep)


def _identity(path: Path) -> tuple[int, int]:
    """The device and inode of the folder a path leads to: the same for every way to it."""
    info = os.stat(path)
    return info.st_dev, info.st_ino
