"""Dates of notes from git: when each file was first committed and when its content last changed.

Pure (no Flask, no database). One `git log` pass over the content folder dates every file; the
result is cached per HEAD commit in a file of the caller's instance folder.

- `created` is the author date of the commit that added the file, following renames back, so a
  moved note keeps its first date. `updated` is the author date of the last commit that changed
  its content, given only when it falls on a later day. Author dates, not committer dates:
  a rebase, an amend or a cherry-pick rewrites committer dates without changing any note, and
  would make every note it touched look updated that day. A day is the author's own calendar
  day (in the offset git recorded); the full timestamps are kept too, for feeds.
- Renames are followed (`-M`), copies are not: a copy is a new note, dated when it was made.
  A pure rename (same content) or a mode-only change does not count as an update.
- The log is limited to the content folder, so a big repository with a small docs folder stays
  fast. The price: a note moved into the folder from elsewhere in the repository is dated by
  that move, because git sees it added there.
- Merges: the whole history, not `--first-parent`, so a note written on a branch is dated by the
  commit that wrote it, not by the merge that brought it in. `-m` shows each merge's diff against
  each parent: a rename made on one side shows there, so the other side's edits under the old
  name are followed too; and what differs from every parent (a resolved conflict, a file added
  while merging) is dated by the merge. The rest of a merge's diff is the sides' own commits.
- A file with no commit yet is not in the result; the caller dates it as before.
- Git runs with a fixed environment and command-line config that no repository setting can use
  to run a program (FIXED_VARIABLES, SAFE_CONFIG, LOG_OPTIONS). When git cannot be used, the
  result has no dates and one warning saying why; nothing is raised.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess  # nosec B404 - git runs with a fixed argument list, no shell
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

CACHE_FILE = "git-dates.json"
# Bumped whenever the meaning of the cached result changes, so old caches are not reused.
CACHE_VERSION = 1
DEFAULT_TIMEOUT = 60.0

FALLBACK = "entries without a date in their front matter are dated by their import time"

# Only these variables reach git. The caller's GIT_DIR, GIT_WORK_TREE, GIT_INDEX_FILE (set when
# the import runs from a git hook) would point git at another repository. Kept: where the
# operator's config lives (their safe.directory entries must still apply, so the system and
# global config stay on) and SUDO_UID, which git uses to judge ownership under sudo.
PASSED_VARIABLES = (
    "PATH", "HOME", "XDG_CONFIG_HOME", "SUDO_UID", "SYSTEMROOT",
    "GIT_CONFIG_GLOBAL", "GIT_CONFIG_SYSTEM", "GIT_CONFIG_NOSYSTEM",
    "GIT_CEILING_DIRECTORIES", "GIT_DISCOVERY_ACROSS_FILESYSTEM",
)  # fmt: skip
FIXED_VARIABLES = {
    "LC_ALL": "C",  # English messages, which are matched below
    "GIT_TERMINAL_PROMPT": "0",  # never wait for a password
    "GIT_OPTIONAL_LOCKS": "0",  # a reader takes no locks
    "GIT_ALLOW_PROTOCOL": "",  # no transport at all: a partial clone must not fetch, nor run `ext::` commands
    "GIT_NO_LAZY_FETCH": "1",  # the same, said directly (git 2.44+)
}
# Given before the subcommand; command-line config beats any repository config.
SAFE_CONFIG = (
    "--no-pager",
    "-c", "core.fsmonitor=false",  # a repository-chosen program, run when the index is read
    "-c", "log.showSignature=false",  # would run gpg.program, which the repository may choose
    "-c", "log.follow=false",  # would turn the single pathspec "." into --follow
)  # fmt: skip
LOG_OPTIONS = (
    "log", "--format=%x01%H %P%x00%aI",  # commit, parents, strict ISO author date (whatever log.date says)
    "-z",  # NUL-separated, paths never quoted (core.quotePath does not apply): spaces, UTF-8, newlines
    "--raw", "--no-abbrev",  # blob ids: a mode-only change or a pure rename is not an update
    "-M", "-m", "--parents",  # renames; merges against each parent; the (simplified) parents
    "--date-order",  # no commit before its children, even when a wrong clock dated it before them
    "--root",  # the first commit's files, whatever log.showRoot says
    "--relative",  # paths relative to the content folder, whatever diff.relative says
    "--no-ext-diff", "--no-textconv", "--no-show-signature", "--no-color",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class FileDates:
    """One file's dates: days for the importer, timestamps (author's own offset) for feeds."""

    created: dt.date
    updated: dt.date | None
    created_at: dt.datetime
    changed_at: dt.datetime  # last content change; `created_at` if the content never changed

    @classmethod
    def from_times(cls, created_at: dt.datetime, changed_at: dt.datetime) -> FileDates:
        """Days from timestamps: `updated` only when the change falls on a later day than the creation."""
        later = changed_at.date() > created_at.date()
        return cls(created_at.date(), changed_at.date() if later else None, created_at, changed_at)


@dataclass(frozen=True)
class GitDates:
    """Dates by path relative to the content folder (POSIX); a warning and no dates when git could not be used."""

    dates: dict[str, FileDates] = field(default_factory=dict)
    warning: str | None = None
    # Why there are no dates: no-git, not-a-work-tree, shallow, dubious-ownership, git-failed.
    fallback: str | None = None
    head: str | None = None
    from_cache: bool = False


class _GitFailed(Exception):
    """A git command failed; `result` is the fallback to return."""

    def __init__(self, result: GitDates):
        super().__init__(result.warning)
        self.result = result


# --- entry point -------------------------------------------------------------------------------


def read_git_dates(content_dir, cache_dir=None, *, timeout: float = DEFAULT_TIMEOUT) -> GitDates:
    """Git dates of every committed file under `content_dir`; never raises for a missing or unusable git."""
    content = Path(content_dir)
    environment = git_environment()
    git = shutil.which("git", path=environment.get("PATH", os.defpath))
    if git is None:
        return _fallback("no-git", f"no `git` program on PATH, so git dates are off; {FALLBACK}")
    try:
        head = _head(git, content, environment, timeout)
        if head is None:
            return GitDates()  # a repository with no commit yet: nothing is committed
        key = {"version": CACHE_VERSION, "content_dir": os.fsdecode(os.path.realpath(content)), "head": head}
        cached = _load_cache(cache_dir, key)
        if cached is not None:
            return GitDates(cached, head=head, from_cache=True)
        files = _run(git, ["ls-tree", "-r", "-z", "--name-only", head, "--", "."], content, environment, timeout)
        log = _run(git, [*LOG_OPTIONS, head, "--", "."], content, environment, timeout)
        dates = date_files(parse_log(log), {os.fsdecode(name) for name in files.split(b"\0") if name})
    except _GitFailed as failure:
        return failure.result
    except (ValueError, IndexError) as error:
        return _fallback("git-failed", f"could not read the output of `git log` in {content} ({error}); {FALLBACK}")
    _store_cache(cache_dir, key, dates)
    return GitDates(dates, head=head)


def git_environment() -> dict[str, str]:
    """The fixed, minimal environment git runs in (see PASSED_VARIABLES)."""
    passed = {name: os.environ[name] for name in PASSED_VARIABLES if name in os.environ}
    return {**passed, **FIXED_VARIABLES}


def _fallback(reason: str, warning: str) -> GitDates:
    """No dates, with the one warning that says why."""
    return GitDates(warning=f"git dates: {warning}", fallback=reason)


# --- running git -------------------------------------------------------------------------------


def _head(git: str, content: Path, environment: dict, timeout: float) -> str | None:
    """HEAD's commit id; None before the first commit. Raises _GitFailed for every fallback."""
    args = ["rev-parse", "--is-inside-work-tree", "--is-shallow-repository", "--verify", "-q", "HEAD"]
    completed = _complete(git, args, content, environment, timeout)
    lines = completed.stdout.decode(errors="replace").splitlines()
    if completed.returncode not in (0, 1) or len(lines) < 2:
        raise _GitFailed(_failure("rev-parse", content, completed))
    if lines[0] != "true":
        # Inside a `.git` folder or a bare repository: there is no work tree to date.
        raise _GitFailed(_fallback("not-a-work-tree", f"{content} is not inside a git work tree; {FALLBACK}"))
    if lines[1] == "true":
        raise _GitFailed(
            _fallback(
                "shallow",
                f"{content} is in a shallow clone (git clone --depth): its history is cut off, so the first commit "
                f"of most files is missing and their git dates would be wrong; {FALLBACK}. "
                "`git fetch --unshallow` brings the whole history back.",
            )
        )
    return lines[2] if completed.returncode == 0 and len(lines) > 2 else None


