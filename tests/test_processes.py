"""Parsing and rendering run in sandbox processes: one per core for large imports (the result is the one a
single process gives), and each file within a time and memory budget that a runaway file cannot pass.
"""

from __future__ import annotations

import multiprocessing.connection
import os
import re
import signal
import sys
import threading
import time

import pytest
from sqlalchemy import select

from portal import folder, processes, sandbox
from portal.content import ContentError, ParsedEntry, content_hash
from portal.models import Entry, db

from .conftest import do_import, write_entry

COUNT = 230  # above sandbox.MIN_PARALLEL


def write_corpus(root):
    for i in range(COUNT):
        links = f"See [the next one](e{i + 1}.md), [[e{i + 2}]] and [nothing](missing.md)."
        body = f"---\ntitle: Entry {i}\ntags: [t{i % 7}]\n---\n# Part {i}\n\n{links}\n\n```python\nx = {i}\n```\n"
        write_entry(root, f"notes/e{i}.md", body)
    write_entry(root, "notes/broken.md", "---\ntitle: [unclosed\n---\nBody\n")
    write_entry(root, "notes/bad-kind.md", "---\nkind: spaceship\n---\nBody\n")


def snapshot(app):
    with app.app_context():
        rows = db.session.execute(
            select(Entry.slug, Entry.title, Entry.html, Entry.text, Entry.link_keys, Entry.toc).order_by(Entry.slug)
        ).all()
        db.session.remove()
    return [tuple(row) for row in rows]


@pytest.fixture
def corpus(tmp_path):
    root = tmp_path / "many"
    write_corpus(root)
    return root


