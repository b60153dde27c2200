"""Live reload in development: Server-Sent Events that tell open pages an import changed what they show.

Registered only when the app runs in debug mode (`make dev`); production (wsgi.py and
gunicorn refuse debug mode) never serves it. Whoever imports (the dev server's watcher
thread, `flask watch`, a manual `flask import`), the importer writes `<instance>/generation`
after it commits; `LiveChanges` notices that file change, compares every entry's
`modified_at` with what it saw before, and publishes the generation with the changed slugs.
`static/js/live.js` reloads an entry page when its slug is among them, any other page on
any change.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from pathlib import Path

from flask import Blueprint, Flask, Response, current_app, has_request_context
from sqlalchemy import select

from ..generation import GENERATION_FILE, current_generation, request_generation
from ..models import Entry, db

bp = Blueprint("live", __name__)

#: How often the generation file is looked at (one `stat` per interval, whatever the number of pages open).
POLL_SECONDS = 0.1
#: A comment line this often, so that a closed tab's connection (and its server thread) ends.
HEARTBEAT_SECONDS = 5.0
#: How long a browser waits before reconnecting (e.g. while the dev server restarts after a code change).
RETRY_MS = 1000


class LiveChanges:
    """The recent content changes of one app: (generation, changed slugs), found by watching the generation file."""

    def __init__(self, app: Flask):
        self.app = app
        self.path = Path(app.instance_path) / GENERATION_FILE
        self._lock = threading.Lock()
        self._seen: tuple | None = None
        self._next_look = 0.0
        self._modified: dict[str, object] | None = None
        self.generation = 0
        self.events: deque[dict] = deque(maxlen=50)
        self.epoch = 0  # open streams end when it changes

    def close_streams(self) -> None:
        """End every open event stream (each browser reconnects by itself), e.g. before its server stops."""
        self.epoch += 1

    def since(self, generation: int) -> list[dict]:
        """Changes newer than `generation` (looking at the generation file at most every POLL_SECONDS)."""
        with self._lock:
            now = time.monotonic()
            if now >= self._next_look:
                self._next_look = now + POLL_SECONDS
                self._look()
            return [event for event in self.events if event["generation"] > generation]

    def _look(self) -> None:
        """Read the database when the generation file changed; publish what changed since the last read."""
        try:
            stat = self.path.stat()
            seen = (stat.st_mtime_ns, stat.st_ino, stat.st_size)
        except OSError:
            seen = None
        if seen == self._seen and self._modified is not None:
            return
        self._seen = seen
        with self.app.app_context():
            generation = current_generation()
            modified = dict(db.session.execute(select(Entry.slug, Entry.modified_at)).all())
            db.session.remove()
        if self._modified is not None and generation != self.generation:
            changed = {slug for slug, when in modified.items() if self._modified.get(slug) != when}
            changed |= self._modified.keys() - modified.keys()
            self.events.append({"generation": generation, "slugs": sorted(changed)})
        self._modified, self.generation = modified, generation


def _message(event: str, data: dict) -> str:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n"


@bp.get("/_live/events")
def events():
    """An event stream: `hello` with the current generation, then a `change` per import that changed content."""
    changes: LiveChanges = current_app.extensions["nexus.live"]
    changes.since(0)  # the first look reads the current state

    def stream():  # runs after the view returned: it uses only `changes`
        generation, epoch = changes.generation, changes.epoch
        yield f"retry: {RETRY_MS}\n" + _message("hello", {"generation": generation})
        quiet_since = time.monotonic()
        while changes.epoch == epoch:
            for event in changes.since(generation):
                yield _message("change", event)
                generation, quiet_since = event["generation"], time.monotonic()
            if time.monotonic() - quiet_since > HEARTBEAT_SECONDS:
                yield ": still here\n\n"
                quiet_since = time.monotonic()
            time.sleep(POLL_SECONDS)

    return Response(stream(), mimetype="text/event-stream", headers={"Cache-Control": "no-store"})


def _page_state() -> dict:
    """What the live-reload script tag of every page needs: that it is on, and the generation the page shows."""
    if not has_request_context():
        return {}
    return {"live_reload": True, "live_generation": request_generation()[0]}


def register(app: Flask) -> None:
    """In debug mode only: the event stream, and the script on every page."""
    if not app.debug:
        return
    app.extensions["nexus.live"] = LiveChanges(app)
    app.register_blueprint(bp)
    app.context_processor(_page_state)
