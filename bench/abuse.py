"""Hostile clients against a real gunicorn: idle and slow-header sockets, and a burst of expensive searches.

    python bench/abuse.py [--entries 3000 | --corpus DIR] [--classes default,sync] [--burst 200]
                          [--burst-seconds 60] [--idle 50] [--slow 20] [--wrk-seconds 10]

For each worker class (`default` is what gunicorn.conf.py chooses; `sync`, `gthread:8`... force
one, `:N` being threads per worker; `@N` sets NEXUS_SEARCH_SLOTS), serves the imported corpus
with the production gunicorn.conf.py and prints:

1. Idle sockets: the latency of `/` (one new connection per request, four a second) while
   `--idle` connections send nothing and `--slow` connections send one header byte every
   `--drip` seconds. Sockets the server closes are opened again at once, as an attacker would.
2. A burst: `--burst` clients each asking `/search` for expensive queries (`?*`, `[a TO z]`,
   `a* OR b* OR … OR p*`, `a* b* c*`, each URL new so the page cache cannot answer) for
   `--burst-seconds`, giving up on a request after `--client-timeout` seconds. Meanwhile and
   afterwards, probes ask `/healthz`, entry pages (a new one each time), `/` and an ordinary search
   twice a second. Printed per route: answered and failed during the burst, latencies, and how long
   after the burst the route answered again within 1 s three times in a row (the recovery).
3. Throughput with wrk (`apt-get install -y wrk`): `/` and entry pages (1,000 rotating), with the
   page cache off (every answer rendered) and on (after one pass filled it), and the workers' RSS.

The burst table also gives gunicorn's worker timeouts and 500s, and the CPU seconds the server
and the clients used. Figures only: nothing passes or fails. The clients share the machine's
cores with the server; a class may be listed twice (`default,sync,default,sync`) to see the spread.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROJECT_ROOT = HERE.parent
# bench/http.py is named like the standard library's `http`: keep bench/ off sys.path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(PROJECT_ROOT))

import argparse  # noqa: E402
import contextlib  # noqa: E402
import datetime as dt  # noqa: E402
import importlib.util  # noqa: E402
import itertools  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import random  # noqa: E402
import re  # noqa: E402
import resource  # noqa: E402
import select  # noqa: E402
import shutil  # noqa: E402
import socket  # noqa: E402
import sqlite3  # noqa: E402
import statistics  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import urllib.parse  # noqa: E402

#: Queries whose cost grows with the index: every term, a range over every term, many prefixes.
EXPENSIVE_QUERIES = ("?*", "[a TO z]", " OR ".join(f"{c}*" for c in "abcdefghijklmnop"), "a* b* c*")
#: A route is back to normal once it answered this many probes in a row, each within `FAST` seconds.
RECOVERED_AFTER, FAST = 3, 1.0


def load_bench_module(name: str):
    """A sibling bench/ script, imported by path (bench/ is kept off sys.path, see above)."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", HERE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- a minimal HTTP client on raw sockets (so that another thread can cut a request off) -------


def http_get(port: int, path: str, timeout: float, host: str = "127.0.0.1", registry=None) -> int | None:
    """GET `path` on a new connection: the status, or None on a timeout or a connection error."""
    sock = None
    try:
        sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        if registry is not None:
            registry.add(sock)
        deadline = time.monotonic() + timeout
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        head = b""
        while b"\r\n" not in head:
            sock.settimeout(max(deadline - time.monotonic(), 0.001))
            chunk = sock.recv(4096)
            if not chunk:
                return None
            head += chunk
        status = int(head.split(b" ", 2)[1])
        while sock.recv(65536):  # read the whole answer, as a browser would
            sock.settimeout(max(deadline - time.monotonic(), 0.001))
        return status
    except (OSError, ValueError, IndexError):
        return None
    finally:
        if sock is not None:
            if registry is not None:
                registry.discard(sock)
            sock.close()


class SocketSet:
    """Open client sockets, so a burst's end can cut every request off at once (clients giving up)."""

    def __init__(self):
        self._sockets, self._lock = set(), threading.Lock()

    def add(self, sock):
        with self._lock:
            self._sockets.add(sock)

    def discard(self, sock):
        with self._lock:
            self._sockets.discard(sock)

    def shutdown_all(self):
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


# --- idle and slow-header sockets ------------------------------------------------------------


