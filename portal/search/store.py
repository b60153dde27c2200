"""The index on disk: built aside from documents or updated aside from the live one, swapped in atomically, checked and opened.

Only the importer and this node's index sync write (one at a time, under the import lock);
every other caller reads. The live index is a symlink (`<instance>/index`) to a directory
built aside; swapping the symlink is atomic, so a reader sees the old index or the new one,
never half of one. An incremental update writes a new directory too, of hard links to the
live one's files plus what changed, so the live directory is never written.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import hashlib
import logging
import os
import shutil
import uuid
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from ..generation import GENERATION_FILE, read_generation, write_generation

if TYPE_CHECKING:
    from .building import Preparation

# Whoosh, the analysis and the arrays are imported by the functions that open or write an index:
# the request layer (caching.py) and an import that changed nothing only need its paths.

log = logging.getLogger(__name__)

INDEX_LINK = "index"
#: The file in each index directory that names the analysis it was written with (see `analysis_fingerprint`).
FINGERPRINT_FILE = "analysis"
#: Files of an index directory an update must not share with the live one: Whoosh's lock files
#: (`MAIN_WRITELOCK`), and our own files, written anew.
NOT_LINKED_SUFFIX = "LOCK"
NOT_LINKED = {GENERATION_FILE, FINGERPRINT_FILE}


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


def build_index(
    instance_path, documents, generation: int, *, procs: int = 1, prepare: Preparation | None = None
) -> Path:
    """Write a new index aside from `documents` (items `prepare` turns into documents, if given), then swap it in atomically."""
    from whoosh import index  # lazy: see the imports

    from .analysis import make_schema
    from .building import write_index

    instance = Path(instance_path)
    instance.mkdir(parents=True, exist_ok=True)
    name = f"index.{generation}.{uuid.uuid4().hex[:8]}"
    building = instance / (name + ".building")
    building.mkdir()
    ix = index.create_in(str(building), make_schema())
    try:
        count = write_index(ix, documents, procs, writer_options(), prepare)
    except BaseException:
        ix.close()
        shutil.rmtree(building, ignore_errors=True)
        raise
    ix.close()
    final = _publish(instance, name, generation)
    log.info("search index generation %s built with %d documents", generation, count)
    return final


def update_index(instance_path, generation: int, slugs, documents) -> Path:
    """Remove the documents of `slugs` from a copy of the live index, add `documents`, then swap it in.

    The copy is a new directory of hard links to the live directory's files: whoosh-reloaded
    2.7.5 never writes an existing file of an index (a commit writes a new segment under a new
    random name and a new numbered TOC, which lists the deleted documents of older segments; it
    then deletes the files no TOC uses, here only links), so the live index stays as it was and
    a crash at any moment leaves it served. Small segments are merged afterwards
    (`merge_segments`), so that merging never delays the update.

    A full build records each spelling word once per block of documents (`thin_spelling`); an
    update indexes its documents' spelling words whole. The two indexes then hold the same
    documents with the same terms in every field, and the same spelling vocabulary; only the
    `spell` field's postings per document differ. A deleted document's terms stay in its
    segment's term lists (and document frequencies) until that segment is merged.
    """
    instance = Path(instance_path)
    live = live_index_dir(instance)
    if live is None:
        raise IndexUnavailable("there is no live index to update")
    name = f"index.{generation}.{uuid.uuid4().hex[:8]}"
    building = instance / (name + ".building")
    building.mkdir()
    slugs, documents = list(slugs), list(documents)
    try:
        _link_files(live, building)
        if slugs or documents:  # else only the generation changes (e.g. the home page's introduction)
            _write_changes(building, slugs, documents)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    return _publish(instance, name, generation)


def _write_changes(directory: Path, slugs: list[str], documents: list[dict]) -> None:
    """Delete `slugs` and add `documents` in one commit of a Whoosh writer on `directory`."""
    with _writer_on(directory) as writer:
        for slug in slugs:
            writer.delete_by_term("slug", slug)
        for document in documents:
            writer.add_document(**document)
        writer.commit(merge=False)


@contextlib.contextmanager
def _writer_on(directory: Path):
    """A Whoosh writer on the index in `directory`: cancelled if the block fails, the index closed after."""
    from whoosh.filedb.filestore import FileStorage  # lazy: see the imports

    ix = FileStorage(str(directory), supports_mmap=False).open_index()
    writer = ix.writer(limitmb=64, **writer_options())
    try:
        yield writer
    except BaseException:
        writer.cancel()
        raise
    finally:
        ix.close()


def merge_segments(instance_path) -> Path | None:
    """Fold small segments together in a copy of the live index and swap it in under the same generation.

    Whoosh's usual policy (MERGE_SMALL: once several small segments hold few documents, they
    become one). A merge re-reads every posting of the merged segments (a second or more at
    10,000 entries), so it runs after an update is live rather than inside it. None when the
    policy merges nothing (the copy is thrown away).
    """
    instance = Path(instance_path)
    live = live_index_dir(instance)
    if live is None:
        return None
    generation = index_generation(live)
    name = f"index.{generation}.{uuid.uuid4().hex[:8]}"
    building = instance / (name + ".building")
    building.mkdir()
    try:
        _link_files(live, building)
        merged = _merge_small(building)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    if not merged:
        shutil.rmtree(building, ignore_errors=True)
        return None
    return _publish(instance, name, generation)


def _merge_small(directory: Path) -> bool:
    """Commit Whoosh's MERGE_SMALL policy on `directory`; whether it merged anything."""
    from whoosh.writing import MERGE_SMALL  # lazy: see the imports

    merged = False

    def policy(writer, segments):
        nonlocal merged
        kept = MERGE_SMALL(writer, segments)
        merged = len(kept) < len(segments)
        return kept

    with _writer_on(directory) as writer:
        writer.commit(mergetype=policy)
    return merged


