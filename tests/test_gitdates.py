"""Dates from git: histories made in the test, at set author and committer dates."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from portal.gitdates import CACHE_FILE, read_git_dates

DAY0 = dt.date(2020, 1, 1)
REAL_GIT = shutil.which("git")


def day(number: int) -> dt.date:
    """Day `number` of the test calendar (day 1 is 2020-01-02)."""
    return DAY0 + dt.timedelta(days=number)


def moment(number: int, time: str = "12:00:00+00:00") -> str:
    """A git date on day `number`."""
    return f"{day(number).isoformat()}T{time}"


@pytest.fixture(autouse=True)
def plain_git(tmp_path, monkeypatch):
    """Git as on a fresh machine: no system or user config, no repository above the test folder, not under sudo."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    for name in ("GIT_CONFIG_GLOBAL", "GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "SUDO_UID", "XDG_CONFIG_HOME"):
        monkeypatch.delenv(name, raising=False)


class Repo:
    """A git repository in the test, committed to at set dates."""

    def __init__(self, root: Path):
        """`git init` with a local identity."""
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.git("init", "-q", "-b", "main")
        self.git("config", "user.name", "Test")
        self.git("config", "user.email", "test@localhost")

    def git(self, *args: str, when: str | None = None, committed: str | None = None) -> str:
        """Run git here; `when` sets the author date, `committed` the committer date (default: `when`)."""
        env = dict(os.environ)
        if when:
            env.update(GIT_AUTHOR_DATE=when, GIT_COMMITTER_DATE=committed or when)
        done = subprocess.run(["git", *args], cwd=self.root, env=env, capture_output=True, text=True, check=True)
        return done.stdout

    def commit(self, when: str, write=None, move=None, delete=(), committed: str | None = None) -> None:
        """Move, write and delete files, then commit them all at `when`."""
        for old, new in (move or {}).items():
            (self.root / new).parent.mkdir(parents=True, exist_ok=True)
            (self.root / old).rename(self.root / new)
        for name, text in (write or {}).items():
            path = self.root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        for name in delete:
            (self.root / name).unlink()
        self.git("add", "-A")
        self.git("commit", "-q", "--allow-empty", "-m", "change", when=when, committed=committed)


def found(result) -> dict[str, tuple[dt.date, dt.date | None]]:
    """What a reader sees: each path's (date, updated)."""
    return {path: (dates.created, dates.updated) for path, dates in result.dates.items()}


def expected(table: dict) -> dict[str, tuple[dt.date, dt.date | None]]:
    """A table of day numbers as dates."""
    return {path: (day(first), day(last) if last else None) for path, (first, last) in table.items()}


NOTE = "# A note\n\nSome text that stays the same, long enough for rename detection to pair it up.\n" * 3

