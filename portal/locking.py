"""The one-writer lock: one import (or index rebuild) at a time, on this node and across nodes.

Whoosh allows one writer at a time and SQLite one write transaction; with PostgreSQL several
nodes may share the database, so the lock is a file lock on this node plus an advisory lock
in the database. Both are released if the holder dies.
"""

from __future__ import annotations

import contextlib
import fcntl
import time
from pathlib import Path

from sqlalchemy import text

LOCK_FILE = "import.lock"
#: Key of the PostgreSQL advisory lock that lets one importer run across all nodes.
ADVISORY_LOCK_KEY = 0x4E455855  # "NEXU"
# Advisory locks belong to the whole database: the lock is keyed by the schema too, so that one
# site's import does not hold up another's kept in another schema of the same database.
_TRY_LOCK = text("SELECT pg_try_advisory_lock(:key, hashtext(current_schema()))")
_UNLOCK = text("SELECT pg_advisory_unlock(:key, hashtext(current_schema()))")


class ImportBusy(Exception):
    """Another import holds the lock."""


@contextlib.contextmanager
def import_lock(instance_path, *, wait: bool = True, timeout: float = 600.0, engine=None):
    """Hold the one-importer lock: a file lock on this node, plus an advisory lock on PostgreSQL."""
    deadline = time.monotonic() + timeout
    with _file_lock(Path(instance_path), wait, deadline), _database_lock(engine, wait, deadline):
        yield


@contextlib.contextmanager
def _file_lock(instance: Path, wait: bool, deadline: float):
    """An exclusive `flock` on `<instance>/import.lock` (released if the process dies)."""
    instance.mkdir(parents=True, exist_ok=True)
    handle = open(instance / LOCK_FILE, "a+")  # noqa: SIM115 - held for the block
    try:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not wait or time.monotonic() > deadline:
                    raise ImportBusy("another import is running; try again when it has finished") from None
                time.sleep(0.1)
        yield
    finally:
        handle.close()


@contextlib.contextmanager
def _database_lock(engine, wait: bool, deadline: float):
    """On PostgreSQL, a session advisory lock shared by every node of the site's schema (released if the session ends)."""
    if engine is None or engine.dialect.name != "postgresql":
        yield
        return
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        while not connection.execute(_TRY_LOCK, {"key": ADVISORY_LOCK_KEY}).scalar():
            if not wait or time.monotonic() > deadline:
                raise ImportBusy("another import is running on another node; try again when it has finished")
            time.sleep(0.2)
        try:
            yield
        finally:
            connection.execute(_UNLOCK, {"key": ADVISORY_LOCK_KEY})
