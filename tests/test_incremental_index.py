"""Incremental index updates: after any sequence of imports the index equals a full rebuild, and the log decides.

The index an import updates in place of a rebuild must hold the same documents with the same
terms (and positions, frequencies, lengths, sortable values) as a full rebuild of the same
database; the spelling field differs only in its per-document postings (a full build thins
them), so its vocabulary is compared instead.
"""

from __future__ import annotations

import random
import textwrap

import pytest
from sqlalchemy import select

from portal import indexing
from portal.models import ImportRun, IndexChange, db
from portal.search import searchers, store
from portal.search.analysis import make_schema
from portal.search.engine import count_tags

from .conftest import do_import, write_entry

WORDS = [
    "cache",
    "redis",
    "celery",
    "worker",
    "queue",
    "broker",
    "index",
    "shard",
    "replica",
    "lock",
    "timeout",
    "retry",
    "token",
    "session",
    "pool",
    "select_related",
    "docker-compose",
    "N+1",
    "CI/CD",
    "migration",
    "schema",
    "column",
    "cursor",
    "vacuum",
    "analyze",
    "explain",
    "gunicorn",
    "nginx",
    "socket",
    "thread",
    "process",
    "coroutine",
    "latency",
    "throughput",
    "zeppelin",
    "harbour",
    "lantern",
]
TAGS = ["python", "django", "redis", "caching", "ops", "testing", "Databases", "sqlite"]
FOLDERS = ["notes", "tech", "deep/er", "misc"]
KINDS = ["edit", "add", "delete", "rename", "slug", "reuse-slug", "draft", "broken", "intro"]


class Corpus:
    """A content folder changed at random: edits, additions, deletions, renames, slug changes, drafts."""

    def __init__(self, root, seed: int):
        self.root, self.random = root, random.Random(seed)
        self.files: dict[str, str] = {}  # relative path -> front matter slug ("" if none)
        self.serial = 0

    def text(self, slug: str = "") -> str:
        """A note with a title, tags, headings, words, technical tokens and wiki links to other notes."""
        r = self.random
        self.serial += 1
        words = lambda n: " ".join(r.choice(WORDS) for _ in range(n))  # noqa: E731
        links = " ".join(f"[[{self.slug_of(p)}]]" for p in r.sample(sorted(self.files), min(2, len(self.files))))
        dangling = f"[[later-{r.randrange(8)}]]" if r.random() < 0.3 else ""  # may exist one day: a relink
        tags = r.sample(TAGS, r.randrange(0, 4))
        front = [f"title: {words(2).title()} {self.serial}", f"tags: [{', '.join(tags)}]"]
        if slug:
            front.append(f"slug: {slug}")
        body = f"{words(12)} {links} {dangling}\n\n## {words(2)}\n\n{words(r.randrange(5, 40))}\n"
        return "---\n" + "\n".join(front) + "\n---\n" + body

    def slug_of(self, path: str) -> str:
        return self.files[path] or path.removesuffix(".md")

    def write(self, path: str, slug: str = "") -> None:
        self.files[path] = slug
        write_entry(self.root, path, self.text(slug))

    def new_path(self) -> str:
        self.serial += 1
        name = f"later-{self.random.randrange(8)}" if self.random.random() < 0.3 else f"n{self.serial}"
        return f"{self.random.choice(FOLDERS)}/{name}.md"

    def change(self, kind: str | None = None) -> str:
        """One change to the folder (`kind`, or one at random); its kind."""
        r, paths = self.random, sorted(self.files)
        kind = kind or r.choice(KINDS)
        if kind == "add" or len(paths) < 4:
            path = self.new_path()
            if path not in self.files:
                self.write(path)
            return "add"
        path = r.choice(paths)
        if kind == "edit":
            self.write(path, self.files[path])
        elif kind == "delete":
            (self.root / path).unlink()
            del self.files[path]
        elif kind == "rename":  # a move between folders: the slug follows the path
            target = self.new_path()
            if target not in self.files:
                (self.root / path).unlink()
                del self.files[path]
                self.write(target)
        elif kind == "slug":
            self.write(path, f"custom/{self.serial}")
        elif kind == "reuse-slug":  # one entry gives up its slug and another takes it, in one import
            other = r.choice([p for p in paths if p != path])
            freed = self.slug_of(path)
            self.write(path, f"moved/{self.serial}")
            self.write(other, freed)
        elif kind == "draft":
            write_entry(self.root, path, "---\ndraft: true\n---\nNot yet.\n")
            del self.files[path]
        elif kind == "broken":  # the last good version stays
            write_entry(self.root, path, "---\ntitle: [unclosed\n---\nBroken.\n")
            self.broken = path
        else:
            write_entry(self.root, "_intro.md", f"Welcome, edition {self.serial}.\n")
        return kind

    def repair(self) -> None:
        """A broken file becomes good again (it was skipped while broken)."""
        path = getattr(self, "broken", None)
        if path and path in self.files:
            self.write(path, self.files[path])
        self.broken = None