def test_parallel_import_matches_a_single_process(make_app, corpus, tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(sandbox.os, "cpu_count", lambda: 2)  # parallel even on a one-core machine
    caplog.set_level("INFO", logger="portal")
    # Two databases to compare, whatever backend the suite runs on.
    parallel_app = make_app(corpus, instance="parallel", SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path}/p.sqlite3")
    parallel = do_import(parallel_app, corpus)
    assert re.search(r"parsed 232 files in [2-9] processes", caplog.text)
    assert re.search(r"rendered 230 entries in [2-9] processes", caplog.text)
    if threading.active_count() == 1:  # Whoosh forks its writers: only without other threads (see process_count)
        assert re.search(r"230 documents in [\d.]+s \([2-9] processes\)", caplog.text)
    monkeypatch.setattr(sandbox, "MIN_PARALLEL", 10**9)
    serial_app = make_app(corpus, instance="serial", SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path}/s.sqlite3")
    serial = do_import(serial_app, corpus)

    assert sorted(map(str, parallel.errors)) == sorted(map(str, serial.errors))
    assert len(parallel.errors) == 2 and len(parallel.added) == COUNT
    assert sorted(parallel.warnings) == sorted(serial.warnings)
    assert snapshot(parallel_app) == snapshot(serial_app)
    for app in (parallel_app, serial_app):
        body = app.test_client().get("/api/search?q=part&per_page=1").get_json()
        assert body["total"] == COUNT


def test_pool_processes_are_spawned_when_other_threads_run(corpus):
    # Forking a process that runs other threads can copy held locks; spawn is used then.
    files = [(p.relative_to(corpus).as_posix(), p.read_bytes()) for p in sorted(corpus.rglob("*.md"))]
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        with sandbox.Sandbox(2) as box:
            assert box._start_method == "spawn"
            results = processes.parse_entries(box, files, folder_tags=True)
    finally:
        stop.set()
        other.join()
    assert sum(isinstance(r, ParsedEntry) for r in results) == COUNT
    errors = [r for r in results if isinstance(r, ContentError)]
    assert [e.path for e in errors] == ["notes/bad-kind.md", "notes/broken.md"]
    assert all(e.line >= 1 and e.reason for e in errors)


def test_small_imports_use_one_sandbox_process_and_none_when_nothing_changed():
    assert sandbox.process_count(sandbox.MIN_PARALLEL - 1) == 1
    with sandbox.Sandbox(1) as box:
        assert processes.render_entries(box, [], {}) == {}
        assert box._workers == []  # nothing to do starts no process
        assert processes.parse_entries(box, [("a.md", b"# A\n")], folder_tags=True)[0].title == "A"
        [worker] = box._workers
        assert worker.process.pid != os.getpid()
    assert box._workers == []


# Jobs that misbehave as a pathological file can make a parser misbehave. They are functions of
# this module, so that spawned workers find them too.


def _answer(path):
    return f"done {path}"


def _sleep_forever(path):
    while True:
        time.sleep(1)


def _spin(path):
    while True:
        pass


def _allocate(path):
    return len(bytearray(8 * 1024**3))  # 8 GB, far past the budget


def _recurse(path, depth=0):
    return _recurse(path, depth + 1) + 1


def _segfault(path):
    os.kill(os.getpid(), signal.SIGSEGV)


def _exit(path):
    sys.stdout.flush()
    os._exit(3)


def _raise(path):
    raise ValueError("a bug\nwith a second line")


def _unpicklable(path):
    return lambda: None  # the answer cannot travel back


def _sleep(path, seconds):
    time.sleep(seconds)
    return path


BUDGET = sandbox.Budget(seconds=1.0, megabytes=256)


@pytest.mark.parametrize(
    ("job", "reason"),
    [
        (_sleep_forever, r"took more than 1 s to parse and render; stopped \(NEXUS_MAX_RENDER_SECONDS\)"),  # blocked
        (_spin, r"took more than 1 s to parse and render"),  # busy: a quadratic regular expression, say
        (_allocate, r"needs more than 256 MB of memory to render \(NEXUS_MAX_RENDER_MB\)"),  # a huge table
        (_recurse, r"nested too deeply to render \(maximum recursion depth exceeded\)"),  # `- ` × 600
        (_segfault, r"the process rendering it stopped \(signal SIGSEGV\); it may need more than 256 MB"),  # C code
        (_exit, r"the process rendering it stopped \(exit code 3\)"),  # anything that ends the process
        (_raise, r"cannot be rendered \(ValueError: a bug\)$"),  # a bug of ours: still one file's problem
        (_unpicklable, r"cannot be rendered \((PicklingError|AttributeError): "),  # an answer that cannot travel
    ],
)
def test_a_runaway_file_costs_its_budget_and_the_others_still_render(job, reason):
    jobs = [("good-1.md", ())] + [("bad.md", ())] + [(f"good-{i}.md", ()) for i in range(2, 5)]
    with sandbox.Sandbox(2, BUDGET) as box:
        results = box.run(_dispatch, [(path, (path, job)) for path, _ in jobs])
    errors = [r for r in results if isinstance(r, ContentError)]
    assert [e.path for e in errors] == ["bad.md"] and errors[0].line == 1
    assert re.search(reason, errors[0].reason), errors[0].reason
    assert [r for r in results if not isinstance(r, ContentError)] == [f"done good-{i}.md" for i in range(1, 5)]


def _dispatch(path, job):
    """The bad file runs the job; every other file is fine."""
    return job(path) if path == "bad.md" else _answer(path)


def _deaf_to_its_timer(path):
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
    while True:
        time.sleep(0.1)


def test_a_worker_that_outlives_its_own_timer_is_ended_by_the_importer(monkeypatch):
    # Its kernel timer ends a worker; should that fail, the importer does, a grace period later.
    monkeypatch.setattr(sandbox, "GRACE_SECONDS", 0.5)
    with sandbox.Sandbox(1, sandbox.Budget(seconds=0.5)) as box:
        late, fine = box.run(_dispatch, [(path, (path, _deaf_to_its_timer)) for path in ("bad.md", "good.md")])
    assert isinstance(late, ContentError) and "took more than 0.5 s" in late.reason
    assert fine == "done good.md"


def test_a_files_budget_is_shared_by_its_parsing_and_its_rendering():
    with sandbox.Sandbox(1, sandbox.Budget(seconds=2.0)) as box:
        assert box.run(_sleep, [("slow.md", ("slow.md", 1.2))]) == ["slow.md"]  # parsing: 1.2 s of 2 s
        [late] = box.run(_sleep, [("slow.md", ("slow.md", 1.2))])  # rendering: 0.8 s left
        [fine] = box.run(_sleep, [("other.md", ("other.md", 1.2))])  # another file has its own budget
    assert isinstance(late, ContentError) and "took more than 2 s" in late.reason
    assert fine == "other.md"


def test_workers_die_with_the_importer_and_interrupts_stop_them(monkeypatch):
    started = []
    original = sandbox._Worker.__init__

    def record(self, *args):
        original(self, *args)
        started.append(self.process)

    monkeypatch.setattr(sandbox._Worker, "__init__", record)
    monkeypatch.setattr(sandbox._Readiness, "wait", _interrupt)  # as if Ctrl-C came while the workers run
    with pytest.raises(KeyboardInterrupt), sandbox.Sandbox(2, BUDGET) as box:
        box.run(_sleep_forever, [("a.md", ("a.md",)), ("b.md", ("b.md",))])
    assert len(started) == 2
    assert all(process._closed for process in started)  # killed and reaped, none left running


def _interrupt(*args):
    raise KeyboardInterrupt


@pytest.mark.skipif(
    not hasattr(__import__("select"), "poll"), reason="without poll the sandbox uses multiprocessing's wait"
)
def test_answers_are_awaited_with_one_poll_kept_across_waits(monkeypatch):
    """`multiprocessing.connection.wait` builds a selector at every call: the sandbox keeps one poll object instead."""
    monkeypatch.setattr(multiprocessing.connection, "wait", _interrupt)
    with sandbox.Sandbox(2, BUDGET) as box:
        jobs = [(f"{i}.md", (f"{i}.md",)) for i in range(40)]
        assert box.run(_answer, jobs) == [f"done {i}.md" for i in range(40)]
        assert box.run(_exit, [("x.md", ("x.md",))])[0].reason.startswith("the process rendering it stopped")
        assert box.run(_answer, jobs[:3]) == ["done 0.md", "done 1.md", "done 2.md"]


def test_a_worker_that_dies_idle_is_dropped_not_polled_again(monkeypatch):
    """An idle worker's ended pipe and sentinel stay ready: waiting on them again would spin until the others answer."""
    with sandbox.Sandbox(2, BUDGET) as box:
        box.run(_answer, [("a.md", ("a.md",)), ("b.md", ("b.md",))])
        first, second = box._workers
        second.process.kill()
        second.process.join()
        waits = []
        real = sandbox._Readiness.wait

        def counted(self, busy, timeout):
            waits.append(timeout)
            return real(self, busy, timeout)

        monkeypatch.setattr(sandbox._Readiness, "wait", counted)
        assert box.run(_sleep, [("slow.md", ("slow.md", 0.5))]) == ["slow.md"]
        assert len(waits) < 10, len(waits)
        assert box._workers == [first]


def test_large_sites_record_each_spelling_word_once_per_block():
    from portal.search.analysis import thin_spelling

    documents = [{"spell": "redis celery"}, {"spell": "redis django"}, {"spell": "redis"}, {"spell": "redis"}]
    small = list(thin_spelling([dict(d) for d in documents], count=199))  # up to 199 entries: every word
    assert [d["spell"] for d in small] == ["redis celery", "redis django", "redis", "redis"]
    large = list(thin_spelling([dict(d) for d in documents], count=300))  # blocks of 3 documents
    assert [d["spell"] for d in large] == ["redis celery", "django", "", "redis"]


def test_the_importer_sends_paths_and_the_sandbox_reads_hashes_and_parses(make_app, tmp_path, monkeypatch):
    # Reading, hashing and parsing run on every core; the importer never holds the files' bytes.
    root = tmp_path / "notes"
    for i in range(3):
        write_entry(root, f"n{i}.md", f"# Note {i}\n\nText {i}.\n")
    read_by: list[tuple[str, int]] = []
    real = folder.read_entry

    def recording(root, relative, **options):
        read_by.append((relative, os.getpid()))  # in a worker, this list is the worker's copy
        return real(root, relative, **options)

    monkeypatch.setattr(folder, "read_entry", recording)
    monkeypatch.setattr(processes, "read_entry", recording)
    sent = []
    real_run = sandbox.Sandbox.run

    def run(self, function, jobs):
        sent.extend(args for _path, args in jobs if function is processes._read_job)
        return real_run(self, function, jobs)

    monkeypatch.setattr(sandbox.Sandbox, "run", run)
    report = do_import(make_app(root), root)
    assert sorted(report.added) == ["n0.md", "n1.md", "n2.md"]
    assert read_by == []  # not one file read by the importer itself
    assert sorted(job.path for (job,) in sent) == ["n0.md", "n1.md", "n2.md"]
    assert all(not isinstance(value, bytes) for (job,) in sent for value in job)


def test_a_read_job_hashes_parses_and_refuses_as_the_importer_would(tmp_path):
    root = tmp_path / "notes"
    write_entry(root, "good.md", "# Good\n\nText.\n")
    write_entry(root, "broken.md", "---\ntitle: [unclosed\n---\nBody\n")
    (tmp_path / "secret.md").write_text("# Secret\n")
    (root / "outside.md").symlink_to(tmp_path / "secret.md")
    settings = processes.ReadSettings(root, ("salt",), False, True)
    digest = content_hash(b"# Good\n\nText.\n", "salt", "git=")
    jobs = [
        processes.ReadJob("good.md", "git=", None),  # new: parsed
        processes.ReadJob("good.md", "git=", digest),  # its hash unchanged: not parsed
        processes.ReadJob("broken.md", "git=", None),
        processes.ReadJob("outside.md", "git=", None),
        processes.ReadJob("missing.md", "git=", None),
    ]
    with sandbox.Sandbox(1) as box:
        new, same, broken, outside, missing = processes.read_entries(box, settings, jobs)
    assert new.digest == same.digest == digest and new.entry.title == "Good" and same.entry is None
    assert new.info.st_size == len(b"# Good\n\nText.\n")
    assert isinstance(broken.entry, ContentError) and "invalid YAML" in broken.entry.reason
    assert isinstance(outside, folder.Refused) and "outside the content folder" in outside.reason
    assert isinstance(missing, ContentError) and not isinstance(missing, folder.Refused)
