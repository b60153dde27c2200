"""Tags: names that look alike stay apart (`C++`, `C#`, `C`), and the importer says when two names are one tag."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from portal.models import Tag, db

from .conftest import do_import, write_entry


def note(tags: str) -> str:
    return f"---\ntags: {tags}\n---\nA note.\n"


def tag_slugs(app) -> set[str]:
    with app.app_context():
        found = set(db.session.scalars(select(Tag.slug)))
        db.session.remove()
        return found


@pytest.mark.parametrize(
    ("files", "slugs", "warnings"),
    [
        # Before, C++, C# and C were all `c`, and F# was `f`.
        ({"a.md": note('["C++", "C#", "C", "F#", ".NET"]')}, {"c-plus-plus", "c-sharp", "c", "f-sharp", "dotnet"}, []),
        # `a/b` and `a-b` are one tag: said where the second name is met.
        (
            {"a.md": note("[a/b]"), "b.md": note("[a-b]")},
            {"a-b"},
            ["b.md:2: tag 'a-b' and 'a/b' are the same tag 'a-b'"],
        ),
        ({"a.md": note('["a?b", "a#b"]')}, {"a-b"}, ["a.md:2: tag 'a#b' and 'a?b' are the same tag 'a-b'"]),
        # Case, spaces, hyphens and underscores are how people write one tag: no warning.
        (
            {"a.md": note("[Django REST Framework]"), "b.md": note("[django-rest-framework, django_rest_framework]")},
            {"django-rest-framework"},
            [],
        ),
        # Nothing of the name makes a URL: left out, with a warning.
        (
            {"a.md": note('["🙂", "..", python]')},
            {"python"},
            [
                "a.md:2: tag '🙂' is left out: it has no letter or digit to make a URL of",
                "a.md:2: tag '..' is left out: it has no letter or digit to make a URL of",
            ],
        ),
        # The vocabulary merges names on purpose (a display name, aliases): no warning.
        (
            {
                "_tags.yml": "ci-cd:\n  name: CI/CD\n  aliases: [cicd]\n",
                "a.md": note("[CI/CD]"),
                "b.md": note("[ci-cd, cicd]"),
            },
            {"ci-cd"},
            [],
        ),
    ],
)
def test_tag_names_keep_apart_and_collisions_are_warned_about(make_app, tmp_path, files, slugs, warnings):
    content = tmp_path / "content"
    for name, text in files.items():
        write_entry(content, name, text)
    app = make_app(content)
    report = do_import(app, content)
    assert report.errors == []
    assert tag_slugs(app) == slugs
    assert report.warnings == warnings


def test_a_name_that_lands_on_a_tag_of_an_earlier_import_is_warned_about(make_app, tmp_path):
    content = tmp_path / "content"
    write_entry(content, "a.md", note("[a-b]"))
    app = make_app(content)
    do_import(app, content)
    write_entry(content, "b.md", note("[a/b]"))
    assert do_import(app, content).warnings == ["b.md:2: tag 'a/b' and 'a-b' are the same tag 'a-b'"]


@pytest.fixture
def languages(make_app, tmp_path):
    """A site with one note per language whose names differ only in a symbol."""
    content = tmp_path / "content"
    for name, tag in (("c", "C"), ("cpp", "C++"), ("csharp", "C#"), ("dotnet", ".NET")):
        write_entry(content, f"{name}.md", f"---\ntitle: About {name}\ntags: ['{tag}']\n---\nA note.\n")
    app = make_app(content)
    do_import(app, content)
    return app.test_client()


@pytest.mark.parametrize(
    ("query", "slugs"),
    [
        ("tag:c++", {"cpp"}),  # the query's tag is read as the importer read the note's
        ("tag:C++", {"cpp"}),
        ("tag:c-plus-plus", {"cpp"}),  # as the URL spells it
        ("tag:c#", {"csharp"}),
        ("tag:c", {"c"}),  # C is not C++
        ("tag:.net", {"dotnet"}),
        ("tag:c*", {"c", "cpp", "csharp"}),  # prefixes on tags still work
        ("tag:c++*", {"cpp"}),  # and are read as slugs too
    ],
)
def test_search_finds_a_tag_by_the_name_the_note_gave_it(languages, query, slugs):
    body = languages.get("/api/search", query_string={"q": query}).get_json()
    assert {result["slug"] for result in body["results"]} == slugs


@pytest.mark.parametrize(
    ("url", "location"),
    [
        ("/tags/C++", "/tags/c-plus-plus"),  # a name in the URL finds the tag, not C's
        ("/tags/C%23", "/tags/c-sharp"),
        ("/tags/.NET", "/tags/dotnet"),
    ],
)
def test_tag_pages_read_names_as_the_importer_does(languages, url, location):
    response = languages.get(url)
    assert response.status_code == 301 and response.headers["Location"].endswith(location)


def test_the_api_and_filters_read_tag_names_as_the_importer_does(languages):
    api = languages.get("/api/tags/C%2B%2B").get_json()
    assert api["tag"]["slug"] == "c-plus-plus"
    page = languages.get("/entries", query_string={"all": "C++"}).get_data(as_text=True)
    assert 'href="/entries/cpp"' in page and 'href="/entries/c"' not in page
