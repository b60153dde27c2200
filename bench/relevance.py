"""Relevance of Nexus search against an SQLite FTS5 baseline, on a folder of real notes.

    python bench/relevance.py CORPUS QUERIES.json [--show-failures] [--json OUT] [--markdown]

QUERIES.json is a list of `{"class", "query", "expected": ["folder/note.md", ...], "why"}`, written
by a person from reading the notes (see bench/queries/). In one run, over the same folder:

- Nexus: CORPUS is imported into a fresh temporary instance with the real importer, and each query
  goes through `/api/search` with Flask's test client, as a user's would (first 10 results);
- FTS5: one table (`porter unicode61`) of title (the first `# ` line, else the file name) and body
  over the same `.md` files; each query's words are quoted and ANDed, ranked by
  `bm25(docs, 10.0, 1.0)`, top 10. A query whose words match nothing finds nothing.

Printed per query class and for all queries: success@1, @3, @5, @10 (an expected note among the
first k results) and MRR over the first 10. Figures only: nothing here passes or fails.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sqlite3
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
# The project on the path, bench/ off it: a bench/ script named like a standard module (http.py)
# must not shadow that module.
sys.path[:] = [str(HERE.parent)] + [p for p in sys.path if Path(p or ".").resolve() != HERE]

from portal import create_app  # noqa: E402
from portal.content import slug_for_path  # noqa: E402
from portal.models import db  # noqa: E402

CLASS_ORDER = ("known-item", "question", "paraphrase", "typo", "alias")
CUTOFFS = (1, 3, 5, 10)
DEPTH = 10  # results asked of each engine; MRR counts a hit below this as a miss
ENGINES = ("nexus", "fts5")
WORD_RE = re.compile(r"\w+")
# Top-level fields of an /api/search answer that are paging or data, not something Nexus "did".
PLAIN_FIELDS = {"results", "facets", "page", "pages", "per_page"}
# Function words a paraphrase may share with a title without giving it away.
FUNCTION_WORDS = """a about above after again against all am an and any are as at be because been before being
    below between both but by can could did do does doing don down during each few for from further
    had has have having he her here hers him his how i if in into is it its just me more most my no
    nor not of off on once only or other our out over own same she should so some such than that
    the their them then there these they this those through to too under until up very was we were
    what when where which while who whom why will with would you your"""
STOP_WORDS = frozenset(FUNCTION_WORDS.split())


class BenchError(Exception):
    """Bad input, reported as one line instead of a traceback."""


@dataclass
class Query:
    """One hand-written query and the notes that correctly answer it."""

    number: int
    cls: str
    text: str
    expected: list[str]
    why: str


# --- input -----------------------------------------------------------------------------------------


def note_paths(corpus: Path) -> list[str]:
    """Relative paths of the `.md` files Nexus imports: hidden and `_`-prefixed names skipped."""
    found = []
    for folder, dirnames, filenames in os.walk(corpus):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith((".", "_")))
        for name in sorted(filenames):
            if not name.startswith((".", "_")) and name.lower().endswith(".md"):
                found.append((Path(folder) / name).relative_to(corpus).as_posix())
    return found


def load_queries(path: Path, corpus: Path, notes: set[str]) -> list[Query]:
    """Read and check the query file; every expected note must be one of the corpus's notes."""
    try:
        items = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise BenchError(f"{path}: cannot read the queries: {error}") from None
    if not isinstance(items, list) or not items:
        raise BenchError(f"{path}: expected a non-empty JSON list of query objects")
    queries = []
    for number, item in enumerate(items, 1):
        where = f"{path}: query {number}"
        if not isinstance(item, dict):
            raise BenchError(f"{where}: not an object")
        text, cls, expected = item.get("query"), item.get("class"), item.get("expected")
        if not isinstance(text, str) or not text.strip():
            raise BenchError(f"{where}: 'query' must be a non-empty string")
        if not isinstance(cls, str) or not cls:
            raise BenchError(f"{where} ({text!r}): 'class' must be a non-empty string")
        if not isinstance(expected, list) or not expected or not all(isinstance(e, str) for e in expected):
            raise BenchError(f"{where} ({text!r}): 'expected' must be a non-empty list of paths")
        for note in expected:
            if note not in notes:
                raise BenchError(f"{where} ({text!r}): expected note {note!r} is not a note of {corpus}")
        queries.append(Query(number, cls, text, expected, str(item.get("why", ""))))
    return queries


