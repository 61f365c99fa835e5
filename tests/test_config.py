"""Configuration: file < environment < flags, validated once with every problem listed."""

from __future__ import annotations

from pathlib import Path

import pytest

from exporter.config import Settings, load_settings, parse_database_url
from exporter.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "exporter.yml"
    path.write_text(text)
    return path


def test_defaults_match_the_original_design():
    settings = load_settings(None, {})
    assert settings.port == 8000
    assert settings.online_threshold_seconds == 300
    assert settings.heartbeat_interval_seconds == 60
    assert settings.min_heartbeat_interval_seconds == 10
    assert settings.database_url.provider == "sqlite"


def test_environment_overrides_file_and_flags_override_environment(tmp_path):
    path = write(tmp_path, "port: 9000\nonline_threshold_seconds: 120\nthreads: 2\n")
    environ = {"KIOSK_EXPORTER_PORT": "9100", "KIOSK_EXPORTER_THREADS": "3"}
    settings = load_settings(path, environ, {"port": 9200, "host": None})
    assert settings.port == 9200  # flag
    assert settings.threads == 3  # environment
    assert settings.online_threshold_seconds == 120  # file
    assert settings.host == Settings().host  # a flag left out changes nothing


def test_config_path_can_come_from_the_environment(tmp_path):
    path = write(tmp_path, "latest_app_version: 1.4.0\n")
    assert load_settings(None, {"KIOSK_EXPORTER_CONFIG": str(path)}).latest_app_version == "1.4.0"


def test_every_problem_is_reported_at_once(tmp_path):
    path = write(tmp_path, "port: eighty\nonline_treshold_seconds: 10\nlog_level: LOUD\n")
    with pytest.raises(ConfigError) as error:
        load_settings(path, {"KIOSK_EXPORTER_THREADS": "0"})
    text = str(error.value)
    for expected in ("port", "online_treshold_seconds: unknown setting", "log_level", "threads"):
        assert expected in text


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("PORT", "70000"),
        ("MIN_HEARTBEAT_INTERVAL_SECONDS", "-1"),
        ("HEARTBEAT_INTERVAL_SECONDS", "0"),
        ("HEARTBEAT_INTERVAL_SECONDS", "1.5"),
        ("DATABASE", "oracle://db/kiosks"),
        ("DATABASE", "sqlite://"),
    ],
)
def test_bad_values_stop_start_up_naming_the_setting(variable, value):
    with pytest.raises(ConfigError) as error:
        load_settings(None, {f"KIOSK_EXPORTER_{variable}": value})
    assert variable.lower() in str(error.value)


def test_a_threshold_shorter_than_the_interval_is_refused():
    with pytest.raises(ConfigError, match="flaps"):
        load_settings(None, {"KIOSK_EXPORTER_ONLINE_THRESHOLD_SECONDS": "30"})


def test_short_intervals_for_tests_and_demos_are_allowed():
    settings = load_settings(
        None,
        {
            "KIOSK_EXPORTER_HEARTBEAT_INTERVAL_SECONDS": "1",
            "KIOSK_EXPORTER_ONLINE_THRESHOLD_SECONDS": "2.5",
            "KIOSK_EXPORTER_MIN_HEARTBEAT_INTERVAL_SECONDS": "0",
        },
    )
    assert (settings.heartbeat_interval_seconds, settings.min_heartbeat_interval_seconds) == (1, 0)


def test_a_yaml_file_that_is_not_a_mapping_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="mapping"):
        load_settings(write(tmp_path, "- port\n"), {})


def test_secrets_can_be_read_from_files(tmp_path):
    secret = tmp_path / "token"
    secret.write_text("s3cret\n")
    settings = load_settings(None, {"KIOSK_EXPORTER_METRICS_TOKEN_FILE": str(secret)})
    assert settings.metrics_token == "s3cret"


def test_the_shipped_example_config_is_valid():
    example = Path(__file__).parent.parent / "examples" / "kiosk-exporter.yml"
    settings = load_settings(example, {})
    assert settings.port == 8000


@pytest.mark.parametrize(
    ("url", "provider", "params"),
    [
        ("sqlite:////var/lib/kiosks.db", "sqlite", {"filename": "/var/lib/kiosks.db"}),
        (
            "postgresql://kiosk:p%40ss@db.example:5433/fleet",
            "postgres",
            {
                "host": "db.example",
                "port": 5433,
                "database": "fleet",
                "user": "kiosk",
                "password": "p@ss",
            },
        ),
        (
            "mysql://root@127.0.0.1:3306/test",
            "mysql",
            {"host": "127.0.0.1", "port": 3306, "database": "test", "user": "root", "password": ""},
        ),
    ],
)
def test_database_urls(url, provider, params):
    parsed = parse_database_url(url)
    assert parsed.provider == provider
    assert dict(parsed.params) == params
    assert "p@ss" not in parsed.describe()


def test_relative_sqlite_paths_resolve_against_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert parse_database_url("sqlite:///data/k.db").params["filename"] == str(
        tmp_path / "data/k.db"
    )


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("ONLINE_THRESHOLD_SECONDS", "nan"),
        ("DATABASE_TIMEOUT_SECONDS", "inf"),
        ("LATEST_APP_VERSION", "banana"),
    ],
)
def test_values_that_would_silently_break_status_are_refused(variable, value):
    with pytest.raises(ConfigError) as error:
        load_settings(None, {f"KIOSK_EXPORTER_{variable}": value})
    assert variable.lower() in str(error.value)


