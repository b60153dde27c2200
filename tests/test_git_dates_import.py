"""Dates from git, end to end: a repository made in the test, imported, seen on pages, the API, feeds and the sitemap."""

from __future__ import annotations

import datetime as dt
import subprocess
import xml.etree.ElementTree as ET

import feedparser
import pytest

from .conftest import do_import
from .test_gitdates import Repo, day, moment, plain_git  # noqa: F401 - plain_git: git as on a fresh machine (autouse)

SITEMAP = "{http://www.sitemaps.org/schemas/sitemap/0.9}"
TODAY = dt.datetime.now(dt.UTC).date()  # what an undated, uncommitted note is dated by (its import)


def note(title: str, front_matter: str = "", body: str = "Body.") -> str:
    """A note with optional front matter lines."""
    head = f"---\n{front_matter}---\n" if front_matter else ""
    return f"{head}# {title}\n\n{body}\n"


@pytest.fixture
def history(tmp_path) -> Repo:
    """Add, edit, rename, delete and front matter that overrides, at set dates; plus one file never committed."""
    repo = Repo(tmp_path / "notes")
    repo.commit(
        moment(1),
        write={
            "edited.md": note("Edited"),
            "plain.md": note("Plain"),
            "old-name.md": note("Moved"),
            "deleted.md": note("Deleted"),
        },
    )
    repo.commit(moment(2), write={"stated.md": note("Stated", "date: 2019-05-05\n")})
    repo.commit(moment(3), write={"edited.md": note("Edited", body="Body, edited.")})
    repo.commit(moment(5), move={"old-name.md": "moved/new-name.md"}, delete=["deleted.md"])
    repo.commit(
        moment(6),
        write={
            "stated.md": note("Stated", "date: 2019-05-05\n", "Edited."),
            "both.md": note("Both", "date: 2018-01-01\nupdated: 2018-02-02\n"),
        },
    )
    (repo.root / "fresh.md").write_text(note("Fresh"), encoding="utf-8")  # written, not committed yet
    return repo


@pytest.fixture
def git_app(make_app, history):
    """An app with git dates on, over the history, imported."""
    app = make_app(history.root, GIT_DATES=True)
    report = do_import(app, history.root)
    assert report.errors == [] and report.warnings == []
    return app


#: slug -> (date, updated) as a reader should see them.
EXPECTED = {
    "edited": (day(1), day(3)),  # first commit, then an edit on a later day
    "plain": (day(1), None),  # committed once
    "moved/new-name": (day(1), None),  # a rename keeps the first date and is no update
    "stated": (dt.date(2019, 5, 5), day(6)),  # front matter's date wins; git still says when it changed
    "both": (dt.date(2018, 1, 1), dt.date(2018, 2, 2)),  # front matter's dates win outright
    "fresh": (None, None),  # not committed: dated by its import, as without git
}


@pytest.mark.parametrize(("slug", "dates"), EXPECTED.items())
def test_entry_pages_and_the_api_show_git_dates(git_app, slug, dates):
    date, updated = dates
    client = git_app.test_client()
    html = client.get(f"/entries/{slug}").get_data(as_text=True)
    meta = html[html.index('<p class="meta">') : html.index("</p>", html.index('<p class="meta">'))]
    if date:
        assert f'Written <time datetime="{date.isoformat()}">' in meta
    else:
        assert "Written" not in meta and "<span>1 min read</span>" in meta  # no stray separator
    if updated:
        assert f'· Updated <time datetime="{updated.isoformat()}">' in meta
    else:
        assert "Updated" not in meta
    body = client.get(f"/api/entries/{slug}").get_json()
    assert (body["date"], body["updated"]) == ((date or TODAY).isoformat(), updated and updated.isoformat())


def test_a_deleted_note_is_gone(git_app):
    assert git_app.test_client().get("/entries/deleted").status_code == 404