def title_and_body(text: str, relative: str) -> tuple[str, str]:
    """The first `# ` line as the title (else the file name), and the rest as the body."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("# "):
            return line[2:].strip(), "\n".join(lines[:i] + lines[i + 1 :])
    return Path(relative).stem.replace("-", " ").replace("_", " "), text


def read_note(corpus: Path, relative: str) -> str:
    """A note's text; undecodable bytes replaced, since the baseline must index every file."""
    return (corpus / relative).read_text(encoding="utf-8", errors="replace")


def crude_stem(word: str) -> str:
    """Enough stemming to see that 'joining' gives away 'join' (a check, not an analyzer)."""
    for suffix in ("ing", "es", "ed", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def content_words(text: str) -> set[str]:
    """Lower-cased, crudely stemmed words of `text` that are not function words."""
    return {crude_stem(w) for w in WORD_RE.findall(text.lower()) if w not in STOP_WORDS}


def paraphrase_warnings(queries: list[Query], corpus: Path) -> list[str]:
    """Paraphrase queries that share a non-stop word with an expected note's title."""
    warnings = []
    for query in queries:
        if query.cls != "paraphrase":
            continue
        for note in query.expected:
            title, _ = title_and_body(read_note(corpus, note), note)
            shared = content_words(query.text) & content_words(title)
            if shared:
                warnings.append(f"paraphrase {query.text!r} shares {sorted(shared)} with the title {title!r}")
    return warnings


# --- Nexus -----------------------------------------------------------------------------------------


def import_notes(corpus: Path, instance_path: str):
    """Import with the real importer; the one place that names its module, which may move."""
    from portal.importer import import_content

    return import_content(corpus, instance_path)


def build_nexus(corpus: Path, tmp: Path):
    """A fresh app over a temporary instance with CORPUS imported; (app, report, seconds)."""
    instance = tmp / "instance"
    app = create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "bench",
            "INSTANCE_PATH": str(instance),
            "CONTENT_DIR": str(corpus),
            "INDEX_CHECK_SECONDS": 0,
            "PAGE_CACHE_MB": 0,
            # A fresh database even when NEXUS_DATABASE_URL points elsewhere.
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{instance / 'nexus.sqlite3'}",
        }
    )
    # Link and content warnings of someone else's notes are not what this measures.
    logging.getLogger("portal").setLevel(logging.ERROR)
    with app.app_context():
        started = time.perf_counter()
        report = import_notes(corpus, app.instance_path)
        seconds = time.perf_counter() - started
    return app, report, seconds


def nexus_search(client, text: str) -> dict:
    """The `/api/search` answer for a query (first 10 results), or an `error` entry."""
    response = client.get("/api/search", query_string={"q": text, "per_page": DEPTH})
    if response.status_code != 200:
        body = response.get_data(as_text=True)[:200]
        return {"results": [], "error": f"HTTP {response.status_code}: {body}"}
    return response.get_json()


def close_nexus(app) -> None:
    """Release the database files before the temporary folder goes."""
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


# --- FTS5 baseline ---------------------------------------------------------------------------------


def build_fts(corpus: Path, paths: list[str]) -> sqlite3.Connection:
    """An in-memory FTS5 table of title and body per note; rowid = position in `paths`."""
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE VIRTUAL TABLE docs USING fts5(title, body, tokenize='porter unicode61')")
    rows = ((i, *title_and_body(read_note(corpus, p), p)) for i, p in enumerate(paths))
    conn.executemany("INSERT INTO docs(rowid, title, body) VALUES (?, ?, ?)", rows)
    conn.commit()
    return conn


def fts_match(text: str) -> str | None:
    """Every word of the query quoted and ANDed; None when it has no words."""
    words = WORD_RE.findall(text)
    return " AND ".join(f'"{w}"' for w in words) if words else None


def fts_search(conn: sqlite3.Connection, paths: list[str], text: str) -> list[str]:
    """Relative paths of the top 10 notes by bm25 with the title weighted ten times the body."""
    match = fts_match(text)
    if match is None:
        return []
    rows = conn.execute(
        "SELECT rowid FROM docs WHERE docs MATCH ? ORDER BY bm25(docs, 10.0, 1.0) LIMIT ?", (match, DEPTH)
    ).fetchall()
    return [paths[rowid] for (rowid,) in rows]


# --- scoring ---------------------------------------------------------------------------------------


def rank_of(found: list[str], wanted: set[str]) -> int | None:
    """1-based rank of the first wanted item among the results, None if absent."""
    return next((i for i, item in enumerate(found, 1) if item in wanted), None)


def figures(ranks: list[int | None]) -> dict:
    """success@k for each cutoff and MRR over the first DEPTH results, for a list of ranks."""
    n = len(ranks)
    out = {"n": n}
    for k in CUTOFFS:
        out[f"@{k}"] = sum(1 for r in ranks if r is not None and r <= k) / n if n else 0.0
    out["mrr"] = sum(1 / r for r in ranks if r is not None and r <= DEPTH) / n if n else 0.0
    return out


