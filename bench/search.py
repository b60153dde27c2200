"""Search latency of Nexus (Whoosh) against SQLite FTS5 on the same generated corpus.

    python bench/search.py [--sizes 1000,10000] [--queries 200] [--seed SEED]

For each size: generate the corpus (bench/corpus.py) into a temporary folder, import it with
the real importer into a temporary instance, build an FTS5 table (porter tokenizer) from the
same database rows, then time many distinct queries of each class in-process:

- Whoosh: `portal.search.engine.run_search` with a warm searcher, exactly as the views call it
  (first page of 10, highlighted snippets, facet counts over all matches, typo check);
- FTS5: top 10 by bm25 with `snippet()`, plus the ids of all matches and their tag counts
  (counted the same way, from tags held in memory).

Figures only: nothing here passes or fails beyond sanity checks.
"""

from __future__ import annotations

import argparse
import logging
import random
import re
import resource
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
# The project on the path, bench/ off it: a bench/ script named like a standard module (http.py)
# must not shadow that module.
sys.path[:] = [str(HERE.parent)] + [p for p in sys.path if Path(p or ".").resolve() != HERE]

from sqlalchemy import select  # noqa: E402

from bench import corpus  # noqa: E402
from portal import create_app, queries  # noqa: E402
from portal.importer import import_content  # noqa: E402
from portal.models import Entry, Tag, db, entry_tags  # noqa: E402
from portal.search.engine import count_tags, run_search  # noqa: E402
from portal.search.parsing import parse  # noqa: E402

CLASSES = ("term", "two-term", "phrase", "prefix", "tag-filtered")
# Words both engines treat as ordinary (Whoosh drops its stop words; FTS5 keeps everything).
STOP = {"that", "this", "when", "will", "with", "from", "have", "your", "than", "then", "only", "each", "every"}
WORD_RE = re.compile(r"[A-Za-z]+")


# Query timings use this clock: wall time by default; `--clock cpu` (this thread's CPU time)
# gives steadier figures on a machine busy with other work.
clock = time.perf_counter


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (the importer may fork workers)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


# --- building ---------------------------------------------------------------------------------


def build_app(tmp: Path, size: int, seed: int):
    """Generate, import, and return (app, timings)."""
    content, instance = tmp / "content", tmp / "instance"
    timings = {}
    started = time.perf_counter()
    corpus.generate(size, content, seed)
    timings["generate"] = time.perf_counter() - started
    app = create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "bench",
            "INSTANCE_PATH": str(instance),
            "CONTENT_DIR": str(content),
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{instance / 'nexus.sqlite3'}",
        }
    )
    logging.getLogger("portal").setLevel(logging.WARNING)
    with app.app_context():
        started, cpu = time.perf_counter(), cpu_seconds()
        report = import_content(content, app.instance_path)
        timings["import"] = time.perf_counter() - started
        timings["import_cpu"] = cpu_seconds() - cpu
        db.session.remove()
    if report.errors or len(report.added) != size:
        raise SystemExit(f"import went wrong: {report.summary()} {report.errors[:3]}")
    return app, timings


def load_rows():
    """(id, slug, title, text) of every entry and its tag slugs, from the app's database."""
    rows = db.session.execute(select(Entry.id, Entry.slug, Entry.title, Entry.text).order_by(Entry.id)).all()
    tags: dict[int, list[str]] = {}
    for entry_id, slug in db.session.execute(
        select(entry_tags.c.entry_id, Tag.slug).join(Tag, Tag.id == entry_tags.c.tag_id)
    ):
        tags.setdefault(entry_id, []).append(slug)
    return rows, tags


def build_fts(path: Path, rows, tags) -> sqlite3.Connection:
    """An FTS5 table over the same titles and texts, ranked by bm25 with the title weighted like Whoosh's."""
    conn = sqlite3.connect(path)
    conn.executescript(
        """
        CREATE VIRTUAL TABLE docs USING fts5(title, body, tokenize='porter');
        CREATE TABLE doc_tags (doc INTEGER NOT NULL, tag TEXT NOT NULL);
        """
    )
    conn.executemany("INSERT INTO docs(rowid, title, body) VALUES (?, ?, ?)", [(r.id, r.title, r.text) for r in rows])
    conn.executemany("INSERT INTO doc_tags VALUES (?, ?)", [(d, t) for d, ts in tags.items() for t in ts])
    conn.execute("CREATE INDEX doc_tags_tag ON doc_tags (tag, doc)")
    conn.execute("INSERT INTO docs(docs, rank) VALUES ('rank', 'bm25(6.0, 1.0)')")
    conn.execute("INSERT INTO docs(docs) VALUES ('optimize')")
    conn.commit()
    return conn


