"""`flask import | reindex | check` through Click's runner."""

from __future__ import annotations

import gc

from portal import cli
from portal.search import store

from .conftest import write_entry


def test_import_prints_a_summary_and_exits_zero(runner):
    result = runner.invoke(args=["import"])
    assert result.exit_code == 0, result.output
    assert "5 added, 0 updated, 0 unchanged, 0 deleted, 0 errors, 0 warnings" in result.output
    again = runner.invoke(args=["import", "--quiet"])
    assert "0 added, 0 updated, 5 unchanged, 0 deleted, 0 errors" in again.output


def test_import_runs_with_start_up_frozen(runner, monkeypatch):
    """What start-up made is out of the collector's way during the import (conftest thaws it after each test)."""
    frozen = []
    real = cli.import_content

    def watched(*args, **kwargs):
        frozen.append(gc.get_freeze_count())
        return real(*args, **kwargs)

    monkeypatch.setattr(cli, "import_content", watched)
    before = gc.get_freeze_count()
    assert runner.invoke(args=["import"]).exit_code == 0
    assert frozen[0] > before


def test_import_reports_errors_with_file_and_line_and_exits_non_zero(runner, content_dir):
    write_entry(content_dir, "broken.md", "---\nkind: nonsense\n---\nx\n")
    result = runner.invoke(args=["import"])
    assert result.exit_code == 1
    assert "error: broken.md:2: unknown kind 'nonsense'" in result.output
    assert "5 added" in result.output and "1 errors" in result.output


def test_import_takes_a_path_argument(runner, tmp_path):
    other = tmp_path / "elsewhere"
    write_entry(other, "one.md", "# One\n\nBody.\n")
    result = runner.invoke(args=["import", str(other)])
    assert result.exit_code == 0 and "1 added" in result.output


def test_import_of_a_missing_folder_is_a_usage_error(runner, tmp_path):
    result = runner.invoke(args=["import", str(tmp_path / "nope")])
    assert result.exit_code == 2
    assert "content folder not found" in result.output


def test_warnings_are_printed_unless_quiet(runner, content_dir):
    write_entry(content_dir, "linky.md", "# L\n\n[x](gone.md)\n")
    loud = runner.invoke(args=["import"])
    assert "warning: linky.md:3: link to 'gone.md' points to no entry" in loud.output


def test_reindex_rebuilds_from_the_database(runner, app):
    runner.invoke(args=["import"])
    before = store.live_index_dir(app.instance_path)
    result = runner.invoke(args=["reindex"])
    assert result.exit_code == 0 and "rebuilt" in result.output
    after = store.live_index_dir(app.instance_path)
    assert after != before and store.check_index(app.instance_path) == (1, 5)


def test_check_parses_without_importing(runner, content_dir, app):
    write_entry(content_dir, "bad.md", "---\ntitle: [x\n---\nx\n")
    result = runner.invoke(args=["check"])
    assert result.exit_code == 1
    assert "bad.md:2: invalid YAML front matter" in result.output
    assert "6 files checked, 1 with errors" in result.output
    assert store.live_index_dir(app.instance_path) is None
