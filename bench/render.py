"""Rendering speed on real notes: parse, Markdown, sanitize and text, per note, in one process.

    python bench/render.py --corpus ../shared/corpora/jbranchaud-til [--against REV] [--rounds 3] [--profile 25]

Every `*.md` under the corpus is read into memory first (reading is not timed). Then, in this
process, each note goes through the phases of an import's rendering, each timed over all notes
with `time.perf_counter`:

- parse: `content.parse_bytes` (front matter, title, limits);
- markdown: `rendering._convert` (Python-Markdown with our extensions, Pygments included);
- sanitize: `rendering._clean` (nh3, challenge/solution labels);
- text: `rendering._describe` (text, first paragraph, counts).

Baselines measured in the same run:
- `render()` end to end (it must give the same as the phases);
- Python-Markdown with the same extensions but its own processors (convert only);
- with `--against REV`: `render()` of portal/rendering as it was at git revision REV, and
  how many notes it renders byte-for-byte the same.

Each figure is the best of `--rounds` passes (the machine is shared); ms/note and notes/s are
per second of this process's CPU time, which other work on the machine disturbs less than the
wall clock (shown too). Figures only: nothing
here passes or fails. `--profile N` prints the N functions with the most own time in a
cProfile of one more pass of parse + render.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import cProfile
import dataclasses
import importlib.util
import io
import pstats
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# The project on the path, bench/ off it: a bench/ script named like a standard module must not
# shadow that module.
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != HERE]

from portal import content, rendering  # noqa: E402


def read_corpus(folder: Path) -> list[tuple[str, bytes]]:
    """(relative path, bytes) of every Markdown file, in a stable order."""
    return [(p.relative_to(folder).as_posix(), p.read_bytes()) for p in sorted(folder.rglob("*.md"))]


@dataclasses.dataclass
class Timing:
    """Seconds of wall clock (`time.perf_counter`) and of this process's CPU (`time.process_time`)."""

    wall: float
    cpu: float


def best(rounds: int, run: Callable[[], object]) -> tuple[Timing, object]:
    """The fastest of `rounds` runs of `run`, and what the last run returned.

    CPU time is shown beside wall time: on a shared machine it varies less with other work.
    """
    fastest, result = Timing(float("inf"), float("inf")), None
    for _ in range(rounds):
        wall, cpu = time.perf_counter(), time.process_time()
        result = run()
        fastest = Timing(min(fastest.wall, time.perf_counter() - wall), min(fastest.cpu, time.process_time() - cpu))
    return fastest, result


def parse_all(files):
    """Parsed entries; files that do not parse are left out (and counted)."""
    entries = []
    for relative, raw in files:
        with contextlib.suppress(content.ContentError):
            entries.append(content.parse_bytes(relative, raw))
    return entries


def resolver(key: str) -> None:
    """Resolve nothing: every link to another note counts as broken (the same work as a miss)."""
    return None


def phases(entries, rounds):
    """Seconds per phase over all entries, and the Rendered of each."""
    timings = {}
    timings["markdown"], converted = best(
        rounds, lambda: [rendering._convert(e.body, e.path, resolver, e.slug) for e in entries]
    )
    timings["sanitize"], cleaned = best(rounds, lambda: [rendering._clean(c) for c in converted])
    timings["text"], described = best(
        rounds, lambda: [rendering._describe(s, c) for s, c in zip(cleaned, converted, strict=True)]
    )
    return timings, described


def render_all(module, entries):
    """`module.render` over all entries."""
    return [module.render(e.body, source_path=e.path, resolve_link=resolver, entry_slug=e.slug) for e in entries]


def stock_markdown(entries):
    """Python-Markdown with the same extensions and its own processors: convert only."""
    md, state = rendering._new_markdown(fast=False)
    for entry in entries:
        md.reset()
        state.reset(entry.path, resolver, entry.body, entry.slug)
        md.convert(entry.body)


