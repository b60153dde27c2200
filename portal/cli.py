"""`flask --app portal import | reindex | check`."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import with_appcontext

from .config import write_secret_key
from .content import ContentError, printable, read_file
from .folder import find_markdown_files
from .importer import ImportFailed, import_content, rebuild_index
from .locking import ImportBusy, import_lock


def register(app: Flask) -> None:
    """Attach the commands to the app's CLI group."""
    app.cli.add_command(import_command)
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

    try:
        report = import_content(
            root,
            current_app.instance_path,
            folder_tags=current_app.config["FOLDER_TAGS"],
            progress=progress if show_bar else None,
            wait=not no_wait,
        )
    except (ImportBusy, ImportFailed) as error:
        raise click.ClickException(str(error)) from None
    for error in report.errors:
        click.echo(f"error: {error}", err=True)
    if not quiet:
        for warning in report.warnings:
            click.echo(f"warning: {printable(warning)}", err=True)  # names in it must not forge lines
    click.echo(report.summary())
    if report.errors:
        sys.exit(1)


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
    problems = 0
    files = find_markdown_files(root)
    for file in files:
        try:
            read_file(root, file, folder_tags=current_app.config["FOLDER_TAGS"])
        except ContentError as error:
            click.echo(f"error: {error}", err=True)
            problems += 1
    click.echo(f"{len(files)} files checked, {problems} with errors")
    if problems:
        sys.exit(1)


@click.command("secret-key")
@with_appcontext
def secret_key_command():
    """Create the instance folder's secret key file (owner-only) if it does not exist."""
    path, created = write_secret_key(current_app.instance_path)
    click.echo(f"{'created' if created else 'kept'} {path}")
