"""Clients that hold connections open, trickle their headers, or send a burst of expensive searches."""

from __future__ import annotations

import contextlib
import random
import socket
import struct
import threading
import time
import urllib.parse
from collections import Counter

import pytest

from portal import serving
from portal.search import engine
from portal.views import admission

from .conftest import CELERY, do_import, write_entry
from .servers import gunicorn, nexus_env

# --- the app: search slots and clients that have gone ----------------------------------------


@pytest.fixture
def one_slot_client(make_app, content_dir):
    """A client of an app that runs one search at a time, and that app's search slots."""
    app = make_app(content_dir, SEARCH_SLOTS=1)
    do_import(app, content_dir)
    slots = app.extensions["nexus.search_slots"]
    slots.wait = 0.05  # no slot frees up in these tests: turn the search away quickly
    return app.test_client(), slots


@pytest.mark.parametrize("path", ["/search?q=celery", "/api/search?q=celery"])
def test_a_search_finding_every_slot_taken_is_503_with_retry_after(one_slot_client, path):
    client, slots = one_slot_client
    with slots.taken():
        response = client.get(path)
    assert response.status_code == 503
    assert response.headers["Retry-After"] == str(admission.RETRY_AFTER)
    assert "try again" in response.get_data(as_text=True)
    assert client.get(path).status_code == 200  # the slot is free again


def test_pages_answer_while_every_search_slot_is_taken(one_slot_client):
    client, slots = one_slot_client
    with slots.taken():
        for path in ["/", f"/entries/{CELERY}", "/tags/celery", "/healthz", "/api/suggest?q=cel", "/search"]:
            assert client.get(path).status_code == 200, path


def test_a_search_waits_for_a_slot_that_frees_up(one_slot_client):
    # Ordinary contention (another search finishing) is waited out, not answered 503.
    client, slots = one_slot_client
    slots.wait = 5.0
    taken, release = threading.Event(), threading.Event()

    def busy():
        with slots.taken():
            taken.set()
            release.wait(5)

    other = threading.Thread(target=busy)
    other.start()
    taken.wait(5)
    threading.Timer(0.2, release.set).start()
    assert client.get("/search?q=celery").status_code == 200
    other.join()
    assert slots.refused == 0


def test_no_limit_on_searches_with_zero_slots():
    # NEXUS_SEARCH_SLOTS=0 turns the limit off.
    slots = admission.SearchSlots(0)
    with slots.taken(), slots.taken():
        pass
    assert slots.refused == 0


@pytest.fixture
def socket_pair():
    """A connected TCP pair on 127.0.0.1: (the server's end, the client's end)."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname())
        server, _ = listener.accept()
    yield server, client
    server.close()
    client.close()


def _reset(sock):
    """Close with a TCP reset, as a client that crashed or gave up hard."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


@pytest.mark.parametrize(
    ("client_does", "gone"),
    [
        (lambda c: None, False),  # connected and waiting for the answer: the usual case
        (lambda c: c.close(), True),  # closed the connection (gave up, or the tab was closed)
        (_reset, True),  # reset it
        (lambda c: c.shutdown(socket.SHUT_WR), True),  # half-closed: counted as gone, as nginx counts it
        (lambda c: c.sendall(b"GET / HTTP/1.1\r\n\r\n"), False),  # sent its next request: still there
    ],
)
def test_client_gone_tells_a_closed_connection_from_a_waiting_one(socket_pair, client_does, gone):
    server, client = socket_pair
    client_does(client)
    time.sleep(0.05)  # let the FIN or RST arrive
    assert admission.client_gone({"gunicorn.socket": server}) is gone


def test_client_gone_neither_blocks_nor_consumes(socket_pair):
    server, client = socket_pair
    assert server.gettimeout() is None  # a blocking socket, as gunicorn's threads use
    assert admission.client_gone({"gunicorn.socket": server}) is False
    client.sendall(b"next request")
    time.sleep(0.05)
    assert admission.client_gone({"gunicorn.socket": server}) is False
    assert server.recv(100) == b"next request" and server.gettimeout() is None


@pytest.mark.parametrize(
    "environ",
    [
        {},  # not under gunicorn (the test client, another server)
        {"gunicorn.socket": object()},  # something that is not a socket
        {"gunicorn.socket": socket.socket(socket.AF_INET, socket.SOCK_DGRAM)},  # not a stream
    ],
)
def test_client_gone_says_no_when_it_cannot_tell(environ):
    assert admission.client_gone(environ) is False
    if "gunicorn.socket" in environ and hasattr(environ["gunicorn.socket"], "close"):
        environ["gunicorn.socket"].close()


