"""Starting real gunicorn servers on free 127.0.0.1 ports for end-to-end tests."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def fetch(url: str, timeout: float = 10.0) -> tuple[int, str, dict]:
    """GET a URL: (status, body, headers), with HTTP errors returned rather than raised."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - local test server
            return response.status, response.read().decode("utf-8"), dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode("utf-8", "replace"), dict(error.headers)


def nexus_env(instance: Path, content: Path, **extra: str) -> dict:
    """The environment a Nexus process runs with in tests."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEXUS_")}
    env.update(
        NEXUS_INSTANCE_PATH=str(instance),
        NEXUS_CONTENT_DIR=str(content),
        NEXUS_SECRET_KEY="test-secret",
        NEXUS_GIT_DATES="0",  # test folders are not git work trees: no warning about it in every output
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def flask_cli(env: dict, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run `flask --app portal ...` as a user would."""
    return subprocess.run(
        [str(BIN / "flask"), "--app", "portal", *args],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@contextlib.contextmanager
def gunicorn(env: dict, workers: int = 2, log_path: Path | None = None, startup_timeout: float = 60.0):
    """Serve `wsgi:app` with the project's gunicorn.conf.py; yields the base URL."""
    port = free_port()
    env = dict(env, NEXUS_GUNICORN_BIND=f"127.0.0.1:{port}", NEXUS_GUNICORN_WORKERS=str(workers))
    log = open(log_path or os.devnull, "w")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [str(BIN / "gunicorn"), "-c", "gunicorn.conf.py", "wsgi:app"],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + startup_timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {process.returncode}; see {log_path}")
            try:
                if fetch(base + "/healthz", timeout=2)[0] in (200, 503):
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("gunicorn did not start in time")
            time.sleep(0.2)
        yield base
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
