"""The content folder's edges: only regular files inside the folder are published, whatever the folder holds."""

from __future__ import annotations

import os
import re
import socket

import pytest
from sqlalchemy import select

from portal.content import ContentError
from portal.folder import find_markdown_files, is_markdown, read_entry_file
from portal.models import Entry, db

from .conftest import do_import, write_entry
from .servers import flask_cli, nexus_env

GOOD = "# Good\n\nA good note.\n"


def slugs(app) -> set[str]:
    with app.app_context():
        found = set(db.session.scalars(select(Entry.slug)))
        db.session.remove()
        return found


@pytest.fixture
def folders(tmp_path):
    """A content folder with one good note, and a folder outside it holding a secret note."""
    content, outside = tmp_path / "content", tmp_path / "outside"
    write_entry(content, "good.md", GOOD)
    write_entry(content, "notes/inner.md", "# Inner\n\nInside the folder.\n")
    write_entry(outside, "secret.md", "# Secret\n\nNever to be published.\n")
    write_entry(outside, "more/also.md", "# Also\n\nOutside too.\n")
    return content, outside


def _link(content, name, target):
    (content / name).symlink_to(target)


def _socket(content, name):
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(content / name))
    server.close()  # the socket file stays


OUTSIDE = r"leads outside the content folder through a symlink; not published \(NEXUS_FOLLOW_EXTERNAL_SYMLINKS=1"


@pytest.mark.parametrize(
    ("make", "follow", "published", "errors"),
    [
        # A symlink to a note inside the folder is followed: the note is published under the link's name too.
        (lambda c, o: _link(c, "alias.md", c / "good.md"), False, {"alias"}, []),
        (lambda c, o: _link(c, "relative.md", "notes/inner.md"), False, {"relative"}, []),
        # `ln -s /etc/passwd content/passwd.md`: any file outside the folder, refused.
        (lambda c, o: _link(c, "passwd.md", o / "secret.md"), False, set(), [rf"^passwd\.md:1: {OUTSIDE}"]),
        # ... unless the operator says symlinks may lead outside.
        (lambda c, o: _link(c, "passwd.md", o / "secret.md"), True, {"passwd"}, []),
        # `ln -s /dev/zero content/zero.md` grew until memory ran out: outside, and not a regular file.
        (lambda c, o: _link(c, "zero.md", "/dev/zero"), False, set(), [rf"^zero\.md:1: {OUTSIDE}"]),
        (
            lambda c, o: _link(c, "zero.md", "/dev/zero"),
            True,
            set(),
            [r"^zero\.md:1: not a regular file \(a character device\)"],
        ),
        # Symlink loops and dangling symlinks cannot be read; the import goes on.
        (
            lambda c, o: _link(c, "loop.md", "loop.md"),
            False,
            set(),
            [r"^loop\.md:1: cannot read file \(Too many levels"],
        ),
        (
            lambda c, o: (_link(c, "ping.md", "pong.md"), _link(c, "pong.md", "ping.md")),
            False,
            set(),
            [r"^ping\.md:1: cannot read file", r"^pong\.md:1: cannot read file"],
        ),
        (
            lambda c, o: _link(c, "dangling.md", "missing.md"),
            False,
            set(),
            [r"^dangling\.md:1: cannot read file \(No such file"],
        ),
        # A socket is not a regular file.
        (lambda c, o: _socket(c, "sock.md"), False, set(), [r"^sock\.md:1: not a regular file \(a socket\)"]),
        # A symlinked folder outside: refused as a whole, named once.
        (lambda c, o: _link(c, "elsewhere", o), False, set(), [rf"^elsewhere/:1: {OUTSIDE}"]),
        # ... or followed when allowed, a loop back into it notwithstanding.
        (
            lambda c, o: (_link(c, "elsewhere", o), _link(o, "again", o)),
            True,
            {"elsewhere/secret", "elsewhere/more/also"},
            [],
        ),
        # A symlinked folder inside is not followed: its notes are published once, under their own path.
        (lambda c, o: _link(c, "mirror", c / "notes"), False, set(), []),
        (lambda c, o: _link(c / "notes", "up", ".."), False, set(), []),  # a loop inside the folder
    ],
)
def test_only_regular_files_inside_the_folder_are_published(make_app, folders, make, follow, published, errors):
    content, outside = folders
    make(content, outside)
    app = make_app(content, FOLLOW_EXTERNAL_SYMLINKS=follow)
    report = do_import(app, content)
    assert slugs(app) == {"good", "notes/inner"} | published
    messages = [str(e) for e in report.errors]
    assert len(messages) == len(errors), messages
    for message, expected in zip(messages, errors, strict=True):
        assert re.search(expected, message), message


def test_a_published_note_that_becomes_a_symlink_outside_is_deleted(make_app, folders):
    # An error usually keeps a file's last good version; a file that is no longer in the folder has none.
    content, outside = folders
    app = make_app(content)
    do_import(app, content)
    (content / "good.md").unlink()
    _link(content, "good.md", outside / "secret.md")
    report = do_import(app, content)
    assert report.deleted == ["good.md"] and slugs(app) == {"notes/inner"}
    assert re.search(OUTSIDE, str(report.errors[0]))