def _run(git: str, args: list[str], content: Path, environment: dict, timeout: float) -> bytes:
    """The standard output of a git command that must succeed."""
    completed = _complete(git, args, content, environment, timeout)
    if completed.returncode != 0:
        raise _GitFailed(_failure(args[0], content, completed))
    return completed.stdout


def _complete(git: str, args: list[str], content: Path, environment: dict, timeout: float):
    """Run git in the content folder, safely configured; a timeout or an OS error becomes _GitFailed."""
    try:
        return subprocess.run(  # nosec B603 - a fixed git command line; the paths are arguments, not shell text
            [git, *SAFE_CONFIG, *args], cwd=content, env=environment, capture_output=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        reason = f"`git {args[0]}` took longer than {timeout:g} s in {content} and was stopped; {FALLBACK}"
        raise _GitFailed(_fallback("git-failed", reason)) from None
    except OSError as error:
        reason = f"could not run `git {args[0]}` in {content} ({error.strerror or error}); {FALLBACK}"
        raise _GitFailed(_fallback("git-failed", reason)) from None


def _failure(command: str, content: Path, completed) -> GitDates:
    """The fallback for a failed git command, told apart by git's own (LC_ALL=C) message."""
    message = completed.stderr.decode(errors="replace").strip()
    if "not a git repository" in message:
        return _fallback("not-a-work-tree", f"{content} is not inside a git work tree; {FALLBACK}")
    if "detected dubious ownership" in message:
        where = message.split("repository at '", 1)[-1].split("'", 1)[0] if "repository at '" in message else content
        return _fallback(
            "dubious-ownership",
            f'git refuses to read the repository at {where} because another user owns it ("detected dubious '
            f'ownership"); {FALLBACK}. If you trust it: git config --global --add safe.directory {where}',
        )
    first_line = message.splitlines()[0] if message else f"exit status {completed.returncode}"
    return _fallback("git-failed", f"`git {command}` failed in {content} ({first_line}); {FALLBACK}")


# --- reading the log ---------------------------------------------------------------------------


@dataclass(slots=True)
class Change:
    """One line of `git log --raw`: a status letter, whether the blob changed, and its path(s)."""

    status: str
    content_changed: bool
    path: str
    old_path: str | None = None  # for renames and copies


@dataclass(slots=True)
class Commit:
    """A commit of the log: its (rewritten) parents, author time, and one diff per parent shown."""

    sha: str
    parents: list[str]
    authored: dt.datetime
    diffs: list[list[Change]]


def parse_log(output: bytes) -> Iterator[Commit]:
    """Commits of `git log -z --raw -m` output (LOG_OPTIONS); `-m` repeats a merge once per parent."""
    tokens = output.split(b"\0")
    if tokens[-1] == b"":
        tokens.pop()
    position, current = 0, None
    while position < len(tokens):
        header = tokens[position]
        if not header.startswith(b"\x01") or position + 1 >= len(tokens):
            raise ValueError(f"unexpected {header[:40]!r}")
        sha, *parents = header[1:].decode("ascii").split()
        authored = dt.datetime.fromisoformat(tokens[position + 1].decode("ascii"))
        changes, position = _changes(tokens, position + 2)
        if current is not None and current.sha == sha:
            current.diffs.append(changes)  # the same merge against its next parent
            continue
        if current is not None:
            yield current
        current = Commit(sha, parents, authored, [changes])
    if current is not None:
        yield current


def _changes(tokens: list[bytes], position: int) -> tuple[list[Change], int]:
    """The raw diff lines from `position` up to the next commit header; and the position after them."""
    changes = []
    while position < len(tokens):
        meta = tokens[position].lstrip(b"\n")
        if not meta.startswith(b":"):
            break
        _, _, old_blob, new_blob, status = meta[1:].decode("ascii").split(" ")
        paths = 2 if status[0] in "RC" else 1
        names = [os.fsdecode(name) for name in tokens[position + 1 : position + 1 + paths]]
        if len(names) != paths:
            raise ValueError("truncated log")
        changes.append(Change(status[0], old_blob != new_blob, names[-1], names[0] if paths == 2 else None))
        position += 1 + paths
    return changes, position


def date_files(commits, head_files: set[str]) -> dict[str, FileDates]:
    """Dates of the files in HEAD, walking commits newest first and following each file's names back.

    Each commit hands its parents a map from the names at that commit to the path in HEAD;
    maps are shared and copied only when a rename or deletion changes them, so a long history
    without renames costs one map.
    """
    at_head = {path: path for path in head_files}
    handed: dict[str, list[dict[str, str]]] = {}
    created: dict[str, dt.datetime] = {}
    changed: dict[str, dt.datetime] = {}
    for commit in commits:
        names = _join(handed.pop(commit.sha, None))
        if names is None:
            names = at_head  # HEAD, or a commit whose descendants up to HEAD leave the folder alone
        if len(commit.parents) > 1:
            _date_merge(commit, names, created, changed)
            _hand_down_merge(commit, names, handed)
            continue
        names = _apply(commit, commit.diffs[0], names, created, changed)
        for parent in commit.parents:
            handed.setdefault(parent, []).append(names)
    return {path: FileDates.from_times(when, max(when, changed.get(path, when))) for path, when in created.items()}


def _join(maps: list[dict[str, str]] | None) -> dict[str, str] | None:
    """One map from the maps a commit's children handed it (the same map, unless a side renamed)."""
    if not maps:
        return None
    first = maps[0]
    if all(other is first for other in maps):
        return first
    joined: dict[str, str] = {}
    for other in maps:
        for name, path in other.items():
            joined.setdefault(name, path)
    return joined


def _apply(commit: Commit, changes: list[Change], names, created, changed) -> dict[str, str]:
    """Record the dates of one commit's changes; the names its parent knows the files by."""
    own = False
    for change in changes:
        path = names.get(change.path)
        if path is None:
            continue  # a file not in HEAD, or an earlier file that had this name
        when = commit.authored
        if change.status in "AC":
            created[path] = min(when, created.get(path, when))
            continue
        if change.content_changed and change.status in "MTR":
            changed[path] = max(when, changed.get(path, when))
        if change.status in "DR":
            if not own:
                names, own = dict(names), True
            del names[change.path]  # deleted here: the HEAD file with this name was added later
            if change.status == "R":
                names[change.old_path] = path
    return names


def _date_merge(commit: Commit, names: dict[str, str], created, changed) -> None:
    """Date what the merge itself did: a file added, or content changed, against every parent.

    Anything else in a merge's diffs came from one side, and that side's commits are dated. What
    differs from every parent was made in the merge: a conflict resolved, a file added while
    merging, or edits from both sides combined in one file.
    """
    if len(commit.diffs) != len(commit.parents):
        return  # git shows no diff against a parent the merge equals (in this folder): nothing of its own
    seen: dict[str, list[Change]] = {}
    for diff in commit.diffs:
        for change in diff:
            if change.path in names:
                seen.setdefault(change.path, []).append(change)
    when = commit.authored
    for name, changes in seen.items():
        if len(changes) != len(commit.diffs):
            continue
        path = names[name]
        if all(change.status in "AC" for change in changes):
            created[path] = min(when, created.get(path, when))
        elif all(change.content_changed and change.status in "AMTRC" for change in changes):
            changed[path] = max(when, changed.get(path, when))


def _hand_down_merge(commit: Commit, names: dict[str, str], handed) -> None:
    """Give a merge's parents its names, plus the old names of the renames in its diffs against them.

    A rename made on one side of a merge shows in the merge's diff against the other side, whose
    commits still use the old name; the old name cannot mean another file on either side, or git
    would have shown a deletion there first.
    """
    renames = [change for diff in commit.diffs for change in diff if change.status == "R" and change.path in names]
    if renames:
        names = dict(names)
        for change in renames:
            names.setdefault(change.old_path, names[change.path])
    for parent in commit.parents:
        handed.setdefault(parent, []).append(names)


# --- the HEAD cache ------------------------------------------------------------------------------


def _load_cache(cache_dir, key: dict) -> dict[str, FileDates] | None:
    """The cached dates if they were read at this HEAD for this folder; None otherwise (or unreadable)."""
    if cache_dir is None:
        return None
    try:
        stored = json.loads((Path(cache_dir) / CACHE_FILE).read_text(encoding="utf-8"))
        if stored.get("key") != key:
            return None
        return {
            path: FileDates.from_times(dt.datetime.fromisoformat(first), dt.datetime.fromisoformat(last))
            for path, (first, last) in stored["dates"].items()
        }
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None  # missing or damaged: read git again


def _store_cache(cache_dir, key: dict, dates: dict[str, FileDates]) -> None:
    """Write the cache aside and move it in place, so a reader never sees half a file; failures only cost speed."""
    if cache_dir is None:
        return
    folder = Path(cache_dir)
    payload = {
        "key": key,
        "dates": {path: [d.created_at.isoformat(), d.changed_at.isoformat()] for path, d in dates.items()},
    }
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle, aside = tempfile.mkstemp(prefix=f".{CACHE_FILE}.", dir=folder)
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as file:
                # One string (the C encoder), in ASCII: names that are not UTF-8 survive as escapes.
                file.write(json.dumps(payload, separators=(",", ":")))
            os.replace(aside, folder / CACHE_FILE)
        except BaseException:
            os.unlink(aside)
            raise
    except (OSError, ValueError):
        pass  # a read-only instance folder: the next import reads git again
