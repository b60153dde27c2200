"""The OpenAPI 3 document of the JSON API, generated from the routes and their docstrings.

Every view under `/api/` describes its operation in YAML after a `---` line of its docstring
(apispec's convention) and names the shared schemas and parameters defined here. Those are
built from the same constants the views check (page sizes, kinds, sorts), and the API checks
each request's query parameters against this document before the view runs, so the document
and the code cannot drift apart.
"""

from __future__ import annotations

import re

from flask import Flask

from .kinds import KINDS
from .security import MAX_QUERY_STRING

OPENAPI_VERSION = "3.0.3"
API_VERSION = "1.0.0"
API_PREFIX = "/api/"

MAX_PAGE = 10_000
#: The most entries or results one page of a listing or a search may hold.
MAX_PER_PAGE = 50
ENTRIES_PER_PAGE = 20
SEARCH_PER_PAGE = 10
ENTRY_SORTS = ("newest", "title")
TAG_SORTS = ("count", "name")
#: Tags per filter parameter: four parameters (`all`, `any`, `not`, `tag`) of five stay within
#: the filter's limit of 20 tags (`views.args.MAX_FILTER_TAGS`).
MAX_TAGS_PER_PARAMETER = 5
#: One tag in a filter: a slug or a name (`Django REST Framework`), starting with a letter or digit.
TAG_NAME = r" ?[A-Za-z0-9][A-Za-z0-9 _-]{0,59}"
#: A comma-separated list of tag names, or nothing. Python matches it with `re.fullmatch`.
TAG_LIST = rf"(?:{TAG_NAME}(?:,{TAG_NAME}){{0,{MAX_TAGS_PER_PARAMETER - 1}}})?"

#: Groups of operations in the document (and in Swagger UI).
API_TAGS = {
    "entries": "Entries: lists with tag filters, and one entry with its content.",
    "tags": "Tags with their counts, descriptions and entries.",
    "search": "Full-text search and title suggestions.",
    "site": "Statistics and this documentation.",
}
#: What each documented pattern means, for error messages.
PATTERN_MEANINGS = {
    f"^{TAG_LIST}$": (
        f"a comma-separated list of at most {MAX_TAGS_PER_PARAMETER} tag names "
        "(letters, digits, spaces, '-' or '_', starting with a letter or digit)"
    ),
}

_RULE_ARGUMENT = re.compile(r"<(?:([a-z]+)(?:\([^)]*\))?:)?([A-Za-z_][A-Za-z0-9_]*)>")


def nullable(schema: dict) -> dict:
    """The schema, or null (OpenAPI 3.0 spelling)."""
    out = dict(schema, nullable=True)
    if "enum" in out:
        out["enum"] = [*out["enum"], None]
    return out


def strict_object(properties: dict, description: str = "", optional: tuple[str, ...] = ()) -> dict:
    """An object with exactly these properties, all required unless named optional."""
    schema = {
        "type": "object",
        "properties": properties,
        "required": [name for name in properties if name not in optional],
        "additionalProperties": False,
    }
    if description:
        schema["description"] = description
    return schema