def index_contents(directory) -> dict:
    """Everything a search can see of an index, per document slug (deleted documents left out)."""
    ix = store.open_index(directory)
    schema = make_schema()
    try:
        with ix.reader() as reader:
            slug_of = {docnum: stored["slug"] for docnum, stored in reader.iter_docs()}
            documents = {slug: {"stored": reader.stored_fields(docnum)} for docnum, slug in slug_of.items()}
            spelling = set()
            for field, term in reader.all_terms():
                matcher = reader.postings(field, term)
                positions = schema[field].format.supports("positions")
                while matcher.is_active():
                    docnum = matcher.id()
                    if field == "spell":
                        spelling.add(term)
                    else:
                        value = (matcher.weight(), tuple(matcher.value_as("positions")) if positions else ())
                        documents[slug_of[docnum]].setdefault(field, {})[term] = value
                    matcher.next()
            for docnum, slug in slug_of.items():
                for field in ("date", "title_sort"):
                    documents[slug][field + "#column"] = reader.column_reader(field)[docnum]
                for field in ("title", "summary", "headings", "body", "tags"):
                    documents[slug][field + "#length"] = (
                        reader.doc_field_length(docnum, field) or 0
                    )  # None: no length column
        return {"documents": documents, "spelling": spelling}
    finally:
        ix.close()


def full_rebuild_contents(app, tmp_path) -> dict:
    """The contents of a full rebuild of the app's database, written to a folder of its own."""
    other = tmp_path / f"rebuild-{random.random()}"
    with app.app_context():
        generation = db.session.scalar(select(ImportRun.id).order_by(ImportRun.id.desc()).limit(1))
        indexing._build(other, generation)
        db.session.remove()
    return index_contents(store.live_index_dir(other))


def count_modes(monkeypatch, app) -> dict:
    """Count how the app's index was brought up to date: updated or rebuilt."""
    modes = {"incremental": 0, "full": 0}
    update, build = store.update_index, store.build_index

    def counted(mode, function):
        def wrapper(instance_path, *args, **kwargs):
            if str(instance_path) == app.instance_path:
                modes[mode] += 1
            return function(instance_path, *args, **kwargs)

        return wrapper

    monkeypatch.setattr(store, "update_index", counted("incremental", update))
    monkeypatch.setattr(store, "build_index", counted("full", build))
    return modes


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_incremental_updates_equal_a_full_rebuild(make_app, tmp_path, monkeypatch, seed):
    content = tmp_path / "content"
    corpus = Corpus(content, seed)
    for _ in range(30):
        corpus.write(corpus.new_path())
    app = make_app(content)
    do_import(app, content)
    modes = count_modes(monkeypatch, app)
    done = []
    for kind in KINDS:  # every kind of change once, each with up to four random others in the same import
        corpus.repair()
        done.append([corpus.change(kind), *(corpus.change() for _ in range(corpus.random.randrange(0, 5)))])
        report = do_import(app, content)
        assert report.indexed == report.changed
        live = index_contents(store.live_index_dir(app.instance_path))
        assert live == full_rebuild_contents(app, tmp_path), f"after the imports of {done}"
    assert (
        modes["full"] == 0 and modes["incremental"] >= len(KINDS) - 1
    )  # an import of only broken files changes nothing


def test_a_full_rebuild_and_updates_share_the_spelling_vocabulary_not_its_postings(make_app, tmp_path):
    # 250 entries: a full build keeps each spelling word once per block of 2 documents.
    content = tmp_path / "content"
    for i in range(250):
        write_entry(content, f"n/{i}.md", f"# Note {i}\n\nzeppelin harbour lantern {i}\n")
    app = make_app(content)
    do_import(app, content)
    write_entry(content, "n/new.md", "# New\n\nzeppelin quixotic\n")
    do_import(app, content)
    ix = store.open_index(store.live_index_dir(app.instance_path))
    with ix.reader() as reader:
        assert reader.doc_frequency("spell", "zeppelin") < 251  # thinned by the full build, then one more
        assert "quixotic" in set(reader.field_terms("spell"))
    ix.close()


# --- what sync_index decides ---------------------------------------------------------------


def sync(app):
    with app.app_context():
        outcome = indexing.sync_index(app.instance_path)
        db.session.remove()
    return outcome


def edit(content, path, words):
    write_entry(content, path, f"# {path}\n\n{words}\n")


