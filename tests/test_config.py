"""Configuration: environment overrides, their parsing, and the README documenting each one."""

from __future__ import annotations

import pytest

from portal import config

from .conftest import PROJECT_ROOT


def test_readme_documents_every_setting():
    readme = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    missing = [variable for variable, *_ in config.SETTINGS if f"| `{variable}` |" not in readme]
    assert missing == []


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"NEXUS_FOLDER_TAGS": "0"}, {"FOLDER_TAGS": False}),
        ({"NEXUS_FOLDER_TAGS": "yes"}, {"FOLDER_TAGS": True}),
        ({"NEXUS_PER_PAGE": "50"}, {"PER_PAGE": 50}),
        ({"NEXUS_GIT_DATES": "0"}, {"GIT_DATES": False}),  # the documented way to turn git dates off
        ({"NEXUS_MAX_ATTACHMENT_MB": "2.5"}, {"MAX_ATTACHMENT_MB": 2.5}),  # megabytes need not be whole
        ({"NEXUS_DATABASE_URL": "postgresql+psycopg://x/y"}, {"SQLALCHEMY_DATABASE_URI": "postgresql+psycopg://x/y"}),
        ({"NEXUS_INSTANCE_PATH": "/srv/nexus"}, {}),  # read separately, before the app exists
        ({"NEXUS_ALLOWED_HOSTS": " a.org, .b.org ,,"}, {"TRUSTED_HOSTS": ["a.org", ".b.org"]}),  # blanks dropped
        ({"NEXUS_ALLOWED_HOSTS": ""}, {"TRUSTED_HOSTS": []}),  # empty: any host, as unset
        ({"NEXUS_SEARCH_SLOTS": "0"}, {"SEARCH_SLOTS": 0}),  # no limit
        ({"UNRELATED": "1"}, {}),
    ],
)
def test_environment_overrides(environ, expected):
    assert config.from_environment(environ) == expected


@pytest.mark.parametrize(
    ("environ", "message"),
    [({"NEXUS_PER_PAGE": "many"}, "NEXUS_PER_PAGE"), ({"NEXUS_FOLDER_TAGS": "perhaps"}, "NEXUS_FOLDER_TAGS")],
)
def test_bad_values_name_the_variable(environ, message):
    with pytest.raises(RuntimeError, match=message):
        config.from_environment(environ)


def test_instance_path_default_and_override(tmp_path):
    assert config.instance_path({}) == str(PROJECT_ROOT / "instance")
    assert config.instance_path({"NEXUS_INSTANCE_PATH": str(tmp_path)}) == str(tmp_path)


def test_zero_configuration_app_uses_sqlite_in_the_instance_folder(make_app, tmp_path, database_url):
    app = make_app()
    if database_url is None:
        assert app.config["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{tmp_path}/instance/nexus.sqlite3"


def test_import_settings_come_from_the_app_settings(make_app):
    app = make_app(FOLDER_TAGS=False, GIT_DATES=True, MAX_ATTACHMENT_MB=2.5, MAX_RENDER_SECONDS=3)
    assert config.import_settings(app.config) == {
        "folder_tags": False,
        "git_dates": True,
        "max_attachment_bytes": 2_621_440,
        "max_render_seconds": 3,
        "max_render_mb": 512.0,
        "follow_external_symlinks": False,
    }


def test_a_negative_attachment_cap_is_refused(make_app):
    with pytest.raises(RuntimeError, match="NEXUS_MAX_ATTACHMENT_MB must be 0 or more"):
        make_app(MAX_ATTACHMENT_MB=-1)
