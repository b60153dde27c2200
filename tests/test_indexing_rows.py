"""What a full index build reads of the database: every entry as the ORM would give it, read without the ORM."""

from __future__ import annotations

from sqlalchemy import select

from portal import indexing
from portal.models import Entry, db
from portal.search.analysis import IndexedEntry

from .conftest import do_import, write_entry


def test_indexed_entries_are_what_the_entry_rows_give(make_app, tmp_path):
    """Columns, tags in slug order (and none), JSON link keys and dates equal `IndexedEntry.of` of each row, in id order."""
    content = tmp_path / "content"
    write_entry(content, "a/first.md", "---\ntags: [zeta, alpha, Mid Tag]\n---\n# First\n\nSee [b](../b/second.md).\n")
    write_entry(
        content, "b/second.md", "---\ntags: []\ndate: 2024-02-03\n---\n# Second ünïcode\n\n## A heading\n\nText.\n"
    )
    write_entry(content, "third.md", "# Third\n\nNo front matter, no folder: no tag.\n")
    app = make_app(content)
    assert not do_import(app, content).errors
    with app.app_context():
        expected = [IndexedEntry.of(entry) for entry in db.session.scalars(select(Entry).order_by(Entry.id))]
        db.session.rollback()
        got = list(indexing.indexed_entries())
    assert got == expected
    assert len(got[0].tags) == 3 and got[2].tags == ()  # several tags, in slug order, and none
    assert [type(value) for value in got[0]] == [type(value) for value in expected[0]]
