"""A private, throwaway PostgreSQL cluster for tests that stop the server or kill its sessions.

Never the shared server (`NEXUS_TEST_POSTGRES_URL`): other tests and people use it. This one
lives in a temporary folder on a free port, as `.ci/postgres.sh` starts CI's, and is removed
at the end.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import sqlalchemy

from .servers import free_port


def _pg_bin() -> Path:
    """The newest installed PostgreSQL's bin folder (Debian's layout)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if not found:
        raise RuntimeError("PostgreSQL's initdb is not installed (apt-get install postgresql)")
    return Path(found[-1]).parent


class Cluster:
    """A PostgreSQL server the test owns: its URL, and stop / start / terminate at will."""

    def __init__(self, folder: Path):
        self.folder, self.bin, self.port = folder, _pg_bin(), free_port()
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        """Run a PostgreSQL program as the `postgres` user when we are root (initdb refuses root)."""
        command = [str(self.bin / args[0]), *args[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=60)

    def init(self) -> None:
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres")
        self._run("initdb", "-D", str(self.folder / "data"), "-A", "trust", "-U", "postgres")

    def start(self) -> None:
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.folder} -c fsync=off"
        self._run(
            "pg_ctl", "-D", str(self.folder / "data"), "-l", str(self.folder / "log"), "-w", "-o", options, "start"
        )

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.folder / "data"), "-m", mode, "-w", "stop")

    def execute(self, sql: str, **params):
        """Run one statement as the superuser; the rows it returns."""
        engine = sqlalchemy.create_engine(self.url, isolation_level="AUTOCOMMIT", poolclass=sqlalchemy.pool.NullPool)
        try:
            with engine.connect() as connection:
                result = connection.execute(sqlalchemy.text(sql), params)
                return result.all() if result.returns_rows else []
        finally:
            engine.dispose()


@contextlib.contextmanager
def private_postgres():
    """Start a throwaway cluster; stop and delete it afterwards, whatever happened."""
    folder = Path(tempfile.mkdtemp(prefix="nexus-test-pg."))
    cluster = Cluster(folder)
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            cluster.stop("immediate")
        shutil.rmtree(folder, ignore_errors=True)
