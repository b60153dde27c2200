"""`pip install .` gives a `nexus` command: `nexus serve PATH` imports a folder and serves it, from any directory.

The package is installed once per session into a temporary virtual environment that reuses
this environment's packages (a `.pth` file, `--no-deps --no-build-isolation`): a fresh
`pip install .` would download every dependency.
"""

from __future__ import annotations

import os
import re
import signal
import stat
import subprocess
import sys
import sysconfig
import time
import tomllib
import urllib.request
from pathlib import Path

import pytest

from .conftest import PROJECT_ROOT, write_entry
from .servers import fetch, free_port

pytestmark = pytest.mark.slow


def test_the_package_depends_on_requirements_pins():
    """pyproject.toml's dependencies are requirements.txt's tested pins, no more, no fewer."""
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    lines = (PROJECT_ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines()
    pins = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    assert project["dependencies"] == pins
    assert project["scripts"] == {"nexus": "portal.nexus:main"}


@pytest.fixture(scope="session")
def nexus(tmp_path_factory) -> Path:
    """The `nexus` program of a fresh install of this checkout."""
    venv = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    # This environment's packages (pip, hatchling, Flask…) are visible to the new one; `portal` is not.
    (Path(site) / "project-packages.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", str(PROJECT_ROOT)],
        check=True,
        capture_output=True,
    )
    installed = Path(site) / "portal"
    assert (installed / "templates" / "base.html").is_file()
    assert (installed / "static" / "css" / "site.css").is_file()
    assert (installed / "gunicorn.conf.py").is_file()
    return venv / "bin" / "nexus"


@pytest.fixture
def notes(tmp_path) -> Path:
    """Someone's notes: a topic folder, an image beside a note, no front matter."""
    root = tmp_path / "my-notes"
    write_entry(root, "sqlite/json.md", "# JSON in SQLite\n\n![erd](erd.png) Use `json_extract()`.\n")
    (root / "sqlite/erd.png").write_bytes(b"\x89PNG\r\n\x1a\nerd")
    write_entry(root, "docker/prune.md", "# Prune images\n\n`docker image prune`.\n")
    return root


@pytest.fixture
def environment(tmp_path) -> dict:
    """A user's environment: no NEXUS_* settings, a home folder of their own, not run from the checkout."""
    home = tmp_path / "home"
    home.mkdir()
    env = {name: value for name, value in os.environ.items() if not name.startswith(("NEXUS_", "XDG_", "PYTHON"))}
    env.update(HOME=str(home), NEXUS_GUNICORN_WORKERS="2")
    return env


def run(nexus: Path, *args: str, env: dict, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(nexus), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120)


def test_nexus_serve_imports_and_serves_a_folder(nexus, notes, environment, tmp_path):
    instance, port, log = tmp_path / "site", free_port(), tmp_path / "serve.log"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    with open(log, "w") as output:
        server = subprocess.Popen(
            [str(nexus), "serve", str(notes), "--instance", str(instance), "--port", str(port)],
            cwd=elsewhere,
            env=environment,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert server.poll() is None, log.read_text()
            try:
                status, home, _ = fetch(base + "/", timeout=5)
                if status == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.3)
        assert "JSON in SQLite" in home and "Prune images" in home
        status, page, _ = fetch(base + "/entries/sqlite/json")
        assert status == 200
        image = re.search(r'src="\.\./\.\./(files/[0-9a-f]{64}/erd\.png)"', page).group(1)
        with urllib.request.urlopen(f"{base}/{image}", timeout=10) as answer:
            assert answer.status == 200 and answer.read() == b"\x89PNG\r\n\x1a\nerd"
        status, css, _ = fetch(base + "/static/css/site.css")
        assert status == 200 and ".site-header" in css  # static files come from the installed package
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    output = log.read_text()
    assert "2 added" in output and f"Serving {notes}" in output
    assert f"Listening at: http://127.0.0.1:{port}" in output
    key = instance / "secret_key"
    assert key.is_file() and stat.S_IMODE(key.stat().st_mode) == 0o600


@pytest.mark.parametrize(
    ("variables", "site"),
    [
        ({}, "home/.local/share/nexus/my-notes"),  # the default: named after the folder
        ({"XDG_DATA_HOME": "{tmp}/data"}, "data/nexus/my-notes"),  # where the user keeps application data
    ],
)
def test_each_folder_gets_its_own_site(nexus, notes, environment, tmp_path, variables, site):
    env = {**environment, **{name: value.format(tmp=tmp_path) for name, value in variables.items()}}
    imported = run(nexus, "import", str(notes), env=env, cwd=tmp_path)
    assert imported.returncode == 0, imported.stderr
    assert "2 added" in imported.stdout
    assert (tmp_path / site / "nexus.sqlite3").is_file()
    again = run(nexus, "import", "--quiet", str(notes), env=env, cwd=tmp_path)
    assert "2 unchanged" in again.stdout  # the same site, found again
    reindexed = run(nexus, "reindex", str(notes), env=env, cwd=tmp_path)
    assert reindexed.returncode == 0 and "search index rebuilt" in reindexed.stdout


def test_nexus_check_reports_bad_notes(nexus, notes, environment, tmp_path):
    write_entry(notes, "broken.md", "---\nkind: spaceship\n---\nBody\n")
    checked = run(nexus, "check", str(notes), "--instance", str(tmp_path / "site"), env=environment, cwd=tmp_path)
    assert checked.returncode == 1
    assert "broken.md:2: unknown kind 'spaceship'" in checked.stderr
    assert "3 files checked, 1 with errors" in checked.stdout


def test_a_missing_folder_is_a_usage_error(nexus, environment, tmp_path):
    result = run(nexus, "serve", str(tmp_path / "nope"), env=environment, cwd=tmp_path)
    assert result.returncode == 2 and "notes folder not found" in result.stderr