# Each row: what happened between the live index and the database, and how the index follows.
CASES = [
    # The log covers every newer generation and few entries changed: only they are rewritten.
    ("few-changes", "incremental"),
    # An import that touched only the home page's introduction: a new generation, no document.
    ("intro-only", "incremental"),
    # A generation whose log row is gone (pruned, or written by an older Nexus): rebuild.
    ("gap", "full"),
    # An import that changed more than an update suits logs "rebuild" instead of the slugs.
    ("too-many", "full"),
    # The index was written by other analysis code (a new release): its terms cannot be trusted.
    ("other-analysis", "full"),
    # The database is older than the index (restored from a backup): rebuild.
    ("database-behind", "full"),
    # No live index at all.
    ("no-index", "full"),
]


@pytest.mark.parametrize(("case", "mode"), CASES)
def test_sync_index_updates_when_the_log_allows_and_rebuilds_otherwise(make_app, tmp_path, monkeypatch, case, mode):
    content = tmp_path / "content"
    for i in range(12):
        edit(content, f"n/{i}.md", f"lantern {i}")
    app = make_app(content)
    do_import(app, content)
    live = store.live_index_dir(app.instance_path)
    # Later imports change the database only; the index is left behind, as on another node.
    monkeypatch.setattr(indexing, "sync_index", lambda path: None)
    monkeypatch.setattr("portal.importer.sync_index", lambda path: None)
    if case == "few-changes":
        edit(content, "n/1.md", "zeppelin")
        do_import(app, content)
        edit(content, "n/2.md", "harbour")
        (content / "n/3.md").unlink()
        do_import(app, content)
    elif case == "intro-only":
        write_entry(content, "_intro.md", "Hello.\n")
        do_import(app, content)
    elif case == "gap":
        edit(content, "n/1.md", "zeppelin")
        do_import(app, content)
        with app.app_context():
            db.session.query(IndexChange).delete()
            db.session.commit()
    elif case == "too-many":
        monkeypatch.setattr(IndexChange, "MAX_SMALL", 2)
        for i in range(5):
            edit(content, f"n/{i}.md", f"zeppelin {i}")
        do_import(app, content)
    elif case == "other-analysis":
        monkeypatch.setattr(store, "analysis_fingerprint", lambda: "another")
        edit(content, "n/1.md", "zeppelin")
        do_import(app, content)
    elif case == "database-behind":
        (live / "generation").write_text("99\n")
    elif case == "no-index":
        store.index_link(app.instance_path).unlink()
    monkeypatch.undo()
    if case == "other-analysis":
        monkeypatch.setattr(store, "analysis_fingerprint", lambda: "another")
    modes = count_modes(monkeypatch, app)
    outcome = sync(app)
    assert outcome.mode == mode, outcome
    assert modes[mode] == 1 and sum(modes.values()) == 1
    with app.app_context():
        generation = db.session.scalar(select(ImportRun.id).order_by(ImportRun.id.desc()).limit(1))
    assert store.check_index(app.instance_path)[0] == generation
    assert index_contents(store.live_index_dir(app.instance_path)) == full_rebuild_contents(app, tmp_path)
    assert sync(app).mode == "current"


def test_too_many_deleted_documents_make_the_next_update_a_rebuild(make_app, tmp_path, monkeypatch):
    # Deleted documents stay in their segment until it merges; past the limit a rebuild drops them.
    content = tmp_path / "content"
    for i in range(12):
        edit(content, f"n/{i}.md", f"lantern {i}")
    app = make_app(content)
    do_import(app, content)
    monkeypatch.setattr(IndexChange, "MAX_SMALL", 3)  # changed + deleted documents
    modes = count_modes(monkeypatch, app)
    for i in range(3):
        edit(content, f"n/{i}.md", f"zeppelin {i}")
        do_import(app, content)
    assert modes == {"incremental": 3, "full": 0}
    assert store.live_index_state(app.instance_path).deleted == 3
    edit(content, "n/9.md", "harbour")
    do_import(app, content)
    assert modes == {"incremental": 3, "full": 1}
    assert store.live_index_state(app.instance_path).deleted == 0