# Each row: commits as (day, changes), then each file's (first day, updated day or None) in HEAD.
HISTORIES = [
    # The simplest repository: one commit, no update.
    ([(1, {"write": {"a.md": NOTE}})], {"a.md": (1, None)}),
    # An edit on a later day is the update.
    ([(1, {"write": {"a.md": NOTE}}), (5, {"write": {"a.md": NOTE + "More.\n"}})], {"a.md": (1, 5)}),
    # The last of several edits wins.
    (
        [(1, {"write": {"a.md": NOTE}}), (3, {"write": {"a.md": NOTE + "x"}}), (7, {"write": {"a.md": NOTE + "y"}})],
        {"a.md": (1, 7)},
    ),
    # An edit on the day of creation is no update: a page would say "Updated" the same day.
    ([(1, {"write": {"a.md": NOTE}}), (1, {"write": {"a.md": NOTE + "More.\n"}})], {"a.md": (1, None)}),
    # A renamed note keeps its first date, and a pure rename is no update.
    ([(1, {"write": {"a.md": NOTE}}), (5, {"move": {"a.md": "b.md"}})], {"b.md": (1, None)}),
    # A rename with an edit keeps the first date and is an update.
    (
        [(1, {"write": {"a.md": NOTE}}), (5, {"move": {"a.md": "b.md"}, "write": {"b.md": NOTE + "Edited.\n"}})],
        {"b.md": (1, 5)},
    ),
    # Moved between folders: the first date follows.
    ([(1, {"write": {"x/a.md": NOTE}}), (5, {"move": {"x/a.md": "y/z/a.md"}})], {"y/z/a.md": (1, None)}),
    # Renamed twice, edited under each name: followed all the way back.
    (
        [
            (1, {"write": {"a.md": NOTE}}),
            (2, {"write": {"a.md": NOTE + "1"}}),
            (3, {"move": {"a.md": "b.md"}}),
            (4, {"write": {"b.md": NOTE + "2"}}),
            (6, {"move": {"b.md": "c/c.md"}}),
        ],
        {"c/c.md": (1, 4)},
    ),
    # A deleted file is not dated; the others are untouched.
    ([(1, {"write": {"a.md": NOTE, "b.md": NOTE + "b"}}), (3, {"delete": ["a.md"]})], {"b.md": (1, None)}),
    # Deleted, then a new file under the old name: dated from its own creation, not the old one's.
    (
        [(1, {"write": {"a.md": NOTE}}), (3, {"delete": ["a.md"]}), (6, {"write": {"a.md": "New."}})],
        {"a.md": (6, None)},
    ),
    # A copy is a new note (a template copied to start one), dated when it was made.
    ([(1, {"write": {"a.md": NOTE}}), (4, {"write": {"copy.md": NOTE}})], {"a.md": (1, None), "copy.md": (4, None)}),
    # Spaces, accents, a name that is not UTF-8, and a newline: git's -z output keeps them whole.
    (
        [
            (1, {"write": {"with space.md": NOTE, "día/ñandú.md": NOTE + "n", "new\nline.md": "x"}}),
            (4, {"move": {"día/ñandú.md": "ünï cödé/ñandú 2.md"}}),
        ],
        {"with space.md": (1, None), "ünï cödé/ñandú 2.md": (1, None), "new\nline.md": (1, None)},
    ),
    (
        [(1, {"write": {os.fsdecode(b"caf\xe9.md"): NOTE}})],
        {os.fsdecode(b"caf\xe9.md"): (1, None)},  # a Latin-1 name: the same str os.walk gives the importer
    ),
]


@pytest.mark.parametrize("history, dates", HISTORIES)
def test_dates_follow_the_history(tmp_path, history, dates):
    """Each file gets its first commit's date, and its last content change when later."""
    repo = Repo(tmp_path / "repo")
    for number, changes in history:
        repo.commit(moment(number), **changes)
    result = read_git_dates(repo.root, tmp_path / "instance")
    assert result.warning is None
    assert found(result) == expected(dates)
    # The cached copy reads the same, names that are not UTF-8 included.
    assert found(read_git_dates(repo.root, tmp_path / "instance")) == expected(dates)


def test_a_mode_change_is_no_update(tmp_path):
    """`chmod +x` on a note (a Windows checkout, a careless script) changes no text, so no date."""
    repo = Repo(tmp_path / "repo")
    repo.commit(moment(1), write={"a.md": NOTE})
    (repo.root / "a.md").chmod(0o755)
    repo.commit(moment(5))
    assert found(read_git_dates(repo.root)) == expected({"a.md": (1, None)})


def test_dates_are_author_dates_in_the_authors_calendar(tmp_path):
    """A rebase rewrites committer dates only: notes keep their dates, and a day is the author's own day."""
    repo = Repo(tmp_path / "repo")
    # Written late on day 1 in New York (day 2 in UTC), committed (rebased) much later.
    repo.commit(moment(1, "23:30:00-05:00"), write={"a.md": NOTE}, committed=moment(40))
    repo.commit(moment(3), write={"a.md": NOTE + "edit"}, committed=moment(40))
    dates = read_git_dates(repo.root).dates["a.md"]
    assert (dates.created, dates.updated) == (day(1), day(3))
    assert dates.created_at == dt.datetime.fromisoformat(moment(1, "23:30:00-05:00"))
    assert dates.changed_at == dt.datetime.fromisoformat(moment(3))


