"""What every answer shares for safety: security headers, a query-string limit, and which proxies to trust."""

from __future__ import annotations

from flask import Flask, Response, request
from werkzeug.exceptions import RequestURITooLarge
from werkzeug.middleware.proxy_fix import ProxyFix

#: Longest query string answered; longer ones get 414 before any database work.
MAX_QUERY_STRING = 4096

#: Everything comes from this origin. Scripts and styles only from files (no inline code):
#: vendored libraries under /static/vendor are covered by 'self'. Images may be linked from
#: any https site, as notes often do; `data:` serves small icons in vendored stylesheets.
CONTENT_SECURITY_POLICY = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self'",
    "img-src": "'self' https: data:",
    "font-src": "'self'",
    "connect-src": "'self'",
    "object-src": "'none'",
    "base-uri": "'none'",
    "form-action": "'self'",
    "frame-ancestors": "'none'",
}
CSP_HEADER = "; ".join(f"{directive} {sources}" for directive, sources in CONTENT_SECURITY_POLICY.items())
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "strict-origin-when-cross-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": (
        "accelerometer=(), camera=(), geolocation=(), gyroscope=(), magnetometer=(), microphone=(), payment=(), usb=()"
    ),
}


def register(app: Flask) -> None:
    """Install the query-string limit and the headers; before `caching.register`, so no oversized URL reaches it."""
    app.before_request(_limit_query_string)
    app.after_request(_add_headers)


def trust_proxies(app: Flask) -> None:
    """Read `X-Forwarded-*` from the configured number of proxies; the outermost layer, as page cache keys hold the public URL."""
    trusted = app.config["TRUSTED_PROXIES"]
    if trusted:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=trusted, x_proto=trusted, x_host=trusted, x_port=trusted, x_prefix=trusted)  # fmt: skip


def _limit_query_string():
    """414 for an oversized query string, before any other work."""
    if len(request.query_string) > MAX_QUERY_STRING:
        raise RequestURITooLarge(f"The query string is longer than {MAX_QUERY_STRING} bytes.")


def _add_headers(response: Response) -> Response:
    """Security headers on every answer; HSTS when served over https."""
    response.headers.setdefault("Content-Security-Policy", CSP_HEADER)
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if request.is_secure:
        response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
    return response
