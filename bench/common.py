"""Pieces the bench/ scripts share: corpora on disk, Nexus imports, servers on free ports, wrk, peers' venvs.

Scripts in bench/ run as `python bench/NAME.py`: they take bench/ off `sys.path` (bench/http.py
would shadow the standard library's `http`), put the project on it and `from bench import common`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROJECT_ROOT = HERE.parent
OUT = HERE / "out"  # git-ignored: generated corpora, instances, the peers' venvs
VENVS = OUT / "venvs"  # one throwaway venv per peer, made once and shared by the scripts
BIN = Path(sys.executable).parent
MKDOCS = ("mkdocs==1.6.1", "mkdocs-material==9.8.1")


def machine_line(title: str) -> str:
    """One header line naming the run's date, machine and load: absolute figures depend on all three."""
    load = os.getloadavg()
    return (
        f"# {title}, {dt.date.today()}, {platform.node()}: {os.cpu_count()} cores, "
        f"{platform.processor() or platform.machine()}, Python {platform.python_version()}; "
        f"load average at start {load[0]:.2f}"
    )


def load_average() -> str:
    """The 1-minute load average now: the machine is shared, so each figure gets its context."""
    return f"{os.getloadavg()[0]:.2f}"


# --- corpora and imports --------------------------------------------------------------------------


def ensure_corpus(generate, count: int, folder: Path) -> Path:
    """Write `generate(count, folder)` once; later runs reuse it."""
    marker = folder / ".complete"
    if not marker.exists() or marker.read_text() != str(count):
        shutil.rmtree(folder, ignore_errors=True)
        started = time.perf_counter()
        generate(count, folder)
        marker.write_text(str(count))
        print(f"generated {count} entries in {time.perf_counter() - started:.1f}s", flush=True)
    return folder


def env_for(instance: Path, content: Path, **extra) -> dict:
    """This process's environment without any NEXUS_/FLASK_ setting of the caller's, pointed at one instance."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NEXUS_", "FLASK_"))}
    env.update(NEXUS_INSTANCE_PATH=str(instance), NEXUS_CONTENT_DIR=str(content), NEXUS_SECRET_KEY="bench")
    env.update(extra)
    return env


def flask(env: dict, *args: str) -> subprocess.CompletedProcess:
    """Run `flask --app portal ARGS` in the project, as a user would."""
    return subprocess.run(
        [str(BIN / "flask"), "--app", "portal", *args],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def timed_import(env: dict) -> tuple[float, str]:
    """Wall seconds of one `flask --app portal import` and its summary line."""
    started = time.perf_counter()
    result = flask(env, "import", "--quiet")
    seconds = time.perf_counter() - started
    if result.returncode not in (0, 1):  # 1: some files had errors, the rest imported
        raise RuntimeError(result.stderr[-2000:])
    return seconds, result.stdout.strip().splitlines()[-1]


# --- peers in throwaway venvs ---------------------------------------------------------------------


def venv_with(venv: Path, packages: tuple[str, ...], command: str) -> Path | None:
    """`venv/bin/command`, installing `packages` into a new venv first; None (and why) if pip fails."""
    executable = venv / "bin" / command
    if not executable.exists():
        venv.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        installed = subprocess.run(
            [str(venv / "bin" / "pip"), "install", "--quiet", *packages], capture_output=True, text=True, check=False
        )
        if installed.returncode:
            print(f"{' '.join(packages)} could not be installed:", installed.stderr[-500:])
            return None
    return executable


def write_mkdocs_config(content: Path, workdir: Path) -> Path:
    """An mkdocs.yml for `content` with the material theme and its search plugin (the usual setup)."""
    config = workdir / "mkdocs.yml"
    config.write_text(
        f"site_name: Bench\ndocs_dir: {content}\nsite_dir: {workdir / 'mkdocs-site'}\n"
        "theme:\n  name: material\nplugins:\n  - search\n"
    )
    return config


def time_mkdocs(content: Path, workdir: Path) -> float | None:
    """Seconds of `mkdocs build` (material theme, its search plugin) over `content`."""
    workdir.mkdir(parents=True, exist_ok=True)
    mkdocs = venv_with(VENVS / "mkdocs", MKDOCS, "mkdocs")
    if mkdocs is None:
        return None
    config = write_mkdocs_config(content, workdir)
    shutil.rmtree(workdir / "mkdocs-site", ignore_errors=True)
    started = time.perf_counter()
    result = subprocess.run(
        [str(mkdocs), "build", "--quiet", "--config-file", str(config)], capture_output=True, text=True, check=False
    )
    seconds = time.perf_counter() - started
    if result.returncode:
        print("mkdocs build failed:", result.stderr[-500:])
        return None
    return seconds


# --- servers --------------------------------------------------------------------------------------


def free_port() -> int:
    """A port nothing listens on now, for a server of this run."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get(url: str, timeout: float = 60) -> tuple[int, bytes]:
    """Status and body of one GET (an HTTP error status is returned, not raised)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


class Server:
    """A server process on 127.0.0.1:`port`, waited for until `ready_path` answers one of `ready`."""

    def __init__(
        self,
        command: list[str],
        port: int,
        env: dict,
        log: Path,
        ready_path: str = "/",
        cwd=PROJECT_ROOT,
        ready: tuple[int, ...] = (200,),
        start_seconds: float = 300,
    ):
        self.port = port
        self.log_path = log
        self.log = open(log, "w")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(command, cwd=cwd, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        self.base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + start_seconds
        while True:
            with contextlib.suppress(OSError):
                if get(self.base + ready_path, timeout=5)[0] in ready:
                    break
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{command[0]} did not start; see {log}")
            time.sleep(0.3)

    def stop(self):
        """SIGTERM, then SIGKILL after 30 s: nothing of a run is left behind."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


