"""Full import against `mkdocs build` of the same folder, with the import's time split and peak memory (issue 20).

    python bench/import.py --corpus DIR [--runs 2] [--skip-mkdocs]
    python bench/import.py --code-heavy 1000      # long notes full of code (bench/corpus.py)
    python bench/import.py --generated 10000 --skip-mkdocs

Each run, in order: a full import into a fresh instance, the same import again with nothing
changed (`--unchanged` times, 5 by default: the row is the run of median wall time), then
`mkdocs build` (mkdocs 1.6.1, mkdocs-material 9.8.1 and its search plugin, in a throwaway venv
under bench/out/) of the same folder; `--runs 2` gives A B A B.

The import is the command a user runs, `flask --app portal import -q`, timed from its start to
its end (Python's start-up included); its stage times (read, parse, render, write, index) are
`ImportReport.timings` as its closing log line gives them.
Peak memory: the largest process of the import's tree (the kernel's maxrss, from wait4), and
the whole tree's RSS summed (sampled every 0.1 s) and PSS summed (every 1 s: reading it costs);
pool and index-writer processes share pages with the importer: RSS counts them in each, PSS
shares them out. Sampled peaks can miss a short spike.

Figures only, nothing passes or fails. The machine is shared: compare the ratio, not the seconds.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
# bench/ off sys.path (bench/http.py would shadow the standard library's `http`), the project on it.
sys.path[:] = [str(HERE.parent)] + [p for p in sys.path if Path(p or ".").resolve() != HERE]

import argparse  # noqa: E402
import contextlib  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402

from bench import common  # noqa: E402

STAGES = ("read", "parse", "render", "write", "index")
#: The importer's closing log line: its summary, seconds, generation and `ImportReport.timings`.
REPORT_LINE = re.compile(
    r"import of .*?: (?P<summary>.*) in (?P<seconds>[\d.]+)s \(generation [^;)]*;? ?(?P<timings>[^)]*)\)"
)
TIMING = re.compile(r"(\w+) ([\d.]+)s")
# Tree RSS every 0.1 s from /proc/PID/statm (microseconds to read); tree PSS every 1 s from smaps_rollup,
# which walks the page tables (about 25 ms for an 800 MB process: sampled often, it slows the import).
SAMPLE_SECONDS = 0.1
PSS_EVERY = 10
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


def report_of(output: str) -> dict | None:
    """The import's summary, seconds and stage timings, from its closing log line; None if there is none."""
    found = None
    for match in REPORT_LINE.finditer(output):
        found = match
    if found is None:
        return None
    timings = {name: float(seconds) for name, seconds in TIMING.findall(found["timings"])}
    summary = f"{found['summary']} in {found['seconds']}s"
    return {"seconds": float(found["seconds"]), "summary": summary, "timings": timings}


# --- measuring a process tree -----------------------------------------------------------------


@dataclass
class Measured:
    """Wall time and peak memory of one command and everything it started."""

    seconds: float
    returncode: int
    stdout: str
    stderr: str
    largest_mb: float  # max RSS of the largest single process of the tree (kernel, exact)
    cpu: float = 0.0  # user + system seconds of the tree: less swayed than wall time by others' load
    tree_rss_mb: float = 0.0  # sampled every 0.1 s: sum of RSS over the tree (shared pages counted in each process)
    tree_pss_mb: float = 0.0  # sampled every 1 s: sum of PSS over the tree (shared pages shared out)
    load: str = ""
    result: dict = field(default_factory=dict)


def tree_rss_mb(pid: int) -> float:
    """Sum of RSS over the tree under `pid`, in MB, now (shared pages counted in every process)."""
    pages = 0
    for process in common.descendants(pid):
        with contextlib.suppress(OSError):  # just ended
            pages += int(Path(f"/proc/{process}/statm").read_text().split()[1])
    return pages * PAGE_KB / 1024


def tree_pss_mb(pid: int) -> float:
    """Sum of PSS over the tree under `pid`, in MB, now (shared pages shared out)."""
    kb = 0
    for process in common.descendants(pid):
        with contextlib.suppress(OSError):
            rollup = Path(f"/proc/{process}/smaps_rollup").read_text()
            kb += int(re.search(r"^Pss:\s+(\d+)", rollup, flags=re.M).group(1))
    return kb / 1024


