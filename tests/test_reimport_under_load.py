"""Real gunicorn under load while imports run, die with kill -9, or find their index gone.

Every answer must be whole: an entry page or a listing shows the old content or the new,
never a mix, and no request fails while an import commits and swaps its index in.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from .servers import BIN, PROJECT_ROOT, fetch, flask_cli, gunicorn, nexus_env

pytestmark = pytest.mark.slow

CHANGED = range(0, 30, 2)  # present before and after, changed by every import
UNCHANGED = range(1, 30, 2)  # present before and after, never changed
DELETED = range(30, 40)  # deleted by the first import
ADDED = range(40, 50)  # added by the first import
FILLER = 60  # entries that change with every import, so that imports take a while

PARAGRAPH = "Workers answer requests while the importer writes a new generation of the content. " * 12


def entry_text(i: int, version: str) -> str:
    """An entry whose title and body both name its version, so a mix of the two would show."""
    return (
        f"---\ntitle: Entry {i} {version}\nkind: concept\ntags: [load]\ndate: 2025-01-01\n---\n"
        f"Marker marker-{i}-{version} about zeppelins.\n\n{PARAGRAPH}\n\n## Details\n\n{PARAGRAPH}\n"
    )


def write_version(content: Path, version: str, *, first: bool) -> None:
    """The content folder at one version: changed entries and filler carry `version`."""
    for i in [*CHANGED, *UNCHANGED, *(DELETED if first else ADDED)]:
        text = entry_text(i, version if i in CHANGED or i in ADDED else "v1")
        (content / "notes").mkdir(parents=True, exist_ok=True)
        (content / "notes" / f"e{i}.md").write_text(text)
    if not first:
        for i in DELETED:
            (content / "notes" / f"e{i}.md").unlink(missing_ok=True)
    (content / "filler").mkdir(parents=True, exist_ok=True)
    for i in range(FILLER):
        (content / "filler" / f"f{i}.md").write_text(entry_text(1000 + i, version).replace("[load]", "[filler]"))


ENTRY_RE = re.compile(r"<h1>Entry (\d+) (v\d)</h1>")
MARKER_RE = re.compile(r"marker-(\d+)-(v\d)")
TITLE_RE = re.compile(r">Entry (\d+) (v\d)<")


def check_answer(url: str, status: int, body: str, after: bool) -> str | None:
    """What is wrong with one answer, or None. `after`: the last import has finished."""
    if status >= 500:
        return f"{url}: {status}"
    if "/entries/notes/e" in url:
        i = int(re.search(r"/e(\d+)", url).group(1))
        if status == 404:
            if i in DELETED or (i in ADDED and not after):
                return None
            return f"{url}: unexpected 404"
        if status != 200:
            return f"{url}: {status}"
        if i in DELETED and after:
            return f"{url}: deleted entry still served after the import"
        titles, markers = ENTRY_RE.findall(body), MARKER_RE.findall(body)
        if len(titles) != 1 or titles[0][0] != str(i) or not markers or {m[1] for m in markers} != {titles[0][1]}:
            return f"{url}: title {titles} and body {set(markers)} disagree"
        if i in UNCHANGED and titles[0][1] != "v1":
            return f"{url}: an unchanged entry changed"
        return None
    if status != 200:
        return f"{url}: {status}"
    if url.startswith("/api/"):
        titles = [tuple(r["title"].split()[1:]) for r in json.loads(body)["results"] if r["title"].startswith("Entry")]
    else:
        titles = TITLE_RE.findall(body)
    versions = {v for i, v in titles if int(i) in CHANGED}
    if len(versions) > 1:  # every changed entry changed in one transaction
        return f"{url}: a listing mixes versions {sorted(versions)}"
    return None


class LoadClient:
    """Threads requesting a fixed rotation of URLs until stopped, bounded in time and count."""

    def __init__(self, base: str, urls: list[str], threads: int = 3, max_requests: int = 6000, max_seconds=40):
        self.base, self.urls = base, urls
        self.problems: list[str] = []
        self.statuses: Counter = Counter()
        self.count = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._limits = (max_requests, time.monotonic() + max_seconds)
        self._threads = [threading.Thread(target=self._run, args=(n,), daemon=True) for n in range(threads)]

    def __enter__(self):
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)

    def _run(self, offset: int):
        n = offset
        while not self._stop.is_set() and self.count < self._limits[0] and time.monotonic() < self._limits[1]:
            url = self.urls[n % len(self.urls)]
            n += len(self._threads)
            status, body, _ = fetch(self.base + url)
            problem = check_answer(url, status, body, after=False)
            with self._lock:
                self.count += 1
                self.statuses[status] += 1
                if problem:
                    self.problems.append(problem)


def worker_pids(log: Path) -> set[str]:
    return set(re.findall(r"Booting worker with pid: (\d+)", log.read_text()))


def test_reimport_under_load_serves_old_or_new_and_never_fails(tmp_path):
    content, instance, log = tmp_path / "content", tmp_path / "instance", tmp_path / "gunicorn.log"
    write_version(content, "v1", first=True)
    env = nexus_env(instance, content, NEXUS_PER_PAGE="100")
    entry_urls = [f"/entries/notes/e{i}" for i in range(50)]
    urls = entry_urls + [
        "/kinds/concept",
        "/tags/load",
        "/search?q=zeppelins&per_page=50",
        "/api/search?q=zeppelins&per_page=50",
        "/api/search?q=marker&tag=load&per_page=50",
        "/",
    ]
    with gunicorn(env, workers=3, log_path=log) as base, LoadClient(base, urls) as client:
        time.sleep(1.0)  # traffic before the imports
        for version, first in (("v2", False), ("v3", False)):
            write_version(content, version, first=first)
            started = time.monotonic()
            result = flask_cli(env, "import", "--quiet")
            print(f"import {version} under load: {time.monotonic() - started:.1f}s, {client.count} requests so far")
            assert result.returncode == 0, result.stderr
            assert "0 errors" in result.stdout
        time.sleep(1.0)  # and after them
        client.__exit__()
        assert client.problems == [], client.problems[:20]
        assert client.count > 200 and set(client.statuses) <= {200, 404}, client.statuses

        # Every worker now serves the last import: ask until each has answered several times.
        pids = worker_pids(log)
        assert len(pids) == 3
        answers: dict[str, str] = {}
        deadline = time.monotonic() + 20

        def ask(n: int):
            status, body, _ = fetch(f"{base}/entries/notes/e0?check={n}")
            answers[str(n)] = f"{status} {ENTRY_RE.findall(body)}"

        n = 0
        while time.monotonic() < deadline:
            batch = [threading.Thread(target=ask, args=(n + k,)) for k in range(6)]
            n += len(batch)
            for thread in batch:
                thread.start()
            for thread in batch:
                thread.join()
            served = Counter(re.findall(r"check=\d+ HTTP/1.1\" 200 .* pid=<(\d+)>", log.read_text()))
            if set(served) >= pids and min(served.values()) >= 3:
                break
        print(f"{n} checks, served by {dict(served)}")
        assert set(served) >= pids, (served, pids)
        assert set(answers.values()) == {"200 [('0', 'v3')]"}
        for url in ["/entries/notes/e31", "/entries/notes/e45", "/tags/load", "/api/search?q=zeppelins&per_page=50"]:
            status, body, _ = fetch(base + url)
            assert check_answer(url, status, body, after=True) is None
        assert fetch(base + "/entries/notes/e31")[0] == 404 and fetch(base + "/entries/notes/e45")[0] == 200
        status, body, _ = fetch(base + "/healthz")
        assert status == 200 and json.loads(body)["entries"] == 30 + 10 + FILLER
    text = log.read_text()
    assert "Traceback" not in text
    # The access log has one line per request.
    assert len(re.findall(r'"GET /\S* HTTP/1.1" \d{3} ', text)) >= client.count


# --- kill -9 -----------------------------------------------------------------------------

BULK = 1500


def write_bulk(content: Path, version: str) -> None:
    """A large folder, so that each phase of its import lasts long enough to be interrupted."""
    folder = content / "bulk"
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(BULK):
        (folder / f"b{i}.md").write_text(
            f"---\ntitle: Bulk {i} {version}\ntags: [bulk]\n---\nBulk entry {i}, {version}. {PARAGRAPH[:400]}\n"
        )


def start_import(env: dict) -> subprocess.Popen:
    return subprocess.Popen(
        [str(BIN / "flask"), "--app", "portal", "import", "--quiet"],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def kill_when(process: subprocess.Popen, condition, timeout: float = 60) -> None:
    """SIGKILL the import the moment `condition()` holds (checked every few milliseconds)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert process.poll() is None, f"the import finished before it could be killed:\n{process.stdout.read()}"
        assert time.monotonic() < deadline, "the import never reached the point to kill it at"
        time.sleep(0.003)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    process.stdout.close()