class Pressure:
    """`idle` connections that send nothing and `slow` ones that send a header byte every `drip` seconds.

    Any socket the server closes is opened again at once; `reopened` counts them.
    """

    HEADER = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: slow\r\n" + b"X-Padding: " + b"a" * 100_000

    def __init__(self, port: int, idle: int, slow: int, drip: float):
        self.port, self.drip = port, drip
        self.idle = [self._open() for _ in range(idle)]
        self.slow = [[self._open(), 0] for _ in range(slow)]
        self.reopened = {"idle": 0, "slow": 0}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _open(self) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        sock.setblocking(False)
        return sock

    @staticmethod
    def _closed(sock) -> bool:
        """Whether the server closed this socket (EOF, a reset, or any answer)."""
        if not select.select([sock], [], [], 0)[0]:
            return False
        try:
            sock.recv(65536)
        except BlockingIOError:
            return False
        except OSError:
            pass
        return True  # an answer (a 400 or 408) means the server is done with it too

    def _run(self):
        next_drip = time.monotonic()
        while not self._stop.is_set():
            for i, sock in enumerate(self.idle):
                if self._closed(sock):
                    sock.close()
                    self.idle[i] = self._open()
                    self.reopened["idle"] += 1
            drip = time.monotonic() >= next_drip
            for slot in self.slow:
                sock, sent = slot
                if self._closed(sock):
                    sock.close()
                    slot[:] = [self._open(), 0]
                    self.reopened["slow"] += 1
                    sock, sent = slot
                    drip = True  # a new slow client starts with its first byte at once
                if drip:
                    try:
                        sock.send(self.HEADER[sent : sent + 1])
                        slot[1] = sent + 1
                    except OSError:
                        pass
            if drip:
                next_drip = time.monotonic() + self.drip
            self._stop.wait(0.1)

    def close(self):
        self._stop.set()
        self._thread.join()
        for sock in self.idle + [slot[0] for slot in self.slow]:
            sock.close()


