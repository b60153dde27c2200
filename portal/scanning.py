"""The scan step of an import: the content folder compared with the database, file by file.

A file is read, hashed and, if it changed, parsed in the sandbox's processes (on every core, see
`processes.read_entries`), its hash taken together with whatever else changes its entry: the renderer's version
and settings, its dates from git (committing a note, or moving HEAD, imports it again though its
bytes are the same) and the files it links to (by `stat`). Files whose hash and linked files are
unchanged are only noted as present. A full scan looks at every Markdown file; a targeted scan
(for a watcher, which knows what changed) reads only the paths it is given.

A full scan does not read a file whose `stat` says it is as its last import read it (see
`FileStamp`): same size, mtime, ctime, device and inode, and the same salt. The ctime is what makes that
safe: no program can set it, and any write, `touch` or `utime` moves it to the current time, even
one that puts the mtime back. What a stamp cannot tell apart is a change within the same clock tick
as the read, so, as git does with "racily clean" files, a file changed in the `RACY_SECONDS` before
the scan started gets no stamp and is read again by the next import. Symlinked files are always read.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from stat import S_ISREG

from .attachment_store import stored_references
from .attachments import AttachmentFiles
from .content import ContentError, ParsedEntry, content_hash
from .folder import Refused, find_markdown_files, is_markdown, is_skipped, walk
from .gitdates import FileDates, read_git_dates
from .processes import ReadJob, ReadSettings, read_entries
from .report import ImportReport
from .writer import Existing, Stamp

#: A file changed this close to the scan's start gets no stamp: a change in the same tick could keep its `stat`.
RACY_SECONDS = 2.0


@dataclass
class Scan:
    """The folder compared with the database: which files exist, and those that changed, parsed."""

    present: set[str] = field(default_factory=set)
    changed: dict[str, ParsedEntry | ContentError] = field(default_factory=dict)  # what changed, parsed
    digests: dict[str, str] = field(default_factory=dict)
    git: dict[str, FileDates] = field(default_factory=dict)  # path -> its dates from git, if it is committed
    stamps: dict[str, Stamp | None] = field(default_factory=dict)  # every file read -> its new stamp (None: none)


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
    pending: list[ReadJob] = field(default_factory=list)  # files `read` noted, for `read_pending` to read
    started_ns: int = field(default_factory=time.time_ns)
    salt_key: str = field(init=False)  # the salt as one string, for stamps

    def __post_init__(self) -> None:
        self.salt_key = content_hash(b"", *self.salt)

    def start(self, git_cache) -> None:
        """Read the git dates (`git_cache`: the folder to cache git's answer in; None when they are off) and links."""
        if git_cache is not None:
            git = read_git_dates(self.root, git_cache)
            if git.warning:
                self.report.warnings.append(git.warning)
            self.scan.git = git.dates
        self.linked = stored_references() if self.files is not None else {}

    def read(self, relative: str) -> None:
        """Note one file to be read (by `read_pending`), with the hash it had if its linked files are the same."""
        old = self.existing.get(relative)
        same = old is not None and self._same_files(relative)  # else parsed whatever its hash
        self.pending.append(
            ReadJob(relative, _git_salt(self.scan.git.get(relative)), old.content_hash if same else None)
        )

    def read_found(self, relatives: Iterable[str]) -> None:
        """Note each file the walk found as present and unchanged by its stamp, or to be read.

        Stamps are trusted here because the walk has already refused the symlinked folders that lead
        outside. One loop, not calls per file: at 10,000 unchanged files those cost as much as the `lstat`s.
        """
        root, existing, git, linked = f"{self.root}/", self.existing, self.scan.git, self.linked
        present, unchanged = self.scan.present, self.report.unchanged
        plain_salt = self._salt_of(_git_salt(None))
        for relative in relatives:
            old = existing.get(relative)
            if old is None or old.signature is None:
                self.read(relative)
                continue
            try:
                info = os.lstat(root + relative)
            except OSError:
                self.read(relative)  # reading it reports why
                continue
            holds = (
                S_ISREG(info.st_mode)  # a symlink's target can change under the same link
                and old.signature == _signature(info)
                and old.salt == (self._salt_of(_git_salt(git[relative])) if relative in git else plain_salt)
                and (relative not in linked or self._same_files(relative))
            )
            if holds:
                present.add(relative)
                unchanged.append(relative)
            else:
                self.read(relative)

    def read_pending(self, sandbox, folder_tags: bool) -> Scan:
        """Read, hash and parse the files `read` could not tell unchanged, in the sandbox's processes.

        Each file is read with all of `folder.read_entry`'s checks, within its budget; the parsed entries of
        those whose hash changed are kept, with the ContentError of each that cannot be parsed.
        """
        scan, jobs = self.scan, self.pending
        self.pending = []
        settings = ReadSettings(self.root, self.salt, self.follow_external, folder_tags)
        for job, read in zip(jobs, read_entries(sandbox, settings, jobs), strict=True):
            relative = job.path
            if isinstance(read, Refused):  # not published at all: an entry it made before is deleted
                self.report.errors.append(read)
                continue
            scan.present.add(relative)
            if isinstance(read, ContentError):  # unreadable: its last good version stays
                self.report.errors.append(read)
                continue
            scan.stamps[relative] = self._stamp(read.info, job.git_salt, read.digest)
            if read.entry is None:
                self.report.unchanged.append(relative)
                continue
            scan.changed[relative] = read.entry
            scan.digests[relative] = read.digest
        return scan

    def _stamp(self, info: os.stat_result, git_salt: str, digest: str) -> Stamp | None:
        """The stamp of a file just read; None if it changed too close to the scan to be told apart later."""
        if max(info.st_mtime_ns, info.st_ctime_ns) >= self.started_ns - int(RACY_SECONDS * 1e9):
            return None
        return Stamp(_signature(info), self._salt_of(git_salt), digest)

    def _salt_of(self, git_salt: str) -> str:
        """Everything besides a file's bytes that its hash covers, as one string."""
        return f"{self.salt_key}|{git_salt}"

    def _same_files(self, relative: str) -> bool:
        """Whether every file a note linked to at its last import is as it was then."""
        files = self.files
        return files is None or all(files.stamp(path) == stamp for path, stamp in self.linked.get(relative, ()))


def scan_folder(scanner: Scanner, progress=None) -> Scan:
    """Read every Markdown file of the folder; symlinked folders that lead outside it are reported."""
    found = walk(scanner.root, follow_external=scanner.follow_external)
    scanner.report.errors.extend(found.problems)
    markdown = found.relative
    scanner.read_found(progress(markdown) if progress else markdown)
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


def _signature(info: os.stat_result) -> str:
    """What a `stat` says of a file's bytes: size, mtime, ctime, device and inode."""
    return f"{info.st_size}:{info.st_mtime_ns}:{info.st_ctime_ns}:{info.st_dev}:{info.st_ino}"


def _git_salt(dates: FileDates | None) -> str:
    """The part of a note's hash that its git dates make."""
    return f"git={dates.created}/{dates.updated}" if dates else "git="
