"""Every page type is valid HTML for the Nu validator (npm `vnu-jar`), checked in one Java run.

`make test` (and `make vnu`) install the pinned vnu-jar into build/node/, which git ignores.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from .conftest import PAGE_TYPES, PROJECT_ROOT

pytestmark = pytest.mark.browser

VNU_JAR = Path(os.environ.get("VNU_JAR") or PROJECT_ROOT / "build/node/node_modules/vnu-jar/build/dist/vnu.jar")
INSTALL_HINT = (
    "Install it with `make vnu` (runs `npm install --prefix build/node --no-save vnu-jar@<version>`; "
    "needs npm and Java 11+: sudo scripts/system-deps.sh), or point VNU_JAR at a vnu.jar."
)
#: The status each page type answers with.
EXPECTED_STATUS = {"not-found": 404, "bad-request": 400}


def missing_tools() -> str | None:
    """What the Nu HTML checker lacks on this machine (conftest skips, or on CI fails, the test then)."""
    if not VNU_JAR.is_file():
        return f"The Nu HTML checker is missing at {VNU_JAR}. {INSTALL_HINT}"
    if shutil.which("java") is None:
        return f"`java` is not on PATH; the Nu HTML checker needs it. {INSTALL_HINT}"
    return None


def test_every_page_type_is_valid_html(shipped_app, tmp_path):
    java = shutil.which("java")
    client = shipped_app.test_client()
    files = []
    for name, path in PAGE_TYPES.items():
        response = client.get(path)
        assert response.status_code == EXPECTED_STATUS.get(name, 200), (name, response.status_code)
        assert response.mimetype == "text/html"
        file = tmp_path / f"{name}.html"
        file.write_bytes(response.data)
        files.append(str(file))
    run = subprocess.run(
        [java, "-jar", str(VNU_JAR), "--errors-only", "--format", "json", *files],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    report = json.loads(run.stderr or run.stdout or '{"messages": []}')
    errors = [
        f"{Path(m.get('url', '')).name}:{m.get('lastLine', '?')}: {m['message']}"
        for m in report["messages"]
        if m["type"] in ("error", "non-document-error")
    ]
    assert not errors, "\n".join(errors)
    assert run.returncode == 0, run.stderr
