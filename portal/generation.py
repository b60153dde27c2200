"""The content generation: which import the database, the index and every answer belong to.

Each import that changes content adds an `ImportRun` row; its id is the generation. After it
commits, the importer writes `<instance>/generation`, so this node's workers notice the new
generation with one `stat` instead of asking the database on every request. Each index
directory carries the same file, naming the generation it was built from.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from pathlib import Path

from flask import current_app, request
from sqlalchemy import func, select

from .models import ImportRun, db

#: The file that names a generation: in the instance folder (the newest import on this node)
#: and in each index directory (the generation it was built from).
GENERATION_FILE = "generation"
#: The last import that changed content: the generation (its id) and when it finished.
LAST_IMPORT = select(ImportRun.id, ImportRun.finished_at).order_by(ImportRun.id.desc()).limit(1)
#: WSGI environ key of the generation a request answers from (see `request_generation`).
REQUEST_KEY = "nexus.generation"


def current_generation() -> int:
    """The id of the last import that changed something (0 before any), read from the database."""
    return db.session.scalar(select(func.coalesce(func.max(ImportRun.id), 0))) or 0


def announce_generation(instance_path, generation: int) -> None:
    """Tell this node's workers that an import committed, without their asking the database."""
    write_generation(Path(instance_path), generation)


def write_generation(folder: Path, generation: int) -> None:
    """Write `folder/generation` atomically (written aside, then renamed over the old one)."""
    path = folder / GENERATION_FILE
    temporary = path.with_name(f".{GENERATION_FILE}.{os.getpid()}")
    temporary.write_text(f"{generation}\n")
    os.replace(temporary, path)


def read_generation(folder: Path) -> int | None:
    """The generation written in `folder`, or None if there is none."""
    try:
        return int((Path(folder) / GENERATION_FILE).read_text().strip())
    except (OSError, ValueError):
        return None


def request_generation() -> tuple[int, dt.datetime | None]:
    """(generation, finished_at) this request answers from: read once, the first time anything asks.

    Validators, the tag graph and every query of one request then agree on the content they describe.
    """
    environ = request.environ
    if REQUEST_KEY not in environ:
        watch: GenerationWatch = current_app.extensions["nexus.generation"]
        environ[REQUEST_KEY] = watch.current(read_last_import)
    return environ[REQUEST_KEY]


def read_last_import():
    """The last import's (id, finished_at) row, or None, in the current app context."""
    return db.session.connection().execute(LAST_IMPORT).first()


class GenerationWatch:
    """The content generation (id and finish time of the last import), read from the database only when it may have changed.

    An import on this node writes `instance/generation` once it commits, which every worker
    notices with one `stat`; an import on another node sharing the database is noticed by
    reading the database at most every `interval` seconds (0: on every request, exact).
    """

    def __init__(self, instance_path, interval: float):
        self.path = Path(instance_path) / GENERATION_FILE
        self.interval = interval
        self._seen = None
        self._value: tuple[int, dt.datetime | None] = (0, None)
        self._next_read = 0.0

    def current(self, read_last_import) -> tuple[int, dt.datetime | None]:
        """(generation, finished_at); `read_last_import()` gives the last ImportRun row (or None) when a read is due."""
        try:
            stat = os.stat(self.path)
            seen = (stat.st_mtime_ns, stat.st_ino, stat.st_size)
        except OSError:
            seen = None
        now = time.monotonic()
        if self.interval <= 0 or seen != self._seen or now >= self._next_read:
            last = read_last_import()
            self._value = (last.id, last.finished_at) if last else (0, None)
            self._seen, self._next_read = seen, now + self.interval
        return self._value