def test_client_gone_on_a_socket_closed_by_the_server_says_no(socket_pair):
    server, _ = socket_pair
    server.close()  # gunicorn's business, not a client that left
    assert admission.client_gone({"gunicorn.socket": server}) is False


def test_a_search_whose_client_has_gone_is_not_run(client, socket_pair, monkeypatch):
    calls = []
    real = engine.run_search
    monkeypatch.setattr(engine, "run_search", lambda *a, **k: calls.append(a) or real(*a, **k))
    server, peer = socket_pair
    assert client.get("/search?q=celery", environ_base={"gunicorn.socket": server}).status_code == 200
    assert len(calls) == 1
    peer.close()
    time.sleep(0.05)
    response = client.get("/search?q=redis", environ_base={"gunicorn.socket": server})
    assert response.status_code == 499 and len(calls) == 1


@pytest.mark.parametrize(
    ("head", "search"),
    [
        (b"GET /search?q=a HTTP/1.1\r\n\r\n", True),  # the search page
        (b"GET /api/search?q=a HTTP/1.1\r\n\r\n", True),  # the search API
        (b"GET /search HTTP/1.1\r\n\r\n", True),  # no query: still the search route (cheap, but it is)
        (b"HEAD /search?q=a HTTP/1.1\r\n\r\n", True),  # any method
        (b"GET /searching HTTP/1.1\r\n\r\n", False),  # a longer path is another route
        (b"GET /entries/search HTTP/1.1\r\n\r\n", False),  # an entry whose slug is "search"
        (b"GET /api/suggest?q=search HTTP/1.1\r\n\r\n", False),  # the word in the query string
        (b"GET / HTTP/1.1\r\n\r\n", False),  # the home page
        (b"GARBAGE\r\n\r\n", False),  # no target at all: gunicorn answers 400 from a page thread
    ],
)
def test_the_worker_gives_search_requests_their_own_threads(head, search):
    assert serving.is_search(head) is search


def test_the_workers_search_targets_are_the_search_routes(imported_app):
    routes = {rule.rule for rule in imported_app.url_map.iter_rules() if rule.endpoint.startswith("search.")}
    assert {target.decode() for target in serving.SEARCH_TARGETS} == routes - {"/api/suggest"}


# --- a real gunicorn ---------------------------------------------------------------------------


def http_get(port: int, path: str, timeout: float, sockets: set | None = None) -> tuple[int | None, float]:
    """GET on a new connection: (status or None on a timeout or error, seconds); `sockets` holds it while open."""
    started = time.monotonic()
    sockets = set() if sockets is None else sockets
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sockets.add(sock)
            try:
                sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
                answer = b""
                while chunk := sock.recv(65536):
                    answer += chunk
            finally:
                sockets.discard(sock)
        return int(answer.split(b" ", 2)[1]), time.monotonic() - started
    except (OSError, ValueError, IndexError):
        return None, time.monotonic() - started


def port_of(base: str) -> int:
    return urllib.parse.urlsplit(base).port


