"""First-time searches: Nexus `/search` against Datasette's FTS5 over the same notes, under wrk (issue 16).

    python bench/peers.py --corpus DIR [--queries 300] [--rounds 2] [-t 2 -c 16 -d 5]
    python bench/peers.py --generated 10000

Serves one folder of notes two ways on 127.0.0.1:

- Nexus: `flask --app portal secret-key` and `import` into a fresh instance, then gunicorn with
  the project's gunicorn.conf.py (workers from the CPU count, as deployed) and the page cache
  off (`NEXUS_PAGE_CACHE_MB=0`): every answer is rendered.
- Datasette 0.65.5 (with sqlite-utils, in a throwaway venv under bench/out/): the same notes in
  a table (path, title, body), an FTS5 index (`sqlite-utils enable-fts --tokenize porter`) and a
  canned query returning 20 rows ranked by `rank` with `snippet()`, served by
  `datasette serve -i` (immutable, as `datasette publish` serves a database).

A note's title: its front matter `title`, else its first `# ` line, else its file name.
wrk walks a list of distinct two-word queries drawn from the titles (seeded; words of 3 letters
or more, no stop words) through Nexus's HTML search page and the canned query's HTML page,
in the order Nexus, Datasette, Nexus, Datasette (`--rounds`), then one repeated query on each,
and once more on Nexus as deployed (page cache on). Prints req/s, p50 and p99 latency, errors
and non-2xx answers, the servers' CPU time per answer, and the ratios Nexus / Datasette (by
throughput and by CPU per answer); warns loudly about any error.

Figures only, nothing passes or fails. wrk and both servers share the machine's cores, and
the machine is shared: compare the ratios, not the absolutes.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
# bench/ off sys.path (bench/http.py would shadow the standard library's `http`), the project on it.
sys.path[:] = [str(HERE.parent)] + [p for p in sys.path if Path(p or ".").resolve() != HERE]

import argparse  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import urllib.parse  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402

import yaml  # noqa: E402

from bench import common, corpus  # noqa: E402

DATASETTE = ("datasette==0.65.5", "sqlite-utils==3.38")
DATABASE = "notes"  # notes.db: Datasette serves it at /notes
CANNED = "search"
CANNED_SQL = f"""select {DATABASE}.path, {DATABASE}.title,
  snippet({DATABASE}_fts, -1, '<b>', '</b>', '…', 24) as snippet
