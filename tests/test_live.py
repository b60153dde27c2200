"""Live reload (development only): the event stream, what pages say about themselves, and its absence in production."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
import urllib.request

import pytest

from portal.security import CSP_HEADER

from .conftest import CACHING, CELERY, REDIS, do_import, write_entry
from .servers import BIN, PROJECT_ROOT, free_port, nexus_env

DEADLINE = 30.0


@pytest.fixture
def dev_app(make_app, content_dir):
    """The sample content, imported, in debug mode (what `make dev` serves)."""
    app = make_app(content_dir, DEBUG=True)
    do_import(app, content_dir)
    return app


def live_script(html: str) -> str | None:
    found = re.search(r'<script src="[^"]*/js/live\.js[^"]*"[^>]*>', html)
    return found.group(0) if found else None


def test_production_has_no_event_stream_and_no_live_script(client):
    assert client.get("/_live/events").status_code == 404
    assert live_script(client.get(f"/entries/{REDIS}").text) is None
    assert live_script(client.get("/").text) is None


@pytest.mark.parametrize(
    ("path", "entry"),
    [
        (f"/entries/{REDIS}", REDIS),  # an entry page reloads only when its entry changes
        ("/", ""),  # list pages reload on any change
        ("/tags/redis", ""),
        ("/search?q=redis", ""),
        ("/entries/no/such/entry", ""),  # a 404 page too: the entry may be about to be created
    ],
)
def test_dev_pages_load_the_live_script_and_say_what_they_show(dev_app, path, entry):
    response = dev_app.test_client().get(path)
    script = live_script(response.text)
    assert script is not None
    assert f'data-entry="{entry}"' in script
    assert 'data-events="/_live/events"' in script and 'data-generation="1"' in script
    # The policy is the production one: no inline script is needed.
    assert response.headers["Content-Security-Policy"] == CSP_HEADER
    assert "<script>" not in response.text


class Stream:
    """Read server-sent events from a streaming test response, with a deadline."""

    def __init__(self, response):
        self.chunks = response.iter_encoded()
        self.buffer = ""

    def next_event(self, name: str) -> dict:
        deadline = time.monotonic() + DEADLINE
        while True:
            while "\n\n" in self.buffer:
                block, self.buffer = self.buffer.split("\n\n", 1)
                fields = dict(line.split(": ", 1) for line in block.splitlines() if not line.startswith(":"))
                if fields.get("event") == name:
                    return json.loads(fields["data"])
            assert time.monotonic() < deadline, f"no {name!r} event in time"
            self.buffer += next(self.chunks).decode()  # a heartbeat at least every few seconds


def test_the_stream_names_the_entries_each_import_changed(dev_app, content_dir):
    response = dev_app.test_client().get("/_live/events", buffered=False)
    assert response.mimetype == "text/event-stream" and response.headers["Cache-Control"] == "no-store"
    stream = Stream(response)
    assert stream.next_event("hello") == {"generation": 1}
    write_entry(content_dir, "technologies/redis.md", "# Redis, edited\n\nStill a [[celery]] broker.\n")
    do_import(dev_app, content_dir)
    assert stream.next_event("change") == {"generation": 2, "slugs": [REDIS]}
    # Deleting an entry changes it and those whose links to it broke (they are rendered again).
    (content_dir / "technologies/celery.md").unlink()
    do_import(dev_app, content_dir)
    assert stream.next_event("change") == {"generation": 3, "slugs": [CELERY, REDIS]}
    response.close()


def test_a_change_of_the_introduction_alone_reaches_list_pages(dev_app, content_dir):
    response = dev_app.test_client().get("/_live/events", buffered=False)
    stream = Stream(response)
    stream.next_event("hello")
    write_entry(content_dir, "_intro.md", "Welcome.\n")
    do_import(dev_app, content_dir)
    assert stream.next_event("change") == {"generation": 2, "slugs": []}
    response.close()


def test_dev_command_needs_debug_mode(runner):
    result = runner.invoke(args=["dev"])
    assert result.exit_code == 2 and "flask --app portal --debug dev" in result.output


def test_make_dev_serves_watches_and_stops_on_ctrl_c(tmp_path, content_dir):
    """`flask --app portal --debug dev`: the reloading server, the watcher and the stream, stopped as Ctrl-C does."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [str(BIN / "flask"), "--app", "portal", "--debug", "dev", "--port", str(port)],
        cwd=PROJECT_ROOT,
        env=nexus_env(tmp_path / "instance", content_dir),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, as a terminal's foreground job
    )
    try:
        deadline = time.monotonic() + DEADLINE * 2
        while "Redis" not in _get(f"{base}/entries/{REDIS}"):
            assert process.poll() is None and time.monotonic() < deadline, "the dev server did not start"
            time.sleep(0.1)
        assert _get(f"{base}/_live/events", stream=True).startswith("retry: ")
        write_entry(content_dir, "concepts/caching.md", "# Caching, live\n\nText.\n")
        while "Caching, live" not in _get(f"{base}/entries/{CACHING}"):
            assert time.monotonic() < deadline, "the watcher did not import the change"
            time.sleep(0.1)
        os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C sends to the foreground process group
        output, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert process.returncode == 0
    assert "updated concepts/caching.md" in output
    assert "Traceback" not in output


def _get(url: str, stream: bool = False) -> str:
    """A page's text ('' while the server is not up); for a stream, its first bytes."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - local test server
            return response.read(20).decode() if stream else response.read().decode()
    except OSError:
        return ""
