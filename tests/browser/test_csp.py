"""No page reports a Content-Security-Policy violation: not the shipped content's page types, and not Mermaid's
diagrams, whose inline styles and handlers diagrams.js keeps out of every parser (see its header).
"""

from __future__ import annotations

import logging
import os
import threading

import pytest
from werkzeug.serving import make_server

from portal import create_app
from portal.importer import import_content
from portal.models import db

from ..conftest import write_entry
from .conftest import ERD_SLUG, PAGE_TYPES, RECORD_VIOLATIONS, wait_for_diagrams

pytestmark = pytest.mark.browser


def visit(open_page, path: str, **options):
    """A page opened with CSP violations recorded from its first script on."""
    page = open_page(**options)
    page.add_init_script(RECORD_VIOLATIONS)
    response = page.goto(path)
    assert "style-src 'self'" in response.headers["content-security-policy"]
    return page


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("name", sorted(PAGE_TYPES))
def test_no_page_type_reports_a_csp_violation(open_page, name, scheme):
    page = visit(open_page, PAGE_TYPES[name], scheme=scheme)
    if name == "entry-diagram":
        wait_for_diagrams(page)
        drawn = page.locator("pre.mermaid > svg").first
        before = drawn.element_handle()
        page.locator("[data-theme-toggle]").click()  # drawn again, in the other palette
        page.wait_for_function("old => !old.isConnected", arg=before)
        wait_for_diagrams(page)
    page.wait_for_load_state("networkidle")
    assert page.evaluate("window.__cspViolations") == []
    assert page.errors == []


#: One diagram of each kind Mermaid draws, with the features that wrote inline handlers (a sequence
#: diagram's actor links) or many inline styles (`style`, `classDef`, rects, labels).
DIAGRAMS = {
    "sequence": """
        sequenceDiagram
            participant A as Alice
            participant B as Bob
            link A: Dashboard @ https://example.com/dashboard
            link B: Docs @ https://example.com/docs
            A->>B: Hello
            Note over A,B: A note
            rect rgb(200, 150, 255)
            B-->>A: Hi
            end""",
    "flowchart": """
        flowchart LR
            A[Start] --> B{Is it?}
            B -->|Yes| C[OK]
            B -->|No| D[Not OK]
            click A "https://example.com" "A link"
            style C fill:#f9f,stroke:#333
            classDef big font-size:20px
            class D big""",
    "class": "classDiagram\n    Animal <|-- Duck\n    Animal : +int age\n    class Duck{ +swim() }",
    "state": "stateDiagram-v2\n    [*] --> Still\n    Still --> Moving\n    Moving --> [*]",
    "gantt": "gantt\n    dateFormat YYYY-MM-DD\n    section S\n    Task a :a1, 2024-01-01, 30d\n    Task b :after a1, 20d",
    "pie": 'pie title Pets\n    "Dogs" : 386\n    "Cats" : 85',
    "journey": "journey\n    title My day\n    section Work\n      Make tea: 5: Me",
    "mindmap": "mindmap\n  root((mindmap))\n    Origins\n      Long history",
    "git": "gitGraph\n    commit\n    branch develop\n    commit\n    checkout main\n    merge develop",
    "timeline": "timeline\n    title History\n    2002 : LinkedIn\n    2004 : Facebook",
    "er": "erDiagram\n    CUSTOMER ||--o{ ORDER : places",
}


@pytest.fixture(scope="module")
def diagrams_url(tmp_path_factory):
    """A site whose one entry holds every diagram of DIAGRAMS, served on a free 127.0.0.1 port."""
    root = tmp_path_factory.mktemp("diagrams")
    blocks = "\n".join(f"## {name}\n\n```mermaid\n{text.strip()}\n```\n" for name, text in DIAGRAMS.items())
    write_entry(root / "content", "diagrams.md", f"# Diagrams\n\n{blocks}")
    settings = {"TESTING": True, "SECRET_KEY": "csp", "INSTANCE_PATH": str(root / "instance"), "PAGE_CACHE_MB": 0}
    with pytest.MonkeyPatch.context() as patch:  # no NEXUS_* setting of the shell applies
        for name in [name for name in os.environ if name.startswith("NEXUS_")]:
            patch.delenv(name)
        app = create_app({**settings, "CONTENT_DIR": str(root / "content")})
    with app.app_context():
        assert import_content(root / "content", app.instance_path).errors == []
        db.session.remove()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=10)
    server.server_close()
    app.extensions["nexus.searchers"].close()


def test_every_kind_of_diagram_draws_without_a_csp_violation(open_page, diagrams_url):
    page = visit(open_page, f"{diagrams_url}/entries/diagrams")
    wait_for_diagrams(page)
    assert page.locator("pre.mermaid > svg").count() == len(DIAGRAMS)
    # Mermaid's stylesheets apply (through a constructed stylesheet, not <style>).
    fill = page.evaluate("getComputedStyle(document.querySelector('pre.mermaid svg .relationshipLine')).fill")
    assert fill == "none"
    assert page.evaluate("window.__cspViolations") == []
    assert page.errors == []


def test_a_sequence_diagrams_actor_links_open_without_an_inline_handler(open_page, diagrams_url):
    page = visit(open_page, f"{diagrams_url}/entries/diagrams")
    wait_for_diagrams(page)
    svg = page.locator("pre.mermaid > svg").first
    assert svg.locator("[onclick]").count() == 0
    actor = svg.locator("[aria-expanded]:has(line[name='A'])")  # Alice's, whose id in the source is A
    menu = svg.locator(f"#{actor.get_attribute('aria-controls')}")
    assert menu.is_hidden()
    actor.locator("rect").first.click()  # the actor's box (its lifeline runs under notes)
    assert menu.is_visible() and actor.get_attribute("aria-expanded") == "true"
    link = menu.locator("a").first.evaluate("a => a.getAttribute('href') || a.getAttribute('xlink:href')")
    assert link == "https://example.com/dashboard"
    actor.press("Enter")  # the keyboard closes it again
    assert menu.is_hidden() and actor.get_attribute("aria-expanded") == "false"
    assert page.evaluate("window.__cspViolations") == []


def test_the_erd_of_the_shipped_content_looks_as_mermaid_draws_it(open_page):
    # Its styles come from the constructed stylesheet and CSSOM: tables keep their header fill.
    page = visit(open_page, f"/entries/{ERD_SLUG}")
    wait_for_diagrams(page)
    header = page.evaluate(
        "getComputedStyle(document.querySelector('pre.mermaid svg .er.entityBox, pre.mermaid svg g.node path')).fill"
    )
    assert header not in ("", "none", "rgb(0, 0, 0)")
    assert page.evaluate("window.__cspViolations") == []
