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
import itertools  # noqa: E402
import random  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import sqlite3  # noqa: E402
import time  # noqa: E402
import urllib.request  # noqa: E402

from bench import common, corpus  # noqa: E402
from bench.common import Gunicorn, env_for, run_wrk, time_mkdocs, timed_import  # noqa: E402

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
    print(common.machine_line("Nexus HTTP benchmark"), flush=True)

    small = min(1000, args.entries)
    content = common.ensure_corpus(corpus.generate, args.entries, work / f"corpus-{args.entries}")
    content_small = common.ensure_corpus(corpus.generate, small, work / f"corpus-{small}")
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
    hello = Gunicorn("hello_app:app", env, work / "hello.log", pythonpath=hello_dir)
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
        nexus = Gunicorn("wsgi:app", dict(env, **extra), work / f"nexus-{mode}.log")
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