def database_write_started(database: Path):
    """True while another connection holds SQLite's write lock: the import's transaction is open."""

    def probe() -> bool:
        connection = sqlite3.connect(database, timeout=0, isolation_level=None)
        try:
            connection.execute("BEGIN IMMEDIATE")
            connection.execute("ROLLBACK")
            return False
        except sqlite3.OperationalError:  # database is locked
            return True
        finally:
            connection.close()

    return probe


def index_build_started(instance: Path):
    return lambda: any(instance.glob("index.*.building"))


def import_processes(instance: Path) -> list[int]:
    """Processes running `flask --app portal import` for this instance folder."""
    marker = f"NEXUS_INSTANCE_PATH={instance}\0".encode()
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if b"import" in (proc / "cmdline").read_bytes() and marker in (proc / "environ").read_bytes():
                found.append(int(proc.name))
        except OSError:  # gone meanwhile
            continue
    return found


def no_orphans(instance: Path) -> bool:
    """No helper process of a killed import is left: they die with it and release its lock."""
    deadline = time.monotonic() + 5
    while import_processes(instance):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def health(base: str) -> tuple[int, dict]:
    status, body, _ = fetch(base + "/healthz")
    return status, json.loads(body)


def test_an_import_killed_at_any_point_leaves_the_site_serving_and_the_next_import_completes(tmp_path):
    content, instance = tmp_path / "content", tmp_path / "instance"
    write_version(content, "v1", first=True)
    env = nexus_env(instance, content)
    assert flask_cli(env, "import", "--quiet").returncode == 0
    database = instance / "nexus.sqlite3"
    before = 30 + 10 + FILLER
    with gunicorn(env, workers=2, log_path=tmp_path / "gunicorn.log") as base:
        write_bulk(content, "v1")

        # 1. Killed while writing to the database: nothing of it is committed.
        importer = start_import(env)
        kill_when(importer, database_write_started(database))
        assert no_orphans(instance)
        status, body = health(base)
        assert status == 200 and body["entries"] == before and body["index_documents"] == before, body
        assert fetch(base + "/entries/bulk/b0")[0] == 404
        status, page, _ = fetch(base + "/entries/notes/e0")
        assert status == 200 and "Entry 0 v1" in page

        # 2. Killed while building the index: the database has committed, the old index still serves.
        importer = start_import(env)
        kill_when(importer, index_build_started(instance))
        assert no_orphans(instance)
        status, body = health(base)
        assert status == 200 and body["entries"] == before + BULK, body
        # The old index serves until a new one is swapped in: within the grace period health says
        # so, and the workers' index sync (NEXUS_INDEX_CHECK_SECONDS) may already have rebuilt it.
        assert body.get("index_pending") or body["index_documents"] == before + BULK, body
        assert body["index_documents"] in (before, before + BULK)
        assert fetch(base + "/entries/bulk/b7")[0] == 200
        status, found, _ = fetch(base + "/api/search?q=zeppelins")
        assert status == 200 and json.loads(found)["total"] > 0

        # 3. The next import completes normally and the site catches up.
        write_bulk(content, "v2")
        result = flask_cli(env, "import", "--quiet", timeout=180)
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"{BULK} updated" in result.stdout
        status, body = health(base)
        assert status == 200 and "index_pending" not in body
        assert body["entries"] == body["index_documents"] == before + BULK
        status, found, _ = fetch(base + "/api/search?q=bulk&per_page=1")
        assert status == 200 and json.loads(found)["total"] == BULK
        assert not list(instance.glob("index.*.building")), "the killed import's half-built index is cleaned up"


