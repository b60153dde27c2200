"""Keep this node's search index in step with the database's import generation.

With several nodes on one PostgreSQL database, only one node imports; the others notice
the new generation and rebuild their own local index from the database in a background
thread, serving the old index until the new one is swapped in.
"""

from __future__ import annotations

import logging
import threading
import time

from flask import Flask

from .generation import current_generation
from .indexing import sync_index
from .locking import ImportBusy, import_lock
from .models import db
from .search import store

log = logging.getLogger(__name__)


class IndexSync:
    """A per-process check, at most every `interval` seconds, that rebuilds a stale local index."""

    def __init__(self, app: Flask, interval: float):
        self.app = app
        self.interval = interval
        self._next_check = 0.0
        self._thread: threading.Thread | None = None
        self._guard = threading.Lock()

    def check(self) -> bool:
        """Start a background rebuild if the index is behind the database; True if one started."""
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
        directory = store.live_index_dir(self.app.instance_path)
        index_generation = store.index_generation(directory) if directory else None
        return current_generation() != index_generation

    def wait(self, timeout: float | None = None) -> None:
        """Wait for a running rebuild (tests and the CLI use this)."""
        if self._thread is not None:
            self._thread.join(timeout)

    def _rebuild(self) -> None:
        """Rebuild under this node's import lock; if an import holds it, it will swap the index itself."""
        with self.app.app_context():
            try:
                with import_lock(self.app.instance_path, wait=False):
                    if self.is_stale():
                        log.info("database generation changed: rebuilding this node's search index")
                        sync_index(self.app.instance_path)
            except ImportBusy:
                log.debug("index sync skipped: an import or rebuild is running on this node")
            except Exception:
                log.exception("rebuilding the search index from the database failed")
            finally:
                db.session.remove()


def register(app: Flask) -> None:
    """Check the generation before requests (throttled), so every node follows the database."""
    sync = IndexSync(app, float(app.config["INDEX_CHECK_SECONDS"]))
    app.extensions["nexus.index_sync"] = sync

    @app.before_request
    def _follow_the_database():
        sync.check()