def percentile(values: list[float], share: float) -> float:
    """The value below which `share` of the sorted values fall."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


def idle_test(port: int, idle: int, slow: int, drip: float, seconds: float) -> dict:
    """Latencies of `/` under idle and slow-header sockets, four requests a second, one connection each."""
    pressure = Pressure(port, idle, slow, drip)
    timings, answered = [], 0
    try:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            started = time.monotonic()
            status = http_get(port, "/", timeout=10)
            elapsed = time.monotonic() - started
            timings.append(elapsed if status == 200 else float("inf"))
            answered += status == 200
            time.sleep(max(0.0, 0.25 - elapsed))
    finally:
        pressure.close()
    finite = [t for t in timings if t != float("inf")]
    return {
        "requests": len(timings),
        "answered": answered,
        "under_1s": sum(t < FAST for t in timings),
        "p50": statistics.median(timings) if timings else float("nan"),
        "p95": percentile(timings, 0.95),
        "max": max(finite) if finite else float("nan"),
        "reopened": dict(pressure.reopened),
    }


# --- the burst -----------------------------------------------------------------------------


class Probe(threading.Thread):
    """Ask a route twice a second; remember (time, status, seconds) of every answer."""

    def __init__(self, port: int, paths, stop: threading.Event):
        super().__init__(daemon=True)
        self.port, self.paths, self.stop = port, paths, stop
        self.samples: list[tuple[float, int | None, float]] = []

    def run(self):
        for path in self.paths:
            if self.stop.is_set():
                return
            started = time.monotonic()
            status = http_get(self.port, path, timeout=5)
            elapsed = time.monotonic() - started
            self.samples.append((started, status, elapsed))
            self.stop.wait(max(0.0, 0.5 - elapsed))


def searcher_client(port: int, stop: threading.Event, counts: dict, lock, sockets: SocketSet, timeout: float, seed):
    """One burst client: expensive searches back to back, each a new URL, giving up after `timeout`."""
    rng = random.Random(seed)
    while not stop.is_set():
        query = urllib.parse.quote(rng.choice(EXPENSIVE_QUERIES))
        status = http_get(port, f"/search?q={query}&r={rng.getrandbits(48)}", timeout, registry=sockets)
        key = "gave up" if status is None else str(status)
        with lock:
            counts[key] = counts.get(key, 0) + 1


def recovery(samples, since: float) -> float | None:
    """Seconds after `since` until the first of RECOVERED_AFTER fast answers in a row; None if never."""
    run_start, run = None, 0
    for started, status, elapsed in samples:
        if started < since:
            continue
        if status == 200 and elapsed < FAST:
            run_start = started if run == 0 else run_start
            run += 1
            if run >= RECOVERED_AFTER:
                return max(0.0, run_start - since)
        else:
            run = 0
    return None


def burst_test(port: int, urls: dict, clients: int, seconds: float, timeout: float, limit: float) -> dict:
    """Expensive searches from `clients` clients for `seconds`; probes during the burst and until recovery."""
    stop_probes, stop_clients = threading.Event(), threading.Event()
    rng = random.Random(11)
    words = itertools.cycle(urls["words"])
    routes = {
        "/healthz": itertools.repeat("/healthz"),
        "entry pages": itertools.cycle(urls["entries"]),
        "/": itertools.repeat("/"),
        "ordinary search": (f"/search?q={next(words)}&r={rng.getrandbits(48)}" for _ in itertools.count()),
    }
    probes = {name: Probe(port, paths, stop_probes) for name, paths in routes.items()}
    counts, lock, sockets = {}, threading.Lock(), SocketSet()
    workers = [
        threading.Thread(
            target=searcher_client, args=(port, stop_clients, counts, lock, sockets, timeout, i), daemon=True
        )
        for i in range(clients)
    ]
    started = time.monotonic()
    for thread in [*probes.values(), *workers]:
        thread.start()
    time.sleep(seconds)
    ended = time.monotonic()
    stop_clients.set()
    sockets.shutdown_all()  # every client gives up at once
    deadline = ended + limit
    while time.monotonic() < deadline:
        time.sleep(0.5)
        if all(recovery(list(p.samples), ended) is not None for p in probes.values()):
            break
    stop_probes.set()
    for thread in [*probes.values(), *workers]:
        thread.join(timeout=15)
    figures = {"searches": dict(counts), "started": started, "ended": ended, "routes": {}}
    for name, probe in probes.items():
        during = [(s, e) for t, s, e in probe.samples if t < ended]
        fast = [e for s, e in during if s == 200]
        figures["routes"][name] = {
            "probes": len(during),
            "answered": len(fast),
            "failed": len(during) - len(fast),
            "p50": statistics.median(fast) if fast else float("nan"),
            "max": max(fast) if fast else float("nan"),
            "recovery": recovery(probe.samples, ended),
        }
    return figures


def server_cpu_seconds(server) -> float:
    """CPU seconds gunicorn has used so far: the master, its live workers, and the workers it has reaped."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in [server.process.pid, *server.workers()]:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
        if pid == server.process.pid:
            total += int(fields[13]) + int(fields[14])  # cutime, cstime: workers that timed out and were replaced
    return total / ticks


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def log_counts(log: Path, since: int) -> dict:
    """Worker timeouts and 500s that gunicorn logged after byte `since` of its log."""
    text = log.read_text(errors="replace")[since:]
    return {
        "worker timeouts": text.count("WORKER TIMEOUT"),
        "500s": len(re.findall(r'" 500 ', text)),
        "503s": len(re.findall(r'" 503 ', text)),
    }


# --- running it ----------------------------------------------------------------------------


def sample_urls(database: Path, count: int, seed: int = 7) -> dict[str, list[str]]:
    """Entry URLs and ordinary search words drawn from the imported corpus."""
    rng = random.Random(seed)
    with sqlite3.connect(database) as connection:
        slugs = [row[0] for row in connection.execute("SELECT slug FROM entries ORDER BY id")]
        titles = [row[0] for row in connection.execute("SELECT title FROM entries ORDER BY id")]
    words = sorted({w.lower() for title in titles for w in re.findall(r"[A-Za-z]{5,}", title)})
    return {
        "entries": [f"/entries/{s}" for s in rng.sample(slugs, min(count, len(slugs)))],
        "words": rng.sample(words, min(200, len(words))),
    }


def class_env(spec: str) -> tuple[str, dict]:
    """(label, environment) of a worker class spec: `default`, `sync`, `gthread:8`; `@N` sets the search slots."""
    spec, _, slots = spec.partition("@")
    env = {"NEXUS_SEARCH_SLOTS": slots} if slots else {}
    label = spec + (f", {slots} search slots" if slots else "")
    if spec == "default":
        return "gunicorn.conf.py " + label, env
    name, _, threads = spec.partition(":")
    env.update(NEXUS_GUNICORN_WORKER_CLASS=name, NEXUS_GUNICORN_THREADS=threads or "1")
    return label, env


