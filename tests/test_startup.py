"""What a short command pays before it does anything: the modules it loads and the collector's work.

An import that changed nothing must stay well under a second at 10,000 entries; most of that
time is start-up. These tests run `flask --app portal import` in a fresh interpreter (this one
has loaded everything already) and look at what it loaded.
"""

from __future__ import annotations

import gc
import json
import shutil
import subprocess
import sys

from portal import create_app
from portal.search import store

from .conftest import write_entry
from .servers import PROJECT_ROOT, nexus_env

#: Loaded only to parse, render, write an index or search: never by an import that changed nothing
#: (YAML: parsing happens in the sandbox's processes, and the parent loads it only for `_tags.yml`).
HEAVY = ["portal.rendering", "markdown", "pygments", "nh3", "whoosh", "portal.search.engine", "apispec", "yaml"]

#: Runs the flask command in this interpreter, then prints which of HEAVY it loaded (as JSON, last line).
RUN_AND_REPORT = """
import json, runpy, sys
heavy = json.loads(sys.argv[1])
sys.argv = ["flask", "--app", "portal", *sys.argv[2:]]
try:
    runpy.run_module("flask", run_name="__main__")
finally:
    print(json.dumps([name for name in heavy if name in sys.modules]))
"""


def loaded_by(env: dict, *args: str) -> tuple[str, list[str]]:
    """(output, the HEAVY modules loaded) of `flask --app portal <args>` in a fresh interpreter."""
    return run_reporting(env, RUN_AND_REPORT, json.dumps(HEAVY), *args)


def run_reporting(env: dict, script: str, *args: str) -> tuple[str, object]:
    """(output, what its last line reports as JSON) of `script` run with `args` in a fresh interpreter."""
    result = subprocess.run(
        [sys.executable, "-c", script, *args],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    *output, report = result.stdout.strip().splitlines()
    return "\n".join(output), json.loads(report)


def test_an_import_that_changes_nothing_loads_no_renderer_index_writer_or_search_engine(tmp_path, content_dir):
    env = nexus_env(tmp_path / "instance", content_dir)
    output, loaded = loaded_by(env, "import", "-q")
    assert "5 added" in output
    assert {"portal.rendering", "pygments", "markdown", "whoosh"} <= set(loaded)  # it rendered and indexed
    output, loaded = loaded_by(env, "import", "-q")
    assert "0 added, 0 updated, 5 unchanged, 0 deleted, 0 errors" in output
    assert loaded == []
    # A changed file loads what it needs, and reaches the index.
    write_entry(content_dir, "notes/new.md", "# New\n\nWritten after the first import.\n")
    output, loaded = loaded_by(env, "import", "-q")
    assert "1 added, 0 updated, 5 unchanged" in output
    assert {"portal.rendering", "pygments", "whoosh"} <= set(loaded)
    assert store.check_index(tmp_path / "instance") == (2, 6)


def test_an_import_that_changes_nothing_still_rebuilds_a_missing_index(tmp_path, content_dir):
    env = nexus_env(tmp_path / "instance", content_dir)
    loaded_by(env, "import", "-q")
    shutil.rmtree(store.live_index_dir(tmp_path / "instance"))
    assert store.live_generation(tmp_path / "instance") is None
    output, loaded = loaded_by(env, "import", "-q")
    assert "5 unchanged" in output and "whoosh" in loaded
    assert store.check_index(tmp_path / "instance") == (1, 5)
    assert store.live_generation(tmp_path / "instance") == 1


def test_live_generation_reads_the_label_without_opening_the_index(imported_app):
    assert store.live_generation(imported_app.instance_path) == 1
    for file in store.live_index_dir(imported_app.instance_path).iterdir():
        if file.suffix in {".toc", ".seg"}:
            file.write_bytes(b"garbage")  # would not open: start-up and the next changing import rebuild it
    assert store.live_generation(imported_app.instance_path) == 1
    assert store.check_index(imported_app.instance_path) == (None, None)


def test_the_app_factory_registers_every_view_without_loading_the_search_engine(tmp_path):
    script = (
        "import json, sys\n"
        "from portal import create_app\n"
        "app = create_app()\n"
        "print(json.dumps([sorted(r.rule for r in app.url_map.iter_rules()), [m for m in json.loads(sys.argv[1]) "
        "if m in sys.modules]]))\n"
    )
    env = nexus_env(tmp_path / "instance", tmp_path / "content")
    result = subprocess.run(
        [sys.executable, "-c", script, json.dumps(HEAVY)], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    rules, loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert {"/search", "/api/search", "/api/suggest", "/api/openapi.json", "/healthz"} <= set(rules)
    assert loaded == []


def test_the_search_still_loads_the_engine_when_it_runs(client):
    assert client.get("/search?q=celery").status_code == 200
    assert "portal.search.engine" in sys.modules
    assert client.get("/api/openapi.json").json["components"]["parameters"]["search_sort"]["schema"]["enum"] == [
        "relevance",
        "newest",
        "title",
    ]


def test_building_the_app_runs_no_collection_and_leaves_the_collector_as_it_was(tmp_path):
    """Start-up makes long-lived objects and next to no garbage: collecting during it was a tenth of `flask import`."""
    started = []

    def count(phase, info):
        if phase == "start":
            started.append(info["generation"])

    gc.callbacks.append(count)
    try:
        for enabled in (True, False):
            (gc.enable if enabled else gc.disable)()
            app = create_app({"TESTING": True, "SECRET_KEY": "test", "INSTANCE_PATH": str(tmp_path / str(enabled))})
            assert gc.isenabled() is enabled
            app.extensions["nexus.searchers"].close()
    finally:
        gc.callbacks.remove(count)
        gc.enable()
    assert started == []
    assert gc.get_count()[0] < 700  # what it made went to the oldest generation: no young collection walks it


#: Runs the flask command in this interpreter, then prints what the collection at exit would walk, and what it will not.
RUN_AND_COUNT = """
import gc, json, runpy, sys
sys.argv = ["flask", "--app", "portal", *sys.argv[1:]]
try:
    runpy.run_module("flask", run_name="__main__")
finally:
    print(json.dumps([len(gc.get_objects()), gc.get_freeze_count()]))
"""


def test_an_import_leaves_the_collection_at_exit_next_to_nothing_to_walk(tmp_path, content_dir):
    """Walking every object Flask, SQLAlchemy and the import made took 0.15 s of an unchanged import's second."""
    env = nexus_env(tmp_path / "instance", content_dir)
    for expected in ("5 added", "5 unchanged"):
        output, (walked, frozen) = run_reporting(env, RUN_AND_COUNT, "import", "-q")
        assert expected in output
        assert frozen > 50_000 and walked < 1_000, (walked, frozen)


def test_a_sandbox_with_nothing_to_run_loads_no_multiprocessing():
    """Its processes start with the first job: an import whose stamps all hold needs neither it nor ctypes (5 ms)."""
    script = (
        "import json, sys\n"
        "from portal import cli, importer\n"
        "from portal.sandbox import Sandbox\n"
        "with Sandbox(2) as sandbox:\n"
        "    assert sandbox.run(print, []) == []\n"
        "print(json.dumps([m for m in ('multiprocessing', 'ctypes') if m in sys.modules]))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []
