"""Defaults, and the `NEXUS_*` environment variables that override them."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent

#: (environment variable, config key, parser, description) — the README documents this table.
SETTINGS = [
    ("NEXUS_CONTENT_DIR", "CONTENT_DIR", str, "Folder of Markdown entries to import (default: `content/` of the project)."),
    ("NEXUS_INSTANCE_PATH", "INSTANCE_PATH", str, "Where the SQLite file and the search index live (default: `instance/`)."),
    ("NEXUS_DATABASE_URL", "SQLALCHEMY_DATABASE_URI", str, "SQLAlchemy URL of the database (default: `sqlite:///<instance>/nexus.sqlite3`)."),
    ("NEXUS_SECRET_KEY", "SECRET_KEY", str, "Secret key; if unset, the one in `<instance>/secret_key` (`flask --app portal secret-key` creates it; `make run` does). Serving with neither is a start-up error."),
    ("NEXUS_FOLDER_TAGS", "FOLDER_TAGS", "bool", "Tag entries without front-matter tags by their folder (default: on)."),
    ("NEXUS_SITE_NAME", "SITE_NAME", str, "Name shown in the header and page titles (default: `Nexus`)."),
    ("NEXUS_PER_PAGE", "PER_PAGE", int, "Entries per listing page (default: 20)."),
    ("NEXUS_INDEX_CHECK_SECONDS", "INDEX_CHECK_SECONDS", float, "How often (seconds) each worker checks the database for a newer import and rebuilds this node's search index in the background; 0 turns it off (default: 5)."),
    ("NEXUS_TRUSTED_PROXIES", "TRUSTED_PROXIES", int, "How many proxies in front of Nexus set `X-Forwarded-For/-Proto/-Host/-Port/-Prefix`; 0 (default) trusts none of these headers."),
    ("NEXUS_PAGE_CACHE_MB", "PAGE_CACHE_MB", float, "Megabytes of rendered pages and API answers the workers of a node share in `<instance>/page-cache.sqlite3` (default: 128; 0 turns it off)."),
    ("NEXUS_CACHE_MAX_AGE", "CACHE_MAX_AGE", int, "Seconds browsers and proxies may reuse a page or API answer without asking (default: 0, revalidate every time with `ETag`; an import shows at once)."),
]  # fmt: skip


def parse_bool(value: str) -> bool:
    """`1/true/yes/on` are true; `0/false/no/off/""` are false."""
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"not a true/false value: {value!r}")


def defaults() -> dict:
    """Settings used when nothing overrides them."""
    return {
        "CONTENT_DIR": str(PROJECT_ROOT / "content"),
        "FOLDER_TAGS": True,
        "SITE_NAME": "Nexus",
        "PER_PAGE": 20,
        "INDEX_CHECK_SECONDS": 5.0,
        "TRUSTED_PROXIES": 0,
        "CACHE_MAX_AGE": 0,
        "SQLALCHEMY_DATABASE_URI": None,
    }


def from_environment(environ=os.environ) -> dict:
    """Config keys set through `NEXUS_*` variables, parsed to their types."""
    overrides = {}
    for variable, key, parser, _ in SETTINGS:
        if variable not in environ or key == "INSTANCE_PATH":
            continue
        raw = environ[variable]
        try:
            overrides[key] = parse_bool(raw) if parser == "bool" else parser(raw)
        except ValueError as error:
            raise RuntimeError(f"{variable}: {error}") from None
    return overrides


def instance_path(environ=os.environ) -> str:
    """The instance folder: `NEXUS_INSTANCE_PATH` or `instance/` in the project."""
    return os.path.abspath(environ.get("NEXUS_INSTANCE_PATH") or PROJECT_ROOT / "instance")