def seconds_text(value: float | None) -> str:
    if value is None:
        return "never"
    return "inf" if value == float("inf") else f"{value:.2f}"


def ms(value: float) -> str:
    return "–" if value != value or value == float("inf") else f"{value * 1000:.0f}"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=3000, help="size of the generated corpus")
    parser.add_argument("--corpus", help="a folder of Markdown notes to serve instead of a generated corpus")
    parser.add_argument(
        "--classes", default="default,sync", help="comma-separated worker classes: CLASS[:THREADS][@SEARCH_SLOTS]"
    )
    parser.add_argument("--workers", type=int, help="gunicorn workers (default: gunicorn.conf.py's)")
    parser.add_argument("--idle", type=int, default=50)
    parser.add_argument("--slow", type=int, default=20)
    parser.add_argument("--drip", type=float, default=2.0, help="seconds between a slow client's header bytes")
    parser.add_argument("--idle-seconds", type=float, default=20)
    parser.add_argument("--burst", type=int, default=200, help="concurrent clients of the burst")
    parser.add_argument("--burst-seconds", type=float, default=60)
    parser.add_argument("--client-timeout", type=float, default=10, help="when a burst client gives up")
    parser.add_argument("--recovery-limit", type=float, default=180, help="longest wait for recovery, seconds")
    parser.add_argument("--wrk-seconds", type=float, default=10, help="0 skips the wrk runs")
    parser.add_argument("--skip", default="", help="comma-separated parts to skip: idle, burst, wrk")
    parser.add_argument("--workdir", default=str(HERE / "out" / "abuse"))
    args = parser.parse_args(argv)
    skip = set(filter(None, args.skip.split(",")))
    if args.wrk_seconds <= 0:
        skip.add("wrk")
    if "wrk" not in skip and shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install -y wrk (or --skip wrk)")
    http_bench = load_bench_module("http")  # visit_once
    common = load_bench_module("common")  # corpus, import, servers, wrk
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    load = os.getloadavg()
    print(
        f"# Nexus abuse benchmark, {dt.date.today()}, {platform.node()}: {os.cpu_count()} cores, "
        f"Python {platform.python_version()}; load average at start {load[0]:.2f}",
        flush=True,
    )
    if args.corpus:
        content = Path(args.corpus).resolve()
        instance = work / f"instance-{content.name}"
    else:
        corpus = load_bench_module("corpus")
        content = common.ensure_corpus(corpus.generate, args.entries, work / f"corpus-{args.entries}")
        instance = work / f"instance-{args.entries}"
    env = common.env_for(instance, content)
    seconds, summary = common.timed_import(env)
    print(f"import of {content}: {seconds:.1f}s ({summary})", flush=True)
    urls = sample_urls(instance / "nexus.sqlite3", 1000)
    results = []
    for spec in args.classes.split(","):
        label, extra = class_env(spec)
        if args.workers:
            extra["NEXUS_GUNICORN_WORKERS"] = str(args.workers)
        results.append((label, run_class((http_bench, common), env, extra, label, work, instance, urls, args, skip)))
    report(results, args, skip, content)