def class_names(queries: list[Query]) -> list[str]:
    """The five known classes in their usual order, then any others in file order."""
    seen = list(dict.fromkeys(q.cls for q in queries))
    return [c for c in CLASS_ORDER if c in seen] + [c for c in seen if c not in CLASS_ORDER]


def summarize(queries: list[Query], ranks: dict[str, list[int | None]]) -> dict:
    """{engine: {class or 'all': figures}}."""
    summary = {}
    for engine, engine_ranks in ranks.items():
        per_class = {
            cls: figures([r for q, r in zip(queries, engine_ranks, strict=True) if q.cls == cls])
            for cls in class_names(queries)
        }
        per_class["all"] = figures(engine_ranks)
        summary[engine] = per_class
    return summary


# --- running ---------------------------------------------------------------------------------------


def run_nexus(app, queries: list[Query]) -> tuple[list[int | None], list[dict], float]:
    """Ask Nexus every query; (ranks, answers, seconds)."""
    client = app.test_client()
    nexus_search(client, "warm up")  # opens the searcher, so the first query is not charged for it
    ranks, answers = [], []
    started = time.perf_counter()
    for query in queries:
        answer = nexus_search(client, query.text)
        slugs = [hit.get("slug") for hit in answer.get("results", [])]
        ranks.append(rank_of(slugs, {slug_for_path(p) for p in query.expected}))
        answers.append(answer)
    return ranks, answers, time.perf_counter() - started


def run_fts(conn, paths: list[str], queries: list[Query]) -> tuple[list[int | None], float]:
    """Ask the baseline every query; (ranks, seconds)."""
    started = time.perf_counter()
    ranks = [rank_of(fts_search(conn, paths, q.text), set(q.expected)) for q in queries]
    return ranks, time.perf_counter() - started


# --- reporting -------------------------------------------------------------------------------------


def table_rows(summary: dict) -> list[list[str]]:
    """Header and one row per class: n, then each engine's success@k and MRR, as percentages."""
    metrics = [f"@{k}" for k in CUTOFFS] + ["mrr"]
    header = ["class", "n"] + [f"{'Nexus' if e == 'nexus' else 'FTS5'} {m}" for e in ENGINES for m in metrics]
    rows = [header]
    for cls, figs in summary["nexus"].items():
        row = [cls, str(figs["n"])]
        for engine in ENGINES:
            engine_figs = summary[engine][cls]
            row += [f"{engine_figs[m] * 100:.0f}%" if m != "mrr" else f"{engine_figs[m]:.2f}" for m in metrics]
        rows.append(row)
    return rows


def print_table(summary: dict) -> None:
    """The figures as an aligned text table."""
    rows = table_rows(summary)
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for i, row in enumerate(rows):
        cells = [row[0].ljust(widths[0])] + [cell.rjust(w) for cell, w in zip(row[1:], widths[1:], strict=True)]
        print("  ".join(cells))
        if i == 0:
            print("  ".join("-" * w for w in widths))


def print_markdown(summary: dict) -> None:
    """The figures as a Markdown table, for the README."""
    rows = table_rows(summary)
    print("| " + " | ".join(rows[0]) + " |")
    print("| --- |" + " ---: |" * (len(rows[0]) - 1))
    for row in rows[1:]:
        print("| " + " | ".join(row) + " |")


def said(answer: dict, text: str) -> str:
    """What Nexus reported doing: every top-level field that is not paging or results."""
    parts = []
    for key, value in answer.items():
        if key in PLAIN_FIELDS or (key == "query" and value == text):
            continue
        parts.append(f"{key}={json.dumps(value, ensure_ascii=False)}")
    return ", ".join(parts)


def print_failures(queries, ranks, answers) -> None:
    """Each query Nexus misses at @3 (and whether at @5), with its top 3 and what it said it did."""
    missed = [i for i, r in enumerate(ranks["nexus"]) if r is None or r > 3]
    print(f"\n== Nexus misses at @3: {len(missed)} of {len(queries)} queries")
    for i in missed:
        query, answer, rank, fts_rank = queries[i], answers[i], ranks["nexus"][i], ranks["fts5"][i]
        where = "not in top 10" if rank is None else f"rank {rank}"
        level = "@3" if rank is not None and rank <= 5 else "@3 and @5"
        fts = "not in top 10" if fts_rank is None else f"rank {fts_rank}"
        print(f"\n[{query.cls}] {query.text!r}: missed {level} ({where}; FTS5 {fts})")
        print(f"  expected: {', '.join(query.expected)}")
        titles = [hit.get("title", "?") for hit in answer.get("results", [])[:3]]
        print(f"  top 3: {' | '.join(titles) if titles else '(nothing)'}")
        print(f"  said: {said(answer, query.text)}")
    print_behaviour_counts([answers[i] for i in missed], [queries[i] for i in missed])


