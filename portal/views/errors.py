"""Error pages in the site's layout; JSON for API clients."""

from __future__ import annotations

from flask import Flask, Response, jsonify, render_template, request
from sqlalchemy.exc import InterfaceError, OperationalError
from werkzeug.exceptions import HTTPException, InternalServerError, SecurityError, ServiceUnavailable

from ..models import first_line


def _wants_json() -> bool:
    return request.path == "/api" or request.path.startswith("/api/")


def _handle_http(error: HTTPException):
    """Any HTTP error: JSON under /api/, the site's error page elsewhere."""
    # Keep the error's own headers (`Allow` on a 405) but not its content type.
    headers = [(name, value) for name, value in error.get_headers() if name.lower() != "content-type"]
    if _wants_json():
        body = {"error": {"code": error.code, "message": error.description or error.name}}
        suggestions = getattr(error, "suggestions", None)
        if suggestions is not None:
            body["error"]["suggestions"] = [tag.slug for tag in suggestions]
        return jsonify(body), error.code, headers
    template = "errors/404.html" if error.code == 404 else "errors/error.html"
    return render_template(template, error=error), error.code, headers


def _handle_untrusted_host(error: SecurityError):
    """A `Host` not in NEXUS_ALLOWED_HOSTS: a plain 400, since no URL can be built for that host (nor should be)."""
    return Response("400 Bad Request: this site is not served under that host name.\n", 400, mimetype="text/plain")


def _handle_unexpected(error: Exception):
    """An unexpected exception: logged with its traceback, shown as a plain 500."""
    from flask import current_app

    current_app.logger.exception("unhandled error on %s", request.path)
    return _handle_http(InternalServerError())


def _handle_database_down(error: OperationalError | InterfaceError):
    """The database does not answer (restarting, unreachable): a 503 page that says so, logged in one line."""
    from flask import current_app

    current_app.logger.warning("database unavailable on %s: %s", request.path, first_line(error))
    body, status, headers = _handle_http(
        ServiceUnavailable("The database is not answering. Please try again in a moment.")
    )
    return body, status, [*headers, ("Retry-After", "5")]


def register(app: Flask) -> None:
    """Install the handlers."""
    app.register_error_handler(HTTPException, _handle_http)
    app.register_error_handler(SecurityError, _handle_untrusted_host)
    app.register_error_handler(OperationalError, _handle_database_down)
    app.register_error_handler(InterfaceError, _handle_database_down)
    app.register_error_handler(Exception, _handle_unexpected)
