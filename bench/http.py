"""HTTP load and import benchmark: prints figures next to the targets of the serving issue.

    python bench/http.py [--entries 10000] [--duration 10] [--connections 10] [--skip-mkdocs]

1. Generates the corpus (bench/corpus.py; its first 1,000 entries are the 1,000-entry corpus).
2. Times `flask --app portal import` of 1,000 and of 10,000 entries into fresh instances, and
   again with nothing changed; and `mkdocs build` (mkdocs-material, in a throwaway venv) of the
   same 1,000 files as the reference a user would otherwise pick.
3. Serves the 10,000 entries with gunicorn and the production `gunicorn.conf.py`, and runs
   `wrk` (Debian: `apt-get install -y wrk`) against `/`, entry pages (rotating over 1,000),
   a kind page, tag pages, `/search` and `/api/search` (rotating over 500 queries), and against
   a hello-world Flask app under the same gunicorn settings: the ceiling on this machine.
   Each URL set runs twice: with the page cache off (every answer rendered), and as deployed,
   after one pass over the set's URLs has filled the page cache the workers share.
4. Prints requests/s, p50/p99 latency, the ratio to the ceiling, errors and non-2xx answers,
   and the peak RSS of each worker.

wrk, gunicorn and the importer share the machine's cores: compare ratios, not absolutes.
Figures only, nothing passes or fails.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROJECT_ROOT = HERE.parent
# This file is named like the standard library's `http`: keep bench/ off sys.path so that
# `urllib` finds the real one.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(PROJECT_ROOT))

import argparse  # noqa: E402
import contextlib  # noqa: E402
import datetime as dt  # noqa: E402
import importlib.util  # noqa: E402
import itertools  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import random  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import sqlite3  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
import urllib.request  # noqa: E402

BIN = Path(sys.executable).parent
MKDOCS = ("mkdocs==1.6.1", "mkdocs-material==9.8.1")
TARGETS = {
    "full import 1,000": "≥ 5× faster than mkdocs build",
    "full import 10,000": "< 60 s",
    "unchanged import 10,000": "< 5 s",
    "entry pages": "≥ 50% of ceiling",
    "/search": "≥ 10% of ceiling",
    "/api/search": "≥ 10% of ceiling",
    "rss": "< 150 MB per worker",
}
HELLO_APP = """
from flask import Flask

app = Flask(__name__)


@app.get("/")
def hello():
    return "Hello, World!"