def measure(command: list[str], env: dict | None = None, cwd=common.PROJECT_ROOT) -> Measured:
    """Run `command`, sampling its tree's memory, and return its figures once it and its children are done."""
    load = common.load_average()
    peaks = [0.0, 0.0]
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    done = threading.Event()

    def sample():
        tick = 0
        while not done.wait(SAMPLE_SECONDS):
            peaks[0] = max(peaks[0], tree_rss_mb(process.pid))
            tick += 1
            if tick % PSS_EVERY == 0:
                peaks[1] = max(peaks[1], tree_pss_mb(process.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    readers = {}
    threads = [
        threading.Thread(target=lambda name=name, stream=stream: readers.__setitem__(name, stream.read()))
        for name, stream in (("stdout", process.stdout), ("stderr", process.stderr))
    ]
    for thread in threads:
        thread.start()
    _, status, usage = os.wait4(process.pid, 0)  # its rusage covers the children it waited for
    seconds = time.perf_counter() - started
    done.set()
    for thread in (*threads, sampler):
        thread.join()
    process.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    return Measured(
        seconds=seconds,
        returncode=process.returncode,
        stdout=readers["stdout"],
        stderr=readers["stderr"],
        largest_mb=usage.ru_maxrss / 1024,
        cpu=usage.ru_utime + usage.ru_stime,
        tree_rss_mb=peaks[0],
        tree_pss_mb=peaks[1],
        load=load,
    )


# --- the runs ---------------------------------------------------------------------------------


def nexus_import(content: Path, instance: Path) -> Measured:
    """One `flask --app portal import -q` of `content` into `instance`: the command a user runs, start-up included."""
    env = common.env_for(instance, content)
    measured = measure([str(common.BIN / "flask"), "--app", "portal", "import", "-q"], env)
    result = report_of(measured.stderr + measured.stdout)
    if measured.returncode or result is None:
        raise SystemExit(f"the import failed (exit {measured.returncode}):\n{measured.stderr[-3000:]}")
    measured.result = result
    return measured


def mkdocs_build(content: Path, workdir: Path) -> Measured | None:
    """`mkdocs build` of `content` (material theme, search plugin); None if mkdocs cannot be had."""
    mkdocs = common.venv_with(common.VENVS / "mkdocs", common.MKDOCS, "mkdocs")
    if mkdocs is None:
        return None
    config = common.write_mkdocs_config(content, workdir)
    shutil.rmtree(workdir / "mkdocs-site", ignore_errors=True)
    measured = measure([str(mkdocs), "build", "--quiet", "--config-file", str(config)], cwd=workdir)
    if measured.returncode:
        print("mkdocs build failed:", measured.stderr[-1000:])
        return None
    return measured


def stage_cells(measured: Measured) -> tuple[list[str], str]:
    """The read/parse/render/write/index/other cells of an import and where they came from."""
    result = measured.result
    timings, source = result.get("timings"), "the importer's log line (ImportReport.timings)"
    if not timings:
        return ["n/a"] * (len(STAGES) + 1), "n/a"
    known = {name: float(timings[name]) for name in STAGES if timings.get(name) is not None}
    other = result["seconds"] - sum(known.values())
    cells = [f"{known[name]:.2f}" if name in known else "n/a" for name in STAGES]
    return [*cells, f"{other:.2f}"], source


def row(run: int, label: str, measured: Measured) -> str:
    """One Markdown table row of figures."""
    if measured.result:
        stages, _ = stage_cells(measured)
        inside = f"{measured.result['seconds']:.2f}"
    else:
        stages, inside = [""] * (len(STAGES) + 1), ""
    return (
        f"| {run} | {label} | {measured.seconds:.2f} | {measured.cpu:.2f} | {inside} | {' | '.join(stages)} "
        f"| {measured.largest_mb:.0f} | {measured.tree_rss_mb:.0f} | {measured.tree_pss_mb:.0f} | {measured.load} |"
    )


def print_tables(name: str, files: int, rows: list[tuple[int, str, Measured]], skip_mkdocs: bool) -> None:
    """The figures of every run, then full import against mkdocs per run."""
    sources = {stage_cells(m)[1] for _, label, m in rows if m.result}
    print(f"\n### Import of {name} ({files:,} Markdown files)\n")
    print(
        "Seconds; wall = the whole process (start-up included), CPU = user + system of its whole tree, "
        "in-process = `import_content` alone (wall)."
    )
    print(f"Stages from: {', '.join(sorted(sources))}; other = in-process minus the stages given", end="")
    print(".\n")
    print(
        "| run | what | wall s | CPU s | in-process s | read | parse | render | write | index | other "
        "| peak MB, largest process | peak MB, tree RSS | peak MB, tree PSS | load |"
    )
    print("| ---: | --- | " + " | ".join(["---:"] * 13) + " |")
    for run, label, measured in rows:
        print(row(run, label, measured))
    if skip_mkdocs:
        return
    pairs = []
    for run in sorted({r for r, _, _ in rows}):
        by_label = {label: m for r, label, m in rows if r == run}
        if "mkdocs build" in by_label:
            pairs.append((str(run), by_label["Nexus full import"], by_label["mkdocs build"]))
    if not pairs:
        return
    print("\n| run | Nexus full import s | mkdocs build s | mkdocs / Nexus | Nexus CPU s | mkdocs CPU s | by CPU |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    if len(pairs) > 1:
        pairs.append(("median", *(median_of([p[side] for p in pairs]) for side in (1, 2))))
    for run, nexus, mkdocs in pairs:
        print(
            f"| {run} | {nexus.seconds:.2f} | {mkdocs.seconds:.2f} | {mkdocs.seconds / nexus.seconds:.1f}× "
            f"| {nexus.cpu:.2f} | {mkdocs.cpu:.2f} | {mkdocs.cpu / nexus.cpu:.1f}× |"
        )


def median_row(runs: list[Measured]) -> Measured:
    """The run of median wall time among several of the same command (a one-second process moves with the machine)."""
    return sorted(runs, key=lambda m: m.seconds)[(len(runs) - 1) // 2]


def median_of(runs: list[Measured]) -> Measured:
    """The median wall and CPU seconds of several runs of one thing."""
    return Measured(
        seconds=statistics.median(m.seconds for m in runs),
        returncode=0,
        stdout="",
        stderr="",
        largest_mb=max(m.largest_mb for m in runs),
        cpu=statistics.median(m.cpu for m in runs),
    )


def main(argv=None) -> None:
    """Command line: one folder, `--runs` rounds of full import, unchanged re-import and mkdocs build."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--corpus", help="a folder of Markdown notes (read only)")
    source.add_argument("--code-heavy", type=int, metavar="N", help="N generated long, code-heavy notes")
    source.add_argument("--generated", type=int, metavar="N", help="N entries of the generated corpus")
    parser.add_argument("--runs", type=int, default=1, help="rounds of Nexus then mkdocs (2: A B A B)")
    parser.add_argument("--skip-mkdocs", action="store_true", help="no mkdocs build (it takes minutes at 10,000)")
    parser.add_argument(
        "--unchanged", type=int, default=5, help="unchanged re-imports after each full import (their median is shown)"
    )
    parser.add_argument("--workdir", default=str(common.OUT / "import"))
    args = parser.parse_args(argv)
    from bench import corpus

    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    content, name = common.content_folder(args, corpus.generate, corpus.generate_code_heavy)
    files = len(list(content.rglob("*.md")))
    print(common.machine_line("Nexus import against mkdocs build"), flush=True)
    instance = work / "instance"
    rows: list[tuple[int, str, Measured]] = []
    for run in range(1, args.runs + 1):
        shutil.rmtree(instance, ignore_errors=True)
        measured = nexus_import(content, instance)
        rows.append((run, "Nexus full import", measured))
        print(f"run {run}, Nexus full import: {measured.seconds:.1f}s ({measured.result['summary']})", flush=True)
        again = [nexus_import(content, instance) for _ in range(args.unchanged)]
        label = f"Nexus unchanged re-import, median of {len(again)}"
        rows.append((run, label, median_row(again)))
        seconds = ", ".join(f"{m.seconds:.2f}" for m in again)
        print(f"run {run}, {label}: {seconds} s ({again[0].result['summary']})", flush=True)
        if not args.skip_mkdocs:
            measured = mkdocs_build(content, work)
            if measured:
                rows.append((run, "mkdocs build", measured))
                print(f"run {run}, mkdocs build: {measured.seconds:.1f}s", flush=True)
    shutil.rmtree(instance, ignore_errors=True)
    print_tables(name, files, rows, args.skip_mkdocs)


if __name__ == "__main__":
    main()
