"""Page weight: an entry page without diagrams, with its CSS and JS, is under 60 KB gzipped.

Mermaid is excluded: it loads only on pages that have a diagram (checked below too).
"""

from __future__ import annotations

import gzip
from html.parser import HTMLParser
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select

from portal.models import Entry, db

pytestmark = pytest.mark.browser

BUDGET = 60 * 1024


class _Assets(HTMLParser):
    """Same-origin stylesheets and scripts a page references."""

    def __init__(self):
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "link" and "stylesheet" in (attrs.get("rel") or "").split():
            self.urls.append(attrs.get("href") or "")
        elif tag == "script" and attrs.get("src"):
            self.urls.append(attrs["src"])


def assets_of(html: str) -> list[str]:
    parser = _Assets()
    parser.feed(html)
    return [url for url in parser.urls if url and not urlsplit(url).netloc]


def gzipped(data: bytes) -> int:
    return len(gzip.compress(data, compresslevel=6))


def page_weight(client, path: str) -> tuple[int, list[str]]:
    """Gzipped bytes of the page plus every same-origin CSS/JS it references (mermaid excluded)."""
    response = client.get(path)
    assert response.status_code == 200, path
    html = response.get_data(as_text=True)
    total, assets = gzipped(response.data), assets_of(html)
    for url in assets:
        if "vendor/mermaid/" in url:
            continue
        asset = client.get(url)
        assert asset.status_code == 200, url
        total += gzipped(asset.data)
        asset.close()
    return total, assets


def entry_slugs(app, *, has_diagram: bool) -> list[str]:
    with app.app_context():
        slugs = list(db.session.scalars(select(Entry.slug).where(Entry.has_diagram.is_(has_diagram))))
        db.session.remove()
    return slugs


def test_entry_pages_without_diagrams_stay_under_60_kb(shipped_app):
    client = shipped_app.test_client()
    plain = entry_slugs(shipped_app, has_diagram=False)
    assert plain, "the shipped content should have entries without diagrams"
    weights = {}
    for slug in plain:
        weight, assets = page_weight(client, f"/entries/{slug}")
        assert not [url for url in assets if "mermaid" in url or "diagrams.js" in url], slug
        weights[slug] = weight
    heaviest = max(weights, key=weights.get)
    assert weights[heaviest] < BUDGET, f"/entries/{heaviest} weighs {weights[heaviest]} bytes gzipped"


def test_diagram_pages_load_mermaid(shipped_app):
    client = shipped_app.test_client()
    slugs = entry_slugs(shipped_app, has_diagram=True)
    assert slugs
    html = client.get(f"/entries/{slugs[0]}").get_data(as_text=True)
    assets = assets_of(html)
    assert any("vendor/mermaid/mermaid.min.js" in url for url in assets)
    assert any("js/diagrams.js" in url for url in assets)