def test_newest_first_follows_git_dates(git_app):
    """Latest by last change: the uncommitted note (today), then by updated-or-written date."""
    client = git_app.test_client()
    body = client.get("/api/entries?sort=newest").get_json()
    assert [entry["slug"] for entry in body["entries"]] == [
        "fresh",
        "stated",
        "edited",
        "moved/new-name",
        "plain",
        "both",
    ]
    home = client.get("/").get_data(as_text=True)
    latest = home[home.index('id="latest-heading"') :]
    assert latest.index(">Fresh<") < latest.index(">Stated<") < latest.index(">Edited<") < latest.index(">Plain<")
    recent = home[home.index('id="updated-heading"') :]
    recent = recent[: recent.index("</ul>")]
    assert recent.index(">Stated<") < recent.index(">Edited<")  # recently updated: by `updated`


def test_the_feed_dates_entries_by_git(git_app):
    parsed = feedparser.parse(git_app.test_client().get("/feed.atom").data)
    times = {
        item.link.removeprefix("http://localhost/entries/"): (item.published, item.updated) for item in parsed.entries
    }
    for slug, (date, updated) in EXPECTED.items():
        published = f"{(date or TODAY).isoformat()}T00:00:00Z"
        assert times[slug] == (published, f"{(updated or date or TODAY).isoformat()}T00:00:00Z"), slug


def test_the_sitemap_dates_entries_by_git(git_app):
    root = ET.fromstring(git_app.test_client().get("/sitemap.xml").data)
    lastmod = {u.findtext(f"{SITEMAP}loc"): u.findtext(f"{SITEMAP}lastmod") for u in root}
    for slug, (date, updated) in EXPECTED.items():
        changed = updated or date
        if changed:
            assert lastmod[f"http://localhost/entries/{slug}"] == f"{changed.isoformat()}T00:00:00Z", slug
        else:  # no date at all: when it was imported (a time today)
            assert lastmod[f"http://localhost/entries/{slug}"].startswith(TODAY.isoformat()), slug


def test_committing_a_note_dates_it_at_the_next_import(git_app, history):
    """Its bytes did not change, but its dates did: the import must not skip it."""
    history.commit(moment(8))  # commits fresh.md as it is
    report = do_import(git_app, history.root)
    assert report.updated == ["fresh.md"] and report.warnings == []
    body = git_app.test_client().get("/api/entries/fresh").get_json()
    assert (body["date"], body["updated"]) == (day(8).isoformat(), None)
    again = do_import(git_app, history.root)
    assert again.updated == [] and not again.changed  # and then it is unchanged again


def test_git_dates_off(make_app, history):
    """NEXUS_GIT_DATES=0: front matter or import time, as before; git is not asked."""
    app = make_app(history.root, GIT_DATES=False)
    assert do_import(app, history.root).warnings == []
    body = app.test_client().get("/api/entries/edited").get_json()
    assert (body["date"], body["updated"]) == (TODAY.isoformat(), None)


def shallow_clone(history: Repo, tmp_path, monkeypatch):
    """A CI-style `git clone --depth 1`."""
    clone = tmp_path / "clone"
    subprocess.run(
        ["git", "clone", "-q", "--depth", "1", f"file://{history.root}", str(clone)], check=True, capture_output=True
    )
    return clone


def no_git_on_path(history: Repo, tmp_path, monkeypatch):
    """A server image without git."""
    (tmp_path / "no-programs").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "no-programs"))
    return history.root


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (shallow_clone, "shallow clone"),  # every note would look added by the one commit there is
        (no_git_on_path, "no `git` program on PATH"),
    ],
)
def test_when_git_cannot_date_notes_one_warning_says_why(make_app, history, tmp_path, monkeypatch, make, words):
    content = make(history, tmp_path, monkeypatch)
    app = make_app(content, GIT_DATES=True)
    report = do_import(app, content)
    assert report.errors == []
    assert len(report.warnings) == 1 and words in report.warnings[0]
    assert report.warnings[0].startswith("git dates: ") and "dated by their import time" in report.warnings[0]
    body = app.test_client().get("/api/entries/edited").get_json()
    assert (body["date"], body["updated"]) == (TODAY.isoformat(), None)  # today's rule
    stated = app.test_client().get("/api/entries/stated").get_json()
    assert stated["date"] == "2019-05-05"  # front matter still counts
