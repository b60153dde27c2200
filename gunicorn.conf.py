"""gunicorn settings for Nexus; every value can be overridden by a `NEXUS_GUNICORN_*` or gunicorn's own flags."""

import multiprocessing
import os


def _env(name, default):
    return os.environ.get(f"NEXUS_GUNICORN_{name}", default)


bind = _env("BIND", "127.0.0.1:8000")
workers = int(_env("WORKERS", min(multiprocessing.cpu_count() * 2 + 1, 9)))
# Threads that only ever get complete request heads, and threads of their own for searches
# (portal/serving.py): idle or slow clients and bursts of searches cannot take every thread.
worker_class = _env("WORKER_CLASS", "portal.serving.HeadFirstWorker")
threads = int(_env("THREADS", 4))
timeout = int(_env("TIMEOUT", 30))
graceful_timeout = int(_env("GRACEFUL_TIMEOUT", 20))
keepalive = int(_env("KEEPALIVE", 5))
max_requests = int(_env("MAX_REQUESTS", 0))
max_requests_jitter = int(_env("MAX_REQUESTS_JITTER", 0))
accesslog = _env("ACCESSLOG", "-")
errorlog = _env("ERRORLOG", "-")
loglevel = _env("LOGLEVEL", "info")
access_log_format = _env("ACCESS_LOG_FORMAT", '%(h)s "%(r)s" %(s)s %(B)s %(M)sms "%(f)s" "%(a)s" pid=%(p)s')
# gunicorn 27 opens a control socket under $HOME by default; Nexus does not need it.
control_socket_disable = _env("CONTROL_SOCKET_DISABLE", "1") not in ("0", "false", "no")
# Request line (method, URL, version) and header limits; longer lines get 414 from gunicorn itself.
limit_request_line = int(_env("LIMIT_REQUEST_LINE", 8190))
limit_request_fields = int(_env("LIMIT_REQUEST_FIELDS", 100))
limit_request_field_size = int(_env("LIMIT_REQUEST_FIELD_SIZE", 8190))
# X-Forwarded-* are trusted by the app only when NEXUS_TRUSTED_PROXIES is set (Werkzeug's ProxyFix);
# gunicorn itself trusts no peer for them, so one setting decides.
forwarded_allow_ips = _env("FORWARDED_ALLOW_IPS", "")
# Never in production: code reloading and the debugger stay off whatever the environment says.
reload = False


def on_starting(server):
    """In the master, before any worker forks: import into an empty site or rebuild a broken index."""
    from portal import create_app
    from portal.config import import_settings, require_secret_key
    from portal.importer import ensure_ready
    from portal.models import db

    app = create_app()
    if app.debug:
        raise RuntimeError("FLASK_DEBUG is set: Nexus refuses to serve in debug mode under gunicorn; unset it.")
    require_secret_key(app)
    key_source = "NEXUS_SECRET_KEY" if os.environ.get("NEXUS_SECRET_KEY") else f"{app.instance_path}/secret_key"
    server.log.info("Nexus secret key from %s", key_source)
    with app.app_context():
        outcome = ensure_ready(app.config["CONTENT_DIR"], app.instance_path, **import_settings(app.config))
        db.session.remove()
        db.engine.dispose()  # no connection may cross the fork
    server.log.info("Nexus start-up: %s", outcome)


def post_worker_init(worker):
    """In each worker: stand for this node's index listener, which one worker holds (PostgreSQL; see portal/index_sync.py)."""
    from portal.index_sync import start_listener

    start_listener(worker.wsgi)