def _schemas() -> dict[str, dict]:
    """Component schemas: every JSON body the API answers with."""
    count = {"type": "integer", "minimum": 0}
    text = {"type": "string"}
    uri = {"type": "string", "format": "uri"}
    kind = nullable({"type": "string", "enum": list(KINDS), "description": "The entry's kind, if any."})
    slugs = {"type": "array", "items": text, "description": "Tag slugs."}
    entry_ref = {
        "slug": {"type": "string", "description": "Path-like identifier, e.g. `technologies/celery`."},
        "title": text,
        "kind": kind,
        "url": dict(uri, description="The entry's HTML page."),
        "api_url": dict(uri, description="The entry in this API."),
    }
    entry_summary = {
        **entry_ref,
        "summary": text,
        "tags": slugs,
        "date": {"type": "string", "format": "date", "description": "Written (or first imported) on."},
        "updated": nullable({"type": "string", "format": "date", "description": "Updated on, if stated."}),
    }
    paging = {
        "total": dict(count, description="Entries matching, on all pages."),
        "page": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE},
        "pages": {"type": "integer", "minimum": 1},
        "per_page": {"type": "integer", "minimum": 1, "maximum": MAX_PER_PAGE},
        "next": nullable(dict(uri, description="The next page, if there is one.")),
        "prev": nullable(dict(uri, description="The previous page, if there is one.")),
    }
    tag_counts = {"type": "object", "additionalProperties": count, "description": "Tag slug → entries."}
    tag = {
        "slug": text,
        "name": text,
        "description": text,
        "aliases": {"type": "array", "items": text, "description": "Other spellings that lead to this tag."},
        "count": dict(count, description="Entries with this tag."),
        "url": dict(uri, description="The tag's HTML page."),
        "api_url": uri,
        "feed_url": dict(uri, description="The tag's Atom feed."),
    }
    import_run = {
        "started_at": {"type": "string", "format": "date-time"},
        "finished_at": {"type": "string", "format": "date-time"},
        "added": count,
        "updated": count,
        "unchanged": count,
        "deleted": count,
        "errors": count,
        "entries": count,
    }
    return {
        "Error": strict_object(
            {
                "error": strict_object(
                    {
                        "code": {"type": "integer", "minimum": 400, "maximum": 599, "description": "HTTP status."},
                        "message": text,
                        "suggestions": {
                            "type": "array",
                            "items": text,
                            "description": "Known tags like the unknown one.",
                        },
                    },
                    optional=("suggestions",),
                )
            },
            "What went wrong; the HTTP status is repeated as `code`.",
        ),
        "EntryRef": strict_object(entry_ref, "A link to an entry."),
        "RelatedEntry": strict_object(
            {**entry_ref, "reason": {"type": "string", "example": "shares tags: celery, redis"}}
        ),
        "EntrySummary": strict_object(entry_summary, "An entry as listed."),
        "TocItem": strict_object(
            {"level": {"type": "integer", "minimum": 1, "maximum": 6}, "id": text, "title": text},
            "A heading of the entry; `id` is its anchor in `html`.",
        ),
        "Entry": strict_object(
            {
                **entry_summary,
                "html": {
                    "type": "string",
                    "description": "The rendered, sanitized body; its links are relative to `url`.",
                },
                "toc": {"type": "array", "items": "TocItem"},
                "word_count": count,
                "reading_minutes": {"type": "integer", "minimum": 1},
                "tag_names": dict(tag_counts, additionalProperties=text, description="Tag slug → display name."),
                "related": {"type": "array", "items": "RelatedEntry", "maxItems": 5},
                "backlinks": {"type": "array", "items": "EntryRef", "description": "Entries linking here."},
            },
            "One entry with its content.",
        ),
        "Filter": strict_object(
            {
                "all": slugs,
                "any": slugs,
                "not": slugs,
                "kind": kind,
            },
            "The filter applied, with names and aliases resolved to tag slugs.",
        ),
        "EntryPage": strict_object(
            {
                **paging,
                "sort": {"type": "string", "enum": list(ENTRY_SORTS)},
                "filter": "Filter",
                "entries": {"type": "array", "items": "EntrySummary", "maxItems": MAX_PER_PAGE},
            },
            "One page of entries. A page past the last is empty.",
        ),
        "Tag": strict_object(tag, "A tag with its entry count."),
        "TagList": strict_object({"total": count, "tags": {"type": "array", "items": "Tag"}}),
        "TagCount": strict_object({"slug": text, "name": text, "count": count}),
        "TagPage": strict_object(
            {
                "tag": "Tag",
                **paging,
                "sort": {"type": "string", "enum": list(ENTRY_SORTS)},
                "entries": {"type": "array", "items": "EntrySummary", "maxItems": MAX_PER_PAGE},
                "co_tags": {
                    "type": "array",
                    "items": "TagCount",
                    "description": "Other tags of this tag's entries, most frequent first.",
                },
            },
            "A tag, one page of its entries, and the tags seen beside it.",
        ),
        "Stats": strict_object(
            {
                "entries": count,
                "tags": dict(count, description="Tags used by at least one entry."),
                "kinds": strict_object({k: count for k in KINDS}, "Entries per kind."),
                "without_kind": count,
                "per_tag": tag_counts,
                "generation": dict(count, description="Content generation: the id of the last import (0 before any)."),
                "last_import": nullable(strict_object(import_run, "The last import that changed content.")),
            }
        ),
        "SearchResult": strict_object(
            {
                **entry_summary,
                "snippet": {"type": "string", "description": "Escaped text with matches in `<mark>`."},
                "score": {
                    "type": "number",
                    "minimum": 0,
                    "description": (
                        "BM25F score (for a partial match, times the share of the query it covers); "
                        "0 when sorted by date or title."
                    ),
                },
                "missing_words": {
                    "type": "array",
                    "items": text,
                    "description": "Words of the query this entry lacks (empty for a full match).",
                },
            }
        ),
        "SearchResults": strict_object(
            {
                "query": {"type": "string", "description": "The query as searched (cleaned, possibly cut)."},
                "total": count,
                "page": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE},
                "pages": {"type": "integer", "minimum": 1},
                "per_page": {"type": "integer", "minimum": 1, "maximum": MAX_PER_PAGE},
                "results": {"type": "array", "items": "SearchResult", "maxItems": MAX_PER_PAGE},
                "facets": strict_object({"tags": tag_counts}, "Tags of all matches (not only this page)."),
                "corrected": nullable(
                    {"type": "string", "description": "The corrected query whose results these are."}
                ),
                "suggestion": nullable({"type": "string", "description": "A corrected query that may find more."}),
                "relaxed": {
                    "type": "boolean",
                    "description": "Some results lack some of the words (they follow the full matches).",
                },
                "full_matches": dict(count, description="Results that have every word of the query."),
                "ignored_words": {
                    "type": "array",
                    "items": text,
                    "description": "Function words of the query that were not required.",
                },
                "notice": nullable({"type": "string", "description": "Why the query was cut, if it was."}),
            }
        ),
        "Suggestion": strict_object(
            {"slug": text, "title": text, "kind": kind, "url": {"type": "string", "format": "uri-reference"}}
        ),
        "Suggestions": strict_object(
            {"query": text, "suggestions": {"type": "array", "items": "Suggestion", "maxItems": 8}},
            "Titles for a search box as the user types.",
        ),
        "OpenSearchSuggestions": {
            "type": "array",
            "minItems": 4,
            "maxItems": 4,
            "items": {"oneOf": [text, {"type": "array", "items": text}]},
            "description": "OpenSearch suggestions: [query, [titles], [descriptions], [urls]].",
        },
    }


