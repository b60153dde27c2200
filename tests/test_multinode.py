"""More than one node on one database: one importer at a time, every node's index follows the database.

On PostgreSQL an import's commit notifies every node, whose listener updates its index at once
without waiting for a request; the fault tests stop PostgreSQL and kill the listener's session
on a private, throwaway cluster (tests/pg_cluster.py), never on the shared one.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import datetime as dt
import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
import sqlalchemy
from sqlalchemy.exc import OperationalError

from portal import create_app, importer, locking
from portal.index_sync import APPLICATION_NAME, GenerationListener
from portal.models import ImportRun, db, utcnow
from portal.search import store

from .conftest import BACKENDS, POSTGRES_URL, do_import, postgres_schema, write_entry
from .pg_cluster import private_postgres
from .servers import BIN, PROJECT_ROOT, fetch, flask_cli, gunicorn, nexus_env

needs_postgres = pytest.mark.skipif(
    not POSTGRES_URL,
    reason="PostgreSQL only: `make test` runs it when PostgreSQL is installed (sudo scripts/system-deps.sh)",
)


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


@needs_postgres
def test_two_importers_on_different_nodes_do_not_run_at_once(tmp_path, content_dir):

    with postgres_schema() as url:
        nodes = [pg_node(tmp_path / name, url) for name in ("node-a", "node-b")]
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


@needs_postgres
def test_sites_in_other_schemas_of_one_database_import_at_the_same_time(tmp_path, content_dir):
    # Advisory locks belong to the whole database: keyed by schema, another site's import holds up none of this one's.
    with postgres_schema() as other_url, postgres_schema() as url:
        other, site = pg_node(tmp_path / "other", other_url), pg_node(tmp_path / "site", url)
        try:
            with other.app_context(), locking.import_lock(other.instance_path, engine=db.engine), site.app_context():
                assert importer.import_content(content_dir, site.instance_path, wait=False).added
        finally:
            for app in (other, site):
                app.extensions["nexus.searchers"].close()
                with app.app_context():
                    db.session.remove()
                    db.engine.dispose()


def pg_node(instance, url):
    """A node of a site kept in the PostgreSQL database at `url`."""
    return create_app({"TESTING": True, "SECRET_KEY": "t", "INSTANCE_PATH": str(instance),
                       "SQLALCHEMY_DATABASE_URI": url, "INDEX_CHECK_SECONDS": 0, "PAGE_CACHE_MB": 0})  # fmt: skip


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


# --- /healthz: how far behind this node's index is -----------------------------------------


def set_finished(app, generation: int, seconds_ago: float) -> None:
    """Pretend an import finished some time ago."""
    with app.app_context():
        db.session.get(ImportRun, generation).finished_at = utcnow() - dt.timedelta(seconds=seconds_ago)
        db.session.commit()
        db.session.remove()


def test_healthz_reports_the_lag_since_the_first_import_the_index_misses(make_app, content_dir, monkeypatch):
    app = make_app(content_dir)
    do_import(app, content_dir)
    client = app.test_client()
    body = client.get("/healthz").get_json()
    assert (body["generation"], body["index_generation"], body["index_lag_seconds"]) == (1, 1, 0)
    monkeypatch.setattr(importer, "sync_index", lambda path: None)  # this node's index stays behind
    write_entry(content_dir, "a.md", "# A\n\nOne.\n")
    do_import(app, content_dir)
    body = client.get("/healthz").get_json()
    assert body["status"] == "ok" and body["index_pending"] is True and 0 <= body["index_lag_seconds"] < 5
    # Behind since generation 2 finished 200 s ago, though generation 3 came just now: past the grace period.
    set_finished(app, 2, seconds_ago=200)
    write_entry(content_dir, "b.md", "# B\n\nTwo.\n")
    do_import(app, content_dir)
    response = client.get("/healthz")
    body = response.get_json()
    assert response.status_code == 503 and body["reason"] == "index is from generation 1, database is at 3"
    assert 200 <= body["index_lag_seconds"] < 205
    monkeypatch.undo()
    with app.app_context():
        importer.sync_index(app.instance_path)
        db.session.remove()
    body = client.get("/healthz").get_json()
    assert body["status"] == "ok" and body["index_lag_seconds"] == 0 and "index_pending" not in body


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("/down", "text/html"),  # a page: the site's error page, saying what is wrong
        ("/api/down", "application/json"),  # the API: its JSON error
    ],
)
def test_a_database_that_does_not_answer_is_a_clear_503(imported_app, path, kind):
    def down():
        raise OperationalError("SELECT 1", {}, Exception("connection refused\nIs the server running?"))

    imported_app.add_url_rule(path, path, down)
    response = imported_app.test_client().get(path)
    assert response.status_code == 503 and response.content_type.startswith(kind)
    assert response.headers["Retry-After"] == "5"
    text = response.get_data(as_text=True)
    assert "The database is not answering" in text and "Traceback" not in text and "refused" not in text


# --- PostgreSQL: every node follows an import at once ------------------------------------------


def live_generation(instance: Path) -> int | None:
    """The generation of a node's live index, read from its instance folder (no request to the node)."""
    directory = store.live_index_dir(instance)
    return store.index_generation(directory) if directory else None


