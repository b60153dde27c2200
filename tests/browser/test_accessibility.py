"""axe-core on every page type, phone and desktop, light and dark; screenshots for people to look at.

axe-core 4.14.1 is vendored in tests/browser/vendor/ (with its MPL-2.0 licence) so the tests
need no network. Contexts bypass the CSP only so that axe can be injected. Each visit also
writes `screenshots/<page>-<device>-<scheme>.png` (git-ignored).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import DEVICES, PAGE_TYPES, SCREENSHOTS, wait_for_diagrams

pytestmark = pytest.mark.browser

AXE = Path(__file__).with_name("vendor") / "axe.min.js"
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
#: Only violations are computed and sent back: passes would triple the time.
RUN_AXE = """tags => axe.run(document, {runOnly: {type: 'tag', values: tags}, resultTypes: ['violations']})
  .then(result => result.violations.map(v => ({id: v.id, impact: v.impact,
    nodes: v.nodes.map(n => ({target: n.target, failureSummary: n.failureSummary}))})))"""


def describe(page_name: str, violations: list[dict]) -> list[str]:
    """One readable line per failing rule and element."""
    return [
        f"{page_name}: {v['id']} ({v['impact']}) {node['target']}: {node['failureSummary'].splitlines()[-1].strip()}"
        for v in violations
        for node in v["nodes"][:3]
    ]


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("device", list(DEVICES))
def test_every_page_type_passes_axe_and_fits_the_screen(open_page, device, scheme):
    page = open_page(device=device, scheme=scheme, bypass_csp=True)
    SCREENSHOTS.mkdir(exist_ok=True)
    problems = []
    for name, path in PAGE_TYPES.items():
        page.goto(path)
        if name == "entry-diagram":
            wait_for_diagrams(page)
        overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        if overflow > 0:
            problems.append(f"{name}: the page scrolls sideways by {overflow}px")
        page.screenshot(path=SCREENSHOTS / f"{name}-{device}-{scheme}.png", full_page=True)
        page.add_script_tag(path=AXE)
        problems += describe(name, page.evaluate(RUN_AXE, WCAG_TAGS))
    assert not problems, "\n".join(problems)
    assert page.errors == []
