"""Nexus: a searchable, tag-browsable site built from a folder of Markdown notes."""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path

from flask import Flask

from . import config


def create_app(test_config: dict | None = None) -> Flask:
    """Build a configured app; nothing happens at import time."""
    app = Flask(
        __name__,
        instance_path=config.instance_path(),
        instance_relative_config=True,
        template_folder=str(config.PROJECT_ROOT / "templates"),
        static_folder=str(config.PROJECT_ROOT / "static"),
    )
    app.config.from_mapping(config.defaults())
    app.config.update(config.from_environment())
    if test_config:
        if "INSTANCE_PATH" in test_config:
            app.instance_path = os.path.abspath(test_config["INSTANCE_PATH"])
        app.config.update(test_config)
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    if not app.config["SQLALCHEMY_DATABASE_URI"]:
        app.config["SQLALCHEMY_DATABASE_URI"] = "sqlite:///" + os.path.join(app.instance_path, "nexus.sqlite3")
    _configure_logging(app)
    app.config["SECRET_KEY"] = app.config["SECRET_KEY"] or _secret_key(app)  # production checks: wsgi.py
    app.json.sort_keys = False

    from . import cli, graph, http, index_sync, models, search, views

    models.db.init_app(app)
    with app.app_context():
        models.configure_engine_events(models.db.engine)
        _create_schema(app)
    app.extensions["nexus.searchers"] = search.SearcherPool(app.instance_path)
    app.extensions["nexus.graph"] = graph.GraphCache()
    views.register(app)
    http.register(app)
    index_sync.register(app)
    cli.register(app)
    return app


KEY_FILE = "secret_key"


def _secret_key(app: Flask) -> str | None:
    """The key kept in the instance folder (`flask --app portal secret-key` writes it), if any."""
    path = Path(app.instance_path) / KEY_FILE
    if not path.exists():
        return None
    return path.read_text().strip() or None


def write_secret_key(instance_path) -> tuple[Path, bool]:
    """Create `<instance>/secret_key` (owner-only) unless it exists; (path, whether it was created)."""
    path = Path(instance_path) / KEY_FILE
    if path.exists():
        return path, False
    temporary = path.with_name(f".{KEY_FILE}.{os.getpid()}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_hex(32))
    try:
        os.link(temporary, path)  # atomic: the first process to get here wins
        return path, True
    except FileExistsError:
        return path, False
    finally:
        temporary.unlink()


def require_secret_key(app: Flask) -> None:
    """Production start-up (wsgi.py, gunicorn's master): no key is a clear error, not a silent default."""
    if not app.config.get("SECRET_KEY"):
        raise RuntimeError(
            f"No secret key: set NEXUS_SECRET_KEY, or create {Path(app.instance_path) / KEY_FILE} "
            "with `flask --app portal secret-key` (`make run` does this)."
        )


def _create_schema(app: Flask) -> None:
    """Create missing tables under the import lock, then drop connections before any fork."""
    from .importer import import_lock
    from .models import db

    with import_lock(app.instance_path, engine=db.engine):
        db.create_all()
        with db.engine.begin() as connection:  # indexes added since a database was created
            for table in db.metadata.sorted_tables:
                for index in table.indexes:
                    index.create(connection, checkfirst=True)  # skips indexes for another dialect
    db.session.remove()
    db.engine.dispose()


def _configure_logging(app: Flask) -> None:
    """Nexus loggers write to stderr (gunicorn's error log) at INFO."""
    logger = logging.getLogger("portal")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("[%(asctime)s] %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