def test_a_deleted_or_corrupted_index_is_rebuilt_when_gunicorn_starts(tmp_path):
    content, instance, log = tmp_path / "content", tmp_path / "instance", tmp_path / "gunicorn.log"
    write_version(content, "v1", first=True)
    env = nexus_env(instance, content)
    assert flask_cli(env, "import", "--quiet").returncode == 0
    entries = 30 + 10 + FILLER

    live = instance / os.readlink(instance / "index")
    shutil.rmtree(live)
    with gunicorn(env, workers=2, log_path=log) as base:
        status, body = health(base)
        assert status == 200 and body["index_documents"] == entries
        status, found, _ = fetch(base + "/api/search?q=zeppelins&tag=load&per_page=50")
        assert status == 200 and json.loads(found)["total"] == 40

    live = instance / os.readlink(instance / "index")
    for segment in live.iterdir():
        if segment.suffix in (".toc", ".seg"):
            segment.write_bytes(b"\0garbage" * 64)
    with gunicorn(env, workers=2, log_path=log) as base:
        status, body = health(base)
        assert status == 200 and body["index_documents"] == entries
        status, page, _ = fetch(base + "/search?q=zeppelins&tag=load")
        assert status == 200 and TITLE_RE.search(page)
    assert log.read_text().count("Nexus start-up: rebuilt the search index") == 1  # the log was rewritten
