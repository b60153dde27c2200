"""Every setting: its default, the `NEXUS_*` environment variable that overrides it, and its checks.

The secret key lives here too: read from `NEXUS_SECRET_KEY` or `<instance>/secret_key`.
"""

from __future__ import annotations

import math
import os
import secrets
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PACKAGE_ROOT = Path(__file__).resolve().parent


def resource(name: str) -> Path:
    """A folder or file the app needs beside its code: `templates`, `static`, `gunicorn.conf.py`.

    An installed package carries them inside `portal/` (pyproject.toml puts them there); a
    checkout keeps them at the project root.
    """
    packaged = PACKAGE_ROOT / name
    return packaged if packaged.exists() else PROJECT_ROOT / name


#: (environment variable, config key, parser, description) — the README documents this table.
SETTINGS = [
    ("NEXUS_CONTENT_DIR", "CONTENT_DIR", str, "Folder of Markdown entries to import (default: `content/` of the project)."),
    ("NEXUS_INSTANCE_PATH", "INSTANCE_PATH", str, "Where the SQLite file and the search index live (default: `instance/`)."),
    ("NEXUS_DATABASE_URL", "SQLALCHEMY_DATABASE_URI", str, "SQLAlchemy URL of the database (default: `sqlite:///<instance>/nexus.sqlite3`)."),
    ("NEXUS_SECRET_KEY", "SECRET_KEY", str, "Secret key; if unset, the one in `<instance>/secret_key` (`flask --app portal secret-key` creates it; `make run` does). Serving with neither is a start-up error."),
    ("NEXUS_FOLDER_TAGS", "FOLDER_TAGS", "bool", "Tag entries without front-matter tags by their folder (default: on)."),
    ("NEXUS_GIT_DATES", "GIT_DATES", "bool", "Date entries without a front-matter `date`/`updated` by their git history when the content folder is in a git work tree (default: on)."),
    ("NEXUS_MAX_ATTACHMENT_MB", "MAX_ATTACHMENT_MB", float, "Largest file (megabytes) a note may link to and have served, such as an image beside it (default: 10)."),
    ("NEXUS_EDIT_URL", "EDIT_URL", str, "Link entry pages to their source, e.g. `https://github.com/me/notes/edit/main/{path}` (`{path}`: the file's path in the content folder); unset: no link."),
    ("NEXUS_SITE_NAME", "SITE_NAME", str, "Name shown in the header and page titles (default: `Nexus`)."),
    ("NEXUS_SITE_DESCRIPTION", "SITE_DESCRIPTION", str, "One line saying what the collection holds, shown in every page's footer and as its meta description (default: about backend engineering notes, what `content/` ships)."),
    ("NEXUS_PER_PAGE", "PER_PAGE", int, "Entries per listing page (default: 20)."),
    ("NEXUS_INDEX_CHECK_SECONDS", "INDEX_CHECK_SECONDS", float, "How often (seconds) each worker checks the database for a newer import and rebuilds this node's search index in the background; 0 turns it off (default: 5)."),
    ("NEXUS_TRUSTED_PROXIES", "TRUSTED_PROXIES", int, "How many proxies in front of Nexus set `X-Forwarded-For/-Proto/-Host/-Port/-Prefix`; 0 (default) trusts none of these headers."),
    ("NEXUS_PAGE_CACHE_MB", "PAGE_CACHE_MB", float, "Megabytes of rendered pages and API answers the workers of a node share in `<instance>/page-cache.sqlite3` (default: 128; 0 turns it off)."),
    ("NEXUS_MAX_RENDER_SECONDS", "MAX_RENDER_SECONDS", float, "Seconds an import may spend parsing and rendering one file; a file that takes longer is stopped and reported (default: 10)."),
    ("NEXUS_MAX_RENDER_MB", "MAX_RENDER_MB", float, "Megabytes of memory an import may use to parse and render one file; a file that needs more is stopped and reported (default: 512)."),
    ("NEXUS_FOLLOW_EXTERNAL_SYMLINKS", "FOLLOW_EXTERNAL_SYMLINKS", "bool", "Import files and folders that symlinks in the content folder lead to outside it (default: off; they are refused and reported)."),
    ("NEXUS_CACHE_MAX_AGE", "CACHE_MAX_AGE", int, "Seconds browsers and proxies may reuse a page or API answer without asking (default: 0, revalidate every time with `ETag`; an import shows at once)."),
    ("NEXUS_ALLOWED_HOSTS", "TRUSTED_HOSTS", "list", "Host names the site answers to, comma-separated (`wiki.example.org,.example.org`: a leading dot allows every subdomain; ports are ignored); any other `Host` gets `400`. Links in feeds, the sitemap and API answers use the request's host, so set it in production (default: any host)."),
    ("NEXUS_SEARCH_SLOTS", "SEARCH_SLOTS", int, "Searches one worker process runs at once; more are answered `503` with `Retry-After: 1` at once, so pages keep their threads (default: 2; 0: no limit)."),
]  # fmt: skip


def parse_bool(value: str) -> bool:
    """`1/true/yes/on` are true; `0/false/no/off/""` are false."""
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"not a true/false value: {value!r}")


def parse_list(value: str) -> list[str]:
    """A comma-separated list, blanks dropped: `a.org, .b.org` is `["a.org", ".b.org"]`."""
    return [item.strip() for item in value.split(",") if item.strip()]


