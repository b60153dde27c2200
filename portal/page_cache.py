"""Rendered answers shared by every worker of a node, in a small SQLite file of their own.

Workers write here, so this is not the content database (which only the importer writes): it
is derived data. Each answer is stored under its ETag, which names the release, the content
generation, the live index and the URL, so an answer can never be served for another state;
answers of older states are dropped when a worker first stores one for a new state. The file
is bounded in size (oldest answers go first), and any error reading or writing it counts as a
miss: a broken cache file is deleted and made again, and never fails a request.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
from pathlib import Path

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS answers (
    etag TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    headers TEXT NOT NULL,
    body BLOB NOT NULL,
    size INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS total (bytes INTEGER NOT NULL);
INSERT INTO total SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM total);
CREATE TRIGGER IF NOT EXISTS answer_added AFTER INSERT ON answers
    BEGIN UPDATE total SET bytes = bytes + new.size; END;
CREATE TRIGGER IF NOT EXISTS answer_dropped AFTER DELETE ON answers
    BEGIN UPDATE total SET bytes = bytes - old.size; END;
"""
#: How long a store waits for another worker's write; a busy cache skips the store rather than wait.
WRITE_TIMEOUT_SECONDS = 0.05


class PageCache:
    """Answers keyed by ETag, shared through `path` by the processes and threads of one node."""

    def __init__(self, path: str | os.PathLike, max_bytes: int):
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.hits = self.misses = self.stores = 0  # this process's counts, for tests and benchmarks
        self._local = threading.local()
        self._state = None
        self._lock = threading.Lock()

    def get(self, etag: str) -> tuple[list[tuple[str, str]], bytes] | None:
        """The stored headers and body for `etag`, or None."""
        if not self.max_bytes:
            return None
        try:
            row = self._connection().execute("SELECT headers, body FROM answers WHERE etag = ?", (etag,)).fetchone()
        except sqlite3.Error as error:
            self._broken(error)
            row = None
        if row is None:
            self.misses += 1
            return None
        self.hits += 1
        return [tuple(pair) for pair in json.loads(row[0])], row[1]

    def put(self, etag: str, state: str, headers: list[tuple[str, str]], body: bytes) -> None:
        """Store an answer (unless one is stored already), keeping the file within its budget."""
        if not self.max_bytes or len(body) > self.max_bytes // 4:
            return
        try:
            connection = self._connection()
            with self._lock:
                new_state, self._state = state != self._state, state
            if new_state:
                connection.execute("DELETE FROM answers WHERE state != ?", (state,))
            connection.execute(
                "INSERT OR IGNORE INTO answers (etag, state, headers, body, size) VALUES (?, ?, ?, ?, ?)",
                (etag, state, json.dumps(headers), body, len(body) + len(etag) + 200),
            )
            self.stores += 1
            self._evict(connection)
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) and "busy" not in str(error):
                self._broken(error)
        except sqlite3.Error as error:
            self._broken(error)

    def size(self) -> int:
        """Bytes the stored answers take (roughly: bodies, headers and keys)."""
        return self._connection().execute("SELECT bytes FROM total").fetchone()[0]

    def _evict(self, connection: sqlite3.Connection) -> None:
        """Over budget: delete the oldest answers until the total is under nine tenths of it."""
        if connection.execute("SELECT bytes FROM total").fetchone()[0] <= self.max_bytes:
            return
        connection.execute(
            """DELETE FROM answers WHERE rowid IN (
                   SELECT rowid FROM (SELECT rowid, sum(size) OVER (ORDER BY rowid) AS running FROM answers)
                   WHERE running <= (SELECT bytes FROM total) - ? + size)""",
            (int(self.max_bytes * 0.9),),
        )

    def _connection(self) -> sqlite3.Connection:
        """This thread's connection, opened after any fork (a connection never crosses one)."""
        local = self._local
        if getattr(local, "pid", None) != os.getpid():
            local.connection, local.pid = self._open(), os.getpid()
        return local.connection

    def _open(self) -> sqlite3.Connection:
        """Open (creating if needed) the cache file; autocommit, WAL, and no fsync: it is only a cache."""
        connection = sqlite3.connect(
            self.path, timeout=WRITE_TIMEOUT_SECONDS, isolation_level=None, check_same_thread=False
        )
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=OFF")
            connection.executescript(SCHEMA)
        except sqlite3.OperationalError as error:
            if "locked" in str(error) or "busy" in str(error):
                return connection  # another worker is creating it; the table exists by the next use
            connection.close()
            raise
        return connection

    def _broken(self, error: sqlite3.Error) -> None:
        """Delete a cache file that fails; the next use starts an empty one."""
        log.warning("page cache %s failed (%s); starting it again", self.path, error)
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
        self._local.pid = None
        for suffix in ("", "-wal", "-shm"):
            Path(f"{self.path}{suffix}").unlink(missing_ok=True)