def test_uncommitted_files_get_no_git_dates(tmp_path):
    """New and staged files have no commit yet: the importer dates them as before."""
    repo = Repo(tmp_path / "repo")
    assert found(read_git_dates(repo.root)) == {}  # no commit at all yet, and no warning either
    assert read_git_dates(repo.root).warning is None
    repo.commit(moment(1), write={"a.md": NOTE})
    (repo.root / "new.md").write_text("new", encoding="utf-8")
    (repo.root / "staged.md").write_text("staged", encoding="utf-8")
    repo.git("add", "staged.md")
    (repo.root / "a.md").write_text("edited, not committed", encoding="utf-8")
    result = read_git_dates(repo.root, tmp_path / "instance")
    assert result.warning is None
    assert found(result) == expected({"a.md": (1, None)})


def test_a_content_folder_inside_the_repository(tmp_path):
    """Paths are relative to the content folder; files outside it are not dated."""
    repo = Repo(tmp_path / "repo")
    repo.commit(moment(1), write={"README.md": "project", "docs/guide.md": NOTE, "docs/deep/a b.md": NOTE + "x"})
    repo.commit(moment(3), write={"src/draft.md": NOTE + "draft"})
    repo.commit(moment(5), move={"docs/guide.md": "docs/deep/guide.md"}, write={"README.md": "changed"})
    # Moved in from elsewhere in the repository: git, limited to the folder, sees it added here.
    repo.commit(moment(8), move={"src/draft.md": "docs/draft.md"})
    result = read_git_dates(repo.root / "docs", tmp_path / "instance")
    assert result.warning is None
    assert found(result) == expected({"deep/guide.md": (1, None), "deep/a b.md": (1, None), "draft.md": (8, None)})


def test_merges(tmp_path):
    """A branch's notes keep their own dates; renames and edits on either side meet; a merge's own changes count."""
    repo = Repo(tmp_path / "repo")
    repo.commit(moment(1), write={"a.md": NOTE, "b.md": NOTE + "b"})
    repo.git("checkout", "-q", "-b", "side")
    repo.commit(moment(3), write={"branch.md": NOTE + "written on the branch"})
    repo.commit(moment(4), move={"a.md": "moved/a.md"})
    repo.git("checkout", "-q", "main")
    repo.commit(moment(6), write={"a.md": NOTE + "edited on main under its old name"})
    repo.git("merge", "-q", "--no-edit", "side", when=moment(9))
    # A --no-ff merge of a branch the main line never moved past: the merge's tree is the branch's.
    repo.git("checkout", "-q", "-b", "quick")
    repo.commit(moment(11), move={"b.md": "quick/b.md"})
    repo.git("checkout", "-q", "main")
    repo.git("merge", "-q", "--no-ff", "--no-edit", "quick", when=moment(12))
    # Both sides edit one note; the conflict is resolved, and a note added, in the merge commit itself.
    repo.commit(moment(13), write={"c.md": NOTE})
    repo.git("checkout", "-q", "-b", "clash")
    repo.commit(moment(14), write={"c.md": NOTE + "theirs"})
    repo.git("checkout", "-q", "main")
    repo.commit(moment(15), write={"c.md": NOTE + "ours"})
    merging = subprocess.run(["git", "merge", "-q", "clash"], cwd=repo.root, capture_output=True, check=False)
    assert merging.returncode != 0  # the conflict
    repo.commit(moment(18), write={"c.md": NOTE + "both", "added-while-merging.md": NOTE + "new"})
    assert (repo.root / "moved/a.md").read_text(encoding="utf-8").endswith("old name")
    assert repo.git("rev-parse", "HEAD^2")  # the last commit is a merge
    assert found(read_git_dates(repo.root)) == expected(
        {
            "moved/a.md": (1, 6),  # renamed on the branch, edited on main under the old name
            "branch.md": (3, None),  # written on the branch: its own date, not the merge's (9)
            "quick/b.md": (1, None),
            "c.md": (13, 18),  # resolved in the merge: the merge changed it
            "added-while-merging.md": (18, None),
        }
    )