"""


def load_corpus_module():
    """bench/corpus.py, imported by path (bench/ is kept off sys.path, see above)."""
    spec = importlib.util.spec_from_file_location("corpus", HERE / "corpus.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def ensure_corpus(corpus, count: int, folder: Path) -> Path:
    """Write the corpus once; later runs reuse it."""
    marker = folder / ".complete"
    if not marker.exists() or marker.read_text() != str(count):
        shutil.rmtree(folder, ignore_errors=True)
        started = time.perf_counter()
        corpus.generate(count, folder)
        marker.write_text(str(count))
        print(f"generated {count} entries in {time.perf_counter() - started:.1f}s", flush=True)
    return folder


def env_for(instance: Path, content: Path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NEXUS_", "FLASK_"))}
    env.update(NEXUS_INSTANCE_PATH=str(instance), NEXUS_CONTENT_DIR=str(content), NEXUS_SECRET_KEY="bench")
    env.update(extra)
    return env


def timed_import(env: dict) -> tuple[float, str]:
    """Wall seconds of one `flask --app portal import` and its summary line."""
    started = time.perf_counter()
    result = subprocess.run(
        [str(BIN / "flask"), "--app", "portal", "import", "--quiet"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - started
    if result.returncode not in (0, 1):
        raise RuntimeError(result.stderr[-2000:])
    return seconds, result.stdout.strip().splitlines()[-1]


def time_mkdocs(content: Path, workdir: Path) -> float | None:
    """Seconds of `mkdocs build` (material theme, its search plugin) over `content`."""
    workdir.mkdir(parents=True, exist_ok=True)
    venv = workdir / "venv"  # made once, kept under bench/out/ (not in git)
    if not (venv / "bin" / "mkdocs").exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        installed = subprocess.run(
            [str(venv / "bin" / "pip"), "install", "--quiet", *MKDOCS], capture_output=True, text=True, check=False
        )
        if installed.returncode:
            print("mkdocs could not be installed:", installed.stderr[-500:])
            return None
    site = workdir / "mkdocs-site"
    config = workdir / "mkdocs.yml"
    config.write_text(
        f"site_name: Bench\ndocs_dir: {content}\nsite_dir: {site}\ntheme:\n  name: material\nplugins:\n  - search\n"
    )
    shutil.rmtree(site, ignore_errors=True)
    started = time.perf_counter()
    result = subprocess.run(
        [str(venv / "bin" / "mkdocs"), "build", "--quiet", "--config-file", str(config)],
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - started
    if result.returncode:
        print("mkdocs build failed:", result.stderr[-500:])
        return None
    return seconds


# --- serving ----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """gunicorn with the project's gunicorn.conf.py, serving `app` on a free port."""

    def __init__(self, app: str, env: dict, log: Path, pythonpath: Path | None = None):
        self.port = free_port()
        env = dict(env, NEXUS_GUNICORN_BIND=f"127.0.0.1:{self.port}")
        command = [str(BIN / "gunicorn"), "-c", "gunicorn.conf.py"]
        if pythonpath:
            command += ["--pythonpath", str(pythonpath)]
        self.log = open(log, "w")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [*command, app], cwd=PROJECT_ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT
        )
        self.base = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 300
        while True:
            try:
                with urllib.request.urlopen(self.base + "/", timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"gunicorn did not start; see {log}")
            time.sleep(0.3)

    def reset_peaks(self) -> None:
        """Forget each worker's peak RSS: a forked worker inherits the master's peak from start-up."""
        time.sleep(2)  # every worker has booted
        for pid in self.workers():
            with contextlib.suppress(OSError):  # not root or an old kernel: peaks include the master's
                Path(f"/proc/{pid}/clear_refs").write_text("5")

    def workers(self) -> list[int]:
        """Pids of the worker processes (children of the master)."""
        pids = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == self.process.pid:
                pids.append(int(stat.parent.name))
        return sorted(pids)

    @staticmethod
    def memory_mb(pid: int) -> dict[str, float]:
        """Peak RSS (VmHWM) and, now, RSS, PSS and private memory of a process, in MB.

        RSS counts the pages of the search index that every worker maps from the same files;
        PSS shares them out and "private" leaves them out.
        """
        status = Path(f"/proc/{pid}/status").read_text()
        rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()

        def kb(text, name):
            return int(re.search(rf"^{name}:\s+(\d+) kB", text, flags=re.M).group(1)) / 1024

        return {
            "peak": kb(status, "VmHWM"),
            "rss": kb(rollup, "Rss"),
            "pss": kb(rollup, "Pss"),
            "private": kb(rollup, "Private_Clean") + kb(rollup, "Private_Dirty"),
        }

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


LUA = """
local paths = {%(paths)s}
local n = #paths
local threads = 0
local i = 0

function setup(thread)
  thread:set("offset", threads * 7919)
  threads = threads + 1
end

function init(args)
  i = (offset or 0) %% n
end

function request()
  i = (i %% n) + 1
  return wrk.format("GET", paths[i])
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'RESULT {"requests": %%d, "duration_us": %%d, "p50_us": %%d, "p99_us": %%d, ' ..
    '"errors": %%d, "non_2xx": %%d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.timeout, e.status))
end
"""


def run_wrk(base: str, paths: list[str], script: Path, duration: float, connections: int) -> dict:
    """One wrk run over a rotation of paths; the figures its `done` hook printed."""
    script.write_text(LUA % {"paths": ", ".join(json.dumps(p) for p in paths)})
    result = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{duration:g}s", "--timeout", "10s", "-s", str(script), base],
        capture_output=True,
        text=True,
        check=True,
    )
    figures = json.loads(result.stdout.split("RESULT ", 1)[1].splitlines()[0])
    figures["rps"] = figures["requests"] / (figures["duration_us"] / 1e6)
    return figures


