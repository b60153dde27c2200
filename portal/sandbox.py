"""Sandbox processes: one per core, a time and memory budget per job, and none outlives its parent.

Parsing and rendering Markdown are pure CPU work in Python and run untrusted input through
recursive parsers. A `Sandbox` runs each job in a worker process with a memory limit
(`RLIMIT_AS`) and a kernel timer (`setitimer`) for its deadline. A worker that passes it is ended
by the kernel, one that crashes is replaced, and the job it was on gets a `ContentError`: a
runaway file costs its budget and no more. Every worker dies with the importer (Linux's
parent-death signal): an import killed with `kill -9` leaves no orphan behind, holding its lock.
"""

from __future__ import annotations

import collections
import contextlib
import faulthandler
import gc
import logging
import math
import os
import select
import signal
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from typing import NamedTuple

from .content import ContentError, printable

try:
    import resource
except ImportError:  # not POSIX: no memory limit
    resource = None

log = logging.getLogger(__name__)

#: Below this many files to render, one worker process is enough.
MIN_PARALLEL = 200
MAX_PROCESSES = 8
#: How long a worker may stay silent past a job's budget before the importer ends it (its own timer
#: should have; a spawned worker imports the renderer before its first job).
GRACE_SECONDS = 60
PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class Budget:
    """What parsing and rendering one file may cost: seconds of wall-clock time and megabytes of memory."""

    seconds: float = 10.0
    megabytes: float = 512.0


def process_count(jobs: int, *, forks: bool = False) -> int:
    """How many processes to use for `jobs` items of work: one per usable core, or 1.

    `forks`: the helpers will be forked (a full index build's writers are, search/building.py), which is unsafe while other
    threads run (e.g. a background index rebuild in a gunicorn worker): then use one process.
    """
    if jobs < MIN_PARALLEL or (forks and threading.active_count() > 1):
        return 1
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, MAX_PROCESSES))