def _parameters() -> dict[str, dict]:
    """Query parameters shared by several operations."""
    from .search.engine import SORTS as SEARCH_SORTS  # lazy: the document is built on first use, Whoosh with it

    def tag_list(meaning: str) -> dict:
        return {
            "description": (
                f"{meaning} Comma-separated tag slugs or names (letters, digits, spaces, `-`, `_`), at most "
                f"{MAX_TAGS_PER_PARAMETER}; aliases are resolved. An unknown tag is a 404 that suggests known ones."
            ),
            "schema": {"type": "string", "pattern": f"^{TAG_LIST}$"},
            "example": "python,redis",
        }

    def sort(choices, default):
        return {
            "description": "Order of the entries.",
            "schema": {"type": "string", "enum": list(choices), "default": default},
        }

    return {
        "page": {
            "description": "Page number.",
            "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": 1},
        },
        "per_page": {
            "description": "Entries per page.",
            "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PER_PAGE, "default": ENTRIES_PER_PAGE},
        },
        "search_per_page": {
            "name": "per_page",
            "description": "Results per page.",
            "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PER_PAGE, "default": SEARCH_PER_PAGE},
        },
        "entry_sort": dict(sort(ENTRY_SORTS, "newest"), name="sort"),
        "tag_sort": dict(sort(TAG_SORTS, "count"), name="sort", description="By entry count (most first) or by name."),
        "search_sort": dict(sort(SEARCH_SORTS, "relevance"), name="sort"),
        "all": tag_list("Entries must carry every one of these tags."),
        "any": tag_list("Entries must carry at least one of these tags."),
        "not": tag_list("Entries must carry none of these tags."),
        "tag": tag_list("Same as `all` (kept for links from the search page)."),
        "kind": {
            "description": "Only entries of this kind.",
            "schema": {"type": "string", "enum": list(KINDS)},
        },
    }