def test_an_unquoted_yaml_version_is_refused_since_yaml_reads_1_10_as_1_1(tmp_path):
    with pytest.raises(ConfigError, match="quoted"):
        load_settings(write(tmp_path, "latest_app_version: 1.10\n"), {})
    assert (
        load_settings(write(tmp_path, 'latest_app_version: "1.10"\n'), {}).latest_app_version
        == "1.10"
    )


def test_a_mistyped_environment_variable_stops_start_up_with_a_suggestion():
    with pytest.raises(ConfigError) as error:
        load_settings(None, {"KIOSK_EXPORTER_DATABSE": "postgresql://kiosk@db/kiosk"})
    assert (
        "KIOSK_EXPORTER_DATABSE: unknown environment variable "
        "(did you mean KIOSK_EXPORTER_DATABASE?)" in str(error.value)
    )


def test_the_agents_key_variable_and_secret_files_are_not_unknown(tmp_path):
    from exporter.agent import API_KEY_ENV

    token_file = tmp_path / "token"
    token_file.write_text("s3cret\n")
    environ = {API_KEY_ENV: "kk_x", "KIOSK_EXPORTER_METRICS_TOKEN_FILE": str(token_file)}
    assert load_settings(None, environ).metrics_token == "s3cret"


def test_kubernetes_service_links_are_not_mistaken_for_settings():
    environ = {
        "KIOSK_EXPORTER_METRICS_SERVICE_HOST": "10.0.0.7",
        "KIOSK_EXPORTER_METRICS_SERVICE_PORT": "8000",
        "KIOSK_EXPORTER_METRICS_SERVICE_PORT_HTTP": "8000",
        "KIOSK_EXPORTER_METRICS_PORT": "tcp://10.0.0.7:8000",
        "KIOSK_EXPORTER_METRICS_PORT_8000_TCP": "tcp://10.0.0.7:8000",
        "KIOSK_EXPORTER_METRICS_PORT_8000_TCP_ADDR": "10.0.0.7",
        "KIOSK_EXPORTER_PORT": "9000",
    }
    assert load_settings(None, environ).port == 9000
    with pytest.raises(ConfigError, match="KIOSK_EXPORTER_PROT: unknown"):
        load_settings(None, {**environ, "KIOSK_EXPORTER_PROT": "9000"})


def test_a_kubernetes_service_named_kiosk_exporter_does_not_set_the_port():
    environ = {
        "KIOSK_EXPORTER_SERVICE_HOST": "10.0.0.7",
        "KIOSK_EXPORTER_SERVICE_PORT": "8000",
        "KIOSK_EXPORTER_PORT": "tcp://10.0.0.7:8000",
        "KIOSK_EXPORTER_PORT_8000_TCP_PORT": "8000",
    }
    assert load_settings(None, environ).port == 8000


def test_every_problem_is_listed_at_once_cross_field_ones_included():
    with pytest.raises(ConfigError) as error:
        load_settings(
            None,
            {
                "KIOSK_EXPORTER_PORT": "eighty",
                "KIOSK_EXPORTER_ONLINE_THRESHOLD_SECONDS": "30",
                "KIOSK_EXPORTER_MIN_HEARTBEAT_INTERVAL_SECONDS": "120",
            },
        )
    problems = error.value.problems
    assert len(problems) == 3, problems
    assert problems[0].startswith("port:")
    assert "flaps" in problems[1] and "on schedule" in problems[2]


def test_a_cross_field_check_on_an_invalid_value_is_not_reported_twice():
    with pytest.raises(ConfigError) as error:
        load_settings(None, {"KIOSK_EXPORTER_HEARTBEAT_INTERVAL_SECONDS": "soon"})
    assert len(error.value.problems) == 1


@pytest.mark.parametrize(
    ("content", "expected"),
    [("", "is empty"), ("  \n", "is empty"), (None, "cannot read"), (b"\xff\xfe", "cannot read")],
)
def test_an_empty_or_unreadable_metrics_token_file_stops_start_up(tmp_path, content, expected):
    secret = tmp_path / "token"
    if isinstance(content, bytes):
        secret.write_bytes(content)
    elif content is not None:
        secret.write_text(content)
    with pytest.raises(ConfigError) as error:
        load_settings(None, {"KIOSK_EXPORTER_METRICS_TOKEN_FILE": str(secret)})
    assert f"KIOSK_EXPORTER_METRICS_TOKEN_FILE: {secret}" in str(error.value) or (
        f"cannot read {secret}" in str(error.value)
    )
    assert expected in str(error.value)


def test_the_metrics_token_and_its_file_together_are_an_error(tmp_path):
    secret = tmp_path / "token"
    secret.write_text("s3cret\n")
    both = {
        "KIOSK_EXPORTER_METRICS_TOKEN": "other",
        "KIOSK_EXPORTER_METRICS_TOKEN_FILE": str(secret),
    }
    with pytest.raises(ConfigError, match="KIOSK_EXPORTER_METRICS_TOKEN is set too"):
        load_settings(None, both)
    config = write(tmp_path, "metrics_token: other\n")
    with pytest.raises(ConfigError, match=r"metrics_token: set in .* and in"):
        load_settings(config, {"KIOSK_EXPORTER_METRICS_TOKEN_FILE": str(secret)})


def test_serve_with_an_empty_metrics_token_file_does_not_start(tmp_path):
    from tests.support.service import run_cli

    secret = tmp_path / "token"
    secret.write_text("")
    result = run_cli(
        "serve",
        "--port",
        "0",
        database=f"sqlite:///{tmp_path / 'k.db'}",
        env={"KIOSK_EXPORTER_METRICS_TOKEN_FILE": str(secret)},
    )
    assert result.returncode == 2
    assert f"KIOSK_EXPORTER_METRICS_TOKEN_FILE: {secret} is empty" in result.stderr