# --- queries ----------------------------------------------------------------------------------


def make_queries(rows, tags, count: int, seed: int) -> dict[str, list[tuple[str, tuple[str, ...]]]]:
    """`count` distinct (query, tag filter) pairs per class, each drawn from one entry so it matches."""
    rng = random.Random(seed)
    made: dict[str, dict] = {name: {} for name in CLASSES}
    attempts = 0
    while any(len(v) < count for v in made.values()) and attempts < count * 200:
        attempts += 1
        row = rng.choice(rows)
        tokens = WORD_RE.findall(row.text)
        # Distinct words, drawn uniformly: rare names as often as everyday words.
        words = list(dict.fromkeys(w.lower() for w in tokens if len(w) >= 4 and w.lower() not in STOP))
        if len(words) < 2:
            continue
        a, b = rng.sample(words, 2)
        candidates = {
            "term": (a, ()),
            "two-term": (f"{a} {b}" if a != b else None, ()),
            "prefix": (f"{a[: rng.randint(4, 6)]}*" if len(a) >= 7 else None, ()),
            "tag-filtered": (a, (rng.choice(tags[row.id]),) if tags.get(row.id) else None),
        }
        pairs = [
            (x.lower(), y.lower())
            for x, y in zip(tokens, tokens[1:], strict=False)
            if len(x) >= 4 and len(y) >= 4 and x.lower() not in STOP and y.lower() not in STOP
        ]
        # Adjacent in the word list is not always adjacent in the text; the phrase must exist as written.
        pairs = [p for p in pairs if f"{p[0]} {p[1]}" in row.text.lower()]
        candidates["phrase"] = (f'"{" ".join(rng.choice(pairs))}"' if pairs else None, ())
        for name, (q, filt) in candidates.items():
            if q and filt is not None and len(made[name]) < count:
                made[name].setdefault((q, filt), None)
    return {name: list(v) for name, v in made.items()}


def time_whoosh(pool, query_sets, texts=queries.texts_by_slugs):
    """Milliseconds per query class for `run_search` as the views call it, and mean hits."""
    results = {}
    for name, items in query_sets.items():
        times, hits = [], []
        for q, filt in items:
            started = clock()
            outcome = run_search(pool, q, page=1, per_page=10, tags_all=filt, texts=texts)
            times.append((clock() - started) * 1000)
            hits.append(outcome.total)
        results[name] = (times, percentile(hits, 0.5))
    return results


FTS_TOP = (
    "SELECT rowid, title, snippet(docs, 1, '<mark>', '</mark>', ' … ', 24) FROM docs "
    "WHERE docs MATCH ?{filt} ORDER BY rank LIMIT 10"
)
FTS_ALL = "SELECT rowid FROM docs WHERE docs MATCH ?{filt}"
# `+rowid` keeps the tag list from being pushed into FTS5 as rowid look-ups (one MATCH per tagged row).
FTS_FILTER = " AND +rowid IN (SELECT doc FROM doc_tags WHERE tag = ?)"


def time_fts(conn, tags, query_sets):
    """Milliseconds per query class for FTS5: top 10 with snippets, then all matches' tag counts."""
    results = {}
    for name, items in query_sets.items():
        times, hits = [], []
        for q, filt in items:
            clause = FTS_FILTER * len(filt)
            params = (q, *filt)
            started = clock()
            conn.execute(FTS_TOP.format(filt=clause), params).fetchall()
            matched = conn.execute(FTS_ALL.format(filt=clause), params).fetchall()
            facets = Counter(tag for (rowid,) in matched for tag in tags.get(rowid, ()))
            dict(facets.most_common())
            times.append((clock() - started) * 1000)
            hits.append(len(matched))
        results[name] = (times, percentile(hits, 0.5))
    return results


def time_facets(pool, terms):
    """Milliseconds to count tags over the matched set alone (term queries, then every document)."""
    searcher, doc_tags, _ = pool.get()
    matched_sets = [searcher.search(parse(searcher.schema, q), limit=10).docs() for q, _ in terms]
    everything = range(len(doc_tags))  # every document number

    def count(docs):
        started = clock()
        dict(count_tags(doc_tags, docs).most_common())
        return (clock() - started) * 1000

    term_times = [count(docs) for docs in matched_sets]
    all_times = [count(everything) for _ in range(50)]
    mean_matched = sum(len(d) for d in matched_sets) / max(1, len(matched_sets))
    return term_times, mean_matched, all_times


# --- reporting ------------------------------------------------------------------------------------


