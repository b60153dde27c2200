"""Rendering stays byte-for-byte the same: shipped entries and tricky fixtures against stored goldens.

Each case is parsed with `parse_bytes` and rendered with `render`; every field of both results (and
the link keys `render` asked about) must equal the JSON in tests/fixtures/rendering/golden/.

After a deliberate change of output (which also bumps `RENDERER_VERSION`), regenerate and review:

    UPDATE_GOLDENS=1 .venv/bin/pytest tests/test_rendering_golden.py
    git diff tests/fixtures/rendering/golden/
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from pathlib import Path

import pytest

from portal.content import ParsedEntry, parse_bytes, slug_for_path
from portal.links import link_resolver
from portal.rendering import Rendered, render

from .conftest import SHIPPED_CONTENT

FIXTURES = Path(__file__).parent / "fixtures" / "rendering"
GOLDEN = FIXTURES / "golden"
UPDATE = os.environ.get("UPDATE_GOLDENS") == "1"
#: Fixtures live under this folder as far as links are concerned, so `../up/file.md` has somewhere to go.
FIXTURE_FOLDER = "notes"
#: Link targets of the fixtures that exist (the rest must come out as broken links).
FIXTURE_TARGETS = ["notes/other.md", "up/file.md", "notes/sub/Dir Name/File.MD", "technologies/celery.md"]


def _cases() -> dict[str, tuple[str, bytes, bool]]:
    """Case name -> (relative path, bytes, parse first?)."""
    cases = {}
    for path in sorted(SHIPPED_CONTENT.rglob("*.md")):
        relative = path.relative_to(SHIPPED_CONTENT).as_posix()
        cases[f"content/{relative}"] = (relative, path.read_bytes(), True)
    for path in sorted(FIXTURES.glob("*.md")):
        relative = f"{FIXTURE_FOLDER}/{path.name}"
        cases[f"fixture/{path.name}"] = (relative, path.read_bytes(), True)
        # Straight to `render`, as the importer does with `_intro.md`: CRLF and front matter unfolded.
        cases[f"fixture/{path.name}/raw"] = (relative, path.read_bytes(), False)
    return cases


CASES = _cases()


def _resolver():
    """Resolve paths and `[[wiki]]` names with the importer's resolver, over shipped content and fixture targets."""
    paths = [p.relative_to(SHIPPED_CONTENT).as_posix() for p in SHIPPED_CONTENT.rglob("*.md")] + FIXTURE_TARGETS
    return link_resolver({path: slug_for_path(path) for path in paths})


def _output(relative: str, raw: bytes, parse: bool) -> dict:
    """Everything parsing and rendering produce for one case, as JSON-ready data."""
    resolve, asked = _resolver(), []

    def recording(key):
        asked.append(key)
        return resolve(key)

    if parse:
        entry = parse_bytes(relative, raw)
        rendered = render(entry.body, source_path=entry.path, resolve_link=recording, entry_slug=entry.slug)
        parsed = dataclasses.asdict(entry)
    else:
        rendered = render(raw.decode("utf-8-sig"), source_path=relative, resolve_link=recording, entry_slug="")
        parsed = None
    data = {"parsed": parsed, "rendered": dataclasses.asdict(rendered), "asked": asked}
    return json.loads(json.dumps(data, default=str))  # tuples become lists, dates ISO strings


def _golden_path(case: str) -> Path:
    return GOLDEN / (re.sub(r"[^A-Za-z0-9.-]+", "__", case) + ".json")


def _write(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, ensure_ascii=False, indent=1, sort_keys=True) + "\n", encoding="utf-8")


def test_every_case_has_a_golden_and_every_golden_a_case():
    # A new shipped note without a golden, or a golden whose note is gone, must not go unnoticed.
    expected = {_golden_path(case).name for case in CASES}
    if UPDATE:
        for stale in set(p.name for p in GOLDEN.glob("*.json")) - expected:
            (GOLDEN / stale).unlink()
    assert {p.name for p in GOLDEN.glob("*.json")} == expected or UPDATE


@pytest.mark.parametrize("case", sorted(CASES))
def test_output_is_unchanged(case):
    current = _output(*CASES[case])
    path = _golden_path(case)
    if UPDATE:
        _write(path, current)
    golden = json.loads(path.read_text(encoding="utf-8"))
    # Field by field first, so a failure names the field that changed.
    for name, value in golden["rendered"].items():
        assert current["rendered"][name] == value, f"{case}: Rendered.{name} changed"
    assert current == golden


@pytest.mark.parametrize("case", sorted(CASES))
def test_goldens_hold_every_field(case):
    # A field added to Rendered or ParsedEntry later must be compared too: regenerate the goldens.
    golden = json.loads(_golden_path(case).read_text(encoding="utf-8"))
    assert set(golden["rendered"]) == {f.name for f in dataclasses.fields(Rendered)}
    if CASES[case][2]:
        assert set(golden["parsed"]) == {f.name for f in dataclasses.fields(ParsedEntry)}
    assert golden["rendered"]["html"] and golden["rendered"]["text"]  # a golden of nothing proves nothing


def test_fixtures_exercise_what_they_claim():
    # The tricky fixture is only useful while it really reaches these features.
    html = json.loads(_golden_path("fixture/tricky.md").read_text(encoding="utf-8"))["rendered"]["html"]
    for marker in [
        "<table>",
        'class="footnote"',
        'class="admonition warning"',
        "<details",
        'type="checkbox"',
        'class="mermaid"',
        'class="broken-link"',
        'href="../notes/other#some-section"',
        '<code class="highlight">',
        'id="setup_2"',
        "<p>Level two</p>\n<blockquote>",
    ]:
        assert marker in html, marker
    for forbidden in ["<script", " onclick=", " onerror=", 'href="javascript:', "<iframe", "<style", "<!--"]:
        assert forbidden not in html, forbidden
