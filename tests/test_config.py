"""Settings as declared once: config.yaml and the schema derived from the declarations, wrong
settings refused in one line, environment overrides and the special cases in force."""

from __future__ import annotations

import os
from pathlib import Path

import jsonschema
import pytest
import yaml

from vidgen.config import SCHEMA, Settings, config_yaml, load_settings, main
from vidgen.declarations import plain
from vidgen.errors import ConfigError
from vidgen.specs import parse_resolution

COMMITTED = Path(__file__).resolve().parents[1] / "config.yaml"


def load(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> Settings:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return load_settings(path, env or {})


def refusal(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as refused:
        load(tmp_path, text, env)
    message = refused.value.user_message
    assert "\n" not in message
    return message


def test_config_yaml_is_generated_from_the_declarations() -> None:
    assert COMMITTED.read_text(encoding="utf-8") == config_yaml()


def test_python_m_vidgen_config_prints_it(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 0
    assert capsys.readouterr().out == config_yaml()


def test_every_default_validates_and_config_yaml_reads_back_as_the_defaults(
    tmp_path: Path,
) -> None:
    defaults = plain(Settings())
    jsonschema.Draft202012Validator(SCHEMA).validate(defaults)
    assert yaml.safe_load(config_yaml()) == defaults
    assert load(tmp_path, config_yaml()) == load(tmp_path, "")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "intake:\n  workers: 0\n",
            "setting intake.workers: 0 is less than the minimum of 1 (got 0)",
        ),
        (
            "status:\n  port: eighty\n",
            "setting status.port: 'eighty' is not of type 'integer' (got 'eighty')",
        ),
        (
            "jobs:\n  leaseSecond: 5\n",
            "setting jobs: unknown setting (Additional properties are not allowed "
            "('leaseSecond' was unexpected))",
        ),
        (
            "inboxes:\n  - polling: true\n",
            "setting inboxes.0: 'path' is a required property (got {'polling': True})",
        ),
        (
            "generation:\n  resolution: 512 by 512\n",
            "setting generation.resolution: '512 by 512' does not match '^[0-9]+x[0-9]+$' "
            "(got '512 by 512')",
        ),
        (
            "comfyui:\n  urls: [gpu1:8188]\n",
            "setting comfyui.urls: expected http://host:port, got 'gpu1:8188'",
        ),
    ],
)
def test_a_wrong_setting_is_one_line_naming_it(tmp_path: Path, text: str, expected: str) -> None:
    message = refusal(tmp_path, text)
    assert message.removeprefix(f"{tmp_path / 'config.yaml'}: ") == expected


@pytest.mark.parametrize(
    ("section", "key", "accepted", "rejected"),
    [
        ("intake", "workers", [1, 16], [0, 17, 2.5, "2"]),
        ("status", "port", [0, 65535], [-1, 65536]),
        ("generation", "frames", [8, 128], [7, 129]),
        ("logging", "level", ["DEBUG", "ERROR"], ["TRACE", "info", 10]),
        ("jobs", "leaseSeconds", [0.1, 60], [0, -1, "60"]),
    ],
)
def test_the_schema_keeps_each_range(
    section: str, key: str, accepted: list[object], rejected: list[object]
) -> None:
    validator = jsonschema.Draft202012Validator(SCHEMA)
    for value in accepted:
        assert validator.is_valid({section: {key: value}}), value
    for value in rejected:
        assert not validator.is_valid({section: {key: value}}), value


def test_environment_variables_override_the_file(tmp_path: Path) -> None:
    text = (
        "inboxes:\n"
        "  - path: first\n    polling: true\n    stableSeconds: 5\n    outbox: first-out\n"
        "status:\n  port: 8000\n"
    )
    env = {
        "VIDGEN_DATABASE_URL": "mysql+pymysql://vidgen@db/vidgen",
        "VIDGEN_COMFYUI_URLS": "http://gpu1:8188/, https://gpu2:8188 ,",
        "VIDGEN_INBOX": os.pathsep.join(["/mnt/a", "b", ""]),
        "VIDGEN_STORAGE": "data",
        "VIDGEN_OUTBOX": "/srv/out",
        "VIDGEN_STATUS_HOST": "0.0.0.0",
        "VIDGEN_STATUS_PORT": "9001",
        "VIDGEN_STATUS_TOKEN": "secret",
    }
    settings = load(tmp_path, text, env)
    assert settings.database_url == "mysql+pymysql://vidgen@db/vidgen"
    assert settings.comfyui.urls == ("http://gpu1:8188", "https://gpu2:8188")
    assert [i.path for i in settings.inboxes] == [Path("/mnt/a"), tmp_path / "b"]
    assert all(i.polling and i.stable_seconds == 5.0 for i in settings.inboxes)
    assert all(i.outbox is None for i in settings.inboxes)  # the first inbox's folder stays put
    assert settings.storage == tmp_path / "data"
    assert settings.outbox == Path("/srv/out")
    assert (settings.status.host, settings.status.port, settings.status.token) == (
        "0.0.0.0",
        9001,
        "secret",
    )


def test_an_empty_environment_variable_changes_nothing(tmp_path: Path) -> None:
    settings = load(tmp_path, "status:\n  host: 127.0.0.2\n", {"VIDGEN_STATUS_HOST": ""})
    assert settings.status.host == "127.0.0.2"


def test_a_port_that_is_not_a_number_names_the_variable(tmp_path: Path) -> None:
    message = refusal(tmp_path, "", {"VIDGEN_STATUS_PORT": "eighty"})
    assert message == "VIDGEN_STATUS_PORT: expected a port number 0..65535, got 'eighty'"


def test_a_port_beyond_the_range_from_the_environment_names_the_setting(tmp_path: Path) -> None:
    message = refusal(tmp_path, "", {"VIDGEN_STATUS_PORT": "70000"})
    assert "setting status.port: 70000 is greater than the maximum of 65535" in message


def test_paths_database_and_resolution_are_resolved(tmp_path: Path) -> None:
    settings = load(
        tmp_path,
        "storage: store\noutbox: ~/out\ninboxes:\n  - path: in\n    outbox: /abs/out\n"
        "generation:\n  resolution: 768x432\n",
    )
    assert settings.storage == tmp_path / "store"
    assert settings.outbox == Path("~/out").expanduser()
    assert settings.inboxes[0].path == tmp_path / "in"
    assert settings.outbox_for(tmp_path / "in") == Path("/abs/out")
    assert settings.database_url == f"sqlite:///{tmp_path / 'store' / 'vidgen.db'}"
    assert (settings.generation.width, settings.generation.height) == (768, 432)


def test_numbers_take_their_setting_type(tmp_path: Path) -> None:
    settings = load(tmp_path, "jobs:\n  leaseSeconds: 3\nstatus:\n  port: 8001.0\n")
    assert isinstance(settings.jobs.lease_seconds, float)
    assert settings.status.port == 8001
    assert isinstance(settings.status.port, int)


@pytest.mark.parametrize(
    "text", ["512", "512x", "x512", "512x512x3", "\uff15\uff11\uff12x512", "-8x8", ""]
)
def test_parse_resolution_refuses_what_is_not_w_x_h(text: str) -> None:
    with pytest.raises(ValueError, match="WIDTHxHEIGHT"):
        parse_resolution(text)


def test_parse_resolution() -> None:
    assert parse_resolution("1024x576") == (1024, 576)
