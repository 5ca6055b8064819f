from pathlib import Path

import pytest

from tre.config import load_settings, setting_fields, settings_table_markdown
from tre.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def test_defaults_run_on_one_machine(tmp_path):
    settings = load_settings({"TRE_HOME": str(tmp_path)})
    assert settings.home == tmp_path
    assert settings.db_url == f"sqlite:///{tmp_path}/tre.sqlite"
    assert settings.central_dir == tmp_path / "central"
    assert settings.projects_dir == REPO / "projects"
    assert settings.sources["home"] == "env" and settings.sources["central_dir"] == "default"


def test_environment_beats_file_beats_default(tmp_path):
    (tmp_path / "tre.toml").write_text('central_dir = "zone"\nuser = "from-file"\n')
    settings = load_settings({"TRE_HOME": str(tmp_path), "TRE_USER": "from-env"})
    assert settings.central_dir == tmp_path / "zone"  # relative to the file
    assert settings.user == "from-env"
    assert settings.sources["central_dir"] == "file"


def test_tre_config_names_the_file(tmp_path):
    config = tmp_path / "elsewhere.toml"
    config.write_text(f'home = "{tmp_path / "h"}"\n')
    assert load_settings({"TRE_CONFIG": str(config)}).home == tmp_path / "h"


def test_unknown_setting_in_file_is_named(tmp_path):
    (tmp_path / "tre.toml").write_text("colour = 3\n")
    with pytest.raises(ConfigError, match="unknown setting.*colour"):
        load_settings({"TRE_HOME": str(tmp_path)})


def test_invalid_toml_and_missing_config_file(tmp_path):
    (tmp_path / "tre.toml").write_text("home = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings({"TRE_HOME": str(tmp_path)})
    with pytest.raises(ConfigError, match="TRE_CONFIG names .* which is not a file"):
        load_settings({"TRE_CONFIG": str(tmp_path / "missing.toml")})


def test_every_setting_has_env_and_help():
    for f in setting_fields():
        assert f.metadata["env"].startswith("TRE_"), f.name
        assert len(f.metadata["help"]) > 20, f.name


def test_settings_table_in_docs_is_current():
    """docs/settings.md carries the generated table; adding a setting without docs fails here."""
    text = (REPO / "docs" / "settings.md").read_text()
    start = text.index("-->\n") + len("-->\n")
    end = text.index("<!-- end of settings table -->")
    assert text[start:end] == settings_table_markdown(), (
        "docs/settings.md is out of date: regenerate the table with `tre config docs`"
    )
    for f in setting_fields():
        assert f"`{f.metadata['env']}`" in text
