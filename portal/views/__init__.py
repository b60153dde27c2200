"""Blueprints and template helpers."""

from __future__ import annotations

from flask import Flask

from ..kinds import KINDS


def register(app: Flask) -> None:
    """Attach every blueprint, error handler and template helper."""
    from . import admission, api, attachments, errors, feeds, health, live, pages, search, tags, urls

    app.extensions["nexus.search_slots"] = admission.SearchSlots(app.config["SEARCH_SLOTS"])

    app.register_blueprint(pages.bp)
    app.register_blueprint(tags.bp)
    app.register_blueprint(search.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(feeds.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(attachments.bp)
    errors.register(app)
    live.register(app)  # development only
    app.jinja_env.globals.update(
        KINDS=KINDS, site_name=app.config["SITE_NAME"], site_description=app.config["SITE_DESCRIPTION"]
    )
    app.jinja_env.globals["url_for"] = urls.UrlCache(app).url_for
    app.jinja_env.filters["isodate"] = lambda d: d.isoformat() if d else ""
    app.jinja_env.filters["longdate"] = lambda d: f"{d:%-d %B %Y}" if d else ""