def _link_files(source: Path, target: Path) -> None:
    """Hard-link every index file of `source` into `target` (never a copy, never a lock file)."""
    for entry in os.scandir(source):
        linked = entry.name not in NOT_LINKED and not entry.name.endswith(NOT_LINKED_SUFFIX)
        if linked and entry.is_file(follow_symlinks=False):
            os.link(entry.path, target / entry.name)


def _publish(instance: Path, name: str, generation: int) -> Path:
    """Add the arrays of new segments to a finished `<name>.building` directory, label it, rename it and swap it in."""
    from . import compact  # lazy: see the imports

    building = instance / (name + ".building")
    compact.write_missing(building)
    write_generation(building, generation)
    (building / FINGERPRINT_FILE).write_text(analysis_fingerprint() + "\n")
    final = instance / name
    os.rename(building, final)
    _swap_link(instance, name)
    _remove_stale(instance, keep={name})
    return final


#: How segments are written: postings in blocks of 1,024 (Whoosh's default is 128), compressed
#: lightly where it pays (`internals.BlockCodec`), each in a file of its own (no compound file).
#: Searches read whole posting lists (search/postings.py), and at 10,000 entries these blocks made
#: a word's first read 1.2 times faster, the index no larger, and its build no slower.
BLOCK_POSTINGS = 1024
COMPRESSION = 1


def writer_options() -> dict:
    """The options every writer of an index gets (a full build, an update, a merge alike)."""
    from .internals import BlockCodec  # lazy: see the imports

    return {"codec": BlockCodec(blocklimit=BLOCK_POSTINGS, compression=COMPRESSION), "compound": False}


@functools.cache
def analysis_fingerprint() -> str:
    """A hash of the analysis code, the writers' options, the arrays' format and Whoosh's version: an index written otherwise is rebuilt, not updated."""
    import whoosh  # lazy: see the imports

    from . import analysis, compact, internals

    digest = hashlib.blake2b(Path(analysis.__file__).read_bytes(), digest_size=8)
    digest.update(f"blocks={BLOCK_POSTINGS},compression={COMPRESSION},compound=False".encode())
    digest.update(f"block-pickle={internals.BLOCK_PROTOCOL},compress-from={internals.COMPRESS_FROM}".encode())
    digest.update(f"arrays={compact.VERSION}".encode())
    digest.update(whoosh.versionstring().encode())
    return digest.hexdigest()


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
    """The content generation an index directory was built from."""
    return read_generation(directory)


def index_fingerprint(directory: Path) -> str | None:
    """The analysis fingerprint an index directory was written with (None: older than fingerprints)."""
    try:
        return (Path(directory) / FINGERPRINT_FILE).read_text().strip()
    except OSError:
        return None


class IndexState(NamedTuple):
    """What an update needs to know of the live index."""

    directory: Path
    generation: int | None
    fingerprint: str | None  # None: written before fingerprints
    documents: int
    deleted: int  # documents marked deleted in segments not merged since


def live_index_state(instance_path) -> IndexState | None:
    """The live index's generation, analysis and document counts; None if there is none or it will not open."""
    directory = live_index_dir(instance_path)
    if directory is None:
        return None
    try:
        ix = open_index(directory)
    except IndexUnavailable:
        return None
    try:
        with ix.reader() as reader:
            documents, total = reader.doc_count(), reader.doc_count_all()
    finally:
        ix.close()
    return IndexState(
        directory, index_generation(directory), index_fingerprint(directory), documents, total - documents
    )


def live_generation(instance_path) -> int | None:
    """The generation the live index was built from, without opening it; None if there is no live index.

    What an import that changed nothing asks: opening the index would load Whoosh's readers and
    codec for nothing. An index that no longer opens is rebuilt by the next import that changes
    something, at start-up (`importer.ensure_ready`) and by `flask reindex`.
    """
    directory = live_index_dir(instance_path)
    return None if directory is None else index_generation(directory)


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
    from whoosh.filedb.filestore import FileStorage  # lazy: see the imports

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
