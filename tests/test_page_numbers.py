"""`page` on every listing: past the last page is a 404 (an empty page in the API), a bad number a 400, never a 500."""

from __future__ import annotations

import pytest

from portal.openapi import MAX_PAGE

#: Every route that takes `page`, each with a query that has one page of results in the sample content.
HTML_LISTINGS = [
    "/",
    "/kinds/technology",
    "/tags/celery",
    "/entries?all=celery",
    "/search?q=celery",
]
API_LISTINGS = [
    "/api/entries",
    "/api/tags/celery",
    "/api/search?q=celery",
]

BAD_PAGES = [
    "9223372036854775807",  # SQLite's largest integer: the offset it gives overflowed (500 before)
    "99999999999999999999999",  # beyond 64 bits: OverflowError before the query even ran
    str(MAX_PAGE + 1),  # just past the highest page any listing serves
    "0",  # pages count from 1
    "-1",  # negative
    "-9223372036854775809",  # below 64 bits
    "abc",  # not a number
    "1.5",  # not a whole number
    "1e9",  # scientific notation is not a page number
    "0x10",  # nor is hexadecimal
    "9" * 4000,  # 4,000 digits: as long as a query string may be
]


def _with_page(path: str, page: str) -> str:
    return f"{path}{'&' if '?' in path else '?'}page={page}"


@pytest.mark.parametrize("page", BAD_PAGES)
def test_out_of_range_page_numbers_are_400_on_every_listing(client, page):
    for path in HTML_LISTINGS + API_LISTINGS:
        response = client.get(_with_page(path, page))
        assert response.status_code == 400, path
        text = response.get_data(as_text=True)
        assert "page" in text and "must be" in text, path


PAST_THE_LAST = [
    "2",  # the first page past the last (the sample content fits on one page everywhere)
    str(MAX_PAGE),  # the highest page number allowed, far past the last
]


@pytest.mark.parametrize("page", PAST_THE_LAST)
def test_html_listings_answer_404_past_their_last_page(client, page):
    for path in HTML_LISTINGS:
        response = client.get(_with_page(path, page))
        assert response.status_code == 404, path
        assert "Page not found" in response.get_data(as_text=True), path


@pytest.mark.parametrize("page", PAST_THE_LAST)
def test_the_api_answers_an_empty_page_past_the_last(client, page):
    # Documented in the README: a page past the last is empty rather than an error.
    for path in API_LISTINGS:
        response = client.get(_with_page(path, page))
        assert response.status_code == 200, path
        body = response.get_json()
        results = body.get("results", body.get("entries"))
        assert results == [] and body["page"] == int(page) and body.get("next") is None, path


def test_page_one_and_no_page_are_the_first_page(client):
    for path in HTML_LISTINGS + API_LISTINGS:
        assert client.get(path).status_code == 200, path
        assert client.get(_with_page(path, "1")).status_code == 200, path
