"""schemathesis against a live gunicorn: every documented operation, every check, zero failures.

It generates requests from /api/openapi.json (examples, boundary values, invalid values,
other methods, random data, and chains of calls) and checks that answers match the
document: status codes, content types, response schemas, 4xx for invalid input, 2xx/404
for valid input, 405 with `Allow` for other methods, and never a 5xx.
"""

from __future__ import annotations

import json
import subprocess

import pytest

from .servers import BIN, fetch, flask_cli, gunicorn, nexus_env

#: Test cases per operation and phase: enough to cover the parameters, bounded to keep the run short.
MAX_EXAMPLES = 25
#: A fixed seed makes a failure reproducible: rerun the printed command with the same seed.
SEED = 20251126


@pytest.mark.slow
def test_schemathesis_finds_no_failures(tmp_path, content_dir, database_url):
    env = nexus_env(tmp_path / "instance", content_dir)
    if database_url:
        env["NEXUS_DATABASE_URL"] = database_url
    imported = flask_cli(env, "import", "--quiet")
    assert imported.returncode == 0, imported.stdout + imported.stderr
    with gunicorn(env, workers=2, log_path=tmp_path / "gunicorn.log") as base:
        status, text, _ = fetch(f"{base}/api/openapi.json")
        assert status == 200
        # schemathesis leaves out the operation that serves the document itself.
        paths = json.loads(text)["paths"].values()
        operations = sum(method in item for item in paths for method in ("get", "post", "put", "patch", "delete")) - 1
        command = [
            str(BIN / "schemathesis"),
            "run",
            f"{base}/api/openapi.json",
            "--checks",
            "all",
            "--max-examples",
            str(MAX_EXAMPLES),
            "--seed",
            str(SEED),
            "--generation-database",
            "none",
            "--no-color",
        ]
        # Run from the temporary folder so nothing (.hypothesis/, reports) lands in the project.
        run = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=240, check=False)
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-10_000:]
    assert "No issues found" in output, output[-10_000:]
    assert f"Tested: {operations}" in output, output[-3000:]