from {DATABASE}_fts join {DATABASE} on {DATABASE}.rowid = {DATABASE}_fts.rowid
where {DATABASE}_fts match :q
order by {DATABASE}_fts.rank
limit 20"""
# Whoosh's stop words (Nexus drops them) and other words no one searches notes for.
STOP = {
    "a", "an", "and", "are", "as", "at", "be", "by", "can", "for", "from", "have", "if", "in", "is", "it", "may",
    "not", "of", "on", "or", "tbd", "that", "the", "this", "to", "us", "we", "when", "will", "with", "yet", "you",
    "your", "all", "any", "but", "did", "does", "how", "its", "into", "than", "then", "them", "they", "their",
    "there", "these", "those", "was", "were", "what", "which", "who", "why", "via", "out", "our", "has", "had",
    "get", "got", "one", "two", "use", "using", "used", "way", "new", "more", "most",
}  # fmt: skip
WORD = re.compile(r"[A-Za-z]+")
MIN_ANSWERS = 50  # below this many answers in a run, its percentiles and ratios mean nothing
FRONT_MATTER = re.compile(r"\A(?:\ufeff)?---\s*\n(.*?)\n---\s*(?:\n|\Z)", re.S)


# --- the notes ---------------------------------------------------------------------------------


def read_notes(folder: Path) -> list[dict]:
    """(path, title, body) of every Markdown file Nexus would import (names starting with . or _ skipped)."""
    notes = []
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if path.suffix not in (".md", ".markdown") or any(p.startswith((".", "_")) for p in relative.parts):
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        title, body = title_and_body(relative, text)
        notes.append({"path": relative.as_posix(), "title": title, "body": body})
    return notes


def title_and_body(relative: Path, text: str) -> tuple[str, str]:
    """The front matter title, else the first `# ` line, else the file name; and the text after the front matter."""
    body, title = text, None
    if match := FRONT_MATTER.match(text):
        body = text[match.end() :]
        try:
            meta = yaml.safe_load(match.group(1))
        except yaml.YAMLError:
            meta = None
        if isinstance(meta, dict) and isinstance(meta.get("title"), str):
            title = meta["title"]
    if title is None:
        heading = re.search(r"^# (.+)$", body, flags=re.M)
        title = heading.group(1).strip() if heading else re.sub(r"[-_]+", " ", relative.stem).strip()
    return title, body


def make_queries(titles: list[str], count: int, seed: int) -> list[str]:
    """`count` distinct two-word queries, each two words of one title (so each should find that note)."""
    rng = random.Random(seed)
    words_by_title = []
    for title in titles:
        words = list(dict.fromkeys(w.lower() for w in WORD.findall(title) if len(w) >= 3 and w.lower() not in STOP))
        if len(words) >= 2:
            words_by_title.append(words)
    queries: dict[str, None] = {}
    for _ in range(count * 50):
        if len(queries) >= count or not words_by_title:
            break
        first, second = rng.sample(rng.choice(words_by_title), 2)
        queries.setdefault(f"{first} {second}", None)
    if len(queries) < count:
        print(f"only {len(queries)} distinct queries could be drawn from the titles", flush=True)
    return list(queries)


# --- Datasette -----------------------------------------------------------------------------------


def build_database(notes: list[dict], work: Path, venv: Path) -> tuple[Path, Path]:
    """notes.db with the notes and their FTS5 index (made by sqlite-utils), and metadata.json with the query."""
    database, rows = work / f"{DATABASE}.db", work / "notes.json"
    database.unlink(missing_ok=True)
    rows.write_text(json.dumps(notes))
    sqlite_utils = str(venv / "bin" / "sqlite-utils")
    subprocess.run([sqlite_utils, "insert", str(database), DATABASE, str(rows), "--pk", "path"], check=True)
    subprocess.run(
        [sqlite_utils, "enable-fts", str(database), DATABASE, "title", "body", "--tokenize", "porter"], check=True
    )
    rows.unlink()
    metadata = work / "metadata.json"
    metadata.write_text(json.dumps({"databases": {DATABASE: {"queries": {CANNED: {"sql": CANNED_SQL}}}}}, indent=2))
    return database, metadata


def start_datasette(venv: Path, database: Path, metadata: Path, log: Path) -> common.Server:
    """`datasette serve -i` of the notes on a free port."""
    port = common.free_port()
    command = [
        str(venv / "bin" / "datasette"),
        "serve",
        "-i",
        str(database),
        "--metadata",
        str(metadata),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    return common.Server(command, port, None, log, ready_path="/-/versions.json", cwd=database.parent)


def datasette_rows(base: str, query: str) -> int:
    """How many rows the canned query returns for `query` (its JSON twin of the HTML page)."""
    status, body = common.get(f"{base}/{DATABASE}/{CANNED}.json?_shape=array&q={urllib.parse.quote(query)}")
    return len(json.loads(body)) if status == 200 else 0


# --- Nexus -------------------------------------------------------------------------------------


def start_nexus(content: Path, instance: Path, log: Path, **extra) -> common.Gunicorn:
    """gunicorn with gunicorn.conf.py over an instance made and imported by the CLI beforehand."""
    env = common.env_for(instance, content, **extra)
    del env["NEXUS_SECRET_KEY"]  # served with the key file `flask --app portal secret-key` wrote, as deployed
    return common.Gunicorn("wsgi:app", env, log)


def import_nexus(content: Path, instance: Path) -> float:
    """`flask --app portal secret-key` then `import` into a fresh instance; seconds of the import."""
    shutil.rmtree(instance, ignore_errors=True)
    env = common.env_for(instance, content)
    del env["NEXUS_SECRET_KEY"]
    made = common.flask(env, "secret-key")
    if made.returncode:
        raise SystemExit(f"flask --app portal secret-key failed:\n{made.stderr[-2000:]}")
    seconds, summary = common.timed_import(env)
    print(f"Nexus import: {seconds:.1f}s ({summary})", flush=True)
    return seconds


def nexus_hits(base: str, query: str) -> int:
    """How many entries Nexus finds for `query` (the JSON twin of the HTML search page)."""
    status, body = common.get(f"{base}/api/search?q={urllib.parse.quote(query)}")
    return json.loads(body)["total"] if status == 200 else 0


# --- checks and runs ---------------------------------------------------------------------------


def check_pages(nexus: str, datasette: str, query: str) -> None:
    """Both HTML pages answer 200 with results for one query before anything is measured."""
    quoted = urllib.parse.quote(query)
    for name, url, marker in (
        ("Nexus", f"{nexus}/search?q={quoted}", b"<html"),
        ("Datasette", f"{datasette}/{DATABASE}/{CANNED}?q={quoted}", b'class="rows-and-columns'),
    ):
        status, body = common.get(url)
        if status != 200 or marker not in body:
            raise SystemExit(f"{name} did not answer {url} as expected: HTTP {status}\n{body[:500]!r}")


def count_found(queries: list[str], nexus: str, datasette: str) -> tuple[int, int]:
    """How many queries find something on each side (also opens every searcher and warms both servers)."""
    with ThreadPoolExecutor(4) as pool:
        on_nexus = sum(1 for n in pool.map(lambda q: nexus_hits(nexus, q), queries) if n)
        on_datasette = sum(1 for n in pool.map(lambda q: datasette_rows(datasette, q), queries) if n)
    return on_nexus, on_datasette


def warm_pages(nexus: str, datasette: str, queries: list[str]) -> None:
    """Each server's HTML search page for queries that are not measured, from 8 clients at once.

    Every worker then has its templates compiled and its once-per-import page parts (the header's
    outline, the tag graph) built, as a site that has served anyone has: a cost per worker, not
    per query. The measured queries' own first pages stay unrendered.
    """
    urls = [f"{nexus}/search?q={urllib.parse.quote(q)}" for q in queries]
    urls += [f"{datasette}/{DATABASE}/{CANNED}?q={urllib.parse.quote(q)}" for q in queries]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(common.get, urls))


def search_paths(queries: list[str], per_page: int | None) -> tuple[list[str], list[str]]:
    """The URLs wrk walks: Nexus's search page and the canned query's page, one per query."""
    quoted = [urllib.parse.quote(q) for q in queries]
    extra = f"&per_page={per_page}" if per_page else ""
    return [f"/search?q={q}{extra}" for q in quoted], [f"/{DATABASE}/{CANNED}?q={q}" for q in quoted]


def timed_wrk(server: common.Server, paths: list[str], script: Path, **wrk) -> dict:
    """One wrk run against `server`, with the server's CPU milliseconds per answer (less swayed by others' load)."""
    before = common.tree_cpu_seconds(server.process.pid)
    figures = common.run_wrk(server.base, paths, script, **wrk)
    used = common.tree_cpu_seconds(server.process.pid) - before
    figures["cpu_ms"] = used * 1000 / max(figures["requests"], 1)
    return figures


def bad(figures: dict) -> int:
    """Socket errors and non-2xx answers of one wrk run."""
    return figures["errors"] + figures["non_2xx"]


def cells(figures: dict) -> str:
    """req/s, p50, p99, errors and server CPU per answer of one wrk run, as table cells."""
    return (
        f"{figures['rps']:.0f} | {figures['p50_us'] / 1000:.1f} | {figures['p99_us'] / 1000:.1f} | {bad(figures)} "
        f"| {figures['cpu_ms']:.1f}"
    )


def print_table(title: str, setup: str, rows: list[tuple[str, dict, dict, str]], found: tuple[int, int, int]) -> None:
    """The figures, one row per pair of runs, with the ratio Nexus / Datasette."""
    print(f"\n### {title}\n\n{setup}\n")
    print(
        "| run | Nexus req/s | p50 ms | p99 ms | errors + non-2xx | CPU ms/req | Datasette req/s | p50 ms | p99 ms "
        "| errors + non-2xx | CPU ms/req | Nexus / Datasette | by CPU | load |"
    )
    print("| --- | " + " | ".join(["---:"] * 14) + " |")
    for name, nexus, datasette, load in rows:
        print(f"| {name} | {cells(nexus)} | {cells(datasette)} | {ratios(nexus, datasette)} | {load} |")
    total, on_nexus, on_datasette = found
    print(f"\nQueries with at least one result: Nexus {on_nexus}/{total}, Datasette {on_datasette}/{total}.")
    failures = [(name, side) for name, n, d, _ in rows for side, f in (("Nexus", n), ("Datasette", d)) if bad(f)]
    if failures:
        print("\n" + "!" * 100)
        for name, side in failures:
            print(f"!!! WARNING: {side} answered with errors or non-2xx statuses in '{name}': its figures are suspect")
        print("!" * 100)
    for name, side, f in [(name, s, f) for name, n, d, _ in rows for s, f in (("Nexus", n), ("Datasette", d))]:
        if f["requests"] < MIN_ANSWERS:
            print(
                f"!!! WARNING: {side} gave only {f['requests']} answers in '{name}': too few to compare "
                "(a busy machine? try a longer --duration)"
            )
    if on_datasette < total / 2 or on_nexus < total / 2:
        print("\n!!! WARNING: fewer than half the queries find anything on one side: the comparison is suspect")


def ratios(nexus: dict, datasette: dict) -> str:
    """Nexus / Datasette by throughput and by CPU per answer, as two cells; n/a when a run answered too little."""
    if min(nexus["requests"], datasette["requests"]) < MIN_ANSWERS or not nexus["cpu_ms"] or not datasette["rps"]:
        return "n/a | n/a"
    return f"{nexus['rps'] / datasette['rps']:.2f}× | {datasette['cpu_ms'] / nexus['cpu_ms']:.2f}×"


def median_row(rounds: list[tuple[str, dict, dict, str]]) -> tuple[str, dict, dict, str]:
    """The median of the rounds' figures (errors summed), as one more row."""

    def combine(runs):
        return {
            "rps": statistics.median(r["rps"] for r in runs),
            "p50_us": statistics.median(r["p50_us"] for r in runs),
            "p99_us": statistics.median(r["p99_us"] for r in runs),
            "cpu_ms": statistics.median(r["cpu_ms"] for r in runs),
            "requests": min(r["requests"] for r in runs),
            "errors": sum(r["errors"] for r in runs),
            "non_2xx": sum(r["non_2xx"] for r in runs),
        }

    return "median of the rounds", combine([r[1] for r in rounds]), combine([r[2] for r in rounds]), ""