def test_site_files_are_read_by_the_same_rules(make_app, folders):
    # The introduction and the tag vocabulary are published too (the home page, tag pages).
    content, outside = folders
    write_entry(outside, "_intro.md", "Secret introduction.\n")
    write_entry(outside, "_tags.yml", "good:\n  description: Secret description.\n")
    _link(content, "_intro.md", outside / "_intro.md")
    _link(content, "_tags.yml", outside / "_tags.yml")
    app = make_app(content)
    report = do_import(app, content)
    assert sorted(e.path for e in report.errors) == ["_intro.md", "_tags.yml"]
    page = app.test_client().get("/").get_data(as_text=True)
    assert "Secret introduction" not in page


@pytest.mark.parametrize(
    ("size", "error"),
    [
        (2 * 1024 * 1024, None),  # the limit itself is fine
        (2 * 1024 * 1024 + 1, "file is larger than 2 MB"),  # refused from its size, before it is read
    ],
)
def test_size_is_checked_before_reading(tmp_path, size, error):
    (tmp_path / "big.md").write_bytes(b"x" * size)
    if error is None:
        assert len(read_entry_file(tmp_path, "big.md")) == size
    else:
        with pytest.raises(Exception, match=error):
            read_entry_file(tmp_path, "big.md")


def test_a_file_that_grows_after_its_size_was_checked_is_still_refused(tmp_path, monkeypatch):
    # The size seen before reading can be out of date: at most max_bytes + 1 bytes are read.
    (tmp_path / "n.md").write_bytes(b"x" * 1_000)
    real_stat, real_fstat = os.stat, os.fstat
    monkeypatch.setattr(os, "stat", lambda path, **kw: _sized(real_stat(path, **kw), 5))
    monkeypatch.setattr(os, "fstat", lambda fd: _sized(real_fstat(fd), 5))
    with pytest.raises(ContentError, match="larger than 10 bytes"):
        read_entry_file(tmp_path, "n.md", max_bytes=10)


def _sized(info: os.stat_result, size: int) -> os.stat_result:
    """`info` with another st_size, as a file that was smaller when it was looked at."""
    return os.stat_result((*info[:6], size, *info[7:]))


def test_fifos_devices_and_forged_names_through_the_command_line(tmp_path, folders):
    # In a real process with a time limit: an import that opens a FIFO waits for a writer forever.
    content, _outside = folders
    os.mkfifo(content / "pipe.md")
    _link(content, "zero.md", "/dev/zero")
    write_entry(content, "bad\nerror: forged.md", "---\ntitle: [unclosed\n---\nx\n")
    env = nexus_env(tmp_path / "instance", content, NEXUS_FOLLOW_EXTERNAL_SYMLINKS="1")
    result = flask_cli(env, "import", timeout=120)
    assert result.returncode == 1, result.stderr
    errors = sorted(line for line in result.stderr.splitlines() if line.startswith("error:"))
    assert len(errors) == 3, result.stderr  # the newline in a name forged no extra line
    assert errors[0].startswith(r"error: bad\nerror: forged.md:2: invalid YAML front matter")
    assert errors[1:] == [
        "error: pipe.md:1: not a regular file (a FIFO); only regular files are read",
        "error: zero.md:1: not a regular file (a character device); only regular files are read",
    ]
    assert "2 added" in result.stdout and "3 errors" in result.stdout


def test_find_markdown_files_skips_hidden_and_underscored_names(tmp_path):
    for name in ("a.md", "b.markdown", ".hidden.md", "_draft.md", "notes.txt", ".git/x.md", "_drafts/y.md", "c/d.MD"):
        write_entry(tmp_path, name, GOOD)
    assert [p.relative_to(tmp_path).as_posix() for p in find_markdown_files(tmp_path)] == [
        "a.md",
        "b.markdown",
        "c/d.MD",
    ]


@pytest.mark.parametrize(
    ("follow", "checked", "errors"),
    [
        (False, "3 files checked, 2 with errors", ["linked/:1:", "passwd.md:1:"]),  # what `import` refuses
        (True, "5 files checked, 0 with errors", []),  # what `import` would publish
    ],
)
def test_check_reads_the_files_import_reads(make_app, folders, follow, checked, errors):
    content, outside = folders
    _link(content, "linked", outside)
    _link(content, "passwd.md", outside / "secret.md")
    app = make_app(content, FOLLOW_EXTERNAL_SYMLINKS=follow)
    result = app.test_cli_runner().invoke(args=["check"])
    assert checked in result.output
    assert all(error in result.output for error in errors), result.output
    assert result.exit_code == (1 if errors else 0)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("note.md", True),
        ("NOTE.MD", True),  # any case
        ("long.markdown", True),
        ("v1.2.md", True),  # only the last suffix counts
        ("note.md.txt", False),
        ("note.mdx", False),
        ("md", False),  # a name, not a suffix
        ("note.md.", False),
        (".hidden.md", False),  # hidden and `_`-prefixed files are not entries
        ("_draft.md", False),
        ("café.md", True),
    ],
)
def test_which_names_are_markdown(name, expected):
    assert is_markdown(name) is expected
