"""What people do on the site, in a real browser: search, filter, theme, diagrams, keyboard."""

from __future__ import annotations

import re

import pytest

from .conftest import ERD_SLUG, wait_for_diagrams

pytestmark = pytest.mark.browser

LIGHT_BG, DARK_BG = "rgb(255, 255, 255)", "rgb(13, 17, 23)"


def background(page) -> str:
    return page.evaluate("getComputedStyle(document.body).backgroundColor")


def open_suggestions(page, text: str):
    """Focus the header search with "/" and type until suggestions show; returns the options."""
    page.keyboard.press("/")
    assert page.evaluate("document.activeElement.id") == "site-search"
    page.keyboard.type(text, delay=30)
    options = page.locator("#search-suggestions [role=option]")
    options.first.wait_for()
    assert page.get_attribute("#site-search", "aria-expanded") == "true"
    return options


def test_pick_a_suggestion_with_arrow_keys_and_enter(open_page):
    page = open_page("/")
    options = open_suggestions(page, "celer")
    page.keyboard.press("ArrowDown")
    assert page.get_attribute("#site-search", "aria-activedescendant") == "suggestion-0"
    assert options.first.get_attribute("aria-selected") == "true"
    expected = options.first.locator("a").get_attribute("href")
    page.keyboard.press("Enter")
    page.wait_for_url(f"**{expected}")
    assert "Celery" in page.locator("h1").inner_text()


def test_pick_a_suggestion_with_the_mouse(open_page):
    page = open_page("/tags")
    options = open_suggestions(page, "redis")
    option = options.filter(has_text=re.compile(r"^Redis"))
    option.first.click()
    page.wait_for_url("**/entries/technologies/redis")
    assert page.locator("h1").inner_text() == "Redis"


def test_escape_closes_suggestions(open_page):
    page = open_page("/")
    open_suggestions(page, "dock")
    page.keyboard.press("Escape")
    assert page.locator("#search-suggestions").is_hidden()
    assert page.get_attribute("#site-search", "aria-expanded") == "false"


def test_submit_a_search_and_open_a_result(open_page):
    page = open_page("/", device="phone")
    page.fill("#site-search", "docker compose")
    page.press("#site-search", "Enter")
    page.wait_for_url(re.compile(r"/search\?q=docker\+compose"))
    assert re.match(r"\d+ results? for", page.locator("#results-heading").inner_text())
    first = page.locator(".card-title a").first
    title = first.inner_text()
    first.click()
    page.wait_for_url("**/entries/**")
    assert page.locator("h1").inner_text() == title


def test_filter_by_a_tag_then_remove_it(open_page):
    page = open_page("/entries")
    total = int(page.locator(".result-count").inner_text().split()[0])
    facet = page.locator("aside .facets a").first
    tag_name = facet.evaluate("a => a.firstChild.textContent.trim()")
    facet.click()
    page.wait_for_url(re.compile(r"/entries\?all="))
    chip = page.locator(".chips a.chip")
    assert chip.count() == 1 and tag_name in chip.inner_text()
    narrowed = int(page.locator(".result-count").inner_text().split()[0])
    assert 0 < narrowed < total
    chip.click()
    page.wait_for_url(re.compile(r"/entries$"))
    assert page.locator(".chips").count() == 0
    assert int(page.locator(".result-count").inner_text().split()[0]) == total


def test_dark_mode_toggle_is_remembered(open_page):
    page = open_page("/", scheme="light")
    toggle = page.locator("[data-theme-toggle]")
    assert toggle.is_visible() and toggle.get_attribute("aria-pressed") == "false"
    assert background(page) == LIGHT_BG
    toggle.click()
    assert page.get_attribute("html", "data-theme") == "dark"
    assert toggle.get_attribute("aria-pressed") == "true"
    assert background(page) == DARK_BG
    page.reload()
    assert page.get_attribute("html", "data-theme") == "dark"  # set by theme.js before first paint
    assert background(page) == DARK_BG
    page.goto("/tags")
    assert background(page) == DARK_BG
    page.locator("[data-theme-toggle]").click()
    page.reload()
    assert background(page) == LIGHT_BG


def test_dark_mode_follows_the_system_until_chosen(open_page):
    page = open_page("/", scheme="dark")
    assert page.get_attribute("html", "data-theme") is None
    assert background(page) == DARK_BG
    assert page.get_attribute("[data-theme-toggle]", "aria-pressed") == "true"
    code = open_page(f"/entries/{ERD_SLUG}", scheme="dark").locator(".highlight").first
    assert code.evaluate("el => getComputedStyle(el).backgroundColor") == DARK_BG  # Pygments' dark style