def print_behaviour_counts(answers: list[dict], queries: list[Query]) -> None:
    """How many of the misses had no results, a correction, a suggestion or a notice."""
    if not answers:
        return
    counts = {"no results": sum(1 for a in answers if not a.get("results"))}
    for key in sorted({k for a in answers for k in a} - PLAIN_FIELDS - {"query", "total"}):
        counts[f"{key} set"] = sum(1 for a in answers if a.get(key) not in (None, "", [], {}))
    counts["query echoed changed"] = sum(1 for a, q in zip(answers, queries, strict=True) if a.get("query") != q.text)
    print("\nAmong these misses: " + ", ".join(f"{name}: {n}" for name, n in counts.items()))


def write_json(out: Path, meta: dict, summary: dict, queries, ranks, answers) -> None:
    """Machine-readable figures and per-query ranks."""
    per_query = [
        {
            "class": q.cls,
            "query": q.text,
            "expected": q.expected,
            "nexus_rank": ranks["nexus"][i],
            "fts5_rank": ranks["fts5"][i],
            "nexus_said": {k: v for k, v in answers[i].items() if k not in PLAIN_FIELDS},
            "nexus_top": [hit.get("slug") for hit in answers[i].get("results", [])],
        }
        for i, q in enumerate(queries)
    ]
    data = {**meta, "summary": summary, "queries": per_query}
    out.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def main(argv=None) -> int:
    """Command line: CORPUS QUERIES.json [--show-failures] [--json OUT] [--markdown]."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", type=Path, help="folder of Markdown notes")
    parser.add_argument("queries", type=Path, help="JSON list of queries (see bench/queries/)")
    parser.add_argument("--show-failures", action="store_true", help="list each query Nexus misses at @3 / @5")
    parser.add_argument("--json", type=Path, metavar="OUT", help="also write the figures as JSON to OUT")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    args = parser.parse_args(argv)
    run_started = time.perf_counter()
    try:
        corpus = args.corpus.resolve()
        if not corpus.is_dir():
            raise BenchError(f"{args.corpus}: not a folder")
        paths = note_paths(corpus)
        queries = load_queries(args.queries, corpus, set(paths))
    except BenchError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for warning in paraphrase_warnings(queries, corpus):
        print(f"warning: {warning}", file=sys.stderr)

    with tempfile.TemporaryDirectory(prefix="nexus-relevance-") as name:
        app, report, import_seconds = build_nexus(corpus, Path(name))
        started = time.perf_counter()
        conn = build_fts(corpus, paths)
        fts_build = time.perf_counter() - started
        nexus_ranks, answers, nexus_seconds = run_nexus(app, queries)
        fts_ranks, fts_seconds = run_fts(conn, paths, queries)
        conn.close()
        close_nexus(app)
    ranks = {"nexus": nexus_ranks, "fts5": fts_ranks}
    summary = summarize(queries, ranks)
    entries = len(report.added) + len(report.updated) + len(report.unchanged)
    meta = {
        "corpus": str(corpus),
        "queries_file": str(args.queries),
        "notes": len(paths),
        "nexus_entries": entries,
        "nexus_import_errors": len(report.errors),
        "nexus_import_seconds": round(import_seconds, 2),
        "fts5_build_seconds": round(fts_build, 2),
        "nexus_query_seconds": round(nexus_seconds, 2),
        "fts5_query_seconds": round(fts_seconds, 3),
    }
    print(
        f"{corpus}: {len(paths)} notes; Nexus imported {entries} entries ({len(report.errors)} errors) "
        f"in {import_seconds:.1f} s; FTS5 built in {fts_build:.1f} s"
    )
    print(
        f"{len(queries)} queries from {args.queries}: Nexus {nexus_seconds:.1f} s "
        f"({nexus_seconds / len(queries) * 1000:.0f} ms each, through /api/search), FTS5 {fts_seconds:.2f} s"
    )
    print("success@k = an expected note among the first k results; MRR over the first 10\n")
    (print_markdown if args.markdown else print_table)(summary)
    if args.show_failures:
        print_failures(queries, ranks, answers)
    if args.json:
        meta["run_seconds"] = round(time.perf_counter() - run_started, 1)
        try:
            write_json(args.json, meta, summary, queries, ranks, answers)
        except OSError as error:
            print(f"error: {args.json}: cannot write the figures: {error}", file=sys.stderr)
    print(f"\nrun time {time.perf_counter() - run_started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
