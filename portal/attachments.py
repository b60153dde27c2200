"""Files a note links to with a relative path (`![erd](img/erd.png)`, `[slides](talk.pdf)`): which may be served.

Pure (no Flask, no database). The importer checks each linked file once per import: it must be a
regular file inside the content folder (after following symbolic links), with no hidden part in
its path, no larger than the size cap. A file that passes is read and hashed; its bytes are
stored in the database under that hash and served at `/files/<hash>/<name>`, so the URL changes
whenever the bytes do and answers can be cached for good.

How a file is served depends on its type (from its name, with a fixed table, not the machine's):
images, audio, video, PDF and plain text are shown in the browser; SVG too, with a policy that
lets it run nothing; every other type (HTML, JavaScript, archives, programs) is served as a
download (`application/octet-stream`), so a note cannot make the site host an active page.
"""

from __future__ import annotations

import functools
import hashlib
import mimetypes
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

DEFAULT_MAX_BYTES = 10 * 1024 * 1024
URL_PREFIX = "files"


@functools.cache
def _types() -> mimetypes.MimeTypes:
    """Python's built-in table only (the machine's /etc/mime.types would make types differ between nodes).

    Built on first use: an import that reads no linked file (one that changed nothing) never needs it.
    """
    types = mimetypes.MimeTypes()
    for extension, media_type in {".webp": "image/webp", ".avif": "image/avif", ".md": "text/markdown"}.items():
        types.add_type(media_type, extension)
    return types


SVG = "image/svg+xml"
#: Types a browser shows without running anything of the file's (besides SVG, which is sandboxed).
INLINE_PREFIXES = ("image/", "audio/", "video/")
INLINE_TYPES = {"application/pdf", "text/plain", "text/csv", "text/markdown"}
#: What the browser may do with an attachment it shows: nothing active, no requests, no same-origin access.
SANDBOX_POLICY = "default-src 'none'; style-src 'unsafe-inline'; sandbox"
DOWNLOAD_TYPE = "application/octet-stream"


@dataclass(frozen=True, slots=True)
class FileInfo:
    """One linked file as the import found it: a hash when it may be served, else the problem."""

    path: str  # relative POSIX path in the content folder, as the note named it
    stamp: str  # what `stamp()` saw: a change means the notes linking to it are imported again
    hash: str | None = None
    size: int = 0
    type: str = DOWNLOAD_TYPE
    problem: str | None = None  # finishes "link to 'x' …" in a warning
    real: str | None = None  # the file read, after symbolic links

    @property
    def url(self) -> str:
        """Where it is served, relative to the site root."""
        return f"{URL_PREFIX}/{self.hash}/{quote(self.path.rsplit('/', 1)[-1])}"


class AttachmentFiles:
    """Checks and hashes the files notes link to; also the callable rendering asks (`path -> URL or None`).

    Picklable, so pool processes that render notes get their own copy.
    """

    def __init__(self, root, max_bytes: int = DEFAULT_MAX_BYTES):
        self.root = os.path.realpath(root)
        self.max_bytes = max_bytes
        self._found: dict[str, FileInfo] = {}

    def __call__(self, path: str) -> str | None:
        """The site-relative URL of a linkable file; None when it cannot be served."""
        info = self.info(path)
        return info.url if info.hash else None

    def info(self, path: str) -> FileInfo:
        """The file at `path` (relative to the content folder), checked and hashed once per import."""
        if path not in self._found:
            self._found[path] = self._read(path)
        return self._found[path]

    def stamp(self, path: str) -> str:
        """A cheap fingerprint (a `stat`, no read) that changes when the file, or what the path leads to, does."""
        return self._check(path)[0]

    def _check(self, path: str) -> tuple[str, str | None, str | None, os.stat_result | None]:
        """(stamp, problem, real path, stat) of a path; a problem means it is not served."""
        megabytes = f"{round(self.max_bytes / 1024 / 1024, 3):g}"
        if "\0" in path or path.startswith("/") or path == ".." or path.startswith("../"):
            return "outside", "leaves the content folder", None, None
        if any(part.startswith(".") for part in path.split("/")):
            return "hidden", "points to a hidden file", None, None
        real = os.path.realpath(os.path.join(self.root, path))
        inside = os.path.relpath(real, self.root)
        if inside == os.pardir or inside.startswith(os.pardir + os.sep) or os.path.isabs(inside):
            return "outside", "leaves the content folder (through a symbolic link)", None, None
        if any(part.startswith(".") for part in Path(inside).parts):
            return "hidden", "points to a hidden file (through a symbolic link)", None, None
        try:
            status = os.stat(real)
        except FileNotFoundError:
            return "missing", "points to no file", None, None
        except OSError as error:
            return "unreadable", f"points to a file that cannot be read ({error.strerror or error})", None, None
        stamp = f"{inside}:{status.st_size}:{status.st_mtime_ns}"
        if not stat.S_ISREG(status.st_mode):
            return stamp, "points to a folder, not a file", None, None
        if status.st_size > self.max_bytes:
            return stamp, f"points to a file larger than {megabytes} MB (NEXUS_MAX_ATTACHMENT_MB)", None, None
        return stamp, None, real, status

    def _read(self, path: str) -> FileInfo:
        """Check a path and hash the file's bytes."""
        stamp, problem, real, _status = self._check(path)
        if problem is not None:
            return FileInfo(path, stamp, problem=problem)
        try:
            data = read_limited(real, self.max_bytes)
        except OSError as error:
            return FileInfo(path, stamp, problem=f"points to a file that cannot be read ({error.strerror or error})")
        if data is None:  # it grew past the cap since the check
            return FileInfo(path, stamp, problem="points to a file larger than the size cap (NEXUS_MAX_ATTACHMENT_MB)")
        return FileInfo(path, stamp, hashlib.sha256(data).hexdigest(), len(data), guess_type(path), real=real)


def read_limited(real: str, max_bytes: int) -> bytes | None:
    """A file's bytes, or None when it holds more than `max_bytes`."""
    with open(real, "rb") as handle:
        data = handle.read(max_bytes + 1)
    return None if len(data) > max_bytes else data


def read_blob(info: FileInfo) -> bytes | None:
    """The bytes `info` was hashed from, read again to be stored; None if they changed since (the next import sees it)."""
    try:
        data = read_limited(info.real, info.size)
    except OSError:
        return None
    return data if data is not None and hashlib.sha256(data).hexdigest() == info.hash else None


def guess_type(path: str) -> str:
    """The media type a file's name suggests; unknown names are plain bytes."""
    return _types().guess_type(path, strict=False)[0] or DOWNLOAD_TYPE


def serving(media_type: str) -> tuple[str, bool, str | None]:
    """How to serve a stored type: (Content-Type, shown in the browser?, Content-Security-Policy or None for the site's).

    PDF keeps the site's policy: Chromium's viewer shows nothing in a sandboxed document.
    """
    if media_type == SVG:
        return SVG, True, SANDBOX_POLICY
    if media_type == "application/pdf":
        return media_type, True, None
    if media_type.startswith(INLINE_PREFIXES):
        return media_type, True, SANDBOX_POLICY
    if media_type in INLINE_TYPES:
        return f"{media_type}; charset=utf-8", True, SANDBOX_POLICY
    return DOWNLOAD_TYPE, False, SANDBOX_POLICY
