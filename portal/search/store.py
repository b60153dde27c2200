"""The index on disk: built aside from documents, swapped in atomically, checked and opened.

Only the importer builds; every other caller reads. The live index is a symlink
(`<instance>/index`) to a directory built aside; swapping the symlink is atomic, so a reader
sees the old index or the new one, never half of one.
"""

from __future__ import annotations

import gc
import logging
import os
import shutil
import uuid
import warnings
from pathlib import Path

from whoosh import index
from whoosh.filedb.filestore import FileStorage

from ..generation import read_generation, write_generation
from .analysis import SCHEMA_VERSION, make_schema

log = logging.getLogger(__name__)

INDEX_LINK = "index"
#: Names the schema version an index directory was built with (see analysis.SCHEMA_VERSION).
SCHEMA_FILE = "schema"


def index_link(instance_path) -> Path:
    """The symlink that names the live index directory."""
    return Path(instance_path) / INDEX_LINK


def live_index_dir(instance_path) -> Path | None:
    """The directory the live symlink points to, or None if there is none."""
    link = index_link(instance_path)
    try:
        target = os.readlink(link)
    except OSError:
        return None
    return link.parent / target


def build_index(instance_path, documents, generation: int, *, procs: int = 1) -> Path:
    """Write a new index aside from `documents`, then swap it in atomically."""
    instance = Path(instance_path)
    instance.mkdir(parents=True, exist_ok=True)
    name = f"index.{generation}.{uuid.uuid4().hex[:8]}"
    building = instance / (name + ".building")
    building.mkdir()
    ix = index.create_in(str(building), make_schema())
    # Each parallel writer holds its postings in memory up to `limitmb`; spilling them to disk and
    # merging back made a 10,000-entry build 40% slower at 128 MB than at 512 MB (bench/http.py).
    writer = ix.writer(limitmb=128 if procs == 1 else 512, procs=procs, multisegment=procs > 1)
    count = 0
    try:
        for document in documents:
            writer.add_document(**document)
            count += 1
        writer.commit(optimize=procs > 1)
    except BaseException:
        writer.cancel()
        ix.close()
        shutil.rmtree(building, ignore_errors=True)
        raise
    ix.close()
    write_generation(building, generation)
    (building / SCHEMA_FILE).write_text(f"{SCHEMA_VERSION}\n")
    final = instance / name
    os.rename(building, final)
    _swap_link(instance, name)
    _remove_stale(instance, keep={name})
    log.info("search index generation %s built with %d documents", generation, count)
    return final


def _swap_link(instance: Path, name: str) -> None:
    """Point `index` at `name` with one rename (atomic on POSIX)."""
    temporary = instance / f".index-link.{uuid.uuid4().hex[:8]}"
    os.symlink(name, temporary)
    link = instance / INDEX_LINK
    if link.is_dir() and not link.is_symlink():
        shutil.rmtree(link)  # an index from before symlinks: nothing can be reading it atomically anyway
    os.replace(temporary, link)


def _remove_stale(instance: Path, keep: set[str]) -> None:
    """Delete old and half-built index directories, keeping the previous one for open readers."""
    candidates = sorted(
        (p for p in instance.glob("index.*") if p.is_dir() and p.name not in keep),
        key=lambda p: p.stat().st_mtime,
        reverse=True,
    )
    finished = [p for p in candidates if not p.name.endswith(".building")]
    # Keep one previous generation: a worker may still be reading it for a moment.
    for path in finished[1:] + [p for p in candidates if p.name.endswith(".building")]:
        shutil.rmtree(path, ignore_errors=True)


def index_generation(directory: Path) -> int | None:
    """The content generation an index directory was built from; None for an index of another schema.

    An index built by another version of the schema or the analysis is treated as missing, so
    start-up and the next import rebuild it rather than read or update it.
    """
    try:
        version = int((Path(directory) / SCHEMA_FILE).read_text().strip())
    except (OSError, ValueError):
        return None
    return read_generation(directory) if version == SCHEMA_VERSION else None


def check_index(instance_path) -> tuple[int | None, int | None]:
    """(generation, document count) of the live index, or (None, None) if it will not open."""
    directory = live_index_dir(instance_path)
    if directory is None:
        return None, None
    try:
        ix = open_index(directory)
    except IndexUnavailable:
        return None, None
    try:
        return index_generation(directory), ix.doc_count()
    finally:
        ix.close()


def open_index(directory: Path):
    """Open an index directory; any failure becomes `IndexUnavailable`.

    Without mmap: whoosh-reloaded copies each memory-mapped segment file into a BytesIO
    (`BufferFile`), which cost every worker 100 MB at 10,000 entries; reading the files
    on demand costs about 5 MB and searches about 15% slower.
    """
    # Whoosh leaves files open when an index fails to open: close them quietly here.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        try:
            return FileStorage(str(directory), supports_mmap=False).open_index()
        except Exception as error:  # noqa: BLE001 - any failure to open means "rebuild it"
            message = f"the search index will not open: {error}"
        gc.collect()
    raise IndexUnavailable(message)


class IndexUnavailable(Exception):
    """The index is missing or will not open; the operator must reindex."""
