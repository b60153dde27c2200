"""WSGI entry point: `gunicorn wsgi:app`."""

from portal import create_app
from portal.config import require_secret_key
from portal.search import engine  # noqa: F401 - a worker loads the search engine before its first search, not during it

app = create_app()
require_secret_key(app)
if app.debug:  # FLASK_DEBUG=1 must never reach production
    raise RuntimeError("FLASK_DEBUG is set: refusing to serve Nexus in debug mode; unset it.")
