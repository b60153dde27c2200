"""Hostile content against the importer: prints what each pathological file costs and what the import says.

    python bench/abuse_import.py [--good DIR] [--seconds 10] [--megabytes 512] [--only NAME ...]

Every input of issue 21 goes into its own content folder next to the good notes (default: the
shipped `content/`), and `flask --app portal import` runs on it as a user would, into a fresh
instance: wall time, peak RSS of the importer and its worker processes, how many good notes
were imported, and the line the import printed for the bad file. Then all of them at once.

Baselines measured in the same run: the import of the good notes alone, and the same notes
parsed and rendered in this process with no worker at all (what the sandbox processes cost).
Figures only, nothing passes or fails.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROJECT_ROOT = HERE.parent
# bench/http.py is named like the standard library's `http`: keep bench/ off sys.path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(PROJECT_ROOT))
BIN = Path(sys.executable).parent


def _write(root: Path, name: str, text: str | bytes) -> None:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")


#: name -> (how to make it in a content folder, what it is). Sizes and figures of issue 21.
INPUTS = {
    "deep-list": (lambda r: _write(r, "deep-list.md", "- " * 600 + "x\n"), "`- ` × 600, 1 KB: RecursionError"),
    "deep-front-matter": (
        lambda r: _write(r, "deep-front-matter.md", "---\nx: " + "[" * 1000 + "]" * 1000 + "\n---\nx\n"),
        "front matter nested 1,000 deep",
    ),
    "stars": (lambda r: _write(r, "stars.md", "**" * 20_000 + "\n"), "`**` × 20,000"),
    "admonitions": (
        lambda r: _write(r, "admonitions.md", "".join("    " * i + "!!! note\n" for i in range(500)) + "x\n"),
        "500 nested `!!! note`",
    ),
    "brackets": (lambda r: _write(r, "brackets.md", "[" * 16_000 + "\n"), "`[` × 16,000 (42 s)"),
    "footnotes": (lambda r: _write(r, "footnotes.md", "See[^1] " * 10_000 + "\n"), "`See[^1] ` × 10,000 (58 s)"),
    "wiki-links": (lambda r: _write(r, "wiki-links.md", "[[a " * 8_000 + "\n"), "`[[a ` × 8,000 (over 60 s)"),
    "headings": (lambda r: _write(r, "headings.md", "## h\n" * 20_000), "`## h` × 20,000 (44 s)"),
    "table": (
        lambda r: _write(r, "table.md", "|a|b|\n|-|-|\n" + "|1|2|\n" * 300_000),
        "a table of 300,000 rows, 1.8 MB (32 s, 766 MB)",
    ),
    "tags": (
        lambda r: _write(r, "tags.md", "---\ntags: [" + ", ".join(f"t{i}" for i in range(100_000)) + "]\n---\nx\n"),
        "front matter with 100,000 tags (91 s)",
    ),
    "huge": (lambda r: _write(r, "huge.md", b"x" * 50 * 1024 * 1024), "a 50 MB file (cost 136 MB)"),
    "fifo": (lambda r: os.mkfifo(r / "pipe.md"), "`mkfifo pipe.md` (hung forever)"),
    "passwd": (lambda r: (r / "passwd.md").symlink_to("/etc/passwd"), "`ln -s /etc/passwd` (published)"),
    "zero": (lambda r: (r / "zero.md").symlink_to("/dev/zero"), "`ln -s /dev/zero` (ran out of memory)"),
    "newline": (lambda r: _write(r, "bad\nerror: forged.md", "---\nx: [\n---\nx\n"), "a newline in a name"),
}


def run_import(content: Path, instance: Path, seconds: float, megabytes: float) -> dict:
    """`flask --app portal import` as a user runs it: wall time, peak RSS, its output."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEXUS_")}
    env.update(
        NEXUS_CONTENT_DIR=str(content),
        NEXUS_INSTANCE_PATH=str(instance),
        NEXUS_MAX_RENDER_SECONDS=str(seconds),
        NEXUS_MAX_RENDER_MB=str(megabytes),
    )
    started = time.monotonic()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        process = subprocess.Popen(  # noqa: S603 - our own CLI
            [str(BIN / "flask"), "--app", "portal", "import"], cwd=PROJECT_ROOT, env=env, stdout=out, stderr=err
        )
        _pid, status, usage = os.wait4(process.pid, 0)  # usage: the importer and its workers
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        result = subprocess.CompletedProcess(process.args, process.returncode, out.read(), err.read())
    seconds_taken = time.monotonic() - started
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else result.stderr.strip()[-300:]
    steps = re.search(r"read ([\d.]+)s, parse ([\d.]+)s, render ([\d.]+)s", result.stderr)
    return {
        "seconds": seconds_taken,
        "added": int(m.group(1)) if (m := re.match(r"(\d+) added", summary)) else 0,
        "errors": [line for line in result.stderr.splitlines() if line.startswith("error:")],
        "summary": summary,
        "parse_render": float(steps.group(2)) + float(steps.group(3)) if steps else None,
        "exit": result.returncode,
        "rss_mb": usage.ru_maxrss / 1024,
    }


