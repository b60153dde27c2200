"""Nexus: a searchable, tag-browsable site built from a folder of Markdown notes."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from flask import Flask

from . import collector, config
from .config import require_secret_key

__all__ = ["create_app", "require_secret_key"]


@collector.paused()  # building the app: 150-odd young collections and a full one, for nothing
def create_app(test_config: dict | None = None) -> Flask:
    """Build a configured app; nothing happens at import time."""
    app = Flask(
        __name__,
        instance_path=config.instance_path(),
        instance_relative_config=True,
        template_folder=str(config.resource("templates")),
        static_folder=str(config.resource("static")),
    )
    app.config.from_mapping(config.defaults())
    app.config.update(config.from_environment())
    if test_config:
        if "INSTANCE_PATH" in test_config:
            app.instance_path = os.path.abspath(test_config["INSTANCE_PATH"])
        app.config.update(test_config)
    config.check(app.config)
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    if not app.config["SQLALCHEMY_DATABASE_URI"]:
        app.config["SQLALCHEMY_DATABASE_URI"] = "sqlite:///" + os.path.join(app.instance_path, "nexus.sqlite3")
    _configure_logging(app)
    app.config["SECRET_KEY"] = app.config["SECRET_KEY"] or config.read_secret_key(app.instance_path)
    app.json.sort_keys = False

    from . import caching, cli, graph, index_sync, models, queries, security, views
    from .search import searchers

    models.db.init_app(app)
    with app.app_context():
        models.configure_engine_events(models.db.engine)
        _create_schema(app)
    app.extensions["nexus.searchers"] = searchers.SearcherPool(app.instance_path)
    app.extensions["nexus.graph"] = graph.GraphCache()
    app.extensions["nexus.listed"] = queries.ListedCache()
    views.register(app)
    security.register(app)
    caching.register(app)
    security.trust_proxies(app)
    index_sync.register(app)
    cli.register(app)
    return app


def _create_schema(app: Flask) -> None:
    """Create missing tables under the import lock, then drop connections before any fork."""
    from .locking import import_lock
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