def percentile(values, fraction):
    """Nearest-rank percentile of a list of numbers."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered) + 0.5) - 1))]


def run_size(size: int, count: int, seed: int) -> None:
    """Build everything for one corpus size and print its table."""
    with tempfile.TemporaryDirectory(prefix=f"nexus-bench-{size}-") as name:
        tmp = Path(name)
        app, timings = build_app(tmp, size, seed)
        with app.app_context():
            rows, tags = load_rows()
            started = time.perf_counter()
            conn = build_fts(tmp / "fts.sqlite3", rows, tags)
            timings["fts"] = time.perf_counter() - started
            query_sets = make_queries(rows, tags, count, seed)
            pool = app.extensions["nexus.searchers"]
            warm = [item for items in query_sets.values() for item in items[:10]]
            for q, filt in warm:  # open the searcher and fill the OS and SQLite caches
                run_search(pool, q, tags_all=filt, texts=queries.texts_by_slugs)
            time_fts(conn, tags, {"warm": warm})
            opened = pool.opened
            whoosh = time_whoosh(pool, query_sets)
            whoosh["term, no snippets"] = time_whoosh(pool, {"term": query_sets["term"]}, texts=None)["term"]
            reopened = pool.opened - opened
            fts = time_fts(conn, tags, query_sets)
            facet_terms, mean_matched, facet_all = time_facets(pool, query_sets["term"])
            conn.close()
            db.session.remove()
            db.engine.dispose()
    print_table(size, count, timings, whoosh, fts, facet_terms, mean_matched, facet_all, reopened)


def print_table(size, count, timings, whoosh, fts, facet_terms, mean_matched, facet_all, reopened):
    """One block of figures per corpus size."""
    print(
        f"\n== {size:,} entries: generate {timings['generate']:.1f} s, import (database + Whoosh index) "
        f"{timings['import']:.1f} s ({timings['import_cpu']:.1f} s CPU), FTS5 build {timings['fts']:.1f} s; "
        f"{count} distinct queries per class"
    )
    header = (
        f"{'query class':<14} {'Whoosh p50':>10} {'p95':>7} {'FTS5 p50':>9} {'p95':>7} "
        f"{'ratio p50':>9} {'p95':>6} {'matches W/F (median)':>21}"
    )
    print(header)
    print("-" * len(header))
    for name in CLASSES:
        (w_times, w_hits), (f_times, f_hits) = whoosh[name], fts[name]
        w50, w95 = percentile(w_times, 0.5), percentile(w_times, 0.95)
        f50, f95 = percentile(f_times, 0.5), percentile(f_times, 0.95)
        print(
            f"{name:<14} {w50:>10.2f} {w95:>7.2f} {f50:>9.2f} {f95:>7.2f} "
            f"{w50 / f50:>8.1f}x {w95 / f95:>5.1f}x {w_hits:>10}/{f_hits:<10}"
        )
    plain = whoosh["term, no snippets"][0]
    print(
        f"{'term, no snip.':<14} {percentile(plain, 0.5):>10.2f} {percentile(plain, 0.95):>7.2f}"
        "   (the same term queries without highlighting: where the time goes)"
    )
    print(
        f"{'facets alone':<14} {percentile(facet_terms, 0.5):>10.3f} {percentile(facet_terms, 0.95):>7.3f}"
        f"   (tag counts of a term query's matches, {mean_matched:.0f} documents on average)"
    )
    print(
        f"{'facets, all':<14} {percentile(facet_all, 0.5):>10.3f} {percentile(facet_all, 0.95):>7.3f}"
        f"   (tag counts over all {size:,} documents)"
    )
    print(f"searcher reopened during the query loop: {reopened}")
    print("times in ms; Whoosh = run_search (page of 10, snippets, facets over all matches, typo check);")
    print("FTS5 = top 10 by bm25 with snippet() + ids of all matches + the same in-memory tag count")


def main(argv=None) -> None:
    """Command line: --sizes, --queries, --seed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000", help="comma-separated corpus sizes (default 1000,10000)")
    parser.add_argument("--queries", type=int, default=150, help="distinct queries per class (default 150)")
    parser.add_argument("--seed", type=int, default=corpus.DEFAULT_SEED)
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall", help="how queries are timed")
    args = parser.parse_args(argv)
    global clock
    clock = time.perf_counter if args.clock == "wall" else time.thread_time
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    print(f"Python {sys.version.split()[0]}, SQLite {sqlite3.sqlite_version}, query times: {args.clock} clock")
    for size in sizes:
        run_size(size, args.queries, args.seed)


if __name__ == "__main__":
    main()