def in_process_seconds(good: Path) -> float:
    """Parse and render the good notes in this process: the work without any worker process."""
    from portal.content import parse_bytes
    from portal.folder import find_markdown_files
    from portal.rendering import render

    started = time.perf_counter()
    for path in find_markdown_files(good):
        entry = parse_bytes(path.relative_to(good).as_posix(), path.read_bytes())
        render(entry.body, source_path=entry.path, resolve_link=lambda key: None, entry_slug=entry.slug)
    return time.perf_counter() - started


def worker_start_ms(rounds: int = 5) -> float:
    """The median time to start one sandbox worker and get its first answer, in ms."""
    from portal import sandbox

    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        with sandbox.Sandbox(1) as box:
            box.run(str, [("x.md", ("x",))])
            times.append((time.perf_counter() - started) * 1000)
    return sorted(times)[len(times) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--good", type=Path, default=PROJECT_ROOT / "content", help="folder of good notes")
    parser.add_argument("--seconds", type=float, default=10.0, help="NEXUS_MAX_RENDER_SECONDS")
    parser.add_argument("--megabytes", type=float, default=512.0, help="NEXUS_MAX_RENDER_MB")
    parser.add_argument("--only", nargs="*", choices=sorted(INPUTS), help="run only these inputs")
    args = parser.parse_args()
    names = args.only or list(INPUTS)
    print(f"load average {os.getloadavg()[0]:.1f}; budget {args.seconds:g} s, {args.megabytes:g} MB per file")
    with tempfile.TemporaryDirectory(prefix="nexus-abuse-") as temporary:
        work = Path(temporary)
        good = run_import(args.good, work / "baseline", args.seconds, args.megabytes)
        notes = good["added"]
        print(
            f"\ngood notes alone: {notes} imported in {good['seconds']:.2f} s "
            f"(parse + render steps {good['parse_render']:.2f} s; peak RSS {good['rss_mb']:.0f} MB)"
        )
        print(f"  same notes parsed and rendered in-process: {in_process_seconds(args.good):.2f} s")
        print(f"  one sandbox worker started and answering: {worker_start_ms():.0f} ms (median of 5)")
        print("\n| input | import s | good notes | peak RSS MB | what the import said |")
        print("| --- | ---: | ---: | ---: | --- |")
        everything = work / "everything"
        shutil.copytree(args.good, everything, symlinks=True)
        for name in names:
            make, label = INPUTS[name]
            folder = work / name
            shutil.copytree(args.good, folder, symlinks=True)
            make(folder)
            make(everything)
            outcome = run_import(folder, work / f"{name}-instance", args.seconds, args.megabytes)
            said = "; ".join(outcome["errors"]) or f"imported ({outcome['summary']})"
            print(
                f"| {label} | {outcome['seconds']:.1f} | {outcome['added']} | {outcome['rss_mb']:.0f} | {said[:160]} |"
            )
        outcome = run_import(everything, work / "everything-instance", args.seconds, args.megabytes)
        print(
            f"\nall {len(names)} inputs beside the {notes} good notes: {outcome['seconds']:.1f} s, "
            f"exit {outcome['exit']}, {len(outcome['errors'])} error lines; {outcome['summary']}"
        )


if __name__ == "__main__":
    main()