def wait_for_generation(instances: list[Path], generation: int, seconds: float) -> dict[Path, dt.datetime]:
    """Poll the instance folders until each live index is at `generation`; when each got there (UTC)."""
    reached: dict[Path, dt.datetime] = {}
    deadline = time.monotonic() + seconds
    while len(reached) < len(instances) and time.monotonic() < deadline:
        for instance in instances:
            if instance not in reached and (live_generation(instance) or 0) >= generation:
                reached[instance] = utcnow()
        time.sleep(0.02)
    return reached


def wait_for_log(path: Path, text: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while text not in path.read_text():
        assert time.monotonic() < deadline, f"{path.name} never said {text!r}"
        time.sleep(0.05)


def finished_at(url: str, generation: int) -> dt.datetime:
    engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
    try:
        with engine.connect() as connection:
            return connection.execute(
                sqlalchemy.select(ImportRun.finished_at).where(ImportRun.id == generation)
            ).scalar()
    finally:
        engine.dispose()


@needs_postgres
@pytest.mark.slow
def test_a_second_import_shows_on_both_nodes_within_2_seconds_without_a_request(tmp_path, content_dir):
    with postgres_schema() as url:
        # The periodic check is off: only the push can bring node B's index up to date.
        env_a, env_b = (
            nexus_env(tmp_path / name, content_dir, NEXUS_DATABASE_URL=url, NEXUS_INDEX_CHECK_SECONDS="0")
            for name in ("a", "b")
        )
        assert flask_cli(env_a, "import").returncode == 0
        logs = [tmp_path / "a.log", tmp_path / "b.log"]
        with (
            gunicorn(env_a, workers=2, log_path=logs[0]) as node_a,
            gunicorn(env_b, workers=2, log_path=logs[1]) as node_b,
        ):
            for log in logs:
                wait_for_log(log, "listens for new generations")
            write_entry(content_dir, "new/zeppelin.md", "# Zeppelins\n\nRigid airships and their hydrogen.\n")
            # An import on node A; meanwhile nobody asks either node anything, the test watches their folders.
            with concurrent.futures.ThreadPoolExecutor(1) as pool:
                watching = pool.submit(wait_for_generation, [tmp_path / "a", tmp_path / "b"], 2, 30)
                result = flask_cli(env_a, "import")
                reached = watching.result()
            assert result.returncode == 0 and "1 added" in result.stdout, result.stderr
            committed = finished_at(url, 2)
            lags = {path.name: round((when - committed).total_seconds(), 2) for path, when in reached.items()}
            print(f"index generation 2 live after the commit: {lags} s")
            assert set(lags) == {"a", "b"} and max(lags.values()) <= 2.0, lags
            for base in (node_a, node_b):  # the first search on each node finds the new note
                body = json.loads(fetch(f"{base}/api/search?q=airships")[1])
                assert [r["slug"] for r in body["results"]] == ["new/zeppelin"]
        for log in logs:
            assert "Traceback" not in log.read_text()


@contextlib.contextmanager
def postgres_nodes(url: str, tmp_path: Path, names=("node-a", "node-b")):
    """Apps with their own instance folders on one PostgreSQL database, closed afterwards."""
    nodes = [
        create_app({"TESTING": True, "SECRET_KEY": "t", "INSTANCE_PATH": str(tmp_path / name),
                    "SQLALCHEMY_DATABASE_URI": url, "INDEX_CHECK_SECONDS": 0, "PAGE_CACHE_MB": 0})
        for name in names
    ]  # fmt: skip
    try:
        yield nodes
    finally:
        for node in nodes:
            node.extensions["nexus.searchers"].close()
            with node.app_context():
                db.session.remove()
                db.engine.dispose()


def listener_sessions(cluster) -> list[int]:
    return [
        row[0]
        for row in cluster.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = :name", name=APPLICATION_NAME
        )
    ]


@needs_postgres
@pytest.mark.slow
def test_the_listener_recovers_from_pg_terminate_backend_and_catches_up(tmp_path, content_dir):
    with private_postgres() as cluster, postgres_nodes(cluster.url, tmp_path) as (node_a, node_b):
        do_import(node_a, content_dir)
        listener = GenerationListener(node_b, poll=0.1).start()
        try:
            assert listener.listening.wait(20)
            assert wait_for_generation([Path(node_b.instance_path)], 1, seconds=20)  # caught up when it began
            for round_number, name in enumerate(["one", "two", "three"], start=2):
                [session] = listener_sessions(cluster)
                listener.BACKOFF = (5.0, 30.0) if round_number == 3 else (0.5, 30.0)
                assert cluster.execute("SELECT pg_terminate_backend(:pid)", pid=session) == [(True,)]
                if round_number == 3:  # the next import commits while the listener is away: it catches up
                    write_entry(content_dir, f"n/{name}.md", f"# {name}\n\nNote {name}.\n")
                    do_import(node_a, content_dir)
                    assert listener_sessions(cluster) == []  # nobody heard this import's notification
                deadline = time.monotonic() + 20
                while listener_sessions(cluster) in ([], [session]):
                    assert time.monotonic() < deadline, "the listener never reconnected"
                    time.sleep(0.05)
                if round_number != 3:  # the next import arrives through the new session
                    write_entry(content_dir, f"n/{name}.md", f"# {name}\n\nNote {name}.\n")
                    do_import(node_a, content_dir)
                assert wait_for_generation([Path(node_b.instance_path)], round_number, seconds=10), round_number
            assert listener.syncs >= 4
        finally:
            listener.stop()


