"""Edit → visible latency: from saving a note to seeing it in `/search` and on its page, with gunicorn serving.

    python bench/latency.py --corpus ../shared/corpora/jbranchaud-til [--real 577] [--sizes 1000,10000]
                            [--edits 20] [--baseline-edits 3] [--timeout 300] [--workdir DIR]

For each content folder (the first `--real` notes of a real corpus, copied to a temporary folder,
and generated corpora of `--sizes` entries, bench/corpus.py):

1. imports it, then serves it with gunicorn and the production `gunicorn.conf.py` (page cache on);
2. baseline, in the same run: the workflow before `watch`: save a note, run `flask --app portal
   import`, and wait until the change shows (`--baseline-edits` times);
3. starts `flask --app portal watch`, then saves `--edits` notes one after another (a unique new
   word appended to each), and up to 3 new and 3 deleted notes, and polls `/search?q=<word>` and the
   entry's page until both show the change.

Prints, per folder and kind of change, the median and p90 seconds until the page shows it, until
search does, and until both do; and the watcher's own import time. Figures only, nothing passes or
fails. The machine's other work shares its cores: read the baseline beside each figure.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import random
import re
import shutil
import signal
import sqlite3
import statistics
import string
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path, PurePosixPath

# bench/http.py is named like the standard library's `http`: keep bench/ off sys.path for urllib.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the project, for `bench.common`
import urllib.error  # noqa: E402
import urllib.parse  # noqa: E402
import urllib.request  # noqa: E402

from bench import common  # noqa: E402

HERE = Path(__file__).resolve().parent
PROJECT_ROOT = HERE.parent
BIN = Path(sys.executable).parent
POLL = 0.01
TIMEOUT = 300.0
TARGETS = {577: "≤ 1 s median", 10_000: "≤ 2 s median"}


def load_corpus_module():
    """bench/corpus.py, imported by path."""
    spec = importlib.util.spec_from_file_location("corpus", HERE / "corpus.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def copy_real_notes(corpus: Path, count: int, target: Path) -> int:
    """The first `count` notes in topic folders (sorted by path), copied: the benchmark edits them."""
    notes = sorted(p for p in corpus.rglob("*.md") if len(p.relative_to(corpus).parts) > 1)[:count]
    shutil.rmtree(target, ignore_errors=True)  # a folder of an earlier run holds its edits and new notes
    for note in notes:
        destination = target / note.relative_to(corpus)
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(note, destination)
    return len(notes)


def env_for(instance: Path, content: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NEXUS_", "FLASK_"))}
    env.update(
        NEXUS_INSTANCE_PATH=str(instance),
        NEXUS_CONTENT_DIR=str(content),
        NEXUS_SECRET_KEY="bench",
        PYTHONUNBUFFERED="1",
    )
    return env


def flask(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "flask"), "--app", "portal", *args], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True
    )


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 - local server
            return response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as error:
        return error.code, ""


class Watch:
    """`flask --app portal watch` in the background; its output lines, with the import times they print."""

    def __init__(self, env: dict):
        self.process = subprocess.Popen(
            [str(BIN / "flask"), "--app", "portal", "watch"],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        deadline = time.monotonic() + TIMEOUT
        while not any(line.startswith("watching ") for line in self.lines):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the watcher did not start: {self.lines[-5:]}")
            time.sleep(0.05)

    def _read(self):
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def import_ms_after(self, line: int) -> int | None:
        """The import time printed first after output line `line` (every line of one import prints the same)."""
        for text in self.lines[line:]:
            if found := re.search(r" \((\d+) ms\)$", text):
                return int(found.group(1))
        return None

    def stop(self):
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.reader.join(timeout=5)


class Site:
    """A content folder served by gunicorn: change notes, and time until the change shows."""

    def __init__(self, content: Path, instance: Path, base: str, seed: int, timeout: float = TIMEOUT):
        self.content, self.instance, self.base, self.timeout = content, instance, base, timeout
        self.rng = random.Random(seed)
        self.watcher: Watch | None = None
        self.import_ms: list[int] = []  # the watcher's import time for each measured change

    def slug_of(self, path: str) -> str | None:
        """The slug the database has for a file (None while it has none)."""
        with sqlite3.connect(self.instance / "nexus.sqlite3") as db:
            found = db.execute("SELECT slug FROM entries WHERE path = ?", (path,)).fetchone()
        return found[0] if found else None

    def word(self) -> str:
        return "zq" + "".join(self.rng.choice(string.ascii_lowercase) for _ in range(10))

    def pick(self) -> str:
        notes = sorted(p.relative_to(self.content).as_posix() for p in self.content.rglob("*.md"))
        return self.rng.choice(notes)

    def edit(self, after_save=None, path: str | None = None) -> tuple[float, float, str]:
        """Append a new word to a note; seconds until its page and a search for the word show it."""
        path, word = path or self.pick(), self.word()
        slug = self.slug_of(path)
        file = self.content / path
        text = file.read_text(encoding="utf-8")
        page, search = self._time(
            lambda: file.write_text(f"{text}\nLatency probe {word}.\n", encoding="utf-8"),
            page=lambda: word in get(f"{self.base}/entries/{slug}")[1],
            search=lambda: f'/entries/{slug}"' in self._search(word),
            after_save=after_save,
        )
        return page, search, word

    def add(self) -> tuple[float, float]:
        """A new note in an existing folder; seconds until its page exists and a search finds it."""
        word = self.word()
        path = (PurePosixPath(self.pick()).parent / f"{word}.md").as_posix()

        def found(check) -> bool:
            slug = self.slug_of(path)
            return slug is not None and check(slug)

        return self._time(
            lambda: (self.content / path).write_text(f"# New note {word}\n\nIt says {word}.\n", encoding="utf-8"),
            page=lambda: found(lambda slug: get(f"{self.base}/entries/{slug}")[0] == 200),
            search=lambda: found(lambda slug: f'/entries/{slug}"' in self._search(word)),
        )

    def delete(self) -> tuple[float, float]:
        """Delete a note (first given a word of its own); seconds until its page and its search result are gone."""
        path = self.pick()
        _page, _search, word = self.edit(path=path)  # not counted: it makes the note findable by one word
        slug = self.slug_of(path)
        return self._time(
            lambda: (self.content / path).unlink(),
            page=lambda: get(f"{self.base}/entries/{slug}")[0] == 404,
            search=lambda: f'/entries/{slug}"' not in self._search(word),
        )

    def _search(self, words: str) -> str:
        return get(f"{self.base}/search?{urllib.parse.urlencode({'q': words, 'per_page': 50})}")[1]

    def _time(self, save, *, page, search, after_save=None) -> tuple[float, float]:
        """Seconds from `save()` until `page()` and until `search()` are true (polled in turn)."""
        if page() or search():
            raise RuntimeError("the change shows before it was made: the probe is wrong")
        line = len(self.watcher.lines) if self.watcher else 0
        started = time.perf_counter()
        save()
        if after_save:
            after_save()
        seen: dict[str, float] = {}
        while len(seen) < 2:
            for name, check in (("page", page), ("search", search)):
                if name not in seen and check():
                    seen[name] = time.perf_counter() - started
            if time.perf_counter() - started > self.timeout:
                raise RuntimeError(f"the change did not show within {self.timeout:.0f} s")
            time.sleep(POLL)
        if self.watcher:
            deadline = time.monotonic() + 10  # its line may come a moment after the change shows
            while (took := self.watcher.import_ms_after(line)) is None and time.monotonic() < deadline:
                time.sleep(POLL)
            self.import_ms.append(took)
        return seen["page"], seen["search"]


def p90(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(0.9 * len(ordered)) - 1))]


def row(label: str, times: list[tuple[float, float]], import_ms: list[int] | None, target: str = "") -> str:
    pages = [t[0] for t in times]
    searches = [t[1] for t in times]
    both = [max(t) for t in times]
    import_ms = [ms for ms in import_ms or [] if ms is not None]
    imports = f"{statistics.median(import_ms) / 1000:.2f}" if import_ms else ""
    return (
        f"| {label} | {len(times)} | {statistics.median(pages):.2f} | {p90(pages):.2f} | "
        f"{statistics.median(searches):.2f} | {p90(searches):.2f} | {statistics.median(both):.2f} | "
        f"{p90(both):.2f} | {imports} | {target} |"
    )


def run_folder(label: str, size: int, content: Path, work: Path, args) -> list[str]:
    """Import, serve, baseline, watch, measure: the table rows of one content folder."""
    instance = work / f"instance-{label}"
    shutil.rmtree(instance, ignore_errors=True)
    env = env_for(instance, content)
    started = time.perf_counter()
    imported = flask(env, "import", "--quiet")
    print(f"{label}: first import {time.perf_counter() - started:.1f} s: {imported.stdout.strip()}", flush=True)
    server = common.Gunicorn(
        "wsgi:app", env, work / f"gunicorn-{label}.log", ready_path="/healthz", start_seconds=TIMEOUT
    )
    site = Site(content, instance, server.base, seed=size, timeout=args.timeout)
    rows = []
    try:
        baseline = []
        for _ in range(args.baseline_edits):
            baseline.append(site.edit(after_save=lambda: flask(env, "import", "--quiet"))[:2])
        if baseline:
            rows.append(row(f"{label}: edit, then `flask import` (baseline)", baseline, None))
            print(rows[-1], flush=True)
        watcher = site.watcher = Watch(env)
        try:
            others = min(3, max(1, args.edits // 3))  # new and deleted notes: 3 beside 20 edits
            for kind, count in (("edit", args.edits), ("new note", others), ("deleted note", others)):
                imports: list[int] = []
                action = {"edit": lambda: site.edit()[:2], "new note": site.add, "deleted note": site.delete}[kind]
                times = []
                for _ in range(count):
                    site.import_ms = []
                    times.append(action())
                    imports.append(site.import_ms[-1])  # the measured change's (a deletion first adds a word)
                rows.append(
                    row(f"{label}: {kind}, `watch`", times, imports, TARGETS.get(size, "") if kind == "edit" else "")
                )
                print(rows[-1], flush=True)
        finally:
            watcher.stop()
    finally:
        server.stop()
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, help="a folder of real notes (e.g. ../shared/corpora/jbranchaud-til)")
    parser.add_argument("--real", type=int, default=577, help="how many of its notes (default 577)")
    parser.add_argument("--sizes", default="1000,10000", help="generated corpus sizes (comma-separated; '' for none)")
    parser.add_argument("--edits", type=int, default=20)
    parser.add_argument("--baseline-edits", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=TIMEOUT, help="seconds to wait for one change to show")
    parser.add_argument("--workdir", type=Path, default=None, help="where to put copies and instances (temporary)")
    args = parser.parse_args(argv)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="nexus-latency-"))
    work.mkdir(parents=True, exist_ok=True)
    print(
        f"# edit → visible latency, {time.strftime('%Y-%m-%d')}, {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, load average {os.getloadavg()[0]:.1f} at the start"
    )
    rows = []
    try:
        if args.corpus:
            content = work / "real"
            count = copy_real_notes(args.corpus, args.real, content)
            rows += run_folder(f"{count} real notes", count, content, work, args)
        corpus = load_corpus_module()
        for size in [int(s) for s in args.sizes.split(",") if s.strip()]:
            content = work / f"generated-{size}"
            shutil.rmtree(content, ignore_errors=True)
            corpus.generate(size, content)
            rows += run_folder(f"{size:,} generated", size, content, work, args)
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    print(f"\nload average at the end {os.getloadavg()[0]:.1f}; seconds from the save:\n")
    print(
        "| change | n | page p50 | page p90 | search p50 | search p90 | both p50 | both p90 | watcher import p50 | target |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for line in rows:
        print(line)


if __name__ == "__main__":
    main()
