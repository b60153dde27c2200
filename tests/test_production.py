"""The production server as operators run it: gunicorn with gunicorn.conf.py and wsgi.py."""

from __future__ import annotations

import http.client
import json
import re
import subprocess
from urllib.parse import urlsplit

import pytest

from .servers import BIN, PROJECT_ROOT, fetch, gunicorn, nexus_env

pytestmark = pytest.mark.slow


@pytest.fixture
def env(content_dir, tmp_path):
    """Settings for a gunicorn over the sample content and an empty instance folder."""
    return nexus_env(tmp_path / "instance", content_dir)


def raw_get(base: str, target: str, headers: dict | None = None) -> tuple[int, bytes, dict]:
    """GET a request target exactly as given (urllib would normalise it)."""
    parts = urlsplit(base)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        connection.putrequest("GET", target, skip_accept_encoding=True)
        for name, value in (headers or {}).items():
            connection.putheader(name, value)
        connection.endheaders()
        response = connection.getresponse()
        return response.status, response.read(), dict(response.getheaders())
    finally:
        connection.close()


def test_gunicorn_serves_with_headers_limits_and_one_log_line_per_request(env, tmp_path):
    log = tmp_path / "gunicorn.log"
    with gunicorn(env, workers=2, log_path=log) as base:
        status, page, headers = fetch(base + "/entries/technologies/celery")
        assert status == 200
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
        assert headers["X-Content-Type-Options"] == "nosniff" and headers["ETag"].startswith('W/"')
        status, body, _ = raw_get(base, "/entries/technologies/celery", {"If-None-Match": headers["ETag"]})
        assert status == 304 and body == b""

        # X-Forwarded-* from a peer are ignored unless NEXUS_TRUSTED_PROXIES says otherwise,
        # and gunicorn itself does not turn X-Forwarded-Proto into https either.
        forged = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil.example", "X-Forwarded-Prefix": "/x"}
        status, body, _ = raw_get(base, "/api/search?q=celery", forged)
        url = json.loads(body)["results"][0]["url"]
        assert url.startswith(base + "/entries/"), url

        # A query string over 4 KB: 414 from the app; a request line over 8 KB: 414 from gunicorn.
        assert raw_get(base, "/search?q=" + "a" * 5000)[0] == 414
        assert raw_get(base, "/search?q=" + "a" * 9000)[0] == 414
        assert raw_get(base, "/entries/..%2F..%2Fetc%2Fpasswd")[0] == 404
    lines = re.findall(r'^\S+ "GET (\S+) HTTP/1.1" (\d{3}) .* pid=<\d+>$', log.read_text(), flags=re.M)
    app_lines = [line for line in lines if line[0] != "/healthz"]  # the start-up probe asks /healthz
    assert len(app_lines) == 5  # six requests above; the 9 KB request line never reached the app
    assert "Traceback" not in log.read_text()


def test_gunicorn_refuses_to_start_in_debug_mode(env, tmp_path):
    env = dict(env, FLASK_DEBUG="1", NEXUS_GUNICORN_BIND="127.0.0.1:0")
    result = subprocess.run(
        [str(BIN / "gunicorn"), "-c", "gunicorn.conf.py", "wsgi:app"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "refuses to serve in debug mode" in result.stdout + result.stderr