def test_a_wrong_clock_does_not_reorder_history(tmp_path):
    """A branch commit dated before its parent (a wrong clock) does not lose the edits made under its old name."""
    repo = Repo(tmp_path / "repo")
    repo.commit(moment(1), write={"a.md": NOTE})
    repo.commit(moment(2), write={"a.md": NOTE + "edit"}, committed=moment(20))
    repo.git("checkout", "-q", "-b", "skewed")
    repo.commit(moment(3), move={"a.md": "b.md"}, committed=moment(3))  # committed "before" its parent
    repo.git("checkout", "-q", "main")
    repo.commit(moment(21), write={"other.md": NOTE + "other"})
    repo.git("merge", "-q", "--no-edit", "skewed", when=moment(22))
    assert found(read_git_dates(repo.root)) == expected({"b.md": (1, 2), "other.md": (21, None)})


# --- the HEAD cache ------------------------------------------------------------------------------


@pytest.fixture
def git_calls(tmp_path, monkeypatch):
    """A `git` first on PATH that records each call's arguments, then runs the real git."""
    shim = tmp_path / "shim"
    shim.mkdir()
    calls = tmp_path / "calls.log"
    (shim / "git").write_text(f'#!/bin/sh\necho "$*" >> "{calls}"\nexec "{REAL_GIT}" "$@"\n', encoding="utf-8")
    (shim / "git").chmod(0o755)
    monkeypatch.setenv("PATH", f"{shim}{os.pathsep}{os.environ['PATH']}")

    def logs() -> int:
        """How many `git log` runs so far."""
        lines = calls.read_text(encoding="utf-8").splitlines() if calls.exists() else []
        return sum(1 for line in lines if "log" in line.split())  # the subcommand, not a -c log.* setting

    return logs


def test_the_result_is_reused_while_head_stays(tmp_path, git_calls):
    """A second import at the same HEAD runs no `git log`; a new commit does."""
    repo = Repo(tmp_path / "repo")
    repo.commit(moment(1), write={"a.md": NOTE})
    instance = tmp_path / "instance"
    cold = read_git_dates(repo.root, instance)
    assert (git_calls(), cold.from_cache) == (1, False)
    warm = read_git_dates(repo.root, instance)
    assert (git_calls(), warm.from_cache) == (1, True)
    assert (warm.dates, warm.head) == (cold.dates, cold.head)
    assert sorted(p.name for p in instance.iterdir()) == [CACHE_FILE]  # written aside, moved in: nothing left over
    repo.commit(moment(4), write={"b.md": NOTE + "b"})
    moved = read_git_dates(repo.root, instance)
    assert (git_calls(), moved.from_cache) == (2, False)
    assert found(moved) == expected({"a.md": (1, None), "b.md": (4, None)})


@pytest.mark.parametrize(
    "spoil",
    [
        "{not json",  # half a file from a crash of an older version
        '{"key": 1, "dates": []}',  # valid JSON of the wrong shape
        "",  # an empty file
    ],
)
def test_a_damaged_cache_is_read_again(tmp_path, git_calls, spoil):
    """A cache file that cannot be used costs one `git log`, never an error."""
    repo = Repo(tmp_path / "repo")
    repo.commit(moment(1), write={"a.md": NOTE})
    instance = tmp_path / "instance"
    read_git_dates(repo.root, instance)
    (instance / CACHE_FILE).write_text(spoil, encoding="utf-8")
    assert found(read_git_dates(repo.root, instance)) == expected({"a.md": (1, None)})
    assert git_calls() == 2
    assert read_git_dates(repo.root, instance).from_cache  # and it was written again


