"""Live reload in development mode, in a real Chromium: a saved note shows in the open page without a manual reload."""

from __future__ import annotations

import logging
import threading

import pytest
from playwright.sync_api import expect
from werkzeug.serving import make_server

from portal.watch import start_thread

from ..conftest import CACHING, REDIS, write_entry
from .conftest import DEVICES

pytestmark = pytest.mark.browser
TIMEOUT_MS = 20_000


class Server:
    """The app served from a thread on 127.0.0.1 (threaded, as event streams need); stoppable and restartable."""

    def __init__(self, app, port: int = 0):
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self.app = app
        self.server = make_server("127.0.0.1", port, app, threaded=True)
        self.port = self.server.server_port
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
        self.app.extensions["nexus.live"].close_streams()  # as the dev server's process ending would
        self.thread.join(timeout=10)


@pytest.fixture
def dev_site(make_app, content_dir):
    """The sample content in development mode: the watcher thread and a server, as `make dev` runs them."""
    app = make_app(content_dir, DEBUG=True)
    lines: list[str] = []
    started = threading.Event()

    def echo(line, err=False):
        lines.append(line)
        if line.startswith("watching "):
            started.set()

    watcher, stop = start_thread(app, content_dir, echo=echo)
    assert started.wait(30), lines
    servers = [Server(app)]
    yield app, servers
    servers[-1].stop()
    stop.set()
    watcher.join(timeout=10)


@pytest.fixture
def context(browser):
    context = browser.new_context(viewport=DEVICES["desktop"])
    context.set_default_timeout(TIMEOUT_MS)
    yield context
    context.close()


def test_an_open_entry_page_shows_its_saved_file(dev_site, context, content_dir):
    app, servers = dev_site
    page = context.new_page()
    page.goto(f"http://127.0.0.1:{servers[0].port}/entries/{REDIS}")
    expect(page.locator("h1")).to_have_text("Redis")
    write_entry(content_dir, "technologies/redis.md", "# Redis, saved\n\nA sentence written just now.\n")
    expect(page.locator("h1")).to_have_text("Redis, saved", timeout=TIMEOUT_MS)
    expect(page.locator(".prose")).to_contain_text("A sentence written just now.")


def test_list_pages_reload_on_any_change_and_other_entries_stay(dev_site, context, content_dir):
    app, servers = dev_site
    base = f"http://127.0.0.1:{servers[0].port}"
    home = context.new_page()
    home.goto(base + "/")
    other = context.new_page()
    other.goto(f"{base}/entries/{CACHING}")
    expect(other.locator("html")).to_have_attribute("data-live-generation", "1")  # its stream is open
    other.evaluate("window.sameDocument = true")
    write_entry(content_dir, "notes/brand-new.md", "# A brand new note\n\nText.\n")
    expect(home.locator("main")).to_contain_text("A brand new note", timeout=TIMEOUT_MS)
    # The caching page heard of generation 2 (not about it) and was not reloaded.
    expect(other.locator("html")).to_have_attribute("data-live-generation", "2")
    assert other.evaluate("window.sameDocument") is True


def test_a_page_catches_up_after_the_dev_server_restarts(dev_site, context, content_dir):
    app, servers = dev_site
    port = servers[0].port
    page = context.new_page()
    page.goto(f"http://127.0.0.1:{port}/entries/{REDIS}")
    expect(page.locator("html")).to_have_attribute("data-live-generation", "1")
    servers[0].stop()
    # Saved while the server is down: no event can tell the page; the reconnection must.
    write_entry(content_dir, "technologies/redis.md", "# Redis, while away\n\nText.\n")
    servers.append(Server(app, port))
    expect(page.locator("h1")).to_have_text("Redis, while away", timeout=TIMEOUT_MS)