def rendering_at(revision: str):
    """portal/rendering as it was at `revision` (a module, a package since the split), loaded beside today's."""
    paths = git("ls-tree", "-r", "--name-only", revision, "portal/rendering.py", "portal/rendering").split()
    if not paths:
        raise SystemExit(f"no portal/rendering at {revision}")
    folder = Path(tempfile.mkdtemp(prefix="rendering-then-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    for path in paths:
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        (folder / path).write_text(git("show", f"{revision}:{path}"))
    package = folder / "portal" / "rendering"
    if package.is_dir():
        location, inside = package / "__init__.py", [str(package)]
    else:
        location, inside = folder / "portal" / "rendering.py", None
    spec = importlib.util.spec_from_file_location("portal._rendering_then", location, submodule_search_locations=inside)
    module = importlib.util.module_from_spec(spec)  # its imports of `..content` (`.content`) find today's modules
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def git(*args: str) -> str:
    """The output of a git command in this checkout."""
    return subprocess.run(["git", "-C", str(ROOT), *args], check=True, capture_output=True, text=True).stdout


def line(label: str, timing: Timing, notes: int) -> str:
    """One row: wall and CPU seconds, CPU ms per note, notes per CPU second."""
    return (
        f"  {label:<44} {timing.wall:7.2f} s wall {timing.cpu:7.2f} s cpu"
        f"  {timing.cpu / notes * 1000:7.3f} ms/note  {notes / timing.cpu:7.0f} notes/s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, required=True, help="folder of Markdown notes")
    parser.add_argument("--against", metavar="REV", help="also time portal/rendering at this git revision")
    parser.add_argument("--rounds", type=int, default=3, help="passes per figure; the best is shown")
    parser.add_argument("--profile", type=int, default=0, metavar="N", help="print the N costliest functions")
    args = parser.parse_args()

    files = read_corpus(args.corpus)
    parse_seconds, entries = best(args.rounds, lambda: parse_all(files))
    notes = len(entries)
    # Baselines first: building our converter points pymdownx at formatters that share Pygments'
    # stylesheets (see `rendering._Highlight`), which the baselines would then use too.
    stock_seconds, _ = best(args.rounds, lambda: stock_markdown(entries))
    if args.against:
        then = rendering_at(args.against)
        then_seconds, then_rendered = best(args.rounds, lambda: render_all(then, entries))
    rendering.render(files[0][1].decode("utf-8", "replace"))  # build the converter outside the timings
    timings, described = phases(entries, args.rounds)
    total_seconds, rendered = best(args.rounds, lambda: render_all(rendering, entries))
    assert rendered == described, "render() and its phases disagree"  # noqa: S101

    print(f"{args.corpus}: {len(files)} notes, {notes} parsed, {sum(len(raw) for _, raw in files) / 1e6:.1f} MB")
    print(line("parse (content.parse_bytes)", parse_seconds, notes))
    print(line("markdown (rendering._convert)", timings["markdown"], notes))
    print(line("sanitize (rendering._clean)", timings["sanitize"], notes))
    print(line("text (rendering._describe)", timings["text"], notes))
    print(line("render() end to end", total_seconds, notes))
    both = Timing(parse_seconds.wall + total_seconds.wall, parse_seconds.cpu + total_seconds.cpu)
    print(line("parse + render()", both, notes))
    print("baselines, same run:")
    print(line("Python-Markdown's own processors, convert", stock_seconds, notes))
    if args.against:
        same = sum(dataclasses.asdict(a) == dataclasses.asdict(b) for a, b in zip(rendered, then_rendered, strict=True))
        print(line(f"render() at {args.against}", then_seconds, notes))
        print(f"  same output as at {args.against}: {same} of {notes} notes")

    if args.profile:
        profile = cProfile.Profile()
        profile.enable()
        render_all(rendering, parse_all(files))
        profile.disable()
        out = io.StringIO()
        pstats.Stats(profile, stream=out).sort_stats("tottime").print_stats(args.profile)
        print(out.getvalue())


if __name__ == "__main__":
    main()
