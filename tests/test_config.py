"""Configuration: defaults -> TOML -> environment, with errors that name the key and file."""

from __future__ import annotations

from pathlib import Path

import pytest

from config import ConfigError, load_settings
from tests.conftest import write_config
from workers.runtime import Runtime, load_checked


def test_defaults_without_a_file() -> None:
    settings = load_settings(None, environ={})
    assert settings.web.port == 5000
    assert settings.database_url.startswith("sqlite:///")
    assert settings.database_url.endswith("var/otklik.db")
    assert settings.sources == []


def test_the_file_overrides_defaults_and_the_environment_overrides_the_file(tmp_path: Path) -> None:
    path = write_config(tmp_path, extra="\n[web]\nport = 6000\n")
    assert load_settings(path, environ={}).web.port == 6000
    settings = load_settings(path, environ={"OTKLIK_WEB_PORT": "7000"})
    assert settings.web.port == 7000
    settings = load_settings(path, environ={"OTKLIK_DATABASE_URL": "postgresql://x@h/db"})
    assert settings.database_url == "postgresql://x@h/db"


def test_the_config_file_can_be_named_by_otklik_config(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    settings = load_settings(None, environ={"OTKLIK_CONFIG": str(path)})
    assert settings.source("demo").platform == "demo"


def test_unknown_key_names_the_key_the_file_and_what_was_expected(tmp_path: Path) -> None:
    path = write_config(tmp_path, extra="\n[web]\nprot = 6000\n")
    with pytest.raises(ConfigError) as err:
        load_settings(path, environ={})
    message = str(err.value)
    assert "'web.prot'" in message and str(path) in message and "port" in message


def test_wrong_type_names_the_key_and_the_expected_type(tmp_path: Path) -> None:
    path = write_config(tmp_path, extra='\n[web]\nport = "eighty"\n')
    with pytest.raises(ConfigError, match=r"'web.port' must be an integer, got 'eighty'"):
        load_settings(path, environ={})


def test_bad_environment_value_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="OTKLIK_WEB_PORT='x': expected an integer"):
        load_settings(write_config(tmp_path), environ={"OTKLIK_WEB_PORT": "x"})


def test_secrets_in_the_file_are_refused(tmp_path: Path) -> None:
    path = write_config(tmp_path, extra="")
    path.write_text(path.read_text().replace("page_size = 6", 'api_key = "hunter2"'))
    with pytest.raises(ConfigError, match=r"'sources\[0\].settings.api_key' looks like a secret"):
        load_settings(path, environ={})


def test_missing_file_and_broken_toml_are_reported(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml", environ={})
    broken = tmp_path / "broken.toml"
    broken.write_text("[web\nport=1")
    with pytest.raises(ConfigError, match=f"{broken} is not valid TOML"):
        load_settings(broken, environ={})


def test_unknown_platform_and_brand_are_reported(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    path.write_text(path.read_text().replace('platform = "demo"', 'platform = "myspace"'))
    load_settings(path, environ={})  # config alone cannot know the platforms (layers)
    with pytest.raises(ConfigError, match=r"'sources\[0\].platform' is 'myspace'; expected one of"):
        load_checked(path, environ={})
    with pytest.raises(ConfigError, match=r"'sources\[0\].platform' is 'myspace'"):
        Runtime.from_settings(load_settings(path, environ={}))
    path = write_config(tmp_path)
    path.write_text(path.read_text().replace('brand = "Ladoga Coffee"', 'brand = "Other"'))
    with pytest.raises(ConfigError, match="no \\[\\[brands\\]\\] entry has that name"):
        load_settings(path, environ={})


def test_missing_required_source_key(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    path.write_text(path.read_text().replace('platform = "demo"\n', ""))
    with pytest.raises(ConfigError, match=r"missing required key 'sources\[0\].platform'"):
        load_settings(path, environ={})


def test_cli_reports_config_errors_with_exit_status_2(tmp_path: Path, capsys) -> None:
    from workers.cli import main

    path = write_config(tmp_path, extra="\n[web]\nprot = 1\n")
    assert main(["--config", str(path), "collect", "--source", "demo"]) == 2
    assert "unknown key 'web.prot'" in capsys.readouterr().err


def test_extra_connectors_are_named_by_import_path(tmp_path: Path) -> None:
    extra = '\n[connectors.source]\nmyforum = "collectors.discourse:DiscourseConnector"\n'
    path = write_config(tmp_path, extra=extra)
    path.write_text(path.read_text().replace('platform = "demo"', 'platform = "myforum"'))
    settings = load_checked(path, environ={})
    assert settings.connectors == {"source": {"myforum": "collectors.discourse:DiscourseConnector"}}

    bad_kind = write_config(tmp_path, extra='\n[connectors.pager]\nx = "a.b:C"\n')
    with pytest.raises(ConfigError, match=r"unknown key 'connectors.pager'; expected one of"):
        load_checked(bad_kind, environ={})
    bad_path = write_config(tmp_path, extra='\n[connectors.alert_sink]\nx = "no-colon"\n')
    with pytest.raises(ConfigError, match=r"import path 'no-colon' is not 'module:Class'"):
        load_checked(bad_path, environ={})