def test_erd_entry_draws_an_svg_under_the_sites_csp(open_page):
    page = open_page()
    response = page.goto(f"/entries/{ERD_SLUG}")
    policy = response.headers.get("content-security-policy", "")
    style_src = re.search(r"style-src ([^;]*)", policy)
    assert style_src and "unsafe-inline" not in style_src.group(1), policy
    wait_for_diagrams(page)
    svg = page.locator("pre.mermaid > svg")
    assert svg.count() == 1 and svg.get_attribute("role") == "img"
    assert "BOOKING" in svg.text_content()
    # Mermaid's own stylesheet applies although CSP blocks inline <style>: diagrams.js adopts it.
    fill = page.evaluate("getComputedStyle(document.querySelector('pre.mermaid svg .relationshipLine')).fill")
    assert fill == "none"
    assert page.locator("details.diagram-source pre").text_content().startswith("erDiagram")
    assert page.errors == []


def test_diagram_is_redrawn_in_the_other_theme(open_page):
    page = open_page(f"/entries/{ERD_SLUG}", scheme="light")
    wait_for_diagrams(page)
    box = "pre.mermaid svg g.node path, pre.mermaid svg g.node rect"
    before = page.evaluate(f"getComputedStyle(document.querySelector('{box}')).fill")
    page.locator("[data-theme-toggle]").click()
    page.wait_for_function(f"getComputedStyle(document.querySelector('{box}')).fill !== '{before}'")
    after = page.evaluate(f"getComputedStyle(document.querySelector('{box}')).fill")
    assert after not in (before, "", "none")  # redrawn with the dark theme's colours
    assert page.errors == []


def test_mermaid_loads_only_where_there_is_a_diagram(open_page):
    page = open_page("/entries/technologies/celery")
    scripts = page.eval_on_selector_all("script[src]", "els => els.map(e => e.getAttribute('src'))")
    assert not [src for src in scripts if "mermaid" in src or "diagrams" in src]
    diagram = open_page(f"/entries/{ERD_SLUG}")
    scripts = diagram.eval_on_selector_all("script[src]", "els => els.map(e => e.getAttribute('src'))")
    assert any("vendor/mermaid/mermaid.min.js" in src for src in scripts)


def test_keyboard_reaches_skip_link_search_and_results(open_page):
    page = open_page("/")
    page.keyboard.press("Tab")
    skip = page.locator(".skip-link")
    assert page.evaluate("document.activeElement.className") == "skip-link"
    assert skip.bounding_box()["y"] >= 0  # shown on focus
    assert page.evaluate("getComputedStyle(document.activeElement).outlineStyle") != "none"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"

    page.goto("/")
    for _ in range(3):  # skip link, site name, search box
        page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "site-search"
    page.keyboard.type("celery")
    page.keyboard.press("Enter")
    page.wait_for_url("**/search?q=celery")
    for _ in range(40):
        page.keyboard.press("Tab")
        if page.evaluate("!!document.activeElement.closest('.card-title')"):
            break
    else:
        pytest.fail("Tab never reached a search result")
    title = page.evaluate("document.activeElement.textContent")
    page.keyboard.press("Enter")
    page.wait_for_url("**/entries/**")
    assert page.locator("h1").inner_text() == title


def test_slash_does_not_steal_typing_in_other_fields(open_page):
    page = open_page("/search?q=redis")
    page.click("#page-search")
    page.keyboard.type("/x")
    assert page.input_value("#page-search").endswith("/x")


def test_pages_work_without_javascript(open_page):
    page = open_page(f"/entries/{ERD_SLUG}", java_script_enabled=False)
    assert page.locator("pre.mermaid code").inner_text().startswith("erDiagram")  # source stays readable
    assert page.locator("[data-theme-toggle]").is_hidden()
    page.fill("#site-search", "celery")
    page.press("#site-search", "Enter")
    page.wait_for_url("**/search?q=celery")
    assert page.locator(".card").count() > 0


@pytest.mark.parametrize("path", ["/", "/entries/technologies/celery", "/search?q=redis", "/tags"])
def test_no_script_errors_or_policy_violations(open_page, path):
    page = open_page()
    page.add_init_script(
        "window.__violations = [];"
        "document.addEventListener('securitypolicyviolation', e => window.__violations.push(e.violatedDirective));"
    )
    page.goto(path)
    page.wait_for_load_state("load")
    assert page.errors == []
    assert page.evaluate("window.__violations") == []


def test_print_shows_the_entry_without_site_chrome(open_page):
    page = open_page("/entries/technologies/celery", scheme="dark")
    page.emulate_media(media="print")
    for selector in (".site-header", ".site-footer", ".toc", ".prev-next"):
        assert page.locator(selector).first.evaluate("el => getComputedStyle(el).display") == "none"
    assert background(page) == LIGHT_BG
    assert page.locator(".prose").is_visible()
    code = page.locator(".highlight").first
    assert code.evaluate("el => getComputedStyle(el).backgroundColor") != DARK_BG
