"""Git dates benchmark: what reading every note's dates from git costs an import.

    python bench/gitdates.py --corpus ../shared/corpora/jbranchaud-til [--batch 1] [--runs 5] [--import-runs 3]

1. Builds a git repository in a temporary folder from the corpus's Markdown files, committed
   folder by folder, `--batch` files per commit (1: one note per commit, like a TIL repository),
   with author and committer dates spread over ten years. Later commits edit some notes and
   rename some (within and between folders), and a merged branch renames notes that the main
   line edits meanwhile. The history is written with `git fast-import` (seconds, not minutes of
   `git commit`), then checked out.
2. Times `read_git_dates` cold (no cache) and warm (cached, HEAD unchanged), best of `--runs`,
   wall clock and CPU (this process and git), next to baselines from the same run: the bare
   `git log` pass it parses, `git rev-parse` (the warm path's floor), and one
   `git log --follow` per file (timed on a sample, scaled up). Twice: as fast-import left the
   objects, and after `git gc` (packed, with a commit-graph, as a clone or a used repository is).
3. Checks the result against the dates the benchmark committed: files dated, first dates kept
   through renames, updates seen.
4. Times full imports of the repository into fresh instance folders (SQLite) with git dates off
   and on, alternating, `--import-runs` of each: the whole import, and its read step (where the
   git read happens), best and median; then an unchanged re-import of each (HEAD unchanged: the
   cached dates). The overhead printed is on minus off.

Figures only, nothing passes or fails. The target: under 1 s added to a full import.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
# bench/http.py is named like the standard library's `http`: keep bench/ off sys.path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(HERE.parent))

import argparse  # noqa: E402
import datetime as dt  # noqa: E402
import logging  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

from sqlalchemy import func, select  # noqa: E402

from portal import create_app  # noqa: E402
from portal.gitdates import CACHE_FILE, LOG_OPTIONS, SAFE_CONFIG, git_environment, read_git_dates  # noqa: E402
from portal.importer import import_content  # noqa: E402
from portal.models import Entry, db  # noqa: E402

START = dt.datetime(2015, 1, 1, 9, 0, tzinfo=dt.timezone(dt.timedelta(hours=-5)))
YEARS = 10


def main() -> None:
    """Build the repository, time the readers, check the dates."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", required=True, type=Path, help="folder of Markdown notes (read only)")
    parser.add_argument("--batch", type=int, default=1, help="files per commit while adding (default 1)")
    parser.add_argument("--runs", type=int, default=5, help="timed runs of each reader (default 5)")
    parser.add_argument(
        "--import-runs", type=int, default=3, help="full imports with git dates off and on (default 3; 0 skips)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="nexus-gitdates-") as temp:
        repo, cache = Path(temp) / "notes", Path(temp) / "instance"
        started = time.perf_counter()
        history = History(args.corpus)
        history.build(args.batch)
        history.write(repo)
        print(
            f"repository: {len(history.expected)} Markdown files, {history.commits} commits, "
            f"built in {time.perf_counter() - started:.1f} s"
        )
        print("\nas fast-import left it (one pack, no commit-graph):")
        report_timings(repo, cache, args.runs)
        git(repo, "gc", "-q")
        print("\nafter `git gc` (packed, commit-graph), as a clone is:")
        report_timings(repo, cache, args.runs)
        print()
        check(read_git_dates(repo, cache), history.expected)
        if args.import_runs:
            print(f"\nfull imports of the repository ({args.import_runs} of each, alternating):")
            report_imports(repo, Path(temp), args.import_runs)


# --- building the repository -------------------------------------------------------------------


class History:
    """A `git fast-import` stream of the corpus's history, and the dates it should give each final path."""

    def __init__(self, corpus: Path):
        """Read the corpus's Markdown files."""
        self.files = sorted(p.relative_to(corpus).as_posix() for p in corpus.rglob("*.md") if p.is_file())
        self.text = {name: (corpus / name).read_bytes() for name in self.files}
        self.expected: dict[str, dict] = {}
        self.stream: list[bytes] = []
        self.commits = 0

    def build(self, batch: int) -> None:
        """Adds over eight years; then edits, renames and a merged branch."""
        batches = [self.files[i : i + batch] for i in range(0, len(self.files), batch)]
        step = dt.timedelta(days=365 * YEARS * 0.8 / len(batches))
        for number, names in enumerate(batches):
            when = START + number * step
            self.commit("main", f"Add {', '.join(names)}", when, [self.modify(name) for name in names])
            self.expected.update({name: {"created": when.date(), "updated": None} for name in names})
        last = START + (len(batches) - 1) * step
        # Edits: every 15th note gets a line, ten notes per commit.
        edited = self.files[::15]
        for number in range(0, len(edited), 10):
            when = last + dt.timedelta(days=30 + number)
            names = edited[number : number + 10]
            self.commit("main", "Edit notes", when, [self.modify(name, b"\n\nEdited later.\n") for name in names])
            for name in names:
                self.expected[name]["updated"] = when.date()
        # Renames: every 40th note moves to `archive/` (between folders), every 41st is renamed in place.
        moves = {name: f"archive/{name.replace('/', '-')}" for name in self.files[::40]}
        moves.update({name: name.replace(".md", "-renamed.md") for name in self.files[1::41] if name not in moves})
        self.commit("main", "Reorganise", last + dt.timedelta(days=400), [self.rename(*move) for move in moves.items()])
        # A branch renames ten notes while the main line edits them under their old names; then a merge.
        moving = {name: f"tidy/{name.replace('/', '-')}" for name in self.files[7::97] if name in self.expected}
        moving = dict(list(moving.items())[:10])
        self.stream.append(b"reset refs/heads/tidy\nfrom refs/heads/main\n\n")
        self.commit(
            "tidy", "Tidy on a branch", last + dt.timedelta(days=500), [self.rename(*m) for m in moving.items()]
        )
        edit_day = last + dt.timedelta(days=510)
        self.commit("main", "Edit on main", edit_day, [self.modify(name, b"\n\nEdited on main.\n") for name in moving])
        for name in moving:
            self.expected[moving[name]]["updated"] = edit_day.date()  # the branch renamed it already
        merged = [self.rename(*m) for m in moving.items()]
        self.commit("main", "Merge branch 'tidy'", last + dt.timedelta(days=520), merged, merge="refs/heads/tidy")

    def modify(self, name: str, appended: bytes = b"") -> bytes:
        """A file-modify command with the file's (possibly appended to) content."""
        self.text[name] += appended
        return b"M 100644 inline %s\ndata %d\n%s\n" % (quote(name), len(self.text[name]), self.text[name])

    def rename(self, old: str, new: str) -> bytes:
        """A rename command; the expected dates move with the file (a pure move is no update)."""
        self.text[new] = self.text[old]
        if old in self.expected:
            self.expected[new] = self.expected.pop(old)
        return b"R %s %s\n" % (quote(old), quote(new))

    def commit(self, branch: str, message: str, when: dt.datetime, changes: list[bytes], merge: str = "") -> None:
        """One commit, authored and committed at `when`."""
        offset = when.utcoffset().total_seconds() // 60
        stamp = b"%d %s%02d%02d" % (when.timestamp(), b"-" if offset < 0 else b"+", abs(offset) // 60, abs(offset) % 60)
        person = b"Bench <bench@localhost> " + stamp
        text = message.encode()
        header = b"commit refs/heads/%s\nauthor %s\ncommitter %s\ndata %d\n%s\n" % (
            branch.encode(),
            person,
            person,
            len(text),
            text,
        )
        self.stream += [header, b"merge %s\n" % merge.encode() if merge else b"", *changes, b"\n"]
        self.commits += 1

    def write(self, repo: Path) -> None:
        """A repository holding the history, with main checked out."""
        repo.mkdir(parents=True)
        git(repo, "init", "-q", "-b", "main")
        subprocess.run(["git", "fast-import", "--quiet"], cwd=repo, input=b"".join(self.stream), check=True)
        git(repo, "reset", "-q", "--hard", "main")


def quote(path: str) -> bytes:
    """A path in fast-import's C-style quotes (spaces, quotes and backslashes are safe)."""
    return b'"%s"' % path.encode().replace(b"\\", b"\\\\").replace(b'"', b'\\"').replace(b"\n", b"\\n")


def git(repo: Path, *args: str) -> None:
    """Run git in the repository, failing loudly."""
    subprocess.run(["git", *args], cwd=repo, check=True)


# --- timing ------------------------------------------------------------------------------------


def report_timings(repo: Path, cache: Path, runs: int) -> None:
    """Print the readers' times next to the baselines."""
    environment = git_environment()
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout.strip()

    def cold() -> None:
        (cache / CACHE_FILE).unlink(missing_ok=True)
        assert not read_git_dates(repo, cache).from_cache

    def warm() -> None:
        assert read_git_dates(repo, cache).from_cache

    def run(*args: str) -> None:
        subprocess.run(["git", *args], cwd=repo, env=environment, capture_output=True, check=True)

    rows = [
        ("read_git_dates, cold (rev-parse, ls-tree, log, parse, write cache)", best(cold, runs)),
        ("read_git_dates, warm (HEAD unchanged: rev-parse, read cache)", best(warm, runs)),
        (
            "baseline: the bare `git log` pass alone",
            best(lambda: run(*SAFE_CONFIG, *LOG_OPTIONS, head, "--", "."), runs),
        ),
        ("baseline: one `git rev-parse HEAD` (warm floor)", best(lambda: run("rev-parse", "--verify", "HEAD"), runs)),
    ]
    files = subprocess.run(["git", "ls-files"], cwd=repo, capture_output=True, text=True).stdout.splitlines()
    sample = files[:: max(1, len(files) // 20)]
    wall, cpu = measure(lambda: [run("log", "--follow", "--format=%aI", "--", name) for name in sample])
    scale = len(files) / len(sample)
    rows.append(
        (f"baseline: one `git log --follow` per file ({len(sample)} timed, scaled)", (wall * scale, cpu * scale))
    )
    width = max(len(label) for label, _ in rows)
    print(f"  {'':<{width}}  {'wall':>9}  {'cpu':>9}")
    for label, (wall, cpu) in rows:
        print(f"  {label:<{width}}  {wall * 1000:6.1f} ms  {cpu * 1000:6.1f} ms")


def best(function, runs: int) -> tuple[float, float]:
    """The fastest of `runs` calls (the least disturbed by the machine's other users): wall and CPU seconds."""
    return min((measure(function) for _ in range(runs)), key=lambda pair: pair[0])


def measure(function) -> tuple[float, float]:
    """Wall clock and CPU time (this process and its children) of one call."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu, wall = time.process_time(), time.perf_counter()
    function()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, cpu + (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


# --- whole imports -------------------------------------------------------------------------------


def report_imports(repo: Path, temp: Path, runs: int) -> None:
    """Full imports with git dates off and on, alternating so the machine's load falls on both alike."""
    full: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
    again: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
    dated = {}
    for run in range(runs):
        for git_dates in (False, True):
            app = create_app(
                {
                    "TESTING": True,
                    "SECRET_KEY": "bench",
                    "INSTANCE_PATH": str(temp / f"import-{run}-{git_dates}"),
                    "PAGE_CACHE_MB": 0,
                    "INDEX_CHECK_SECONDS": 0,
                }
            )
            logging.getLogger("portal").setLevel(logging.WARNING)  # create_app set it to INFO
            with app.app_context():
                full[git_dates].append(timed_import(repo, app.instance_path, git_dates))
                again[git_dates].append(timed_import(repo, app.instance_path, git_dates))
                dated[git_dates] = db.session.scalar(select(func.count()).where(Entry.date.is_not(None)))
                db.session.remove()
                db.engine.dispose()
            app.extensions["nexus.searchers"].close()
    rows = [
        ("full import, whole", full, 0),
        ("full import, read step (scan + git)", full, 1),
        ("unchanged re-import, whole", again, 0),
    ]
    print(
        f"  {'':<38}  {'off best':>9}  {'on best':>9}  {'overhead':>9}  {'off median':>10}  {'on median':>10}  {'overhead':>9}"
    )
    for label, table, index in rows:
        off, on = [t[index] for t in table[False]], [t[index] for t in table[True]]
        print(
            f"  {label:<38}  {min(off):8.2f}s  {min(on):8.2f}s  {min(on) - min(off):+8.2f}s"
            f"  {statistics.median(off):9.2f}s  {statistics.median(on):9.2f}s"
            f"  {statistics.median(on) - statistics.median(off):+8.2f}s"
        )
    print(f"  entries with a date: {dated[False]} with git dates off, {dated[True]} on")


def timed_import(repo: Path, instance_path: str, git_dates: bool) -> tuple[float, float]:
    """One import's wall seconds, whole and its read step; fails loudly on errors."""
    started = time.perf_counter()
    report = import_content(repo, instance_path, git_dates=git_dates)
    wall = time.perf_counter() - started
    if report.errors or (git_dates and any(w.startswith("git dates") for w in report.warnings)):
        raise SystemExit(f"import went wrong: {report.summary()} {report.errors[:3]} {report.warnings[:3]}")
    return wall, report.timings["read"]


# --- checking ----------------------------------------------------------------------------------


def check(result, expected: dict[str, dict]) -> None:
    """Compare the dates read with the dates committed."""
    if result.warning:
        print(f"warning: {result.warning}")
    dated = result.dates
    created_ok = sum(1 for path, want in expected.items() if path in dated and dated[path].created == want["created"])
    updated_ok = sum(1 for path, want in expected.items() if path in dated and dated[path].updated == want["updated"])
    moved = [path for path in expected if path.startswith(("archive/", "tidy/")) or "-renamed" in path]
    moved_ok = sum(1 for path in moved if path in dated and dated[path].created == expected[path]["created"])
    print(f"files dated: {len(dated)} of {len(expected)} Markdown files")
    print(
        f"first date as committed: {created_ok}/{len(expected)}; renamed or moved and kept it: {moved_ok}/{len(moved)}"
    )
    print(f"updated as committed (or none): {updated_ok}/{len(expected)}")


if __name__ == "__main__":
    main()
