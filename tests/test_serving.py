"""End to end: real gunicorn on a free 127.0.0.1 port, importing on start and after edits."""

from __future__ import annotations

import json

import pytest

from .conftest import write_entry
from .servers import fetch, flask_cli, gunicorn, nexus_env

pytestmark = pytest.mark.slow


@pytest.fixture
def site(content_dir, tmp_path):
    """A content folder and an empty instance folder, as on a fresh checkout."""
    return content_dir, tmp_path / "instance"


def test_gunicorn_imports_an_empty_site_on_start_and_serves_it(site, tmp_path):
    content, instance = site
    env = nexus_env(instance, content)
    with gunicorn(env, workers=2, log_path=tmp_path / "gunicorn.log") as base:
        status, home, _ = fetch(base + "/")
        assert status == 200 and "Slow report generation" in home
        status, page, _ = fetch(base + "/entries/technologies/celery")
        assert status == 200 and "<strong>background tasks</strong>" in page
        status, body, _ = fetch(base + "/healthz")
        assert status == 200 and json.loads(body)["entries"] == 5

        # Edit a file, import with the CLI: the running site shows the change without a restart.
        write_entry(content, "technologies/celery.md", "---\ntitle: Celery, revised\n---\nNew body about zeppelins.\n")
        result = flask_cli(env, "import")
        assert result.returncode == 0, result.stderr
        assert "1 updated" in result.stdout
        for _ in range(6):  # every worker, whichever answers
            status, page, _ = fetch(base + "/entries/technologies/celery")
            assert status == 200 and "Celery, revised" in page
            status, body, _ = fetch(base + "/api/search?q=zeppelins")
            assert [r["slug"] for r in json.loads(body)["results"]] == ["technologies/celery"]
    log = (tmp_path / "gunicorn.log").read_text()
    assert "Nexus start-up: imported 5 entries" in log
    assert "Traceback" not in log
