"""Someone else's notes in a real Chromium: images beside notes show, an SVG's script never runs, the topics home page.

A collection made in the test (topic folders, no kinds, files beside the notes), imported and
served by a werkzeug thread on 127.0.0.1; the browser is the session's Debian Chromium.
"""

from __future__ import annotations

import struct
import zlib

import pytest

from ..conftest import do_import, write_entry
from .conftest import DEVICES, SCREENSHOTS, serving
from .test_accessibility import AXE, RUN_AXE, WCAG_TAGS, describe

pytestmark = pytest.mark.browser

RAN = "svg script ran"
#: An SVG that tries to run script three ways: a script element, an event handler, a javascript: link.
HOSTILE_SVG = f"""<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink"
  width="40" height="20" onload="console.log('{RAN}')">
  <script>console.log('{RAN}'); alert('{RAN}');</script>
  <a xlink:href="javascript:console.log('{RAN}')"><rect width="40" height="20" fill="teal"/></a>
</svg>""".encode()


def png(width: int = 4, height: int = 3) -> bytes:
    """A real (grey) PNG image, so the browser can decode it."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


@pytest.fixture
def collection_url(make_app, tmp_path):
    """A TIL-like collection with files beside its notes, served over HTTP."""
    root = tmp_path / "notes"
    write_entry(
        root,
        "sqlite/erd.md",
        "---\ndate: 2024-02-01\n---\n# ERD\n\n![tables](img/erd.png)\n\n![drawing](../drawing.svg)\n",
    )
    write_entry(root, "sqlite/fts5.md", "---\ndate: 2024-01-01\n---\n# FTS5\n\nFull-text search.\n")
    write_entry(root, "docker/prune.md", "---\ndate: 2023-01-01\n---\n# Prune images\n\n`docker image prune`.\n")
    (root / "sqlite/img").mkdir()
    (root / "sqlite/img/erd.png").write_bytes(png())
    (root / "drawing.svg").write_bytes(HOSTILE_SVG)
    app = make_app(root)
    assert do_import(app, root).errors == []
    with serving(app, "nexus-collection-tests") as url:
        yield url


@pytest.fixture
def page_at(browser, collection_url):
    """A page in a fresh context on the collection, recording console messages and dialogs."""
    contexts = []

    def _open(**options):
        context = browser.new_context(base_url=collection_url, **options)
        context.set_default_timeout(10_000)
        contexts.append(context)
        page = context.new_page()
        page.messages, page.dialogs = [], []
        page.on("console", lambda message: page.messages.append(message.text))
        page.on("dialog", lambda dialog: (page.dialogs.append(dialog.message), dialog.dismiss()))
        return page

    yield _open
    for context in contexts:
        context.close()


def test_images_beside_notes_show_on_their_pages(page_at):
    page = page_at()
    page.goto("/entries/sqlite/erd")
    sizes = page.eval_on_selector_all(
        ".prose img", "images => images.map(image => [image.alt, image.complete, image.naturalWidth])"
    )
    assert sizes == [["tables", True, 4], ["drawing", True, 40]]


def test_an_svgs_script_does_not_run(page_at, collection_url):
    page = page_at()
    # The check can fail: the same SVG served without Nexus's headers does run its script.
    page.route("**/control.svg", lambda route: route.fulfill(body=HOSTILE_SVG, content_type="image/svg+xml"))
    page.goto("/control.svg")
    page.wait_for_function("document.readyState === 'complete'")
    page.wait_for_timeout(300)
    assert RAN in page.messages
    page.unroute("**/control.svg")

    page.messages.clear()
    page.dialogs.clear()
    page.goto("/entries/sqlite/erd")  # shown as an image: never scripted
    page.goto(page.eval_on_selector('img[alt="drawing"]', "image => image.src"))  # opened on its own, as a document
    page.wait_for_function("document.readyState === 'complete'")
    page.click("rect", force=True)  # the javascript: link
    page.wait_for_timeout(300)
    assert page.url.startswith(f"{collection_url}/files/")
    assert RAN not in page.messages and page.dialogs == []


@pytest.mark.parametrize(("device", "scheme"), [("desktop", "light"), ("phone", "dark")])
def test_the_topics_home_page_passes_axe_and_fits(page_at, device, scheme):
    page = page_at(viewport=DEVICES[device], color_scheme=scheme, bypass_csp=True)
    page.goto("/")
    assert page.locator("#topics-heading").is_visible()
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"the page scrolls sideways by {overflow}px"
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=SCREENSHOTS / f"home-topics-{device}-{scheme}.png", full_page=True)
    page.add_script_tag(path=AXE)
    assert describe("home-topics", page.evaluate(RUN_AXE, WCAG_TAGS)) == []
