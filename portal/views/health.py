"""`/healthz` for load balancers and monitoring: is the database answering, and how far behind is this node's index."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from .. import queries
from ..generation import current_generation
from ..models import ImportRun, db, utcnow

bp = Blueprint("health", __name__)

#: After an import commits, every node brings its index up to date (in a second or two, or a full
#: rebuild's time); until then (at most this long) the older index is expected and still healthy.
#: A longer lag means this node stopped following the database.
INDEX_GRACE_SECONDS = 120


@bp.get("/healthz")
def healthz():
    """200 when the database answers and the index matches it (or is catching up); 503 with the reason otherwise."""
    from ..search import engine  # lazy: Whoosh loads with the first request that needs it, not with the views

    try:
        entries = queries.entry_count()
        generation = current_generation()
        last = queries.last_import()
        index_generation, documents = engine.check_index(current_app.instance_path)
        behind_since = _first_import_after(index_generation) if index_generation is not None else None
    except SQLAlchemyError as error:
        current_app.logger.warning("health check: database unavailable: %s", error)
        return jsonify(status="error", reason="database unavailable"), 503
    lag = (utcnow() - behind_since).total_seconds() if behind_since else 0.0
    body = {
        "status": "ok",
        "entries": entries,
        "index_documents": documents,
        "generation": generation,
        "index_generation": index_generation,
        "index_lag_seconds": round(lag, 3),
        "last_import": last.finished_at.isoformat() + "Z" if last else None,
    }
    if documents is None:
        body.update(status="error", reason="search index will not open")
    elif index_generation != generation:
        if index_generation is not None and index_generation < generation and lag < INDEX_GRACE_SECONDS:
            body["index_pending"] = True  # an import committed moments ago; this node's index follows
        else:
            body.update(
                status="error", reason=f"index is from generation {index_generation}, database is at {generation}"
            )
    elif documents != entries:
        body.update(status="error", reason=f"index has {documents} documents, database has {entries} entries")
    return jsonify(body), 200 if body["status"] == "ok" else 503


def _first_import_after(index_generation: int):
    """When the first import newer than the index finished: since then this node's index has been behind."""
    newer = select(func.min(ImportRun.finished_at)).where(ImportRun.id > index_generation)
    return db.session.scalar(newer)
