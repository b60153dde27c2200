"""The knowledge base that ships in content/: complete, connected and clean."""

from __future__ import annotations

import pytest
import yaml
from sqlalchemy import select

from portal.content import parse_bytes
from portal.folder import find_markdown_files, read_entry_file
from portal.models import Entry, db

from .conftest import SHIPPED_CONTENT, do_import

# (topic, kind, tags or title words that identify it) — the program's syllabus.
TOPICS = [
    ("overview", "concept", {"program-overview"}),
    ("Python", "technology", {"python"}),
    ("Django", "technology", {"django"}),
    ("REST APIs and DRF", "technology", {"drf", "rest-api"}),
    ("GraphQL", "technology", {"graphql"}),
    ("Docker", "technology", {"docker"}),
    ("Docker Compose", "technology", {"docker-compose"}),
    ("CI/CD with GitHub Actions", "technology", {"ci-cd", "github-actions"}),
    ("Jenkins", "technology", {"jenkins"}),
    ("Celery", "technology", {"celery"}),
    ("RabbitMQ", "technology", {"rabbitmq"}),
    ("Kubernetes", "technology", {"kubernetes"}),
    ("PostgreSQL", "technology", {"postgresql"}),
    ("MySQL", "technology", {"mysql"}),
    ("Redis", "technology", {"redis"}),
    ("Swagger / OpenAPI", "technology", {"openapi"}),
    ("database design", "concept", {"database-design"}),
    ("ERDs", "concept", {"erd"}),
    ("async programming", "concept", {"async"}),
    ("caching strategies", "concept", {"caching"}),
    ("multi-service containers -> Compose", "challenge", {"docker-compose"}),
    ("nested API responses -> serializers", "challenge", {"drf"}),
    ("long-running tasks -> Celery", "challenge", {"celery", "background-tasks"}),
    ("complex relationships -> ORM", "challenge", {"orm"}),
    ("clean code", "practice", {"clean-code"}),
    ("security", "practice", {"security"}),
    ("testing", "practice", {"testing"}),
    ("staying current", "practice", {"learning"}),
    ("documentation", "practice", {"documentation"}),
]


@pytest.fixture(scope="module")
def shipped(tmp_path_factory):
    """The shipped content imported once for this module: (report, entries by slug)."""
    from portal import create_app

    instance = tmp_path_factory.mktemp("instance")
    app = create_app({"TESTING": True, "SECRET_KEY": "t", "INSTANCE_PATH": str(instance)})
    report = do_import(app, SHIPPED_CONTENT)
    with app.app_context():
        rows = db.session.scalars(select(Entry)).all()
        found = {e.slug: (e, {t.slug for t in e.tags}) for e in rows}
        db.session.expunge_all()
    return report, found


def test_shipped_content_imports_without_errors_or_warnings(shipped):
    report, found = shipped
    assert [str(e) for e in report.errors] == []
    # No broken links. (A checkout without its git history, as some CI systems make, warns about git dates.)
    assert [warning for warning in report.warnings if not warning.startswith("git dates: ")] == []
    assert len(found) >= 29


@pytest.mark.parametrize(("topic", "kind", "markers"), TOPICS, ids=[t[0] for t in TOPICS])
def test_every_program_topic_has_an_entry_of_the_right_kind(shipped, topic, kind, markers):
    _, found = shipped
    matches = [e for e, tags in found.values() if e.kind == kind and (tags & markers)]
    assert matches, f"no {kind} entry covers {topic}"


def test_every_entry_meets_the_word_minimum(shipped):
    _, found = shipped
    short = {slug: e.word_count for slug, (e, _) in found.items() if e.word_count < 250}
    assert short == {}


def test_every_entry_has_complete_front_matter_from_the_vocabulary():
    vocabulary = set(yaml.safe_load((SHIPPED_CONTENT / "_tags.yml").read_text(encoding="utf-8")))
    for path in find_markdown_files(SHIPPED_CONTENT):
        where = path.relative_to(SHIPPED_CONTENT).as_posix()
        entry = parse_bytes(where, read_entry_file(SHIPPED_CONTENT, where))
        assert entry.summary and entry.kind and entry.date, where
        assert 3 <= len(entry.tags) <= 7, where
        assert set(entry.tags) <= vocabulary, (where, set(entry.tags) - vocabulary)


def test_challenges_state_the_challenge_and_the_solution(shipped):
    _, found = shipped
    challenges = [e for e, _ in found.values() if e.kind == "challenge"]
    assert len(challenges) >= 4
    for entry in challenges:
        assert '<h2 id="challenge">' in entry.html and '<h2 id="solution">' in entry.html, entry.slug


def test_the_erd_entry_draws_a_real_er_diagram(shipped):
    _, found = shipped
    erd = [e for e, tags in found.values() if "erd" in tags and e.has_diagram]
    assert erd and '<pre class="mermaid"><code>erDiagram' in erd[0].html


def test_entries_link_into_one_connected_body(shipped):
    _, found = shipped
    linking = [e for e, _ in found.values() if 'href="../' in e.html or 'href="./' in e.html]
    assert len(linking) == len(found)  # every entry links to at least one other