def test_the_log_keeps_the_last_generations_in_the_import_transaction(make_app, tmp_path, monkeypatch):
    content = tmp_path / "content"
    edit(content, "a.md", "one")
    edit(content, "b.md", "two")
    app = make_app(content)
    monkeypatch.setattr(IndexChange, "KEEP", 3)
    do_import(app, content)
    edit(content, "a.md", "three")
    write_entry(content, "b.md", "---\nslug: bee\n---\nfour\n")  # a slug change: old deleted, new changed
    do_import(app, content)
    (content / "a.md").unlink()
    do_import(app, content)
    for i in range(3):
        write_entry(content, "_intro.md", f"Edition {i}\n")
        do_import(app, content)
    with app.app_context():
        rows = {r.generation: (r.changed, r.deleted) for r in db.session.scalars(select(IndexChange))}
    assert rows == {4: ([], []), 5: ([], []), 6: ([], [])}  # older generations pruned
    monkeypatch.setattr(IndexChange, "KEEP", 100)
    edit(content, "c.md", "five")
    do_import(app, content)
    with app.app_context():
        assert db.session.get(IndexChange, 7).changed == ["c"]


def test_the_log_lists_slug_changes_and_deletions(make_app, tmp_path):
    content = tmp_path / "content"
    edit(content, "a.md", "one")
    edit(content, "b.md", "two")
    edit(content, "c.md", "three [[a]]")
    app = make_app(content)
    do_import(app, content)
    write_entry(content, "b.md", "---\nslug: bee\n---\nfour\n")
    (content / "a.md").unlink()  # c links to a: c is rendered again, so its document changes too
    do_import(app, content)
    with app.app_context():
        row = db.session.get(IndexChange, 2)
        assert (row.changed, row.deleted) == (["bee", "c"], ["a", "b"])


def test_the_index_directory_shares_unchanged_files_with_the_previous_one(make_app, tmp_path):
    content = tmp_path / "content"
    for i in range(12):
        edit(content, f"n/{i}.md", f"lantern {i}")
    app = make_app(content)
    do_import(app, content)
    before = store.live_index_dir(app.instance_path)
    segment_files = {p.name: p.stat().st_ino for p in before.iterdir() if p.suffix == ".seg"}
    edit(content, "n/1.md", "zeppelin")
    do_import(app, content)
    after = store.live_index_dir(app.instance_path)
    assert after != before and before.exists()  # the previous directory stays for readers still on it
    linked = {p.name: p.stat().st_ino for p in after.iterdir() if p.name in segment_files}
    assert linked == segment_files  # hard links, not copies
    for lock in after.glob("*LOCK"):  # Whoosh's writer made its own; the live one's is never shared
        assert lock.stat().st_nlink == 1


@pytest.mark.parametrize(
    "setup",
    [
        # An entry deleted and another given its slug in one import: one document with that slug.
        textwrap.dedent("""\
            a.md: slug=x, words=alpha
            b.md: words=beta
            ---
            a.md: delete
            b.md: slug=x, words=gamma
        """),
        # A file renamed: the old slug's document goes, the new one comes.
        textwrap.dedent("""\
            a.md: words=alpha
            ---
            a.md: delete
            b.md: words=alpha
        """),
    ],
)
def test_a_slug_changing_hands_leaves_one_document(make_app, tmp_path, setup):
    content = tmp_path / "content"
    app = make_app(content)
    first, second = setup.split("---\n")
    for step in (first, second):
        for line in step.strip().splitlines():
            path, spec = line.split(": ")
            if spec == "delete":
                (content / path).unlink()
                continue
            fields = dict(part.split("=") for part in spec.split(", "))
            front = f"slug: {fields['slug']}\n" if "slug" in fields else ""
            write_entry(content, path, f"---\ntitle: {path}\n{front}---\n{fields['words']}\n")
        do_import(app, content)
    live = index_contents(store.live_index_dir(app.instance_path))
    assert live == full_rebuild_contents(app, tmp_path)
    assert len(live["documents"]) == len(list(content.glob("*.md")))


def test_a_reopen_after_an_update_reads_the_new_segment_only(make_app, tmp_path, monkeypatch):
    content = tmp_path / "content"
    for i in range(30):
        write_entry(content, f"n/{i}.md", f"---\ntags: [t{i % 4}, common]\n---\n# Note {i}\n\nlantern\n")
    app = make_app(content)
    do_import(app, content)
    pool = app.extensions["nexus.searchers"]
    pool.get()
    read = []
    original = searchers._segment_tags
    monkeypatch.setattr(
        searchers, "_segment_tags", lambda leaf, arrays: read.append(leaf.doc_count_all()) or original(leaf, arrays)
    )
    write_entry(content, "n/3.md", "---\ntags: [fresh]\n---\n# Note 3\n\nlantern\n")
    do_import(app, content)
    searcher, doc_tags, generation = pool.get()
    assert generation == 2 and read == [1]  # the new segment, with its one document
    # Facet counts over both segments: the edited entry's old tags are gone, its new one is there.
    matched = list(searcher.reader().all_doc_ids())
    assert count_tags(doc_tags, matched) == {"common": 29, "t0": 8, "t1": 8, "t2": 7, "t3": 6, "fresh": 1}
