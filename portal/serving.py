"""The gunicorn worker Nexus serves with: threads that only ever see complete request heads.

gunicorn's `gthread` worker (27.0.1) hands a new connection to a thread at once; the thread
waits up to 5 s for the first byte, and then reads the request line and headers with a
blocking socket and no deadline. So 50 connections that send nothing hold every thread for 5 s
at a time, and a client that sends one header byte every few seconds holds a thread for as long
as it likes: a few such clients take a worker down (measured in bench/abuse.py).

`HeadFirstWorker` reads the request head in the worker's event loop instead, without blocking,
and hands the connection to a thread only when the head is complete (a blank line ends it, or
it has grown past anything gunicorn's limits allow, and the parser answers with an error). A
head must be complete within `HEAD_TIMEOUT` seconds of the connection opening (or of its first
byte after a kept-alive answer); otherwise the connection is closed. Idle and slow clients then
cost a socket and a few bytes each, never a thread. Everything after the head (the body, the
application, the answer) is gunicorn's own code.

Searches (`SEARCH_TARGETS`) get threads of their own: one per search slot of the process
(`NEXUS_SEARCH_SLOTS`, see views/admission.py) and one more that turns searches away with a 503
while every slot is taken. Pages, `/healthz` and static files are served by gunicorn's `threads`
and never wait in a queue behind searches: during a burst of searches they keep answering.

With TLS or cleartext HTTP/2 configured in gunicorn (Nexus uses neither: a proxy terminates
TLS), the worker behaves exactly like `gthread`.
"""

from __future__ import annotations

import contextlib
import errno
import os
import time
from concurrent import futures
from functools import partial
from selectors import EVENT_READ

from gunicorn.workers.gthread import TConn, ThreadWorker

from . import config

#: Seconds a client has to send its whole request head (nginx's `client_header_timeout` is 60);
#: `NEXUS_GUNICORN_HEAD_TIMEOUT` overrides it.
HEAD_TIMEOUT = 10.0
#: Bytes read from a socket at a time while a head arrives.
READ_SIZE = 65536
#: Request targets served by the search threads, never by the threads that serve pages.
SEARCH_TARGETS = (b"/search", b"/api/search")


class HeadFirstWorker(ThreadWorker):
    """gthread, except that threads are given only connections whose request head has arrived."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.heads: dict[TConn, None] = {}  # connections whose head is arriving, oldest deadline first
        cfg = self.cfg
        # A head longer than this breaks one of gunicorn's limits: the parser refuses it without reading more.
        self.max_head = cfg.limit_request_line + cfg.limit_request_fields * (cfg.limit_request_field_size + 2) + 4
        self.head_first = not cfg.is_ssl and cfg.http2_cleartext == "off"
        self.search_pool = None
        self.head_timeout = float(os.environ.get("NEXUS_GUNICORN_HEAD_TIMEOUT", HEAD_TIMEOUT))

    def init_process(self):
        """Start the search threads beside gthread's own (which then serve everything else)."""
        if self.head_first:
            self.search_pool = futures.ThreadPoolExecutor(max_workers=search_threads(self.cfg.threads))
        super().init_process()  # runs the worker's loop until it stops

    def run(self):
        try:
            super().run()
        finally:
            if self.search_pool:
                self.search_pool.shutdown(wait=False)

    def handle_quit(self, sig, frame):
        if self.search_pool:
            self.search_pool.shutdown(wait=False)
        super().handle_quit(sig, frame)

    def enqueue_req(self, conn):
        """Hand a connection to a thread: a search's thread, or one of the threads that serve everything else."""
        pool = self.search_pool if getattr(conn, "searching", False) and self.search_pool else self.tpool
        future = pool.submit(self.handle, conn)
        future.add_done_callback(lambda done: self.method_queue.defer(self.finish_request, conn, done))

    def accept(self, listener):
        """Accept a connection and wait for its head in the event loop, not in a thread."""
        if not self.head_first:
            return super().accept(listener)
        try:
            client, address = listener.accept()
        except OSError as error:
            if error.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        self.nr_conns += 1
        self._await_head(TConn(self.cfg, client, address, listener.getsockname()))  # TConn makes it non-blocking

    def on_client_socket_readable(self, conn, client):
        """A kept-alive connection sent its next request's first bytes: wait for the rest of its head."""
        if not self.head_first:
            return super().on_client_socket_readable(conn, client)
        self.poller.unregister(client)
        self.keepalived_conns.remove(conn)
        self._await_head(conn)

    def _await_head(self, conn):
        conn.head = b""
        conn.timeout = time.monotonic() + self.head_timeout
        self.heads[conn] = None
        self.poller.register(conn.sock, EVENT_READ, partial(self._read_head, conn))

    def _read_head(self, conn, client):
        """Read what has arrived; a complete head goes to a thread, a closed connection is dropped."""
        try:
            chunk = conn.sock.recv(READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            chunk = b""
        if not chunk:
            self._forget(conn)
            self._close(conn)
            return
        conn.head += chunk
        if b"\n\r\n" in conn.head or b"\n\n" in conn.head or len(conn.head) > self.max_head:
            self._forget(conn)
            conn.data_ready = True
            conn.searching = is_search(conn.head)
            self.enqueue_req(conn)

    def handle(self, conn):
        """In a thread: give the parser the head read in the event loop, then serve as gthread does."""
        head = getattr(conn, "head", b"")
        if head:
            conn.head = b""
            conn.sock.setblocking(True)
            conn.init()  # a new connection's parser; a kept-alive one keeps its own
            conn.parser.unreader.unread(head)
        try:
            return super().handle(conn)
        finally:
            conn.searching = False  # a request read ahead on this connection goes to the page threads

    def murder_pending(self):
        """Also close connections whose head did not arrive in time (and, when stopping, those that sent nothing)."""
        super().murder_pending()
        now = time.monotonic()
        while self.heads and (conn := next(iter(self.heads))).timeout <= now:
            self._forget(conn)
            self._close(conn)
        if not self.alive:
            for conn in [c for c in self.heads if not c.head]:
                self._forget(conn)
                self._close(conn)

    def _forget(self, conn):
        """Stop waiting for this connection's head."""
        with contextlib.suppress(KeyError, ValueError, OSError):
            self.poller.unregister(conn.sock)
        self.heads.pop(conn, None)

    def _close(self, conn):
        self.nr_conns -= 1
        conn.close()


def is_search(head: bytes) -> bool:
    """Whether a request head asks for a search (its target's path is one of SEARCH_TARGETS)."""
    line = head.split(b"\n", 1)[0].split(b" ")
    if len(line) < 2:
        return False
    path = line[1].split(b"?", 1)[0]
    return path in SEARCH_TARGETS


def search_threads(threads: int) -> int:
    """Threads for searches: one per search slot and one that turns searches away; `threads` with no limit."""
    slots = config.from_environment().get("SEARCH_SLOTS", config.defaults()["SEARCH_SLOTS"])
    return slots + 1 if slots else threads
