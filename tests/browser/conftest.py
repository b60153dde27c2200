"""A real Chromium (Debian's, driven by Playwright) against Nexus serving the shipped content.

The content is imported once per session into a temporary instance folder and served by a
werkzeug server thread on 127.0.0.1. Never run `playwright install`: these tests use
/usr/bin/chromium, which `.ci/run` installs with apt-get.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import threading
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from portal import create_app
from portal.importer import import_content
from portal.models import db

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SHIPPED_CONTENT = PROJECT_ROOT / "content"
SCREENSHOTS = PROJECT_ROOT / "screenshots"
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
DEVICES = {"desktop": {"width": 1280, "height": 800}, "phone": {"width": 360, "height": 740}}
ERD_SLUG = "concepts/entity-relationship-diagrams"

#: One URL per page type, over the shipped content (name → path).
PAGE_TYPES = {
    "home": "/",
    "entry": "/entries/technologies/celery",
    "entry-diagram": f"/entries/{ERD_SLUG}",
    "kind": "/kinds/technology",
    "tags": "/tags",
    "tag": "/tags/docker",
    "filter": "/entries?all=django,celery",
    "search": "/search?q=redis",
    "search-empty": "/search",
    "search-no-results": "/search?q=zzyzx",
    "not-found": "/no-such-page",
    "bad-request": "/search?q=redis&page=first",
}

#: Collects Content-Security-Policy violations the page reports (none are allowed), from the first script on.
RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__cspViolations.push(`${e.violatedDirective} ${e.blockedURI} ${e.sample || ""} ${e.sourceFile}:${e.lineNumber}`);
});
"""

pytestmark = pytest.mark.browser
#: CI sets this: a browser test that cannot run is then a failure, never a skip.
REQUIRE_BROWSER = os.environ.get("NEXUS_REQUIRE_BROWSER") == "1"
INSTALL = "install it with: sudo scripts/system-deps.sh (`make test` does, when run as root on Debian)"


def pytest_collection_modifyitems(config, items):
    """Browser tests on a machine without Chromium (or the Nu checker) are skipped with one line that says how to install it."""
    from .test_html_validation import missing_tools

    reasons = {"chromium": None if Path(CHROMIUM).exists() else f"Chromium is not installed at {CHROMIUM}: {INSTALL}"}
    reasons["vnu"] = missing_tools()
    for item in items:
        if "browser" not in item.keywords:
            continue
        reason = reasons["chromium"] or (reasons["vnu"] if "html_validation" in item.nodeid else None)
        if reason and REQUIRE_BROWSER:
            raise pytest.UsageError(f"NEXUS_REQUIRE_BROWSER=1, but {reason}")
        if reason:
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def shipped_app(tmp_path_factory):
    """An app over the shipped content, imported once into a temporary instance folder."""
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.startswith("NEXUS_"):
                patch.delenv(name)
        app = create_app(
            {
                "TESTING": True,
                "SECRET_KEY": "browser-tests",
                "INSTANCE_PATH": str(tmp_path_factory.mktemp("browser-instance")),
                "CONTENT_DIR": str(SHIPPED_CONTENT),
                "PAGE_CACHE_MB": 0,
            }
        )
    with app.app_context():
        report = import_content(SHIPPED_CONTENT, app.instance_path)
        assert not report.errors, report.errors
        db.session.remove()
    yield app
    app.extensions["nexus.searchers"].close()


@contextlib.contextmanager
def serving(app, name: str):
    """`app` served over HTTP on a free 127.0.0.1 port, in a thread called `name`: yields its base URL."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name=name, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()


@pytest.fixture(scope="session")
def base_url(shipped_app):
    """The shipped-content app served over HTTP on a free 127.0.0.1 port."""
    with serving(shipped_app, "nexus-browser-tests") as url:
        yield url


@pytest.fixture(scope="session")
def browser():
    """Debian's Chromium, headless; a clear failure (not a skip) when it is missing."""
    if not (shutil.which(CHROMIUM) or Path(CHROMIUM).exists()):
        pytest.fail(
            f"Chromium not found at {CHROMIUM}. Install it with "
            "`apt-get install chromium chromium-driver` (as .ci/run does); do not run `playwright install`."
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def open_page(browser, base_url):
    """Open pages in fresh contexts: `open_page(path, device=..., scheme=..., **context_options)`."""
    contexts = []

    def _open(path: str | None = None, *, device: str = "desktop", scheme: str = "light", **options):
        context = browser.new_context(viewport=DEVICES[device], color_scheme=scheme, base_url=base_url, **options)
        context.set_default_timeout(10_000)
        contexts.append(context)
        page = context.new_page()
        page.errors = []
        page.on("pageerror", lambda error: page.errors.append(str(error)))
        if path is not None:
            page.goto(path)
        return page

    yield _open
    for context in contexts:
        context.close()


def wait_for_diagrams(page) -> None:
    """Wait until every Mermaid block on the page has been drawn."""
    page.wait_for_function(
        "[...document.querySelectorAll('pre.mermaid')].every(pre => pre.querySelector(':scope > svg'))"
    )
