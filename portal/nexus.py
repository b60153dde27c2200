"""`nexus`: one command for your own notes, installed by `pip install .`.

    nexus serve ~/notes        import the folder, then serve it on http://127.0.0.1:8000
    nexus import ~/notes       sync the folder into its site (as `flask --app portal import`)
    nexus check ~/notes        parse without importing
    nexus reindex ~/notes      rebuild the search index from the database

Each folder gets its own instance folder (database, search index, secret key):
`~/.local/share/nexus/<folder name>` (under `$XDG_DATA_HOME` when set), or `--instance`. The
commands are `portal/cli.py`'s own, run in an app made for that folder; other `NEXUS_*` settings
apply as usual.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click
from flask import Flask

from . import cli, config

#: The flask commands `nexus` offers, by name; a folder of notes names their site.
FLASK_COMMANDS = {
    "import": cli.import_command,
    "check": cli.check_command,
    "reindex": cli.reindex_command,
}


def default_instance(content: Path) -> Path:
    """Where a folder's site lives unless `--instance` says: `~/.local/share/nexus/<folder name>`."""
    data_home = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(data_home) / "nexus" / (content.name or "notes")


def app_for(path: str, instance: str | None) -> Flask:
    """An app over the folder of notes at `path`, with its instance folder (set in the environment, for gunicorn too)."""
    content = Path(path).expanduser().resolve()
    if not content.is_dir():
        raise click.UsageError(f"notes folder not found: {content}")
    folder = Path(instance).expanduser().resolve() if instance else default_instance(content)
    os.environ["NEXUS_CONTENT_DIR"] = str(content)
    os.environ["NEXUS_INSTANCE_PATH"] = str(folder)
    from . import create_app

    return create_app()


def site_params() -> list[click.Parameter]:
    """What every nexus command takes first: the notes folder, and where its site lives."""
    return [
        click.Argument(["notes"], type=click.Path(file_okay=False)),
        click.Option(
            ["--instance"],
            type=click.Path(file_okay=False),
            help="The site's instance folder (default: ~/.local/share/nexus/<folder name>).",
        ),
    ]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main():
    """Nexus: a searchable, tag-browsable site from a folder of Markdown notes."""


def as_nexus_command(command: click.Command) -> click.Command:
    """A flask command, taking the notes folder first (and `--instance`), run in an app made for that folder."""
    takes_path = any(param.name == "path" for param in command.params)

    def run(notes, instance, **options):
        app = app_for(notes, instance)
        if takes_path:
            options["path"] = app.config["CONTENT_DIR"]
        with app.app_context():
            click.get_current_context().invoke(command, **options)

    params = [*site_params(), *(param for param in command.params if param.name != "path")]
    return click.Command(command.name, callback=run, params=params, help=command.help, short_help=command.short_help)


for _command in FLASK_COMMANDS.values():
    main.add_command(as_nexus_command(_command))


@main.command(params=site_params())
@click.option("--port", type=int, default=8000, show_default=True, help="Port on 127.0.0.1.")
@click.option("--bind", help="Address to serve on instead, as gunicorn takes it (e.g. 0.0.0.0:8000).")
def serve(notes, instance, port, bind):
    """Import a folder of notes into its site, then serve it with gunicorn (http://127.0.0.1:8000)."""
    app = app_for(notes, instance)
    if not os.environ.get("NEXUS_SECRET_KEY"):
        config.write_secret_key(app.instance_path)
    with app.app_context():
        try:
            click.get_current_context().invoke(cli.import_command, path=app.config["CONTENT_DIR"])
        except SystemExit as stop:
            if stop.code not in (None, 0, 1):  # 1: some notes have errors (printed); the others are served
                raise
    os.environ["NEXUS_GUNICORN_BIND"] = bind or f"127.0.0.1:{port}"
    arguments = ["-c", str(config.resource("gunicorn.conf.py")), "--pythonpath", str(config.PACKAGE_ROOT.parent)]
    click.echo(f"Serving {app.config['CONTENT_DIR']} on http://{os.environ['NEXUS_GUNICORN_BIND']} (Ctrl-C stops)")
    sys.stdout.flush()
    # gunicorn takes this process over: Ctrl-C and signals reach its master directly.
    os.execv(sys.executable, [sys.executable, "-m", "gunicorn", *arguments, "portal:create_app()"])  # noqa: S606  # nosec B606 - this Python, fixed arguments


if __name__ == "__main__":
    main()
