"""Parsing and rendering in sandbox processes: one process per core, a time and memory budget per file.

Parsing and rendering Markdown are pure CPU work in Python, so a large import does them in
one process per core. They also run untrusted input through recursive parsers: every file is
parsed and rendered in a worker process with a memory limit (`RLIMIT_AS`) and a deadline the
importer enforces. A worker that passes its deadline is killed, one that dies is replaced, and
the file it was on gets a `ContentError`: a runaway file costs its budget and no more, and the
other files still import. Every worker dies with the importer (Linux's parent-death signal):
an import killed with `kill -9` leaves no orphan behind, holding its lock.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import faulthandler
import logging
import multiprocessing
import multiprocessing.util
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from multiprocessing.connection import wait
from multiprocessing.reduction import ForkingPickler
from typing import NamedTuple

from .content import ContentError, ParsedEntry, parse_bytes
from .links import link_resolver
from .rendering import Rendered, render

try:
    import resource
except ImportError:  # not POSIX: no memory limit
    resource = None

log = logging.getLogger(__name__)

#: Below this many files to render, one worker process is enough.
MIN_PARALLEL = 200
MAX_PROCESSES = 8
PR_SET_PDEATHSIG = 1

_resolve = None  # the link resolver of a worker process, set by `_set_links`


@dataclass(frozen=True)
class Budget:
    """What parsing and rendering one file may cost: seconds of wall-clock time and megabytes of memory."""

    seconds: float = 10.0
    megabytes: float = 512.0


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


def parse_entries(
    sandbox: Sandbox, files: list[tuple[str, bytes]], folder_tags: bool
) -> list[ParsedEntry | ContentError]:
    """Parse (relative path, bytes) pairs in the sandbox, results in order."""
    results = sandbox.run(_parse, [(relative, (relative, raw, folder_tags)) for relative, raw in files])
    if files:
        log.info("parsed %d files in %d processes", len(files), sandbox.used)
    return results


def render_entries(sandbox: Sandbox, entries: list, slugs_by_path: dict[str, str]) -> dict:
    """path -> (Rendered, link keys), or the ContentError that stopped it, for every entry (or `RenderJob`)."""
    sandbox.setup(_set_links, slugs_by_path)
    jobs = [RenderJob(e.path, e.slug, e.body) for e in entries]
    results = sandbox.run(_render_job, [(job.path, (job,)) for job in jobs])
    if jobs:
        log.info("rendered %d entries in %d processes", len(jobs), sandbox.used)
    return dict(zip((job.path for job in jobs), results, strict=True))


class RenderJob(NamedTuple):
    """What a worker needs to render one entry (small to pickle: no front matter)."""

    path: str
    slug: str
    body: str


class Sandbox:
    """Worker processes that parse and render one file at a time, each file within a `Budget`.

    Workers start when the first job needs them and are killed when the block ends. A file's
    budget is shared by its parsing and its rendering.
    """

    def __init__(self, processes: int = 1, budget: Budget = Budget()):
        self.size = max(1, processes)
        self.budget = budget
        self.used = 0  # how many workers the last `run` kept busy at once
        self._context = _context()
        self._idle: list[_Worker] = []
        self._setup: dict = {}  # function -> args: calls every worker makes before its first job
        self._spent: dict[str, float] = {}  # path -> seconds its jobs took so far
        self._lost: collections.Counter = collections.Counter()  # jobs whose worker died before taking them

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        """Stop every idle worker (busy ones are stopped by `run`, even when it is interrupted)."""
        while self._idle:
            self._idle.pop().stop()

    def setup(self, function, *args) -> None:
        """Have every worker, now and started later, call `function(*args)` before its next job."""
        known = self._setup.get(function)
        if known is not None and len(known) == len(args) and all(a is b for a, b in zip(known, args, strict=True)):
            return
        self._setup[function] = args
        for worker in list(self._idle):
            try:
                worker.connection.send((function, args, None))
            except OSError:  # it died while idle
                self._idle.remove(worker)
                worker.stop()

    def run(self, function, jobs: list[tuple[str, tuple]]) -> list:
        """`function(*args)` for each (path, args) job, results in order; a failure is that path's ContentError."""
        results: list = [None] * len(jobs)
        waiting = collections.deque(enumerate(jobs))
        busy: list[_Worker] = []
        self.used = min(self.size, len(jobs))
        self._lost = collections.Counter()
        try:
            while waiting or busy:
                self._hand_out(function, waiting, busy, results)
                self._collect(busy, results)
        finally:
            for worker in busy:  # interrupted (Ctrl-C): nothing may keep running
                worker.stop()
        return results

    def _hand_out(self, function, waiting: collections.deque, busy: list, results: list) -> None:
        """Give waiting jobs to idle or new workers until every worker is busy."""
        while waiting and len(busy) < self.size:
            index, (path, args) = waiting.popleft()
            left = self.budget.seconds - self._spent.get(path, 0.0)
            if left <= 0:
                results[index] = self._over_time(path)
                continue
            worker = self._idle.pop() if self._idle else _Worker(self._context, self.budget.megabytes, self._setup)
            try:
                worker.give(index, path, function, args, left)
            except OSError:  # it died idle or while setting up: another one tries, once
                self._lost[index] += 1
                exitcode = worker.stop()
                if self._lost[index] > 1:
                    results[index] = self._crashed(path, exitcode)
                else:
                    waiting.appendleft((index, (path, args)))
                continue
            busy.append(worker)

    def _collect(self, busy: list, results: list) -> None:
        """Wait for the first answer, death or deadline among busy workers, and take every outcome there is."""
        if not busy:
            return
        timeout = max(0.0, min(worker.deadline for worker in busy) - time.monotonic())
        ready = set(wait([w.connection for w in busy] + [w.process.sentinel for w in busy], timeout))
        for worker in list(busy):
            done, result = self._outcome(worker, ready)
            if done:
                busy.remove(worker)
                self._spent[worker.path] = self._spent.get(worker.path, 0.0) + time.monotonic() - worker.started
                results[worker.index] = result

    def _outcome(self, worker: _Worker, ready: set) -> tuple[bool, object]:
        """(True, result) once a worker answered, died or ran out of time; (False, None) while it works."""
        if worker.connection in ready:
            try:
                retire, result = worker.connection.recv()
            except (EOFError, OSError):
                pass  # it died before answering: see below
            else:
                if retire:
                    worker.stop()
                else:
                    self._idle.append(worker)
                return True, result
        if worker.process.sentinel in ready or not worker.process.is_alive():
            return True, self._crashed(worker.path, worker.stop())
        if time.monotonic() >= worker.deadline:
            worker.stop()
            return True, self._over_time(worker.path)
        return False, None

    def _over_time(self, path: str) -> ContentError:
        return ContentError(
            path, 1, f"took more than {self.budget.seconds:g} s to parse and render; stopped (NEXUS_MAX_RENDER_SECONDS)"
        )

    def _crashed(self, path: str, exitcode: int | None) -> ContentError:
        how = f"signal {signal.Signals(-exitcode).name}" if exitcode and exitcode < 0 else f"exit code {exitcode}"
        return ContentError(
            path,
            1,
            f"the process rendering it stopped ({how}); it may need more than {self.budget.megabytes:g} MB "
            "of memory (NEXUS_MAX_RENDER_MB) or nest too deeply",
        )