def parse_args(argv):
    """The command line (see the module's docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--corpus", help="a folder of Markdown notes (read only)")
    source.add_argument(
        "--generated", type=int, metavar="N", help="N entries of the generated corpus (bench/corpus.py)"
    )
    parser.add_argument("--queries", type=int, default=300, help="distinct two-word queries to rotate")
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2, help="rounds of Nexus then Datasette")
    parser.add_argument("-t", "--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("-c", "--connections", type=int, default=16, help="wrk connections")
    parser.add_argument("-d", "--duration", type=float, default=5, help="seconds of each wrk run")
    parser.add_argument("--per-page", type=int, help="Nexus results per page (default: its own, 10)")
    parser.add_argument("--workdir", default=str(common.OUT / "peers"))
    return parser.parse_args(argv)


def main(argv=None) -> None:
    """Build both sites, check them, run wrk against each in turn and print the table."""
    args = parse_args(argv)
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install -y wrk")
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    print(common.machine_line("Nexus search against Datasette"), flush=True)
    content, name = common.content_folder(args, corpus.generate)
    notes = read_notes(content)
    queries = make_queries([n["title"] for n in notes], args.queries, args.seed)
    venv = common.venv_with(common.VENVS / "datasette", DATASETTE, "datasette")
    if venv is None:
        sys.exit("Datasette could not be installed")
    venv = venv.parent.parent
    database, metadata = build_database(notes, work, venv)
    instance = work / "instance"
    import_nexus(content, instance)
    wrk = {"duration": args.duration, "connections": args.connections, "threads": args.threads}
    nexus_paths, datasette_paths = search_paths(queries, args.per_page)
    servers = []
    try:
        datasette = start_datasette(venv, database, metadata, work / "datasette.log")
        servers.append(datasette)
        nexus = start_nexus(content, instance, work / "nexus.log", NEXUS_PAGE_CACHE_MB="0")
        servers.append(nexus)
        workers = len(nexus.workers())
        check_pages(nexus.base, datasette.base, queries[0])
        on_nexus, on_datasette = count_found(queries, nexus.base, datasette.base)
        measured = set(queries)
        warm = [q for q in make_queries([n["title"] for n in notes], 60, args.seed + 1) if q not in measured]
        warm_pages(nexus.base, datasette.base, warm[:40])
        rows = []
        for number in range(1, args.rounds + 1):
            load = common.load_average()
            a = timed_wrk(nexus, nexus_paths, work / "nexus.lua", **wrk)
            b = timed_wrk(datasette, datasette_paths, work / "datasette.lua", **wrk)
            rows.append((f"round {number}: {len(queries)} distinct queries", a, b, load))
            print(f"round {number}: Nexus {a['rps']:.0f} req/s, Datasette {b['rps']:.0f} req/s", flush=True)
        if args.rounds > 1:
            rows.append(median_row(rows))
        load = common.load_average()
        a = timed_wrk(nexus, nexus_paths[:1], work / "nexus.lua", **wrk)
        b = timed_wrk(datasette, datasette_paths[:1], work / "datasette.lua", **wrk)
        rows.append((f"one query repeated ({queries[0]!r})", a, b, load))
        memory = [nexus.memory_mb(pid) for pid in nexus.workers()]
        nexus.stop()
        servers.remove(nexus)
        deployed = start_nexus(content, instance, work / "nexus-deployed.log")
        servers.append(deployed)
        common.get(deployed.base + nexus_paths[0])  # rendered once, then answered from the page cache
        load = common.load_average()
        a = timed_wrk(deployed, nexus_paths[:1], work / "nexus.lua", **wrk)
        rows.append(("one query repeated, Nexus page cache on (as deployed)", a, b, load))
    finally:
        for server in servers:
            server.stop()
    setup = (
        f"{len(notes):,} notes, {len(queries)} two-word queries from their titles (seed {args.seed}); "
        f"wrk -t{args.threads} -c{args.connections} -d{args.duration:g}s --latency, Nexus then Datasette, "
        f"{args.rounds} rounds, after both served 40 other queries' pages from 8 clients.\nNexus: `/search?q=` HTML page{f' ({args.per_page} a page)' if args.per_page else ''}"
        f", gunicorn.conf.py ({workers} workers), `NEXUS_PAGE_CACHE_MB=0` unless said. "
        "Datasette 0.65.5: canned query's HTML page, 20 rows with `snippet()` by FTS5 `rank` (porter), "
        "`datasette serve -i`. The last row compares with Datasette's repeated-query run above it.\n"
        "CPU ms/req: user + system CPU of the server's processes during the run over the answers given; "
        "by CPU = Datasette's CPU per answer / Nexus's (wrk's own CPU is not counted)."
    )
    print_table(f"Nexus /search against Datasette, {name}", setup, rows, (len(queries), on_nexus, on_datasette))
    worst = {key: max(m[key] for m in memory) for key in ("peak", "pss")}
    print(
        f"Nexus workers after the runs (page cache off): peak RSS up to {worst['peak']:.0f} MB, PSS up to {worst['pss']:.0f} MB."
    )


if __name__ == "__main__":
    main()