def run_class(modules, env, extra, label, work, instance, urls, args, skip) -> dict:
    """Every measurement for one worker class."""
    http_bench, common = modules
    figures = {}
    slug = re.sub(r"\W+", "-", label)
    for leftover in instance.glob("page-cache.sqlite3*"):
        leftover.unlink()
    log = work / f"gunicorn-{slug}.log"
    server = common.Gunicorn("wsgi:app", dict(env, **extra), log)
    try:
        figures["workers"] = len(server.workers())
        if "wrk" not in skip:
            http_bench.visit_once(server.base, ["/", *urls["entries"]], 10)
            for name, paths in (("/", ["/"]), ("entry pages", urls["entries"])):
                result = common.run_wrk(server.base, paths, work / "run.lua", args.wrk_seconds, 10)
                figures[f"wrk cached {name}"] = result
                print(f"{label}: wrk {name}, page cache on: {result['rps']:.0f} req/s", flush=True)
        figures["rss now"] = max(common.Gunicorn.memory_mb(pid)["rss"] for pid in server.workers())
        if "idle" not in skip:
            figures["idle"] = idle_test(server.port, args.idle, args.slow, args.drip, args.idle_seconds)
            print(f"{label}: idle sockets: {figures['idle']}", flush=True)
        if "burst" not in skip:
            mark = log.stat().st_size
            server_cpu, client_cpu = server_cpu_seconds(server), own_cpu_seconds()
            figures["burst"] = burst_test(
                server.port, urls, args.burst, args.burst_seconds, args.client_timeout, args.recovery_limit
            )
            figures["burst"]["log"] = log_counts(log, mark)
            figures["burst"]["log"]["server CPU s"] = round(server_cpu_seconds(server) - server_cpu)
            figures["burst"]["log"]["clients' CPU s"] = round(own_cpu_seconds() - client_cpu)
            print(f"{label}: burst: {figures['burst']['searches']} {figures['burst']['routes']}", flush=True)
        figures["rss"] = max(common.Gunicorn.memory_mb(pid)["peak"] for pid in server.workers())
    finally:
        server.stop()
    if "wrk" not in skip:
        server = common.Gunicorn("wsgi:app", dict(env, NEXUS_PAGE_CACHE_MB="0", **extra), work / f"rendered-{slug}.log")
        try:
            for name, paths in (("/", ["/"]), ("entry pages", urls["entries"])):
                result = common.run_wrk(server.base, paths, work / "run.lua", args.wrk_seconds, 10)
                figures[f"wrk rendered {name}"] = result
                print(f"{label}: wrk {name}, rendered: {result['rps']:.0f} req/s", flush=True)
        finally:
            server.stop()
    return figures


def report(results: list, args, skip: set, content: Path) -> None:
    """Markdown tables of every figure."""
    workers = ", ".join(f"{label}: {f['workers']} workers" for label, f in results)
    print(f"\n## Hostile clients ({content.name}; {workers})\n")
    if "idle" not in skip:
        print(
            f"`/` while {args.idle} connections send nothing and {args.slow} send a header byte every "
            f"{args.drip:g} s ({args.idle_seconds:g} s, four requests a second; target: under 1 s):\n"
        )
        print(
            "| worker class | answered | under 1 s | p50 ms | p95 ms | max ms | sockets the server closed (idle / slow) |"
        )
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
        for label, f in results:
            i = f["idle"]
            print(
                f"| {label} | {i['answered']}/{i['requests']} | {i['under_1s']}/{i['requests']} | {ms(i['p50'])} "
                f"| {ms(i['p95'])} | {ms(i['max'])} | {i['reopened']['idle']} / {i['reopened']['slow']} |"
            )
    if "burst" not in skip:
        print(
            f"\n{args.burst} clients searching for expensive queries for {args.burst_seconds:g} s (each gives up "
            f"after {args.client_timeout:g} s); probes twice a second. Recovery: seconds after the burst until "
            f"{RECOVERED_AFTER} answers in a row within {FAST:g} s.\n"
        )
        print("| worker class | route | answered during | failed during | p50 ms | max ms | recovery s |")
        print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
        for label, f in results:
            for route, r in f["burst"]["routes"].items():
                print(
                    f"| {label} | {route} | {r['answered']}/{r['probes']} | {r['failed']} | {ms(r['p50'])} "
                    f"| {ms(r['max'])} | {seconds_text(r['recovery'])} |"
                )
        print("\n| worker class | burst searches (status: count) | server log |")
        print("| --- | --- | --- |")
        for label, f in results:
            searches = ", ".join(f"{k}: {v}" for k, v in sorted(f["burst"]["searches"].items()))
            logged = ", ".join(f"{k}: {v}" for k, v in f["burst"]["log"].items())
            print(f"| {label} | {searches} | {logged} |")
    if "wrk" not in skip:
        print(f"\nThroughput, wrk -t2 -c10 -d{args.wrk_seconds:g}s (req/s, p50 ms, p99 ms):\n")
        print(
            "| worker class | `/` cached | entry pages cached | `/` rendered | entry pages rendered "
            "| RSS after wrk MB | peak RSS MB |"
        )
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
        for label, f in results:
            cells = []
            for key in ("wrk cached /", "wrk cached entry pages", "wrk rendered /", "wrk rendered entry pages"):
                w = f[key]
                cells.append(f"{w['rps']:.0f} ({w['p50_us'] / 1000:.1f}, {w['p99_us'] / 1000:.1f})")
            print(f"| {label} | {' | '.join(cells)} | {f['rss now']:.0f} | {f['rss']:.0f} |")


if __name__ == "__main__":
    main()
