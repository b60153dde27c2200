"""Files linked from notes (images beside them, PDFs, scripts): imported into the database and served safely."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from urllib.parse import urljoin

import feedparser
import pytest
from sqlalchemy import func, select

from portal import sandbox
from portal.models import Attachment, db

from .conftest import do_import, write_entry

PNG = b"\x89PNG\r\n\x1a\n" + b"erd" * 10
SVG = b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><script>alert(1)</script></svg>'
CAP_MB = 0.001  # 1,048 bytes: small enough to test the cap without big files

NOTE = """\
# Topic note

![erd](img/erd.png)
![parent](../parent.png)
![drawing](drawing.svg)
[slides](talk.pdf)
[script](run.sh)
[page](page.html)
[big](big.bin)
[gone](missing.png)
[escape](../../outside.txt)
[secret](secret-link.txt)
[hidden](.env)
[folder](img/)
[section](img/erd.png#part)
"""


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def folder(tmp_path):
    """Notes with files beside them and in a parent folder, and links that must not be served."""
    root = tmp_path / "notes"
    write_entry(root, "topic/note.md", NOTE)
    (root / "topic/img").mkdir()
    (root / "topic/img/erd.png").write_bytes(PNG)
    (root / "parent.png").write_bytes(PNG + b"parent")
    (root / "topic/drawing.svg").write_bytes(SVG)
    (root / "topic/talk.pdf").write_bytes(b"%PDF-1.4 slides")
    (root / "topic/run.sh").write_bytes(b"#!/bin/sh\necho hi\n")
    (root / "topic/page.html").write_bytes(b"<script>alert(1)</script>")
    (root / "topic/big.bin").write_bytes(b"x" * 2000)
    (root / "topic/.env").write_bytes(b"SECRET=1")
    (tmp_path / "outside.txt").write_bytes(b"outside the content folder")
    os.symlink(tmp_path / "outside.txt", root / "topic/secret-link.txt")
    return root


@pytest.fixture
def app(make_app, folder):
    app = make_app(folder, MAX_ATTACHMENT_MB=CAP_MB)
    report = do_import(app, folder)
    assert report.errors == []
    app.report = report
    return app


def served_urls(html: str) -> dict[str, str]:
    """file name -> URL of the files an entry page links to, resolved against the page's own URL."""
    base = "http://localhost/entries/topic/note"
    found = re.findall(r'(?:src|href)="(\.\./[^"]*files/[^"]+)"', html)
    urls = (urljoin(base, url).removeprefix("http://localhost").split("#")[0] for url in found)
    return {url.rsplit("/", 1)[-1]: url for url in urls}


def test_problems_are_warned_about_with_file_and_line(app):
    assert app.report.warnings == [
        "topic/note.md:9: link to 'big.bin' points to a file larger than 0.001 MB (NEXUS_MAX_ATTACHMENT_MB)",
        "topic/note.md:10: link to 'missing.png' points to no file",
        "topic/note.md:11: link to '../../outside.txt' leaves the content folder",
        "topic/note.md:12: link to 'secret-link.txt' leaves the content folder (through a symbolic link)",
        "topic/note.md:13: link to '.env' points to a hidden file",
        "topic/note.md:14: link to 'img/' points to a folder, not a file",
    ]


def test_links_point_at_stored_files_and_problems_are_marked(app):
    html = app.test_client().get("/entries/topic/note").get_data(as_text=True)
    urls = served_urls(html)
    assert set(urls) == {"erd.png", "parent.png", "drawing.svg", "talk.pdf", "run.sh", "page.html"}
    assert urls["erd.png"] == f"/files/{sha(PNG)}/erd.png"
    assert f'href="../../files/{sha(PNG)}/erd.png#part"' in html  # a fragment is kept
    for target in ("big.bin", "missing.png", "../../outside.txt", "secret-link.txt", ".env", "img/"):
        assert f'<a class="broken-link" href="{target}">' in html, target


@pytest.mark.parametrize(
    ("name", "content_type", "disposition", "sandboxed"),
    [
        ("erd.png", "image/png", "inline", True),  # an image beside the note
        ("parent.png", "image/png", "inline", True),  # one in a parent folder, inside the content folder
        ("drawing.svg", "image/svg+xml", "inline", True),  # shown, but its script cannot run (sandbox CSP)
        ("talk.pdf", "application/pdf", "inline", False),  # Chromium's viewer shows nothing in a sandbox
        ("run.sh", "application/octet-stream", "attachment", True),  # a script is a download, never run
        ("page.html", "application/octet-stream", "attachment", True),  # an active page is a download too
    ],
)
def test_files_are_served_with_type_etag_and_long_caching(app, name, content_type, disposition, sandboxed):
    client = app.test_client()
    url = served_urls(client.get("/entries/topic/note").get_data(as_text=True))[name]
    response = client.get(url)
    assert response.status_code == 200
    assert response.mimetype == content_type
    assert response.headers["Content-Disposition"].startswith(disposition)
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    digest = url.split("/")[2]
    assert response.headers["ETag"] == f'"{digest}"' and sha(response.data) == digest
    policy = response.headers["Content-Security-Policy"]
    assert (policy == "default-src 'none'; style-src 'unsafe-inline'; sandbox") is sandboxed
    again = client.get(url, headers={"If-None-Match": f'"{digest}"'})
    assert again.status_code == 304


def test_only_referenced_files_under_their_own_names_are_served(app, tmp_path, folder):
    client = app.test_client()
    outside = sha((tmp_path / "outside.txt").read_bytes())
    for url in [
        "/files/",  # no listing
        f"/files/{sha(PNG)}",  # no listing of one hash either
        f"/files/{sha(PNG)}/other-name.png",  # bytes are served only under a name a note gave them
        f"/files/{outside}/secret-link.txt",  # never stored: outside the folder through a symlink
        f"/files/{outside}/outside.txt",
        f"/files/{sha(b'SECRET=1')}/.env",  # hidden files are never stored
        f"/files/{sha(b'x' * 2000)}/big.bin",  # over the cap
        "/files/../../etc/passwd",
        f"/files/{sha(PNG).upper()}/erd.png",  # hashes are lower-case hex
    ]:
        assert client.get(url).status_code == 404, url


def test_each_file_is_stored_once(make_app, folder):
    write_entry(folder, "other.md", "# Other\n\n![same](topic/img/erd.png) ![copy](copy.png)\n")
    (folder / "copy.png").write_bytes(PNG)  # the same bytes under another name
    app = make_app(folder, MAX_ATTACHMENT_MB=CAP_MB)
    do_import(app, folder)
    with app.app_context():
        assert db.session.scalar(select(func.count()).where(Attachment.hash == sha(PNG))) == 1
        db.session.remove()
    other = app.test_client().get("/entries/other").get_data(as_text=True)
    assert f'src="../files/{sha(PNG)}/copy.png"' in other  # one level up from /entries/other
    assert app.test_client().get(f"/files/{sha(PNG)}/copy.png").status_code == 200


def stored_hashes(app) -> set[str]:
    with app.app_context():
        found = set(db.session.scalars(select(Attachment.hash)))
        db.session.remove()
    return found


def test_changed_file_imports_its_note_again_and_old_bytes_go(app, folder):
    """The note's bytes are the same; the image's are not: a new URL, and the old bytes are deleted."""
    (folder / "topic/img/erd.png").write_bytes(PNG + b"v2")
    report = do_import(app, folder)
    assert report.updated == ["topic/note.md"]
    html = app.test_client().get("/entries/topic/note").get_data(as_text=True)
    assert served_urls(html)["erd.png"] == f"/files/{sha(PNG + b'v2')}/erd.png"
    assert sha(PNG) not in stored_hashes(app) and sha(PNG + b"v2") in stored_hashes(app)
    assert app.test_client().get(f"/files/{sha(PNG)}/erd.png").status_code == 404
    assert not do_import(app, folder).changed  # and then nothing changes


def test_a_missing_file_that_appears_imports_its_note_again(app, folder):
    (folder / "topic/missing.png").write_bytes(PNG + b"late")
    report = do_import(app, folder)
    assert report.updated == ["topic/note.md"]
    html = app.test_client().get("/entries/topic/note").get_data(as_text=True)
    assert served_urls(html)["missing.png"] == f"/files/{sha(PNG + b'late')}/missing.png"


def test_files_no_entry_links_to_are_deleted(app, folder):
    write_entry(folder, "topic/note.md", "# Topic note\n\nNo files any more.\n")
    do_import(app, folder)
    assert stored_hashes(app) == set()
    (folder / "topic/note.md").unlink()
    do_import(app, folder)
    assert stored_hashes(app) == set()


def test_deleting_the_entry_deletes_its_files(app, folder):
    (folder / "topic/note.md").unlink()
    assert do_import(app, folder).deleted == ["topic/note.md"]
    assert stored_hashes(app) == set()


def test_served_from_the_database_without_the_content_folder(app, folder):
    """A node on a shared database may have no content folder at all."""
    url = served_urls(app.test_client().get("/entries/topic/note").get_data(as_text=True))["erd.png"]
    shutil.rmtree(folder)
    response = app.test_client().get(url)
    assert response.status_code == 200 and response.data == PNG


def test_feeds_carry_absolute_urls(app):
    parsed = feedparser.parse(app.test_client().get("/feed.atom").data)
    (content,) = parsed.entries[0].content
    assert f'src="http://localhost/files/{sha(PNG)}/erd.png"' in content.value


def test_a_large_import_renders_files_in_pool_processes_alike(make_app, folder, tmp_path, monkeypatch, caplog):
    """Above MIN_PARALLEL notes render in pool processes, which check files on their own."""
    for number in range(12):
        write_entry(
            folder, f"many/n{number}.md", f"# N{number}\n\n![erd](../topic/img/erd.png) [gone](nope{number}.png)\n"
        )
    monkeypatch.setattr(sandbox, "MIN_PARALLEL", 5)
    monkeypatch.setattr(sandbox.os, "sched_getaffinity", lambda _pid: {0, 1}, raising=False)
    # Two databases to compare, whatever backend the suite runs on.
    parallel_app = make_app(
        folder, instance="parallel", MAX_ATTACHMENT_MB=CAP_MB, SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path}/p.sqlite3"
    )
    caplog.set_level("INFO", logger="portal")
    parallel = do_import(parallel_app, folder)
    assert "rendered 13 entries in 2 processes" in caplog.text
    monkeypatch.setattr(sandbox, "MIN_PARALLEL", 10**9)
    serial_app = make_app(
        folder, instance="serial", MAX_ATTACHMENT_MB=CAP_MB, SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path}/s.sqlite3"
    )
    serial = do_import(serial_app, folder)
    assert sorted(parallel.warnings) == sorted(serial.warnings)
    assert "many/n3.md:3: link to 'nope3.png' points to no file" in parallel.warnings
    for app in (parallel_app, serial_app):
        html = app.test_client().get("/entries/many/n3").get_data(as_text=True)
        assert f'src="../../files/{sha(PNG)}/erd.png"' in html


