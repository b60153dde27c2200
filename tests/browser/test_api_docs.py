"""Swagger UI at /api/docs in a real Chromium: it renders every operation and tries them, under the site's CSP."""

from __future__ import annotations

import json

import pytest

from .conftest import RECORD_VIOLATIONS

pytestmark = pytest.mark.browser


@pytest.fixture
def docs(open_page):
    """/api/docs, drawn, with CSP violations recorded from the first script on."""
    page = open_page()
    page.add_init_script(RECORD_VIOLATIONS)
    response = page.goto("/api/docs")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    page.locator(".opblock").first.wait_for()
    return page


def test_swagger_ui_shows_every_operation_under_the_strict_csp(docs, shipped_app):
    with shipped_app.test_client() as client:
        document = json.loads(client.get("/api/openapi.json").data)
    expected = {path for path, item in document["paths"].items() if "get" in item}
    shown = set(docs.locator(".opblock-summary-path").all_inner_texts())
    assert {text.replace("\u200b", "") for text in shown} == expected
    assert docs.errors == []
    assert docs.evaluate("window.__cspViolations") == []


def test_try_it_out(docs):
    stats = docs.locator(".opblock", has=docs.locator(".opblock-summary-path", has_text="/api/stats"))
    stats.locator(".opblock-summary").click()
    stats.locator("button.execute").click()
    status = stats.locator(".live-responses-table tbody .response-col_status")
    status.wait_for()
    assert status.inner_text().strip() == "200"
    assert '"entries"' in stats.locator(".live-responses-table .microlight").first.inner_text()

    entry = docs.locator(".opblock", has=docs.locator(".opblock-summary-path", has_text="/api/entries/{slug}"))
    entry.locator(".opblock-summary").click()
    entry.locator("input[placeholder='slug']").fill("technologies/celery")
    entry.locator("button.execute").click()
    status = entry.locator(".live-responses-table tbody .response-col_status")
    status.wait_for()
    assert status.inner_text().strip() == "200"
    assert docs.evaluate("window.__cspViolations") == []
