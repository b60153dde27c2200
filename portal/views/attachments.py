"""Files linked from entries (images beside notes, PDFs), served from the database by their hash."""

from __future__ import annotations

import io

from flask import Blueprint, abort, send_file

from .. import queries
from ..attachments import serving

bp = Blueprint("attachments", __name__)

#: The URL names the bytes' hash, so an answer never goes stale.
MAX_AGE = 365 * 24 * 3600


@bp.get("/files/<digest>/<name>")
def attachment(digest, name):
    """One stored file; its type decides whether the browser shows it (sandboxed) or downloads it."""
    found = queries.attachment(digest, name)
    if found is None:
        abort(404)
    media_type, inline, policy = serving(found.type)
    response = send_file(
        io.BytesIO(found.data),
        mimetype=media_type,
        as_attachment=not inline,
        download_name=name,
        conditional=True,
        etag=digest,
        last_modified=None,
        max_age=MAX_AGE,
    )
    response.headers["Cache-Control"] = f"public, max-age={MAX_AGE}, immutable"
    if policy:
        response.headers["Content-Security-Policy"] = policy
    return response
