"""The OpenAPI document: generated from the code, covering every /api/ route, and Swagger UI beside it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from portal import openapi

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SWAGGER_DIR = PROJECT_ROOT / "static" / "vendor" / "swagger-ui"
DOCUMENTED_METHODS = {"GET"}  # HEAD and OPTIONS are answered by Flask for every GET route


@pytest.fixture
def document(client):
    response = client.get("/api/openapi.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    return response.get_json()


def test_document_is_openapi_3(document):
    assert document["openapi"] == "3.0.3"
    assert document["info"]["title"] == "Nexus API"
    assert document["info"]["version"]
    assert {tag["name"] for tag in document["tags"]} == set(openapi.API_TAGS)


def test_every_api_route_is_documented(imported_app, document):
    """Walk the URL map: each /api/ rule and each of its methods has an operation, and nothing else does."""
    rules = [rule for rule in imported_app.url_map.iter_rules() if rule.rule.startswith("/api/")]
    assert len(rules) >= 9
    for rule in rules:
        path = openapi.openapi_path(rule.rule)
        assert path in document["paths"], f"{rule.rule} ({rule.endpoint}) is missing from the OpenAPI document"
        item = document["paths"][path]
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert method.lower() in item, f"{method} {rule.rule} is not documented"
        for argument in rule.arguments:
            names = {p["name"] for p in item.get("parameters", []) + item["get"].get("parameters", []) if "name" in p}
            assert argument in names, f"path parameter {argument} of {rule.rule} is not documented"
    assert set(document["paths"]) == {openapi.openapi_path(rule.rule) for rule in rules}


def resolved(document, obj):
    """Follow a local `$ref`."""
    while "$ref" in obj:
        *_, kind, name = obj["$ref"].split("/")
        obj = document["components"][kind][name]
    return obj


def operations(document):
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in ("get", "put", "post", "delete", "patch"):
                yield path, method, operation


def test_operations_are_fully_described(document):
    for path, _, operation in operations(document):
        assert operation.get("summary") and operation.get("operationId"), path
        assert operation.get("tags"), path
        responses = operation["responses"]
        ok = resolved(document, responses["200"])
        assert ok["description"] and ok["content"], path
        for media in ok["content"].values():
            assert "schema" in media, path
        for code, response in responses.items():
            if code.startswith(("4", "5")):
                (media,) = resolved(document, response)["content"].values()
                assert media["schema"] == {"$ref": "#/components/schemas/Error"}, (path, code)
        query = [resolved(document, p) for p in operation.get("parameters", [])]
        if any(p["in"] == "query" for p in query):
            assert "400" in responses, f"{path} takes parameters but documents no 400"


def test_parameters_have_types_bounds_and_enums(document):
    for path, _, operation in operations(document):
        for parameter in (resolved(document, p) for p in operation.get("parameters", [])):
            schema = parameter["schema"]
            assert schema.get("type") in ("string", "integer"), (path, parameter["name"])
            assert parameter.get("description"), (path, parameter["name"])
            if schema["type"] == "integer":
                assert "minimum" in schema and "maximum" in schema, (path, parameter["name"])
            if parameter["name"] in ("sort", "kind", "format", "exact"):
                assert schema.get("enum"), (path, parameter["name"])


def test_schemas_are_closed_objects(document):
    """Every object schema lists its properties and allows no others, so drift fails schemathesis."""

    def walk(schema, where):
        if schema.get("type") == "object" and "properties" in schema:
            assert schema.get("additionalProperties") is False, where
            assert set(schema["required"]) <= set(schema["properties"]), where
        for key in ("properties",):
            for name, sub in schema.get(key, {}).items():
                walk(sub, f"{where}.{name}")
        for sub in (schema.get("items"), schema.get("additionalProperties")):
            if isinstance(sub, dict):
                walk(sub, where + "[]")

    for name, schema in document["components"]["schemas"].items():
        walk(schema, name)


def test_document_matches_the_code(imported_app, document):
    assert document == openapi.build_spec(imported_app)


# --- the documented parameters are the checked ones -------------------------------------------


def bad_values(schema) -> list[str]:
    """Values just outside a parameter's schema."""
    if schema["type"] == "integer":
        return [str(schema["minimum"] - 1), str(schema["maximum"] + 1), "1.0", "x"]
    if "enum" in schema:
        return ["", schema["enum"][0].upper() + "?"]
    if "maxLength" in schema:
        return ["x" * (schema["maxLength"] + 1)]
    if "pattern" in schema:
        return ["-", "a,", ",".join("abcdefgh")]
    return []


def test_values_outside_the_document_are_400(client, document):
    checked = 0
    for path, _, operation in operations(document):
        if "{" in path or not path.startswith("/api/"):
            continue
        for parameter in (resolved(document, p) for p in operation.get("parameters", [])):
            for value in bad_values(parameter["schema"]):
                response = client.get(path, query_string={parameter["name"]: value})
                assert response.status_code == 400, (path, parameter["name"], value, response.status_code)
                assert f"'{parameter['name']}'" in response.get_json()["error"]["message"]
                checked += 1
    assert checked > 40


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("redis", True),
        ("redis,celery", True),
        ("Redis, Celery", True),
        ("Django REST Framework", True),
        ("a,b,c,d,e", True),
        ("", True),
        ("a,b,c,d,e,f", False),  # six tags
        (",redis", False),
        ("redis,", False),
        ("-redis", False),
        ("redis\n", False),  # `$` must not match before a final newline
        ("ré", False),
        ("x" * 60, True),
        ("x" * 61, False),
    ],
)
def test_tag_list_pattern(value, ok):
    parameter = {"name": "all", "schema": {"type": "string", "pattern": f"^{openapi.TAG_LIST}$"}}
    assert (openapi.check_value(parameter, value) is None) == ok


def test_openapi_paths_from_rules():
    assert openapi.openapi_path("/api/entries/<path:slug>") == "/api/entries/{slug}"
    assert openapi.openapi_path("/api/tags/<tag>") == "/api/tags/{tag}"
    assert openapi.openapi_path("/api/x/<int(min=1):n>") == "/api/x/{n}"


# --- Swagger UI ---------------------------------------------------------------------------------


def test_swagger_ui_page(client):
    response = client.get("/api/docs")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    text = response.get_data(as_text=True)
    assert 'data-spec-url="/api/openapi.json"' in text
    scripts = re.findall(r"<script\b([^>]*)>(.*?)</script>", text, re.S)
    assert scripts and all('src="' in attributes and not body.strip() for attributes, body in scripts)  # no inline code
    assert "style=" not in text and "<style" not in text
    assert not re.search(r'(?:src|href)="(?:https?:)?//', text)  # nothing from a CDN
    assets = re.findall(r'(?:src|href)="(/static/[^"?]+)', text)
    assert "/static/vendor/swagger-ui/swagger-ui-bundle.js" in assets
    assert "/static/vendor/swagger-ui/swagger-ui.css" in assets
    assert "/static/js/swagger-init.js" in assets
    for asset in assets:
        with client.get(asset) as served:
            assert served.status_code == 200, asset


def test_swagger_ui_is_vendored_with_its_licence():
    for name in ("swagger-ui-bundle.js", "swagger-ui.css", "LICENSE"):
        assert (SWAGGER_DIR / name).stat().st_size > 0, name
    assert "Apache License" in (SWAGGER_DIR / "LICENSE").read_text()
    notes = (PROJECT_ROOT / "static" / "vendor" / "README.md").read_text()
    assert re.search(r"swagger-ui-dist@\d+\.\d+\.\d+", notes)
