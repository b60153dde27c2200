"""Using every core during an import: parsing and rendering in process pools, helpers that die with it.

Parsing and rendering Markdown are pure CPU work in Python, so a large import does them in
one process per core. Every helper process dies with the importer (Linux's parent-death
signal): an import killed with `kill -9` leaves no orphan behind, holding its lock.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import multiprocessing
import multiprocessing.util
import os
import signal
import sys
import threading
from concurrent.futures import ProcessPoolExecutor
from typing import NamedTuple

from .content import ContentError, ParsedEntry, parse_bytes
from .links import link_resolver
from .rendering import Rendered, render

log = logging.getLogger(__name__)

#: Below this many files to render, starting processes costs more than it saves.
MIN_PARALLEL = 200
MAX_PROCESSES = 8
CHUNK = 16
PR_SET_PDEATHSIG = 1

_resolve = None  # the link resolver of a pool process, set by its initializer


def process_count(jobs: int, *, forks: bool = False) -> int:
    """How many processes to use for `jobs` items of work: one per usable core, or 1.

    `forks`: the helpers will be forked (Whoosh's writers are), which is unsafe while other
    threads run (e.g. a background index rebuild in a gunicorn worker): then use one process.
    """
    if jobs < MIN_PARALLEL or (forks and threading.active_count() > 1):
        return 1
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, MAX_PROCESSES))


def render_entry(entry, resolve) -> tuple[Rendered, list[str]]:
    """Render one parsed entry, recording every link key it asked `resolve` about."""
    keys: list[str] = []

    def recording(key):
        keys.append(key)
        return resolve(key)

    rendered = render(entry.body, source_path=entry.path, resolve_link=recording, entry_slug=entry.slug)
    return rendered, keys


def parse_entries(files: list[tuple[str, bytes]], folder_tags: bool) -> list[ParsedEntry | ContentError]:
    """Parse (relative path, bytes) pairs, in order; in one process per core when there are many."""
    processes = process_count(len(files))
    if processes < 2:
        return [_parse(relative, raw, folder_tags) for relative, raw in files]
    jobs = [(relative, raw, folder_tags) for relative, raw in files]
    results = _map(_parse_job, jobs, processes, {})
    log.info("parsed %d files in %d processes", len(jobs), processes)
    return results


def render_entries(entries: list, slugs_by_path: dict[str, str]) -> dict[str, tuple[Rendered, list[str]]]:
    """path -> (Rendered, link keys) for many entries at once, in one process per core.

    Returns an empty dict when there are too few entries (or one core): the caller renders them itself.
    """
    processes = process_count(len(entries))
    if processes < 2:
        return {}
    jobs = [_Job(e.path, e.slug, e.body) for e in entries]
    results = dict(zip((job.path for job in jobs), _map(_render_job, jobs, processes, slugs_by_path), strict=True))
    log.info("rendered %d entries in %d processes", len(jobs), processes)
    return results


def _map(function, jobs: list, processes: int, slugs_by_path: dict) -> list:
    """`function` over `jobs` in a pool of `processes`, results in order; the pool stops on any error."""
    executor = ProcessPoolExecutor(
        processes, mp_context=_context(), initializer=_start_worker, initargs=(os.getpid(), slugs_by_path)
    )
    try:
        results = list(executor.map(function, jobs, chunksize=CHUNK))
    except BaseException:
        executor.shutdown(wait=False, cancel_futures=True)
        raise
    executor.shutdown()
    return results


def _parse(relative: str, raw: bytes, folder_tags: bool) -> ParsedEntry | ContentError:
    try:
        return parse_bytes(relative, raw, folder_tags=folder_tags)
    except ContentError as error:
        return error


def _parse_job(job) -> ParsedEntry | ContentError:
    """Parse in a pool process (a ContentError pickles itself)."""
    return _parse(*job)


class _Job(NamedTuple):
    """What a pool process needs to render one entry (small to pickle: no front matter)."""

    path: str
    slug: str
    body: str


def _context():
    """fork when this process has a single thread (fast, nothing re-imported); spawn otherwise."""
    return multiprocessing.get_context("fork" if threading.active_count() == 1 else "spawn")


def _start_worker(parent_pid: int, slugs_by_path: dict[str, str]) -> None:
    """Initializer of a pool process: die with the importer, ignore Ctrl-C, build the link resolver."""
    global _resolve
    die_with_parent(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the importer handles Ctrl-C and stops the pool
    _resolve = link_resolver(slugs_by_path)


def _render_job(job: _Job) -> tuple[Rendered, list[str]]:
    return render_entry(job, _resolve)


def die_with_parent(parent_pid: int) -> None:
    """Ask Linux to SIGKILL this process when its parent ends; exit at once if it already has."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent_pid:
        os._exit(1)


class _Binding:
    """Kept alive while forked helpers must die with this process (see `helpers_die_with_me`)."""

    def __init__(self):
        self.pid = os.getpid()


def _after_fork(binding: _Binding) -> None:
    die_with_parent(binding.pid)


@contextlib.contextmanager
def helpers_die_with_me():
    """Any `multiprocessing` process forked inside the block (e.g. Whoosh's index writers) dies with us."""
    binding = _Binding()
    # The registry holds the binding weakly: once it is gone, later forks are unaffected.
    multiprocessing.util.register_after_fork(binding, _after_fork)
    try:
        yield
    finally:
        del binding
