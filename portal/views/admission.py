"""Who may start a search now: a per-process limit on searches at once, and no search for a client that has left.

A worker process has a few threads. Searches are the only answers that can cost a second of
CPU, so each process runs at most `SEARCH_SLOTS` of them at once. A search that finds every slot
taken waits for one for up to WAIT_SECONDS (searches take milliseconds; ordinary traffic never
notices), then is answered 503 with `Retry-After`: the process's other threads stay free for entry
pages, `/healthz` and the rest, and a burst of searches is turned away cheaply instead of
queueing for minutes.

A request can wait in gunicorn's queue while its client gives up. Before a search starts, a
non-blocking peek at the client's socket (`environ["gunicorn.socket"]`) tells whether the client
closed it; if so, the search is skipped (status 499, as nginx logs it, for nobody to read). The
peek never blocks and never consumes a byte; any socket it cannot read that way (another
server, TLS) counts as still there. A client that half-closes its socket after sending the
request counts as gone, as nginx counts it.
"""

from __future__ import annotations

import contextlib
import functools
import socket
import threading

from flask import current_app, request
from werkzeug.exceptions import HTTPException, ServiceUnavailable

#: Seconds a turned-away search should wait before asking again.
RETRY_AFTER = 1
#: Seconds a search waits for a free slot before it is turned away.
WAIT_SECONDS = 1.0


class SearchesBusy(ServiceUnavailable):
    """This process runs as many searches as it may; a moment later it can run this one."""

    description = "Too many searches are running right now; please try again in a moment."

    def __init__(self):
        super().__init__(retry_after=RETRY_AFTER)


class ClientGone(HTTPException):
    """The client closed its connection before its search started."""

    code = 499
    description = "The client closed the connection."


class SearchSlots:
    """At most `slots` searches at once in this process (0: no limit)."""

    def __init__(self, slots: int, wait: float = WAIT_SECONDS):
        self._semaphore = threading.BoundedSemaphore(slots) if slots else None
        self.wait = wait
        self.refused = 0  # this process's count, for tests and benchmarks

    @contextlib.contextmanager
    def taken(self):
        """Hold a slot while the block runs; raise `SearchesBusy` when none frees up within `wait` seconds."""
        if self._semaphore is None:
            yield
            return
        if not self._semaphore.acquire(timeout=self.wait):
            self.refused += 1
            raise SearchesBusy()
        try:
            yield
        finally:
            self._semaphore.release()


def admitted(search):
    """Run `search` only for a client still connected, and only in a free search slot of this process."""

    @functools.wraps(search)
    def wrapper(*args, **kwargs):
        if client_gone(request.environ):
            raise ClientGone()
        with current_app.extensions["nexus.search_slots"].taken():
            return search(*args, **kwargs)

    return wrapper


def client_gone(environ) -> bool:
    """Whether the client closed its connection (EOF or reset); False whenever that cannot be told."""
    sock = environ.get("gunicorn.socket")
    if not isinstance(sock, socket.socket) or sock.type != socket.SOCK_STREAM:
        return False
    try:
        return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except (BlockingIOError, InterruptedError):
        return False  # connected, nothing more sent: the usual case
    except ConnectionError:
        return True  # reset by the peer
    except (OSError, ValueError):
        return False  # a TLS socket refuses flags, a closed one is gunicorn's business