@pytest.mark.parametrize(
    ("markdown", "asked", "html"),
    [
        ("![x](img/a.png)", ["dir/img/a.png"], '<img alt="x" src="../../files/h/a.png">'),  # beside the note
        ("![x](../a.png)", ["a.png"], '<img alt="x" src="../../files/h/a.png">'),  # a parent folder
        ("[x](a%20b.pdf#page=2)", ["dir/a b.pdf"], '<a href="../../files/h/a b.pdf#page=2">'),  # quoted; fragment kept
        ("[x](../../up.txt)", ["../up.txt"], '<a class="broken-link" href="../../up.txt">'),  # the resolver refuses
        ("[x](other.md)", [], '<a class="broken-link" href="other.md">'),  # an entry link, not a file
        ("[x](/tags/python)", [], '<a href="/tags/python">'),  # the site's own absolute path
        ("[x](https://example.com/a.png)", [], '<a href="https://example.com/a.png">'),  # another site
        ("[x](#part)", [], '<a href="#part">'),  # a fragment of this page
        ("<ana@example.com>", [], '<a href="mailto:ana@example.com">'),  # an autolinked address (entities inside)
        ("[x](?page=2)", [], '<a href="?page=2">'),  # a query alone is no file
    ],
)
def test_rendering_asks_about_relative_links_to_files(markdown, asked, html):
    """Rendering asks its second resolver about each relative link to a file and rewrites it from the entry's URL."""
    from portal.rendering import render

    seen = []

    def resolve(path):
        seen.append(path)
        return None if path.startswith("..") else f"files/h/{path.rsplit('/', 1)[-1]}"

    rendered = render(
        markdown,
        source_path="dir/note.md",
        entry_slug="dir/note",
        resolve_link=lambda key: None,
        resolve_attachment=resolve,
    )
    assert seen == asked
    assert html in rendered.html