@pytest.mark.slow
def test_idle_and_slow_header_sockets_never_starve_the_site(content_dir, tmp_path):
    # 2 workers of 4 page threads: 12 slow clients and 30 silent ones would hold every thread
    # of gunicorn's own gthread worker (and every sync worker many times over).
    env = nexus_env(tmp_path / "instance", content_dir, NEXUS_GUNICORN_HEAD_TIMEOUT="3")
    with gunicorn(env, workers=2, log_path=tmp_path / "gunicorn.log") as base:
        port = port_of(base)
        idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(30)]
        slow = [socket.create_connection(("127.0.0.1", port)) for _ in range(12)]
        try:
            header = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 100
            opened = time.monotonic()
            for step in range(12):
                for sock in slow:
                    sock.send(header[step : step + 1])
                status, seconds = http_get(port, "/", timeout=5)
                assert status == 200, f"request {step} got {status} after {seconds:.1f}s"
                time.sleep(0.2)

            # A head that arrives in pieces within the time allowed is served as usual.
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                for piece in (b"GET /heal", b"thz HTTP/1.1\r\nHo", b"st: x\r\n", b"\r\n"):
                    sock.send(piece)
                    time.sleep(0.3)
                assert sock.recv(100).startswith(b"HTTP/1.1 200")

            # Two requests sent at once on one connection, then a third after the answers (kept alive).
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                answers = b""
                while answers.count(b'"status":"ok"') < 2:
                    answers += sock.recv(65536)
                time.sleep(0.5)
                sock.sendall(b"GET /search?q=celery HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                while chunk := sock.recv(65536):
                    answers += chunk
                assert answers.count(b"HTTP/1.1 200 OK") == 3 and b"Celery" in answers

            # Sockets that never finished a head are closed once their time is up (3 s here), not held.
            for sock in idle + slow:
                sock.settimeout(max(0.1, opened + 10 - time.monotonic()))
                with contextlib.suppress(ConnectionResetError):
                    assert sock.recv(100) == b""
        finally:
            for sock in idle + slow:
                sock.close()
    log = (tmp_path / "gunicorn.log").read_text()
    assert "Traceback" not in log and "WORKER TIMEOUT" not in log


#: Queries whose cost grows with the number of distinct words in the index.
EXPENSIVE = ("?*", "[a TO z]", " OR ".join(f"{c}*" for c in "abcdefghijklmnop"), "a* b* c*")


@pytest.fixture
def costly_content(tmp_path):
    """30 notes of 100 random words: 3,000 distinct words, so that `?*` costs seconds, not milliseconds."""
    root = tmp_path / "costly"
    rng = random.Random(5)
    letters = "abcdefghijklmnopqrstuvwxyz"
    for i in range(30):
        words = " ".join("".join(rng.choice(letters) for _ in range(rng.randint(4, 9))) for _ in range(100))
        write_entry(root, f"note-{i}.md", f"# Note {i}\n\n{words} zeppelin\n")
    return root


@pytest.mark.slow
def test_a_burst_of_expensive_searches_leaves_pages_answering_and_passes(costly_content, tmp_path):
    env = nexus_env(tmp_path / "instance", costly_content)
    log_path = tmp_path / "gunicorn.log"
    with gunicorn(env, workers=2, log_path=log_path) as base:
        port = port_of(base)
        stop, sockets, statuses, asked_at = threading.Event(), set(), [], {}

        def searcher(seed):
            rng = random.Random(seed)
            while not stop.is_set():
                query = urllib.parse.quote(rng.choice(EXPENSIVE))
                asked_at[seed] = time.monotonic()  # while a search of this client is in flight
                statuses.append(http_get(port, f"/search?q={query}&r={rng.random()}", 10, sockets))
                del asked_at[seed]

        clients = [threading.Thread(target=searcher, args=(i,), daemon=True) for i in range(40)]
        for thread in clients:
            thread.start()
        time.sleep(1)  # every client has a search in flight
        probes = []
        end = time.monotonic() + 5
        while time.monotonic() < end:
            for path in ("/healthz", f"/entries/note-{len(probes) % 30}"):
                probes.append((path, *http_get(port, path, timeout=5)))
            time.sleep(0.2)
        # Before the clients give up, which cuts the searches in flight: what was answered, and
        # how long the oldest search still in flight has waited.
        answered, waiting = list(statuses), time.monotonic() - min(list(asked_at.values()), default=time.monotonic())
        stop.set()
        for sock in list(sockets):  # every client gives up at once
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        burst_ended = time.monotonic()

        failed = [(path, status, round(seconds, 1)) for path, status, seconds in probes if status != 200]
        assert not failed, failed
        # Searches beyond the slots wait a second for one, then are turned away; a search runs a
        # second at most. None queues behind the burst (6 s so far) until its client gives up.
        assert answered and all(status in (200, 503) for status, _ in answered), Counter(s for s, _ in answered)
        slowest = max(seconds for _, seconds in answered)
        assert slowest < 5 and waiting < 5, (slowest, waiting)

        # Within seconds of the burst, searches run again (no backlog of abandoned searches).
        while True:
            status, _ = http_get(port, "/search?q=zeppelin", timeout=5)
            if status == 200:
                break
            assert time.monotonic() - burst_ended < 30, f"searches still refused: {status}"
            time.sleep(0.5)
        for thread in clients:
            thread.join(timeout=15)
    log = log_path.read_text()
    assert "WORKER TIMEOUT" not in log and '" 500 ' not in log and "Traceback" not in log