def test_the_cache_belongs_to_one_content_folder(tmp_path):
    """Two content folders of one repository (same HEAD) sharing an instance folder do not get each other's dates."""
    repo = Repo(tmp_path / "repo")
    repo.commit(moment(1), write={"top.md": NOTE, "docs/a.md": NOTE + "a"})
    instance = tmp_path / "instance"
    assert found(read_git_dates(repo.root, instance)) == expected({"top.md": (1, None), "docs/a.md": (1, None)})
    assert found(read_git_dates(repo.root / "docs", instance)) == expected({"a.md": (1, None)})


# --- when git cannot be used ---------------------------------------------------------------------


def history(root: Path) -> Repo:
    """A repository with two commits."""
    repo = Repo(root)
    repo.commit(moment(1), write={"a.md": NOTE})
    repo.commit(moment(2), write={"b.md": NOTE + "b"})
    return repo


def no_git(tmp_path, monkeypatch) -> Path:
    """PATH leads to no git."""
    repo = history(tmp_path / "repo")
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    return repo.root


def plain_folder(tmp_path, monkeypatch) -> Path:
    """Notes in no repository at all."""
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes/a.md").write_text(NOTE, encoding="utf-8")
    return tmp_path / "notes"


def git_folder(tmp_path, monkeypatch) -> Path:
    """The `.git` folder itself: a repository, but no work tree."""
    return history(tmp_path / "repo").root / ".git"


def shallow_clone(tmp_path, monkeypatch) -> Path:
    """`git clone --depth 1`: every file would look added by the one commit there is."""
    source = history(tmp_path / "repo")
    subprocess.run(
        ["git", "clone", "-q", "--depth", "1", f"file://{source.root}", str(tmp_path / "clone")],
        check=True,
        capture_output=True,
    )
    return tmp_path / "clone"


def other_owner(tmp_path, monkeypatch) -> Path:
    """A repository owned by nobody (uid 65534): git, run as root, refuses it (safe.directory)."""
    repo = history(tmp_path / "repo")
    for folder, dirnames, filenames in os.walk(repo.root):
        for name in [folder, *(os.path.join(folder, n) for n in dirnames + filenames)]:
            os.chown(name, 65534, 65534, follow_symlinks=False)
    return repo.root


def broken_repository(tmp_path, monkeypatch) -> Path:
    """A repository whose objects are gone (a disk error, a bad copy)."""
    repo = history(tmp_path / "repo")
    for folder in (repo.root / ".git/objects").iterdir():
        if len(folder.name) == 2:
            shutil.rmtree(folder)
    return repo.root


@pytest.mark.parametrize(
    "make, reason, words",
    [
        (no_git, "no-git", ["no `git` program on PATH"]),  # a server image without git
        (plain_folder, "not-a-work-tree", ["is not inside a git work tree"]),  # notes that were never in git
        (git_folder, "not-a-work-tree", ["is not inside a git work tree"]),  # pointed at `.git` by mistake
        (shallow_clone, "shallow", ["shallow clone", "would be wrong", "git fetch --unshallow"]),  # CI checkouts
        (other_owner, "dubious-ownership", ["dubious ownership", "another user", "safe.directory"]),  # a git update
        (broken_repository, "git-failed", ["`git ls-tree` failed", "not a tree object"]),  # anything else git says
    ],
)
def test_fallbacks_warn_once_and_say_why(tmp_path, monkeypatch, make, reason, words):
    """Each case where git cannot date the notes gives no dates and one warning naming the cause and the fallback."""
    content = make(tmp_path, monkeypatch)
    result = read_git_dates(content, tmp_path / "instance")
    assert (result.dates, result.fallback) == ({}, reason)
    assert result.warning.startswith("git dates: ")
    for word in [*words, "dated by their import time"]:
        assert word in result.warning
    assert not (tmp_path / "instance" / CACHE_FILE).exists()  # nothing cached that a later, working git would reuse


