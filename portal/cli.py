"""`flask --app portal import | watch | reindex | check | secret-key`."""

from __future__ import annotations

import gc
import os
import signal
import sys
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import pass_script_info, with_appcontext

from .config import import_settings, write_secret_key
from .content import ContentError, parse_bytes, printable
from .folder import read_entry_file, walk
from .importer import ImportFailed, import_content, rebuild_index
from .locking import ImportBusy, import_lock


def register(app: Flask) -> None:
    """Attach the commands to the app's CLI group."""
    app.cli.add_command(import_command)
    app.cli.add_command(watch_command)
    app.cli.add_command(dev_command)
    app.cli.add_command(reindex_command)
    app.cli.add_command(check_command)
    app.cli.add_command(secret_key_command)


def _content_dir(path):
    return Path(path or current_app.config["CONTENT_DIR"])


@click.command("import")
@click.argument("path", required=False, type=click.Path(file_okay=False))
@click.option("--quiet", "-q", is_flag=True, help="Print only errors and the summary line.")
@click.option("--no-wait", is_flag=True, help="Fail at once if another import is running.")
@with_appcontext
def import_command(path, quiet, no_wait):
    """Sync a folder of Markdown (default: the content folder) into the site."""
    root = _content_dir(path)
    if not root.is_dir():
        raise click.UsageError(f"content folder not found: {root}")
    show_bar = not quiet and sys.stderr.isatty()

    def progress(files):
        with click.progressbar(files, label="Importing", file=sys.stderr, show_pos=True) as bar:
            yield from bar

    # What start-up made (modules, the app) lives as long as the process: the collector need not walk
    # it in every full collection during the import (at 10,000 unchanged files that cost more than the
    # scan), nor at exit (frozen again after the import, below).
    gc.freeze()
    try:
        report = import_content(
            root,
            current_app.instance_path,
            **import_settings(current_app.config),
            progress=progress if show_bar else None,
            wait=not no_wait,
        )
    except (ImportBusy, ImportFailed) as error:
        raise click.ClickException(str(error)) from None
    # The import's collector.paused() thawed what was frozen. Frozen again and never thawed, or the collection
    # at exit walks every object the process made, Flask's and SQLAlchemy's too: 0.15 s of an unchanged import.
    gc.freeze()
    for error in report.errors:
        click.echo(f"error: {error}", err=True)
    if not quiet:
        for warning in report.warnings:
            click.echo(f"warning: {printable(warning)}", err=True)  # names in it must not forge lines
    click.echo(report.summary())
    if report.errors:
        sys.exit(1)


@click.command("watch")
@click.argument("path", required=False, type=click.Path(file_okay=False))
@click.option("--no-wait", is_flag=True, help="Fail at once if another import is running when the watcher starts.")
@with_appcontext
def watch_command(path, no_wait):
    """Import a folder (default: the content folder), then import every change until Ctrl-C."""
    from .watch import Watcher, quiet_import_logs  # watchfiles loads only for this command

    root = _content_dir(path)
    if not root.is_dir():
        raise click.UsageError(f"content folder not found: {root}")
    previous = signal.signal(signal.SIGTERM, _interrupt)  # `kill` stops it as cleanly as Ctrl-C
    _helpers_leave_signals_to_us()
    quiet_import_logs()
    try:
        Watcher(current_app._get_current_object(), root, wait=not no_wait).run()
    except ImportBusy as error:
        raise click.ClickException(str(error)) from None
    except KeyboardInterrupt:
        import multiprocessing  # lazy: only a stopped watcher asks it (see `sandbox._context`)

        for helper in multiprocessing.active_children():  # e.g. Whoosh's index writers, mid-build
            helper.terminate()
            helper.join(timeout=10)
        click.echo("stopped watching")
    finally:
        signal.signal(signal.SIGTERM, previous)


def _interrupt(signum, frame):
    raise KeyboardInterrupt


_helpers_registered = False


def _helpers_leave_signals_to_us() -> None:
    """Processes forked during an import ignore Ctrl-C and die of SIGTERM: the watcher stops them, no traceback."""
    global _helpers_registered
    if not _helpers_registered:
        os.register_at_fork(after_in_child=_as_a_helper)
        _helpers_registered = True


def _as_a_helper() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


@click.command("dev")
@click.argument("path", required=False, type=click.Path(file_okay=False))
@click.option("--port", default=5000, show_default=True, help="Port to serve on (127.0.0.1 only).")
@pass_script_info
def dev_command(info, path, port):
    """For writers: the development server with code and template reload, pages that reload themselves, and `watch`."""
    from werkzeug.serving import is_running_from_reloader, run_simple

    from .watch import quiet_import_logs, start_thread

    app = info.load_app()
    if not app.debug:
        raise click.UsageError(
            "live reload needs debug mode: run `flask --app portal --debug dev` (as `make dev` does)"
        )
    root = Path(path or app.config["CONTENT_DIR"])
    if not root.is_dir():
        raise click.UsageError(f"content folder not found: {root}")
    watching = None
    if is_running_from_reloader():  # the child that serves (and restarts on code changes), not the monitor
        quiet_import_logs()
        watching = start_thread(app, root)
    try:
        run_simple("127.0.0.1", port, app, use_reloader=True, use_debugger=True, threaded=True)
    finally:
        if watching:
            thread, stop = watching
            stop.set()
            thread.join(timeout=5)


@click.command("reindex")
@click.option("--if-stale", is_flag=True, help="Only if the database has a newer import than this node's index.")
@with_appcontext
def reindex_command(if_stale):
    """Rebuild this node's search index from the database and swap it in."""
    with import_lock(current_app.instance_path):
        if if_stale and not current_app.extensions["nexus.index_sync"].is_stale():
            click.echo("search index is up to date")
            return
        rebuild_index(current_app.instance_path)
    click.echo("search index rebuilt")


@click.command("check")
@click.argument("path", required=False, type=click.Path(file_okay=False))
@with_appcontext
def check_command(path):
    """Parse every file without importing; report problems and exit non-zero if any."""
    root = _content_dir(path)
    if not root.is_dir():
        raise click.UsageError(f"content folder not found: {root}")
    follow = current_app.config["FOLLOW_EXTERNAL_SYMLINKS"]
    found = walk(root, follow_external=follow)  # the files an import reads, and the folders it refuses
    for error in found.problems:
        click.echo(f"error: {error}", err=True)
    problems = len(found.problems)
    for relative in found.relative:
        try:
            parse_bytes(
                relative,
                read_entry_file(root, relative, follow_external=follow),
                folder_tags=current_app.config["FOLDER_TAGS"],
            )
        except ContentError as error:
            click.echo(f"error: {error}", err=True)
            problems += 1
    click.echo(f"{len(found.relative)} files checked, {problems} with errors")
    if problems:
        sys.exit(1)


@click.command("secret-key")
@with_appcontext
def secret_key_command():
    """Create the instance folder's secret key file (owner-only) if it does not exist."""
    path, created = write_secret_key(current_app.instance_path)
    click.echo(f"{'created' if created else 'kept'} {path}")
