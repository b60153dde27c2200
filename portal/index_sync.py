"""Keep this node's search index at the database's generation, whether requests come or not.

Three things bring the index up to date, all through `indexing.sync_index` (incrementally when
the change log allows, else a full rebuild; the old index answers until the swap):

- an import on this node updates the index itself (importer.py);
- on PostgreSQL, one listener per node receives the generation that each import's commit
  announces (`NOTIFY nexus_generation`) and syncs at once, without waiting for a request;
- a check before requests, at most every `NEXUS_INDEX_CHECK_SECONDS`, is the safety net, and
  the only mechanism on SQLite (where every import runs on this node anyway).

The listener runs in one gunicorn worker, elected through a lock file in the instance folder,
not in gunicorn's master process:

- The master forks workers all its life (at start, and to replace any that die). A thread in it
  would leave its psycopg connection and any lock it holds in every child's copy of memory: a
  child that frees the copied connection sends PostgreSQL a Terminate message on the shared
  socket, which ends the master's listening session, and a lock held at the fork stays held in
  the child forever.
- The master must stay responsive to signals and worker heartbeats; an index rebuild there
  would compete with it for the GIL, and the index build's writer processes cannot fork safely from a
  process with threads.
- A worker opens its connection after the fork. The elected worker holds an `flock` on
  `<instance>/index-listener.lock`, which the kernel releases however that worker ends (crash,
  timeout, `max_requests`); every other worker tries the lock each second, and the one that
  gets it catches up by comparing generations before it listens.

The listener's own thread runs the update, under the node's import lock (so never at the same
time as an import or a rebuild on this node). Notifications that arrive meanwhile wait in the
connection and are read right after; each sync brings the index to the newest generation. When
the connection drops, it reconnects with exponential backoff (0.5 s to 30 s) and catches up.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
from pathlib import Path

from flask import Flask
from sqlalchemy.exc import OperationalError

from .generation import announce_generation, current_generation, read_generation
from .indexing import sync_index
from .locking import ImportBusy, import_lock
from .models import GENERATION_CHANNEL, db, first_line
from .search import store

log = logging.getLogger(__name__)

LISTENER_LOCK = "index-listener.lock"
#: The listening session's name in `pg_stat_activity`.
APPLICATION_NAME = "nexus-index-listener"


def index_is_stale(instance_path) -> bool:
    """True when the database has another import generation than the live index (needs an app context)."""
    directory = store.live_index_dir(instance_path)
    index_generation = store.index_generation(directory) if directory else None
    return current_generation() != index_generation


class IndexSync:
    """A per-process check, at most every `interval` seconds, that updates a stale local index in the background."""

    def __init__(self, app: Flask, interval: float):
        self.app = app
        self.interval = interval
        self._next_check = 0.0
        self._thread: threading.Thread | None = None
        self._guard = threading.Lock()

    def check(self) -> bool:
        """Start a background update if the index is behind the database; True if one started."""
        if self.interval <= 0:
            return False
        now = time.monotonic()
        with self._guard:
            if now < self._next_check or (self._thread is not None and self._thread.is_alive()):
                return False
            self._next_check = now + self.interval
        if not self.is_stale():
            return False
        self._thread = threading.Thread(target=self._rebuild, name="nexus-index-sync", daemon=True)
        self._thread.start()
        return True

    def is_stale(self) -> bool:
        """True when the database has a newer import generation than the live index."""
        return index_is_stale(self.app.instance_path)

    def wait(self, timeout: float | None = None) -> None:
        """Wait for a running update (tests and the CLI use this)."""
        if self._thread is not None:
            self._thread.join(timeout)

    def _rebuild(self) -> None:
        """Update under this node's import lock; if an import or the listener holds it, they bring the index up to date."""
        with self.app.app_context():
            try:
                with import_lock(self.app.instance_path, wait=False):
                    if self.is_stale():
                        log.info("database generation changed: updating this node's search index")
                        sync_index(self.app.instance_path)
            except ImportBusy:
                log.debug("index sync skipped: an import or index update is running on this node")
            except OperationalError as error:
                log.warning("index sync: the database does not answer (%s)", first_line(error))
            except Exception:
                log.exception("updating the search index from the database failed")
            finally:
                db.session.remove()