def test_a_git_that_hangs_is_stopped(tmp_path):
    """A timeout (a repository on a dead network share) is a fallback too."""
    repo = history(tmp_path / "repo")
    result = read_git_dates(repo.root, timeout=1e-6)
    assert (result.dates, result.fallback) == ({}, "git-failed")
    assert "took longer than" in result.warning


def test_the_operators_safe_directory_still_applies(tmp_path):
    """Git's own config is kept: a repository the operator declared safe is read, though another user owns it."""
    content = other_owner(tmp_path, None)
    subprocess.run(["git", "config", "--global", "--add", "safe.directory", str(content)], check=True)
    result = read_git_dates(content)
    assert result.warning is None
    assert found(result) == expected({"a.md": (1, None), "b.md": (2, None)})


def test_the_callers_git_variables_do_not_leak(tmp_path, monkeypatch):
    """Run from a git hook (GIT_DIR set to another repository), the content folder's own repository is read."""
    other = history(tmp_path / "other")
    repo = Repo(tmp_path / "repo")
    repo.commit(moment(7), write={"mine.md": NOTE})
    monkeypatch.setenv("GIT_DIR", str(other.root / ".git"))
    monkeypatch.setenv("GIT_INDEX_FILE", str(other.root / ".git/index"))
    assert found(read_git_dates(repo.root)) == expected({"mine.md": (7, None)})


# --- a repository's own config --------------------------------------------------------------------


def test_a_repositorys_config_runs_nothing_and_changes_nothing(tmp_path):
    """A cloned repository's config cannot make the import run a program, nor change what is read."""
    repo = Repo(tmp_path / "repo")
    ran = tmp_path / "ran"
    program = tmp_path / "program"
    program.write_text(f'#!/bin/sh\ntouch "{ran}"\ncat >/dev/null\nexit 1\n', encoding="utf-8")
    program.chmod(program.stat().st_mode | stat.S_IXUSR)
    repo.commit(moment(1), write={"a.md": NOTE, ".gitattributes": "*.md diff=hostile\n"})
    repo.commit(moment(3), write={"copy.md": NOTE})
    repo.commit(moment(5), move={"a.md": "renamed.md"}, write={"renamed.md": NOTE + "edit"})
    # The last commit again, signed: with log.showSignature, git runs gpg.program to check it.
    tree, parent = repo.git("rev-parse", "HEAD^{tree}", "HEAD^").split()
    stamp = int(dt.datetime.fromisoformat(moment(5)).timestamp())
    signed = (
        f"tree {tree}\nparent {parent}\nauthor T <t@x> {stamp} +0000\ncommitter T <t@x> {stamp} +0000\n"
        "gpgsig -----BEGIN PGP SIGNATURE-----\n \n fake\n -----END PGP SIGNATURE-----\n\nsigned\n"
    )
    (tmp_path / "commit").write_text(signed, encoding="utf-8")
    repo.git("update-ref", "HEAD", repo.git("hash-object", "-t", "commit", "-w", str(tmp_path / "commit")).strip())
    for key, value in [
        ("core.fsmonitor", program),  # run when the index is read
        ("core.pager", program),
        ("pager.log", program),
        ("diff.external", program),
        ("diff.hostile.textconv", program),  # with the .gitattributes above
        ("log.showSignature", "true"),
        ("gpg.program", program),
        ("log.showRoot", "false"),  # would hide the first commit's files
        ("diff.relative", "false"),
        ("diff.renames", "copies"),  # would date copy.md from a.md
        ("diff.noprefix", "true"),
        ("log.date", "relative"),
        ("core.quotePath", "true"),
    ]:
        repo.git("config", key, str(value))
    result = read_git_dates(repo.root)
    assert not ran.exists()
    assert result.warning is None
    assert found(result) == expected({"renamed.md": (1, 5), "copy.md": (3, None), ".gitattributes": (1, None)})