@needs_postgres
@pytest.mark.slow
def test_postgres_stopped_and_started_while_a_node_serves(tmp_path, content_dir):
    with private_postgres() as cluster:
        env = nexus_env(tmp_path / "node", content_dir, NEXUS_DATABASE_URL=cluster.url)
        assert flask_cli(env, "import").returncode == 0
        log = tmp_path / "gunicorn.log"
        pages = ["/", "/entries/technologies/celery", "/tags/redis", "/api/search?q=celery"]
        with gunicorn(env, workers=2, log_path=log) as base:
            wait_for_log(log, "listens for new generations")
            for page in pages:  # rendered once, now in the node's page cache
                assert fetch(base + page)[0] == 200
            cluster.stop()
            answers = [fetch(base + page) for page in [*pages, "/entries/concepts/caching", "/healthz"] * 2]
            for status, body, _headers in answers:
                assert status in (200, 503), status
                assert "Traceback" not in body
                if status == 503:
                    assert "The database is not answering" in body or "database unavailable" in body
            assert fetch(base + "/healthz")[0] == 503
            cluster.start()
            deadline = time.monotonic() + 30
            while any(fetch(base + page)[0] != 200 for page in [*pages, "/healthz"]):
                assert time.monotonic() < deadline, "the node did not recover by itself"
                time.sleep(0.2)
            # The listener reconnected by itself: the next import reaches this node's index at once.
            write_entry(content_dir, "new/zeppelin.md", "# Zeppelins\n\nRigid airships.\n")
            other = nexus_env(tmp_path / "importer", content_dir, NEXUS_DATABASE_URL=cluster.url)
            assert flask_cli(other, "import").returncode == 0
            assert wait_for_generation([tmp_path / "node"], 2, seconds=30)
            assert json.loads(fetch(base + "/api/search?q=airships")[1])["total"] == 1
        assert "Traceback" not in log.read_text()


@needs_postgres
@pytest.mark.slow
def test_two_importers_started_at_once_on_two_nodes_run_one_after_the_other(tmp_path, content_dir):
    with postgres_schema() as url:
        processes = []
        for name in ("a", "b"):
            folder = tmp_path / f"content-{name}"
            subprocess.run(["cp", "-r", str(content_dir), str(folder)], check=True)
            write_entry(folder, f"only-{name}.md", f"# Only {name}\n\nHere.\n")
            env = nexus_env(tmp_path / name, folder, NEXUS_DATABASE_URL=url)
            processes.append(
                subprocess.Popen(
                    [str(BIN / "flask"), "--app", "portal", "import"], cwd=PROJECT_ROOT, env=env,
                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                )
            )  # fmt: skip
        outputs = [process.communicate(timeout=120)[0] for process in processes]
        assert [process.returncode for process in processes] == [0, 0], outputs  # the second waited, then ran
        engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
        with engine.connect() as connection:
            runs = connection.execute(
                sqlalchemy.select(ImportRun.started_at, ImportRun.finished_at).order_by(ImportRun.id)
            ).all()
        engine.dispose()
        assert len(runs) == 2 and runs[0].finished_at <= runs[1].started_at  # never at the same time


@needs_postgres
@pytest.mark.slow
def test_when_the_listening_worker_dies_another_takes_over(tmp_path, content_dir):
    with postgres_schema() as url:
        env = nexus_env(tmp_path / "node", content_dir, NEXUS_DATABASE_URL=url, NEXUS_INDEX_CHECK_SECONDS="0")
        assert flask_cli(env, "import").returncode == 0
        log = tmp_path / "gunicorn.log"
        with gunicorn(env, workers=2, log_path=log):
            wait_for_log(log, "listens for new generations")
            [elected] = re.findall(r"process (\d+) listens", log.read_text())
            os.kill(int(elected), signal.SIGKILL)  # the kernel frees its lock; a waiting worker takes it
            deadline = time.monotonic() + 30
            while len(re.findall(r"process (\d+) listens", log.read_text())) < 2:
                assert time.monotonic() < deadline, "no other worker took over the listener"
                time.sleep(0.05)
            write_entry(content_dir, "new/zeppelin.md", "# Zeppelins\n\nRigid airships.\n")
            other = nexus_env(tmp_path / "importer", content_dir, NEXUS_DATABASE_URL=url)
            assert flask_cli(other, "import").returncode == 0
            assert wait_for_generation([tmp_path / "node"], 2, seconds=10)
