"""`/healthz` for load balancers and monitoring."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify
from sqlalchemy.exc import SQLAlchemyError

from .. import queries
from ..generation import current_generation
from ..models import utcnow
from ..search import engine

bp = Blueprint("health", __name__)

#: After an import commits, its new index is built and swapped in; until then (at most this
#: long) the older index is expected and still healthy. A longer gap means the import died.
INDEX_GRACE_SECONDS = 120


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
    index_generation, documents = engine.check_index(current_app.instance_path)
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
    elif index_generation != generation:
        since = (utcnow() - last.finished_at).total_seconds() if last else None
        if index_generation is not None and index_generation < generation and since < INDEX_GRACE_SECONDS:
            body["index_pending"] = True  # an import committed moments ago; its index is being built
        else:
            body.update(
                status="error", reason=f"index is from generation {index_generation}, database is at {generation}"
            )
    elif documents != entries:
        body.update(status="error", reason=f"index has {documents} documents, database has {entries} entries")
    return jsonify(body), 200 if body["status"] == "ok" else 503