class Gunicorn(Server):
    """gunicorn with the project's gunicorn.conf.py, serving `app` on a free port."""

    def __init__(
        self, app: str, env: dict, log: Path, pythonpath: Path | None = None, workers: int | None = None, **waiting
    ):
        """`waiting`: Server's `ready_path`, `ready` and `start_seconds`."""
        port = free_port()
        env = dict(env, NEXUS_GUNICORN_BIND=f"127.0.0.1:{port}")
        if workers:
            env["NEXUS_GUNICORN_WORKERS"] = str(workers)
        command = [str(BIN / "gunicorn"), "-c", "gunicorn.conf.py"]
        if pythonpath:
            command += ["--pythonpath", str(pythonpath)]
        super().__init__([*command, app], port, env, log, **waiting)

    def reset_peaks(self) -> None:
        """Forget each worker's peak RSS: a forked worker inherits the master's peak from start-up."""
        time.sleep(2)  # every worker has booted
        for pid in self.workers():
            with contextlib.suppress(OSError):  # not root or an old kernel: peaks include the master's
                Path(f"/proc/{pid}/clear_refs").write_text("5")

    def workers(self) -> list[int]:
        """Pids of the worker processes (children of the master)."""
        return children(self.process.pid)

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


def descendants(pid: int) -> list[int]:
    """`pid` and every process below it, from /proc/PID/task/TID/children (cheap enough to poll)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        try:
            tasks = os.listdir(f"/proc/{current}/task")
        except OSError:
            continue
        for tid in tasks:
            with contextlib.suppress(OSError):  # the task just ended
                todo += [int(c) for c in Path(f"/proc/{current}/task/{tid}/children").read_text().split()]
    return found


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds used so far by `pid` and the processes below it (those still running)."""
    ticks = 0
    for process in descendants(pid):
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{process}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def children(parent: int) -> list[int]:
    """Pids of the processes whose parent is `parent`."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == parent:
            pids.append(int(stat.parent.name))
    return sorted(pids)


# --- wrk ------------------------------------------------------------------------------------------

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


def run_wrk(base: str, paths: list[str], script: Path, duration: float, connections: int, threads: int = 2) -> dict:
    """One wrk run walking a list of paths (each thread from its own offset); the figures its `done` hook printed.

    p50/p99 are wrk's latency percentiles (those `--latency` prints); `non_2xx` counts answers of 400 and above
    (wrk's "Non-2xx or 3xx responses").
    """
    script.write_text(LUA % {"paths": ", ".join(json.dumps(p) for p in paths)})
    result = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{duration:g}s",
            "--timeout",
            "10s",
            "--latency",
            "-s",
            str(script),
            base,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    figures = json.loads(result.stdout.split("RESULT ", 1)[1].splitlines()[0])
    figures["rps"] = figures["requests"] / (figures["duration_us"] / 1e6)
    return figures


def content_folder(args, generate, generate_code_heavy=None) -> tuple[Path, str]:
    """The folder a benchmark reads and a name for it: `--corpus`, or a generated corpus (made once)."""
    if args.corpus:
        folder = Path(args.corpus).resolve()
        if not folder.is_dir():
            raise SystemExit(f"{folder}: not a folder")
        return folder, folder.name
    if getattr(args, "code_heavy", None):
        folder = OUT / "corpora" / f"code-heavy-{args.code_heavy}"
        ensure_corpus(generate_code_heavy, args.code_heavy, folder)
        return folder, f"{args.code_heavy:,} generated code-heavy notes"
    folder = OUT / "corpora" / f"generated-{args.generated}"
    ensure_corpus(generate, args.generated, folder)
    return folder, f"{args.generated:,} generated entries"