class _Worker:
    """One sandbox process, the pipe to it, and the job it is on."""

    def __init__(self, context, megabytes: float, setup: dict):
        self.connection, child = context.Pipe()
        self.process = context.Process(
            target=_serve, args=(child, os.getpid(), megabytes), name="nexus-render", daemon=True
        )
        self.process.start()
        child.close()
        self.setup = list(setup.items())  # sent with the first job, where a dead worker is noticed
        self.index, self.path, self.started, self.deadline = -1, "", 0.0, 0.0

    def give(self, index: int, path: str, function, args: tuple, seconds: float) -> None:
        """Send one job, to be answered within `seconds` (OSError if the process is gone)."""
        while self.setup:
            setup_function, setup_args = self.setup.pop(0)
            self.connection.send((setup_function, setup_args, None))
        self.index, self.path = index, path
        self.started = time.monotonic()
        self.deadline = self.started + seconds
        self.connection.send((function, args, path))

    def stop(self) -> int | None:
        """Kill the process (it holds no state worth a goodbye), close the pipe; its exit code."""
        if self.process.is_alive():
            self.process.kill()
        self.process.join()
        exitcode = self.process.exitcode
        self.connection.close()
        self.process.close()
        return exitcode


def _serve(connection, parent_pid: int, megabytes: float) -> None:
    """A worker's loop: run each job it is sent and answer (retire, result); any failure is the file's."""
    die_with_parent(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the importer handles Ctrl-C and stops the workers
    faulthandler.disable()  # a crash is reported as the file's error, without a stack dump in the output
    _limit_memory(megabytes)
    while True:
        try:
            function, args, path = connection.recv()
        except EOFError:
            return
        if path is None:  # setup
            function(*args)
            continue
        result, retire = _attempt(path, function, args, megabytes)
        try:
            payload = ForkingPickler.dumps((retire, result))
        except Exception as error:  # noqa: BLE001 - e.g. MemoryError: still the file's problem
            payload = ForkingPickler.dumps((True, _failure(path, error, megabytes)))
        connection.send_bytes(payload)
        if retire:
            return


def _attempt(path: str, function, args: tuple, megabytes: float) -> tuple[object, bool]:
    """(result or ContentError, whether this worker should retire: after a MemoryError it starts afresh)."""
    try:
        return function(*args), False
    except ContentError as error:
        return error, False
    except Exception as error:  # noqa: BLE001 - any failure of one file is that file's problem
        return _failure(path, error, megabytes), isinstance(error, MemoryError)


def _failure(path: str, error: BaseException, megabytes: float) -> ContentError:
    """The ContentError that reports an unexpected exception while parsing or rendering a file."""
    if isinstance(error, MemoryError):
        return ContentError(path, 1, f"needs more than {megabytes:g} MB of memory to render (NEXUS_MAX_RENDER_MB)")
    if isinstance(error, RecursionError):
        return ContentError(path, 1, "nested too deeply to render (maximum recursion depth exceeded)")
    log.warning("%s: unexpected error while parsing or rendering", path, exc_info=error)
    detail = str(error).split("\n", 1)[0][:200]
    return ContentError(path, 1, f"cannot be rendered ({type(error).__name__}: {detail})")


def _limit_memory(megabytes: float) -> None:
    """Cap this process's address space at what it maps now plus `megabytes`: beyond, MemoryError."""
    if resource is None:
        return
    try:
        with open("/proc/self/statm") as statm:
            mapped = int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:  # not Linux: count from nothing
        mapped = 0
    limit = mapped + int(megabytes * 1024 * 1024)
    _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def _parse(relative: str, raw: bytes, folder_tags: bool) -> ParsedEntry:
    return parse_bytes(relative, raw, folder_tags=folder_tags)


def _set_links(slugs_by_path: dict[str, str]) -> None:
    global _resolve
    _resolve = link_resolver(slugs_by_path)


def _render_job(job: RenderJob) -> tuple[Rendered, list[str]]:
    return render_entry(job, _resolve)


def _context():
    """fork when this process has a single thread (fast, nothing re-imported); spawn otherwise."""
    return multiprocessing.get_context("fork" if threading.active_count() == 1 else "spawn")


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