def visit_once(base: str, paths: list[str], connections: int) -> float:
    """GET every path once, `connections` at a time (the deployed run's warm-up); wall seconds."""
    from concurrent.futures import ThreadPoolExecutor

    def fetch(path):
        with urllib.request.urlopen(base + path, timeout=60) as response:
            response.read()

    started = time.perf_counter()
    with ThreadPoolExecutor(connections) as pool:
        list(pool.map(fetch, paths))
    return time.perf_counter() - started


def sample_urls(database: Path, entries: int, queries: int, seed: int = 7) -> dict[str, list[str]]:
    """Entry, tag and search URLs drawn from the imported corpus."""
    rng = random.Random(seed)
    with sqlite3.connect(database) as connection:
        slugs = [row[0] for row in connection.execute("SELECT slug FROM entries ORDER BY id")]
        tags = [row[0] for row in connection.execute("SELECT slug FROM tags ORDER BY slug")]
        titles = [row[0] for row in connection.execute("SELECT title FROM entries ORDER BY id")]
    words = sorted({w.lower() for title in titles for w in re.findall(r"[A-Za-z]{4,}", title)})
    rng.shuffle(words)
    candidates = []
    for a, b in itertools.zip_longest(words, words[1:] + words[:1]):
        candidates += [a, f"{a} {b}", f'"{a} {b}"', f"{a[:4]}*", f"tag:{rng.choice(tags)} {a}"]
    candidates = list(dict.fromkeys(candidates))[:queries]
    quoted = [urllib.request.quote(q) for q in candidates]
    return {
        "entries": [f"/entries/{s}" for s in rng.sample(slugs, min(entries, len(slugs)))],
        "tags": [f"/tags/{t}" for t in tags],
        "search": [f"/search?q={q}" for q in quoted],
        "api": [f"/api/search?q={q}" for q in quoted],
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=10_000)
    parser.add_argument("--duration", type=float, default=10, help="seconds of wrk per URL set")
    parser.add_argument("--connections", type=int, default=10)
    parser.add_argument("--workdir", default=str(HERE / "out" / "http"))
    parser.add_argument("--skip-mkdocs", action="store_true")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install -y wrk")
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    load = os.getloadavg()
    print(
        f"# Nexus HTTP benchmark, {dt.date.today()}, {platform.node()}: {os.cpu_count()} cores, "
        f"{platform.processor() or platform.machine()}, Python {platform.python_version()}; "
        f"load average at start {load[0]:.2f}",
        flush=True,
    )

    corpus = load_corpus_module()
    small = min(1000, args.entries)
    content = ensure_corpus(corpus, args.entries, work / f"corpus-{args.entries}")
    content_small = ensure_corpus(corpus, small, work / f"corpus-{small}")
    imports = {}
    for count, folder in ((small, content_small), (args.entries, content)):
        instance = work / f"instance-{count}"
        shutil.rmtree(instance, ignore_errors=True)
        env = env_for(instance, folder)
        for label in ("full", "unchanged"):
            seconds, summary = timed_import(env)
            imports[f"{label} import {count:,}"] = seconds
            print(f"{label} import of {count:,}: {seconds:.1f}s ({summary})", flush=True)
    mkdocs = None if args.skip_mkdocs else time_mkdocs(content_small, work / "mkdocs")
    if mkdocs:
        print(f"mkdocs build of {small:,} (material theme): {mkdocs:.1f}s", flush=True)

    instance = work / f"instance-{args.entries}"
    env = env_for(instance, content)
    urls = sample_urls(instance / "nexus.sqlite3", 1000, 500)
    hello_dir = work / "hello"
    hello_dir.mkdir(exist_ok=True)
    (hello_dir / "hello_app.py").write_text(HELLO_APP)
    hello = Server("hello_app:app", env, work / "hello.log", pythonpath=hello_dir)
    try:
        run_wrk(hello.base, ["/"], work / "warm.lua", 2, args.connections)
        ceiling = run_wrk(hello.base, ["/"], work / "hello.lua", args.duration, args.connections)
    finally:
        hello.stop()
    sets = [
        ("/ (home)", ["/"]),
        (f"entry pages ({len(urls['entries']):,} rotating)", urls["entries"]),
        ("kind page /kinds/technology", ["/kinds/technology"]),
        (f"tag pages ({len(urls['tags'])} rotating)", urls["tags"]),
        (f"/search ({len(urls['search'])} queries)", urls["search"]),
        (f"/api/search ({len(urls['api'])} queries)", urls["api"]),
    ]
    # Twice: every answer rendered (page cache off), then as deployed, after a warm-up pass.
    runs: dict[str, dict] = {name: {} for name, _ in sets}
    rss = {}
    for mode, extra in (("rendered", {"NEXUS_PAGE_CACHE_MB": "0"}), ("production", {})):
        for leftover in instance.glob("page-cache.sqlite3*"):  # the deployed run starts with an empty cache
            leftover.unlink()
        nexus = Server("wsgi:app", dict(env, **extra), work / f"nexus-{mode}.log")
        try:
            nexus.reset_peaks()
            run_wrk(nexus.base, urls["search"], work / "warm.lua", 3, args.connections)  # open every searcher
            for name, paths in sets:
                if mode == "production":
                    seconds = visit_once(nexus.base, paths, args.connections)
                    runs[name]["first visit"] = len(paths) / seconds
                    print(f"{name}: one pass over {len(paths):,} URLs filled the cache in {seconds:.1f}s", flush=True)
                runs[name][mode] = run_wrk(nexus.base, paths, work / "run.lua", args.duration, args.connections)
                print(f"{name}, {mode}: {runs[name][mode]['rps']:.0f} req/s", flush=True)
            rss[mode] = [nexus.memory_mb(pid) for pid in nexus.workers()]
        finally:
            nexus.stop()

    def cells(f: dict) -> str:
        return f"{f['rps']:.0f} | {f['p50_us'] / 1000:.1f} | {f['p99_us'] / 1000:.1f} | {f['rps'] / ceiling['rps']:.0%}"

    print(
        f"\n### Load ({args.entries:,} entries, gunicorn.conf.py defaults, wrk -t2 -c{args.connections} -d{args.duration:g}s)\n"
    )
    print("Each URL set twice: every answer rendered (`NEXUS_PAGE_CACHE_MB=0`), then as deployed: the shared page")
    print("cache on and empty, one pass over the set's URLs (first visit: each rendered once and stored), then wrk.")
    print("Columns: req/s, p50 ms, p99 ms, share of the ceiling.\n")
    print(
        "| URL | rendered req/s | p50 | p99 | of ceiling | first visit req/s "
        "| deployed req/s | p50 | p99 | of ceiling | errors + non-2xx | target |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    c = ceiling
    print(f"| hello-world Flask (ceiling) | {cells(c)} | | {cells(c)} | {c['errors'] + c['non_2xx']} | |")
    for name, by_mode in runs.items():
        target = next((t for key, t in TARGETS.items() if name.startswith(key)), "")
        bad = sum(by_mode[mode]["errors"] + by_mode[mode]["non_2xx"] for mode in ("rendered", "production"))
        first = f"{by_mode['first visit']:.0f}"
        print(
            f"| {name} | {cells(by_mode['rendered'])} | {first} | {cells(by_mode['production'])} | {bad} | {target} |"
        )
    print(f"\nMemory per worker, MB (target {TARGETS['rss']} peak RSS):\n")
    print("| server | workers | peak RSS | RSS now | PSS now | private now |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for mode, label in (("rendered", "page cache off"), ("production", "deployed, page cache warm")):
        figures = rss[mode]
        worst = {key: max(f[key] for f in figures) for key in ("peak", "rss", "pss", "private")}
        print(
            f"| {label} | {len(figures)} | {worst['peak']:.0f} | {worst['rss']:.0f} | {worst['pss']:.0f} "
            f"| {worst['private']:.0f} |"
        )
    print("\n### Import\n")
    print("| run | seconds | target |")
    print("| --- | ---: | --- |")
    for name, seconds in imports.items():
        target = TARGETS.get(name, "")
        if name == f"full import {small:,}" and mkdocs:
            target += f" (here {mkdocs / seconds:.1f}×)"
        print(f"| {name} | {seconds:.1f} | {target} |")
    if mkdocs:
        print(f"| mkdocs build {small:,} (mkdocs-material) | {mkdocs:.1f} | reference |")


if __name__ == "__main__":
    main()