class GenerationListener:
    """LISTEN for new generations in one process of this node, and bring the index up to date on each."""

    BACKOFF = (0.5, 30.0)  # seconds before the first reconnection, and at most

    def __init__(self, app: Flask, *, poll: float = 1.0, heartbeat: float = 30.0):
        self.app = app
        self.poll = poll  # how often the lock is tried, and the stop flag looked at
        self.heartbeat = heartbeat  # seconds without a notification before the connection is tested
        self.lock_path = Path(app.instance_path) / LISTENER_LOCK
        self.elected = threading.Event()
        self.listening = threading.Event()
        self.syncs = 0  # index updates this listener made (for tests)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> GenerationListener:
        """Run in a daemon thread: wait to be elected, then listen until stopped."""
        self._thread = threading.Thread(target=self._run, name="nexus-index-listener", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop listening and give up the election (tests; a worker's exit does it by dying)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        """Hold the node's listener lock, then listen; the kernel frees the lock when this process ends."""
        with open(self.lock_path, "a+") as handle:
            while not self._stop.is_set():
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    self._stop.wait(self.poll)
            else:
                return
            self.elected.set()
            try:
                self._listen_until_stopped()
            finally:
                self.elected.clear()

    def _listen_until_stopped(self) -> None:
        """Connect, LISTEN, catch up, follow notifications; on a lost connection, back off and start again."""
        import psycopg

        failures = 0  # connections lost in a row
        while not self._stop.is_set():
            try:
                with self._connect() as connection:
                    connection.execute(f"LISTEN {GENERATION_CHANNEL}")
                    log.info("process %s listens for new generations on this node", os.getpid())
                    self.listening.set()
                    failures = 0
                    self.follow()  # whatever was committed while nobody listened
                    self._follow_notifications(connection)
            except psycopg.Error as error:
                log.warning("index listener: %s; reconnecting in %.1fs", first_line(error), self._backoff(failures))
            except Exception:
                log.exception("index listener failed; restarting in %.1fs", self._backoff(failures))
            self.listening.clear()
            if self._stop.wait(self._backoff(failures)):
                return
            failures += 1

    def _backoff(self, failures: int) -> float:
        """Seconds to wait before reconnecting: doubling from BACKOFF[0] up to BACKOFF[1]."""
        return min(self.BACKOFF[0] * 2**failures, self.BACKOFF[1])

    def _follow_notifications(self, connection) -> None:
        """Sync on every notification; test the connection (and sync) after `heartbeat` quiet seconds."""
        quiet_since = time.monotonic()
        while not self._stop.is_set():
            if any(True for _ in connection.notifies(timeout=self.poll, stop_after=1)):
                self.follow()
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since >= self.heartbeat:
                connection.execute("SELECT 1")  # a dead connection raises here
                self.follow()
                quiet_since = time.monotonic()

    def follow(self) -> None:
        """Tell this node's workers the new generation, then bring the index to it (errors are logged, not raised)."""
        instance = self.app.instance_path
        with self.app.app_context():
            try:
                generation = current_generation()
                if read_generation(Path(instance)) != generation:
                    announce_generation(instance, generation)  # pages and the page cache follow at once
                if index_is_stale(instance):
                    with import_lock(instance):  # this node's lock: waits for an import or rebuild here
                        sync_index(instance)
                        self.syncs += 1
            except OperationalError as error:  # the connection will tell, and be reopened
                log.warning("index listener: the database does not answer (%s)", first_line(error))
            except Exception:
                log.exception("index listener: updating the search index failed")
            finally:
                db.session.remove()

    def _connect(self):
        """A connection of its own (autocommit, as LISTEN needs), with the app's database settings."""
        import psycopg

        with self.app.app_context():
            engine = db.engine
            args, kwargs = engine.dialect.create_connect_args(engine.url)
        kwargs.pop("context", None)  # SQLAlchemy's type adapters: not needed to listen
        kwargs.setdefault("connect_timeout", 10)
        return psycopg.connect(*args, **kwargs, autocommit=True, application_name=APPLICATION_NAME)


def start_listener(app: Flask) -> GenerationListener | None:
    """Start this process's candidate for the node's listener (PostgreSQL only; gunicorn calls it in each worker)."""
    with app.app_context():
        dialect = db.engine.dialect.name
    if dialect != "postgresql":
        return None
    listener = GenerationListener(app).start()
    app.extensions["nexus.index_listener"] = listener
    return listener


def register(app: Flask) -> None:
    """Check the generation before requests (throttled), so every node follows the database."""
    sync = IndexSync(app, float(app.config["INDEX_CHECK_SECONDS"]))
    app.extensions["nexus.index_sync"] = sync

    @app.before_request
    def _follow_the_database():
        sync.check()