def _responses() -> dict[str, dict]:
    """Error answers shared by every operation."""

    def error(description):
        return {"description": description, "content": {"application/json": {"schema": "Error"}}}

    return {
        "BadRequest": error("A parameter has a value the API cannot use; `message` says which and why."),
        "NotFound": error("No such entry or tag (`suggestions` lists similar known tags), or no such page."),
        "URITooLong": error(f"The query string is longer than {MAX_QUERY_STRING} bytes."),
        "Unavailable": error("The search index is missing or will not open."),
        "NotModified": {"description": "The client's copy (`If-None-Match` / `If-Modified-Since`) is current."},
    }


def openapi_path(rule: str) -> str:
    """`/api/entries/<path:slug>` becomes `/api/entries/{slug}`."""
    return _RULE_ARGUMENT.sub(lambda m: "{" + m.group(2) + "}", rule)


def _path_parameters(rule) -> list[dict]:
    """The rule's URL arguments as required path parameters."""
    parameters = []
    for converter, name in _RULE_ARGUMENT.findall(rule.rule):
        schema = {"type": "integer"} if converter == "int" else {"type": "string", "minLength": 1}
        description = "May contain `/`." if converter == "path" else ""
        parameters.append({"name": name, "in": "path", "required": True, "schema": schema, "description": description})
    return parameters


def api_rules(app: Flask) -> list:
    """URL rules under /api/, in path order."""
    return sorted((r for r in app.url_map.iter_rules() if r.rule.startswith(API_PREFIX)), key=lambda r: r.rule)


def build_spec(app: Flask) -> dict:
    """The OpenAPI document for every documented rule under /api/."""
    from apispec import APISpec  # lazy: the document is built on first use, not with the views
    from apispec.yaml_utils import load_operations_from_docstring

    spec = APISpec(
        title=f"{app.config['SITE_NAME']} API",
        version=API_VERSION,
        openapi_version=OPENAPI_VERSION,
        info={
            "description": (
                "Read-only JSON API over the entries and tags of this knowledge base. Every answer may be "
                "fetched from any origin (CORS `*`), carries an `ETag`, and errors are "
                '`{"error": {"code", "message"}}` with the HTTP status.'
            )
        },
        servers=[{"url": "/"}],
    )
    for name, description in API_TAGS.items():
        spec.tag({"name": name, "description": description})
    for name, schema in _schemas().items():
        spec.components.schema(name, schema)
    for name, parameter in _parameters().items():
        spec.components.parameter(name, "query", parameter)
    for name, response in _responses().items():
        spec.components.response(name, response)
    for rule in api_rules(app):
        operations = load_operations_from_docstring(app.view_functions[rule.endpoint].__doc__ or "")
        operations = {method: op for method, op in operations.items() if method.upper() in rule.methods}
        if operations:
            spec.path(path=openapi_path(rule.rule), operations=operations, parameters=_path_parameters(rule))
    return spec.to_dict()


def query_parameters(document: dict) -> dict[tuple[str, str], list[dict]]:
    """(OpenAPI path, method) -> the operation's query parameters, references resolved."""
    components = document.get("components", {}).get("parameters", {})
    prefix = "#/components/parameters/"
    found = {}
    for path, item in document.get("paths", {}).items():
        for method, operation in item.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            params = [
                components[p["$ref"][len(prefix) :]] if "$ref" in p else p for p in operation.get("parameters", [])
            ]
            found[(path, method)] = [p for p in params if p["in"] == "query"]
    return found


def check_value(parameter: dict, raw: str) -> str | None:
    """Why a query value breaks the parameter's schema, or None if it fits."""
    schema, name = parameter["schema"], parameter["name"]
    if schema.get("type") == "integer":
        if not re.fullmatch(r"-?[0-9]+", raw):
            return f"'{name}' must be a whole number, got {raw[:40]!r}."
        low, high = schema["minimum"], schema["maximum"]
        if len(raw) > 20 or not low <= int(raw) <= high:
            return f"'{name}' must be between {low} and {high}, got {raw[:40]}."
        return None
    if "enum" in schema and raw not in schema["enum"]:
        return f"'{name}' must be one of: {', '.join(schema['enum'])}; got {raw[:40]!r}."
    if "maxLength" in schema and len(raw) > schema["maxLength"]:
        return f"'{name}' must be at most {schema['maxLength']} characters."
    pattern = schema.get("pattern")
    if pattern and not re.fullmatch(pattern.removeprefix("^").removesuffix("$"), raw):
        return f"'{name}' must be {PATTERN_MEANINGS.get(pattern, 'of the documented form')}; got {raw[:40]!r}."
    return None