class Sandbox:
    """Worker processes that parse and render files, each file within a `Budget`.

    Workers start when the first job needs them and are killed when the block ends. Small
    files are sent in batches and answered one by one. A worker arms a kernel timer for each
    file (`setitimer`: SIGALRM ends the process even inside C code), so the file it was on when
    it died is the one that ran out of time or crashed. A file's budget is shared by its parsing
    and its rendering.
    """

    def __init__(self, processes: int = 1, budget: Budget = Budget()):
        self.size = max(1, processes)
        self.budget = budget
        self.used = 0  # how many workers the last `run` used
        self._start_method = _start_method()  # decided now: threads started later do not change it
        self._workers: list[_Worker] = []
        self._ready = _Readiness()  # every worker's pipe and sentinel, polled by `_collect`
        self._setup: dict = {}  # function -> args: calls every worker makes before its next jobs
        self._spent: dict[str, float] = {}  # path -> seconds its jobs took so far
        self._lost: collections.Counter = collections.Counter()  # jobs whose worker was gone when sent

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        """Stop every worker."""
        while self._workers:
            worker = self._workers.pop()
            self._ready.remove(worker)
            worker.stop()

    def setup(self, function, *args) -> None:
        """Have every worker, now and started later, call `function(*args)` before its next jobs."""
        known = self._setup.get(function)
        if known is not None and len(known) == len(args) and all(a is b for a, b in zip(known, args, strict=True)):
            return
        self._setup[function] = args
        for worker in self._workers:
            worker.setup.append((function, args))

    def run(self, function, jobs: list[tuple[str, tuple]]) -> list:
        """`function(*args)` for each (path, args) job, results in order; a failure is that path's ContentError."""
        results: list = [None] * len(jobs)
        waiting = collections.deque(_Job(index, path, args) for index, (path, args) in enumerate(jobs))
        self.used = min(self.size, len(jobs))
        self._lost = collections.Counter()
        try:
            while waiting or any(worker.jobs for worker in self._workers):
                self._hand_out(function, waiting, results)
                self._collect(waiting, results)
        except BaseException:  # interrupted (Ctrl-C): nothing may keep running
            self.close()
            raise
        return results

    def _hand_out(self, function, waiting: collections.deque, results: list) -> None:
        """Send batches of waiting jobs to idle workers, new ones, or ones with less than a batch to do."""
        while waiting:
            worker = self._worker_for()
            if worker is None:
                return
            batch = self._batch(waiting, results, busy=bool(worker.jobs))
            if not batch:  # none left, or a large one that waits for an idle worker
                return
            try:
                worker.give(function, batch)
            except OSError:  # it was gone: if it had jobs, `_collect` reports the one it died on
                worker.broken = True
                if not worker.jobs:
                    self._discard(worker, waiting)
                for job in reversed(batch):
                    self._lost[job.index] += 1
                    if self._lost[job.index] > 2:  # each worker it is sent to is gone: it (or a setup) kills them
                        results[job.index] = self._crashed(job.path, None)
                    else:
                        waiting.appendleft(job)

    def _worker_for(self) -> _Worker | None:
        """An idle worker, a new one, or one with less than a batch to do; None if all have enough."""
        workers = [worker for worker in self._workers if not worker.broken]
        idle = [worker for worker in workers if not worker.jobs]
        if idle:
            return idle[0]
        if len(self._workers) < self.size:
            self._workers.append(_Worker(_context(self._start_method), self.budget.megabytes, self._setup))
            self._ready.add(self._workers[-1])
            return self._workers[-1]
        hungry = [w for w in workers if len(w.jobs) < BATCH_JOBS and w.bytes_sent() < BATCH_BYTES]
        return min(hungry, key=lambda worker: len(worker.jobs), default=None)

    def _batch(self, waiting: collections.deque, results: list, *, busy: bool) -> list[_Job]:
        """Jobs to send together: small ones up to BATCH_JOBS and BATCH_BYTES, a large one alone (and only
        to an idle worker, so that sending never waits on a worker that waits on us to read)."""
        batch: list[_Job] = []
        size = 0
        most = max(1, min(BATCH_JOBS, len(waiting) // (2 * self.size)))  # the last jobs spread over the workers
        while waiting and len(batch) < most:
            job = waiting[0]
            left = self.budget.seconds - self._spent.get(job.path, 0.0)
            if left <= 0:
                waiting.popleft()
                results[job.index] = self._over_time(job.path)
                continue
            weight = _weight(job.args)
            if batch and size + weight > BATCH_BYTES or weight > BATCH_BYTES and busy:
                break
            batch.append(waiting.popleft()._replace(seconds=left, weight=weight))
            size += weight
        return batch

    def _collect(self, waiting: collections.deque, results: list) -> None:
        """Wait for answers, deaths or a silent worker, and take every outcome there is."""
        busy = [worker for worker in self._workers if worker.jobs]
        if not busy:
            return
        timeout = max(0.0, min(worker.overdue for worker in busy) - time.monotonic())
        ready = self._ready.wait(busy, timeout)
        for worker in [w for w in self._workers if not w.jobs and w.ended(ready)]:
            self._discard(worker, waiting)  # it died idle: its sentinel would wake every wait
        for worker in busy:
            if worker.fd in ready:
                self._take_answers(worker, waiting, results)
            if worker not in self._workers or not worker.jobs:
                continue
            if worker.sentinel in ready or not worker.process.is_alive():
                self._take_answers(worker, waiting, results)  # what it said before it died
                if worker in self._workers and worker.jobs:
                    job = worker.jobs.popleft()
                    exitcode = self._discard(worker, waiting)
                    self._charge(job.path, job.seconds)
                    ran_out = exitcode == -signal.SIGALRM
                    results[job.index] = self._over_time(job.path) if ran_out else self._crashed(job.path, exitcode)
            elif time.monotonic() >= worker.overdue:  # its timer did not end it (stopped?): we do
                job = worker.jobs.popleft()
                self._discard(worker, waiting)
                self._charge(job.path, job.seconds)
                results[job.index] = self._over_time(job.path)

    def _take_answers(self, worker: _Worker, waiting: collections.deque, results: list) -> None:
        """Every answer already in a worker's pipe, in the order its jobs were sent."""
        while worker.jobs and worker.readable():
            try:
                index, retire, result, seconds = worker.connection.recv()
            except (EOFError, OSError):  # it died: `_collect` sees the sentinel
                return
            job = worker.jobs.popleft()
            if index != job.index:  # one pipe answers in order: anything else is a bug here, not in a file
                raise RuntimeError(f"sandbox worker answered job {index}, expected {job.index}")
            worker.heard = time.monotonic()
            self._charge(job.path, seconds)
            results[index] = result
            if retire:  # it exits (after a MemoryError): its other jobs go to another worker
                self._discard(worker, waiting)
                return

    def _charge(self, path: str, seconds: float) -> None:
        self._spent[path] = self._spent.get(path, 0.0) + seconds

    def _discard(self, worker: _Worker, waiting: collections.deque) -> int | None:
        """Stop a worker and put the jobs it had not done back in front of the queue; its exit code."""
        self._workers.remove(worker)
        self._ready.remove(worker)
        waiting.extendleft(reversed(worker.jobs))
        worker.jobs.clear()
        return worker.stop()

    def _over_time(self, path: str) -> ContentError:
        return ContentError(
            path, 1, f"took more than {self.budget.seconds:g} s to parse and render; stopped (NEXUS_MAX_RENDER_SECONDS)"
        )

    def _crashed(self, path: str, exitcode: int | None) -> ContentError:
        how = f"signal {_signal_name(-exitcode)}" if exitcode and exitcode < 0 else f"exit code {exitcode}"
        return ContentError(
            path,
            1,
            f"the process rendering it stopped ({how}); it may need more than {self.budget.megabytes:g} MB "
            "of memory (NEXUS_MAX_RENDER_MB) or nest too deeply",
        )


#: Small files go to a worker in batches of up to this many jobs and bytes (of file text); a worker
#: is sent the next batch before it has finished one, so it never waits for the importer. A batch is
#: well under a socket buffer: sending it never waits for a worker that waits for us to read.
BATCH_JOBS = 16
BATCH_BYTES = 64 * 1024


class _Job(NamedTuple):
    """One job of a `run`: its place in the results, the file it is about, its arguments; once sent, its
    budget in seconds and the bytes of text it carries."""

    index: int
    path: str
    args: tuple
    seconds: float = 0.0
    weight: int = 0


def _weight(args) -> int:
    """About how many bytes a job's arguments are: the text and bytes in them (a RenderJob's body too)."""
    return sum(
        len(arg) if isinstance(arg, str | bytes) else _weight(arg) if isinstance(arg, tuple) else 0 for arg in args
    )


class _Worker:
    """One sandbox process, the pipe to it, and the jobs it was sent and has not answered, oldest first."""

    def __init__(self, context, megabytes: float, setup: dict):
        self.connection, child = context.Pipe()
        self.process = context.Process(
            target=_serve, args=(child, os.getpid(), megabytes), name="nexus-render", daemon=True
        )
        self.process.start()
        child.close()
        self.fd, self.sentinel = self.connection.fileno(), self.process.sentinel  # what `_Readiness` polls
        self.setup = list(setup.items())  # sent before the next batch
        self.broken = False  # a send failed: it is gone, and takes no more jobs
        self.jobs: collections.deque[_Job] = collections.deque()
        self.heard = time.monotonic()  # its last answer (or when it was given work while idle)
        self._poller = select.poll() if hasattr(select, "poll") else None  # an answer, or the pipe's end (POLLHUP)
        if self._poller is not None:
            self._poller.register(self.connection.fileno(), select.POLLIN)

    @property
    def overdue(self) -> float:
        """When the current job is over its budget by a margin its own timer should have made unneeded."""
        return self.heard + self.jobs[0].seconds + GRACE_SECONDS

    def ended(self, ready: set[int]) -> bool:
        """Whether `ready` says this worker's process or pipe has ended (and it has)."""
        return (self.sentinel in ready or self.fd in ready) and not self.process.is_alive()

    def readable(self) -> bool:
        """Whether an answer (or the end of the pipe) waits: `connection.poll()` without its selector per call."""
        return bool(self._poller.poll(0)) if self._poller is not None else self.connection.poll()

    def bytes_sent(self) -> int:
        return sum(job.weight for job in self.jobs)

    def give(self, function, batch: list[_Job]) -> None:
        """Send a batch of jobs (OSError if the process is gone)."""
        if not self.jobs:
            self.heard = time.monotonic()
        while self.setup:
            self.connection.send(("setup", *self.setup.pop(0)))
        self.connection.send(("jobs", function, [(job.index, job.path, job.args, job.seconds) for job in batch]))
        self.jobs.extend(batch)

    def stop(self) -> int | None:
        """Kill the process (it holds no state worth a goodbye), close the pipe; its exit code."""
        if self.process.is_alive():
            self.process.kill()
        self.process.join()
        exitcode = self.process.exitcode
        self.connection.close()
        self.process.close()
        return exitcode


class _Readiness:
    """One poll object over every worker's pipe and sentinel, kept from wait to wait.

    `multiprocessing.connection.wait` builds and fills a selector at each call, which the importer
    makes about twice a file (answers arrive one by one): a noticeable part of its time while the
    workers parse and render. Without `select.poll`, that `wait` it is.
    """

    def __init__(self):
        self._poll = select.poll() if hasattr(select, "poll") else None
        self._fds: set[int] = set()

    def add(self, worker: _Worker) -> None:
        if self._poll is not None:
            for fd in (worker.fd, worker.sentinel):
                self._poll.register(fd, select.POLLIN)
                self._fds.add(fd)

    def remove(self, worker: _Worker) -> None:
        for fd in (worker.fd, worker.sentinel):
            if fd in self._fds:
                self._poll.unregister(fd)
                self._fds.discard(fd)

    def wait(self, busy: list[_Worker], timeout: float) -> set[int]:
        """The pipes and sentinels that are ready (or have ended) within `timeout` seconds."""
        if self._poll is None:
            from multiprocessing.connection import wait

            return set(wait([w.fd for w in busy] + [w.sentinel for w in busy], timeout))
        return {fd for fd, _event in self._poll.poll(math.ceil(timeout * 1000))}


def _serve(connection, parent_pid: int, megabytes: float) -> None:
    """A worker's loop: run each job under its own kernel timer and answer (index, retire, result, seconds)."""
    die_with_parent(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the importer handles Ctrl-C and stops the workers
    signal.signal(signal.SIGALRM, signal.SIG_DFL)  # a file past its time ends this process, in C code too
    faulthandler.disable()  # a crash is reported as the file's error, without a stack dump in the output
    from multiprocessing.reduction import ForkingPickler  # lazy: see `_context` (loaded by then, to start us)

    gc.freeze()  # what was forked stays out of the collector's way
    _limit_memory(megabytes)
    while True:
        try:
            kind, function, items = connection.recv()
        except EOFError:
            return
        if kind == "setup":
            function(*items)
            continue
        for index, path, args, seconds in items:
            started = time.monotonic()
            signal.setitimer(signal.ITIMER_REAL, seconds)
            result, retire = _attempt(path, function, args, megabytes)
            signal.setitimer(signal.ITIMER_REAL, 0)
            answer = (index, retire, result, time.monotonic() - started)
            try:
                payload = ForkingPickler.dumps(answer)
            except Exception as error:  # noqa: BLE001 - e.g. MemoryError: still the file's problem
                payload = ForkingPickler.dumps((index, True, _failure(path, error, megabytes), answer[3]))
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


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)


def _failure(path: str, error: BaseException, megabytes: float) -> ContentError:
    """The ContentError that reports an unexpected exception while parsing or rendering a file."""
    if isinstance(error, MemoryError):
        return ContentError(path, 1, f"needs more than {megabytes:g} MB of memory to render (NEXUS_MAX_RENDER_MB)")
    if isinstance(error, RecursionError):
        return ContentError(path, 1, "nested too deeply to render (maximum recursion depth exceeded)")
    # One line, not a traceback, in the import's output; where it happened, for whoever fixes it.
    last = traceback.extract_tb(error.__traceback__)[-1:] if error.__traceback__ else []
    where = f" at {last[0].filename}:{last[0].lineno}" if last else ""
    log.warning("%s: unexpected %s while parsing or rendering%s", path, type(error).__name__, printable(where))
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


def _start_method() -> str:
    """fork when this process has a single thread (fast, nothing re-imported); spawn otherwise."""
    return "fork" if threading.active_count() == 1 else "spawn"


def _context(method: str):
    """The multiprocessing context that starts workers: loaded with the first worker, not by an import that needs none."""
    import multiprocessing  # lazy: 5 ms with ctypes, which an import that reads no file never needs

    return multiprocessing.get_context(method)


def die_with_parent(parent_pid: int) -> None:
    """Ask Linux to SIGKILL this process when its parent ends; exit at once if it already has."""
    if sys.platform.startswith("linux"):
        import ctypes  # lazy: see `_context`

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
    """Any `multiprocessing` process forked inside the block (e.g. the index build's writers) dies with us."""
    binding = _Binding()
    import multiprocessing.util  # lazy: see `_context`

    # The registry holds the binding weakly: once it is gone, later forks are unaffected.
    multiprocessing.util.register_after_fork(binding, _after_fork)
    try:
        yield
    finally:
        del binding
