"""The scan step of an import: the content folder compared with the database, file by file.

A file is read and hashed together with whatever else changes its entry: the renderer's version
and settings, its dates from git (committing a note, or moving HEAD, imports it again though its
bytes are the same) and the files it links to (by `stat`). Files whose hash and linked files are
unchanged are only noted as present. A full scan reads every Markdown file; a targeted scan (for
a watcher, which knows what changed) reads only the paths it is given.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from .attachment_store import stored_references
from .attachments import AttachmentFiles
from .content import ContentError, content_hash
from .folder import Refused, find_markdown_files, is_markdown, is_skipped, read_entry_file, walk
from .gitdates import FileDates, read_git_dates
from .report import ImportReport
from .writer import Existing


@dataclass
class Scan:
    """The folder compared with the database: which files exist, and the bytes of those that changed."""

    present: set[str] = field(default_factory=set)
    changed: dict[str, bytes] = field(default_factory=dict)
    digests: dict[str, str] = field(default_factory=dict)
    git: dict[str, FileDates] = field(default_factory=dict)  # path -> its dates from git, if it is committed


@dataclass
class Scanner:
    """What reading one file compares it with: the database's rows, the hash's salt, git dates, linked files."""

    root: Path
    existing: dict[str, Existing]
    salt: tuple
    report: ImportReport
    files: AttachmentFiles | None = None
    follow_external: bool = False  # NEXUS_FOLLOW_EXTERNAL_SYMLINKS: read what symlinks lead to outside the folder
    scan: Scan = field(default_factory=Scan)
    linked: dict = field(default_factory=dict)

    def start(self, git_cache) -> None:
        """Read the git dates (`git_cache`: the folder to cache git's answer in; None when they are off) and links."""
        if git_cache is not None:
            git = read_git_dates(self.root, git_cache)
            if git.warning:
                self.report.warnings.append(git.warning)
            self.scan.git = git.dates
        self.linked = stored_references() if self.files is not None else {}

    def read(self, relative: str) -> None:
        """Note one file as present; keep its bytes only if it changed since its last import."""
        scan = self.scan
        try:
            raw = read_entry_file(self.root, relative, follow_external=self.follow_external)
        except Refused as error:  # not published at all: an entry it made before is deleted
            self.report.errors.append(error)
            return
        except ContentError as error:  # unreadable: its last good version stays
            scan.present.add(relative)
            self.report.errors.append(error)
            return
        scan.present.add(relative)
        digest = content_hash(raw, *self.salt, _git_salt(scan.git.get(relative)))
        old = self.existing.get(relative)
        if old is not None and old.content_hash == digest and self._same_files(relative):
            self.report.unchanged.append(relative)
            return
        scan.changed[relative] = raw
        scan.digests[relative] = digest

    def _same_files(self, relative: str) -> bool:
        """Whether every file a note linked to at its last import is as it was then."""
        files = self.files
        return files is None or all(files.stamp(path) == stamp for path, stamp in self.linked.get(relative, ()))


def scan_folder(scanner: Scanner, progress=None) -> Scan:
    """Read every Markdown file of the folder; symlinked folders that lead outside it are reported."""
    found = walk(scanner.root, follow_external=scanner.follow_external)
    scanner.report.errors.extend(found.problems)
    markdown = found.files
    for path in progress(markdown) if progress else markdown:
        scanner.read(path.relative_to(scanner.root).as_posix())
    return scanner.scan


def scan_paths(scanner: Scanner, paths) -> Scan:
    """Read only `paths` (relative files or folders); every other known entry is present and unchanged, unread.

    For a watcher, which knows what changed: at 10,000 entries a save costs one read, not 10,000.
    The rest of the import is the same as after `scan_folder` (slugs, link resolution, relinking of
    unchanged entries whose links now resolve differently, deletions), so the result equals a full
    import's as long as `paths` names every file or folder that changed since the last import (a
    deleted or moved-away folder by its old path) plus the files that import reported errors for
    (a file that lost a slug clash may win it now). `_tags.yml` among them means a full scan.
    """
    root, existing = scanner.root, scanner.existing
    wanted: set[str] = set()
    touched: set[str] = set()
    for path in paths:
        relative = PurePosixPath(path).as_posix().strip("/")
        if relative in ("", "."):
            return scan_folder(scanner)  # the whole folder
        if any(is_skipped(part) for part in relative.split("/")):
            continue  # no entry lives there (`_intro.md` is read by every import anyway)
        target = root / relative
        if target.is_dir():
            markdown = find_markdown_files(target, follow_external=scanner.follow_external)
            wanted.update(f.relative_to(root).as_posix() for f in markdown)
        elif is_markdown(target.name) and target.is_file():
            wanted.add(relative)
        if relative in existing:
            touched.add(relative)
        elif target.is_dir() or not target.exists():  # a folder, or a deleted or moved-away one
            touched.update(p for p in existing if p.startswith(relative + "/"))
    scan = scanner.scan
    scan.present = set(existing) - touched
    scanner.report.unchanged.extend(sorted(scan.present - wanted))
    for relative in sorted(wanted):
        scanner.read(relative)
    return scan


def _git_salt(dates: FileDates | None) -> str:
    """The part of a note's hash that its git dates make."""
    return f"git={dates.created}/{dates.updated}" if dates else "git="
