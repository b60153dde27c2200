"""More than one node on one database: one importer at a time, every node's index follows the database."""

from __future__ import annotations

import json
import time

import pytest

from portal import importer, locking
from portal.models import db
from portal.search import store

from .conftest import BACKENDS, POSTGRES_URL, do_import, postgres_schema, write_entry
from .servers import fetch, flask_cli, gunicorn, nexus_env


@pytest.fixture
def two_nodes(make_app, content_dir, tmp_path):
    """Two apps with their own instance folders sharing one database (node A imports)."""
    node_a = make_app(content_dir, instance="node-a")
    shared = node_a.config["SQLALCHEMY_DATABASE_URI"]
    node_b = make_app(content_dir, instance="node-b", SQLALCHEMY_DATABASE_URI=shared, INDEX_CHECK_SECONDS=0.01)
    return node_a, node_b


def search_slugs(app, q):
    return [r["slug"] for r in app.test_client().get(f"/api/search?q={q}").get_json()["results"]]


def test_other_nodes_rebuild_their_index_from_the_database(two_nodes, content_dir):
    node_a, node_b = two_nodes
    do_import(node_a, content_dir)
    assert store.live_index_dir(node_b.instance_path) is None
    sync = node_b.extensions["nexus.index_sync"]
    with node_b.app_context():
        assert sync.check()  # stale: B has no index yet
    sync.wait(30)
    assert store.check_index(node_b.instance_path) == (1, 5)
    assert search_slugs(node_b, "worker") == ["technologies/celery"]

    write_entry(content_dir, "technologies/flower.md", "# Flower\n\nA dashboard for zeppelin workers.\n")
    do_import(node_a, content_dir)
    # Pages come straight from the shared database; search follows once B's rebuild swaps in.
    assert node_b.test_client().get("/entries/technologies/flower").status_code == 200
    time.sleep(0.02)
    node_b.test_client().get("/")  # any request triggers the (throttled) check
    sync.wait(30)
    assert store.check_index(node_b.instance_path) == (2, 6)
    assert search_slugs(node_b, "zeppelin") == ["technologies/flower"]
    with node_b.app_context():
        assert not sync.is_stale() and not sync.check()


def test_index_sync_heals_an_import_killed_after_its_commit(make_app, content_dir):
    app = make_app(content_dir, INDEX_CHECK_SECONDS=0.01)
    do_import(app, content_dir)
    write_entry(content_dir, "late.md", "# Late\n\nxylophone\n")
    with app.app_context():
        importer._sync(content_dir.resolve(), importer._Options())  # the database commits, then the process "dies"
        db.session.remove()
    assert store.check_index(app.instance_path)[0] == 1
    time.sleep(0.02)
    with app.app_context():
        assert app.extensions["nexus.index_sync"].check()
    app.extensions["nexus.index_sync"].wait(30)
    assert search_slugs(app, "xylophone") == ["late"]


def test_reindex_if_stale_from_cron(two_nodes, content_dir):
    node_a, node_b = two_nodes
    do_import(node_a, content_dir)
    runner = node_b.test_cli_runner()
    assert "rebuilt" in runner.invoke(args=["reindex", "--if-stale"]).output
    assert "up to date" in runner.invoke(args=["reindex", "--if-stale"]).output


@pytest.mark.skipif(
    not POSTGRES_URL,
    reason="PostgreSQL only: `make test` runs it when PostgreSQL is installed (sudo scripts/system-deps.sh)",
)
def test_two_importers_on_different_nodes_do_not_run_at_once(tmp_path, content_dir):
    from portal import create_app

    with postgres_schema() as url:
        nodes = [
            create_app({"TESTING": True, "SECRET_KEY": "t", "INSTANCE_PATH": str(tmp_path / name),
                        "SQLALCHEMY_DATABASE_URI": url, "INDEX_CHECK_SECONDS": 0, "PAGE_CACHE_MB": 0})
            for name in ("node-a", "node-b")
        ]  # fmt: skip
        node_a, node_b = nodes
        try:
            with (
                node_a.app_context(),
                locking.import_lock(node_a.instance_path, engine=db.engine),  # A's database, A's lock
                node_b.app_context(),
                pytest.raises(locking.ImportBusy, match="another node"),
            ):
                importer.import_content(content_dir, node_b.instance_path, wait=False)
            assert do_import(node_b, content_dir).added  # free again once A lets go
        finally:
            for node in nodes:
                node.extensions["nexus.searchers"].close()
                with node.app_context():
                    db.session.remove()
                    db.engine.dispose()


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_two_gunicorn_nodes_share_one_database(backend, tmp_path, content_dir):
    content = content_dir
    with postgres_schema() if backend == "postgresql" else _sqlite_url(tmp_path) as url:
        env_a = nexus_env(tmp_path / "a", content, NEXUS_DATABASE_URL=url, NEXUS_INDEX_CHECK_SECONDS="0.5")
        env_b = nexus_env(tmp_path / "b", content, NEXUS_DATABASE_URL=url, NEXUS_INDEX_CHECK_SECONDS="0.5")
        with gunicorn(env_a, workers=2) as node_a, gunicorn(env_b, workers=2) as node_b:
            write_entry(content, "new/zeppelin.md", "# Zeppelins\n\nRigid airships and their hydrogen.\n")
            result = flask_cli(env_a, "import")
            assert result.returncode == 0 and "1 added" in result.stdout, result.stderr
            for base in (node_a, node_b):
                assert fetch(base + "/entries/new/zeppelin")[0] == 200
                assert _eventually_found(base, "airships"), f"search on {base} never found the new entry"


def _eventually_found(base, q, seconds=30):
    """Poll search (bounded) until every worker of a node finds the entry."""
    deadline = time.monotonic() + seconds
    streak = 0
    while time.monotonic() < deadline:
        body = json.loads(fetch(f"{base}/api/search?q={q}")[1])
        streak = streak + 1 if [r["slug"] for r in body["results"]] == ["new/zeppelin"] else 0
        if streak >= 6:
            return True
        time.sleep(0.2)
    return False


class _sqlite_url:
    """A shared SQLite file, the single-machine stand-in for a shared database server."""

    def __init__(self, tmp_path):
        self.url = f"sqlite:///{tmp_path}/shared.sqlite3"

    def __enter__(self):
        return self.url

    def __exit__(self, *exc):
        return False