PARSERS = {"bool": parse_bool, "list": parse_list}


def defaults() -> dict:
    """Settings used when nothing overrides them."""
    return {
        "CONTENT_DIR": str(PROJECT_ROOT / "content"),
        "FOLDER_TAGS": True,
        "GIT_DATES": True,
        "MAX_ATTACHMENT_MB": 10.0,
        "EDIT_URL": None,
        "SITE_NAME": "Nexus",
        "SITE_DESCRIPTION": "Notes from backend engineering, searchable and browsable by tag.",
        "PER_PAGE": 20,
        "INDEX_CHECK_SECONDS": 5.0,
        "TRUSTED_PROXIES": 0,
        "CACHE_MAX_AGE": 0,
        "PAGE_CACHE_MB": 128.0,
        "MAX_RENDER_SECONDS": 10.0,
        "MAX_RENDER_MB": 512.0,
        "FOLLOW_EXTERNAL_SYMLINKS": False,
        "SEARCH_SLOTS": 2,
        "SQLALCHEMY_DATABASE_URI": None,
        # Request bodies are never needed (the site has no forms that change state).
        "MAX_CONTENT_LENGTH": 64 * 1024,
    }


#: Settings that must not be negative, with the variable that sets each.
NOT_NEGATIVE = {
    "PAGE_CACHE_MB": "NEXUS_PAGE_CACHE_MB",
    "TRUSTED_PROXIES": "NEXUS_TRUSTED_PROXIES",
    "CACHE_MAX_AGE": "NEXUS_CACHE_MAX_AGE",
    "PER_PAGE": "NEXUS_PER_PAGE",
    "MAX_ATTACHMENT_MB": "NEXUS_MAX_ATTACHMENT_MB",
    "SEARCH_SLOTS": "NEXUS_SEARCH_SLOTS",
}

#: Settings that must be more than 0: a budget of nothing would refuse every file.
POSITIVE = {"MAX_RENDER_SECONDS": "NEXUS_MAX_RENDER_SECONDS", "MAX_RENDER_MB": "NEXUS_MAX_RENDER_MB"}


def check(settings) -> None:
    """Refuse settings the app cannot run with, naming the variable to fix."""
    for key, variable in NOT_NEGATIVE.items():
        value = settings.get(key)
        if value is not None and value < 0:
            raise RuntimeError(f"{variable} must be 0 or more, got {value}")
    if settings.get("PER_PAGE") == 0:
        raise RuntimeError("NEXUS_PER_PAGE must be at least 1")
    for key, variable in POSITIVE.items():
        value = settings.get(key)
        if value is not None and not (value > 0 and math.isfinite(value)):  # NaN and inf too
            raise RuntimeError(f"{variable} must be a number more than 0, got {value}")


def import_settings(settings) -> dict:
    """The keyword arguments of `import_content` that come from the app's settings."""
    return {
        "folder_tags": settings["FOLDER_TAGS"],
        "git_dates": settings["GIT_DATES"],
        "max_attachment_bytes": int(settings["MAX_ATTACHMENT_MB"] * 1024 * 1024),
        "max_render_seconds": settings["MAX_RENDER_SECONDS"],
        "max_render_mb": settings["MAX_RENDER_MB"],
        "follow_external_symlinks": settings["FOLLOW_EXTERNAL_SYMLINKS"],
    }


def from_environment(environ=os.environ) -> dict:
    """Config keys set through `NEXUS_*` variables, parsed to their types."""
    overrides = {}
    for variable, key, parser, _ in SETTINGS:
        if variable not in environ or key == "INSTANCE_PATH":
            continue
        raw = environ[variable]
        try:
            overrides[key] = PARSERS.get(parser, parser)(raw)
        except ValueError as error:
            raise RuntimeError(f"{variable}: {error}") from None
    return overrides


def instance_path(environ=os.environ) -> str:
    """The instance folder: `NEXUS_INSTANCE_PATH` or `instance/` in the project."""
    return os.path.abspath(environ.get("NEXUS_INSTANCE_PATH") or PROJECT_ROOT / "instance")


KEY_FILE = "secret_key"


def read_secret_key(instance_path) -> str | None:
    """The key kept in the instance folder (`flask --app portal secret-key` writes it), if any."""
    path = Path(instance_path) / KEY_FILE
    if not path.exists():
        return None
    return path.read_text().strip() or None


def write_secret_key(instance_path) -> tuple[Path, bool]:
    """Create `<instance>/secret_key` (owner-only) unless it exists; (path, whether it was created)."""
    path = Path(instance_path) / KEY_FILE
    if path.exists():
        return path, False
    temporary = path.with_name(f".{KEY_FILE}.{os.getpid()}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_hex(32))
    try:
        os.link(temporary, path)  # atomic: the first process to get here wins
        return path, True
    except FileExistsError:
        return path, False
    finally:
        temporary.unlink()


def require_secret_key(app) -> None:
    """Production start-up (wsgi.py, gunicorn's master): no key is a clear error, not a silent default."""
    if not app.config.get("SECRET_KEY"):
        raise RuntimeError(
            f"No secret key: set NEXUS_SECRET_KEY, or create {Path(app.instance_path) / KEY_FILE} "
            "with `flask --app portal secret-key` (`make run` does this)."
        )
