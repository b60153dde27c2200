"""`/healthz` for load balancers and monitoring."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify
from sqlalchemy.exc import SQLAlchemyError

from .. import queries, search
from ..importer import current_generation

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    """200 when the database answers and the index matches it; 503 with the reason otherwise."""
    try:
        entries = queries.entry_count()
        generation = current_generation()
        last = queries.last_import()
    except SQLAlchemyError as error:
        current_app.logger.warning("health check: database unavailable: %s", error)
        return jsonify(status="error", reason="database unavailable"), 503
    index_generation, documents = search.check_index(current_app.instance_path)
    body = {
        "status": "ok",
        "entries": entries,
        "index_documents": documents,
        "generation": generation,
        "index_generation": index_generation,
        "last_import": last.finished_at.isoformat() + "Z" if last else None,
    }
    if documents is None:
        body.update(status="error", reason="search index will not open")
    elif documents != entries:
        body.update(status="error", reason=f"index has {documents} documents, database has {entries} entries")
    return jsonify(body), 200 if body["status"] == "ok" else 503
