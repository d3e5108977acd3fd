"""Configuration from the environment: contract defaults, parsing, one-line errors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from prometora_webhooks.config import ENV_PREFIX, ConfigError, Settings, load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No PROMETORA_WEBHOOKS_* from the developer's shell may leak into these tests."""
    for name in list(os.environ):
        if name.upper().startswith(ENV_PREFIX):
            monkeypatch.delenv(name)


def env(monkeypatch: pytest.MonkeyPatch, **values: str) -> None:
    for key, value in values.items():
        monkeypatch.setenv(ENV_PREFIX + key.upper(), value)


# -- defaults (the contract's table) ------------------------------------------------------------


def test_defaults_equal_the_contract() -> None:
    s = load_settings()
    assert s.database_url == "sqlite:///./prometora-webhooks.db"
    assert s.admin_token is None  # generated on first start
    assert s.secret_key is None  # generated key file beside SQLite
    assert s.public_url is None  # http://HOST:PORT, derived at start
    assert s.retry_delays == (60.0, 600.0)
    assert s.delivery_timeout == 10.0
    assert s.disable_after == 10
    assert s.log_retention_days == 7.0
    assert s.allow_http is False
    assert s.allow_private_networks is False
    assert s.ca_bundle is None


def test_default_properties() -> None:
    s = load_settings()
    assert s.is_sqlite is True
    assert s.sqlite_path == Path("prometora-webhooks.db")
    assert s.retention_seconds == 7 * 86400


def test_env_prefix_is_the_contracts() -> None:
    assert ENV_PREFIX == "PROMETORA_WEBHOOKS_"


def test_settings_are_frozen() -> None:
    s = load_settings()
    with pytest.raises(Exception, match="frozen"):
        s.disable_after = 3  # type: ignore[misc]


# -- parsing ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("60,600", (60.0, 600.0)),
        ("0.5,1.5", (0.5, 1.5)),
        ("", ()),
        ("   ", ()),
        ("5", (5.0,)),
        (" 1 , 2 ,3 ", (1.0, 2.0, 3.0)),
        ("0", (0.0,)),
        ("1e2,604800", (100.0, 604800.0)),
        (",".join(["1"] * 20), (1.0,) * 20),
    ],
)
def test_retry_delays(
    monkeypatch: pytest.MonkeyPatch, raw: str, expected: tuple[float, ...]
) -> None:
    env(monkeypatch, retry_delays=raw)
    assert load_settings().retry_delays == expected


def test_empty_retry_delays_means_no_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    env(monkeypatch, retry_delays="")
    assert len(load_settings().retry_delays) == 0


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("true", True),
        ("TRUE", True),
        ("True", True),
        ("1", True),
        ("yes", True),
        ("on", True),
        ("false", False),
        ("FALSE", False),
        ("0", False),
        ("no", False),
        ("off", False),
    ],
)
@pytest.mark.parametrize("var", ["allow_http", "allow_private_networks"])
def test_booleans(monkeypatch: pytest.MonkeyPatch, var: str, raw: str, expected: bool) -> None:
    env(monkeypatch, **{var: raw})
    assert getattr(load_settings(), var) is expected


def test_every_contract_variable_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    env(
        monkeypatch,
        database_url="postgresql://u:p@db.example:5432/hooks",
        admin_token="adm-token",
        secret_key="a2V5",
        public_url="https://hooks.example.com",
        retry_delays="1,2,3",
        delivery_timeout="2.5",
        disable_after="3",
        log_retention_days="0.5",
        allow_http="true",
        allow_private_networks="1",
    )
    s = load_settings()
    assert s.database_url == "postgresql://u:p@db.example:5432/hooks"
    assert s.admin_token == "adm-token"
    assert s.secret_key == "a2V5"
    assert s.public_url == "https://hooks.example.com"
    assert s.retry_delays == (1.0, 2.0, 3.0)
    assert s.delivery_timeout == 2.5
    assert s.disable_after == 3
    assert s.log_retention_days == 0.5
    assert s.retention_seconds == 43200.0
    assert s.allow_http is True
    assert s.allow_private_networks is True
    assert s.is_sqlite is False
    assert s.sqlite_path is None


def test_lower_case_variable_names_are_read_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("prometora_webhooks_disable_after", "4")
    assert load_settings().disable_after == 4


def test_overrides_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    env(monkeypatch, disable_after="4", retry_delays="1,2")
    s = load_settings(disable_after=7, retry_delays="9")
    assert s.disable_after == 7
    assert s.retry_delays == (9.0,)


def test_unrelated_variables_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    env(monkeypatch, no_such_setting="x")
    assert load_settings() == Settings()


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///./x.db", Path("x.db")),
        ("sqlite:////abs/dir/x.db", Path("/abs/dir/x.db")),
        ("sqlite+aiosqlite:///rel.db?mode=rwc", Path("rel.db")),
        ("sqlite:///:memory:", None),
        ("sqlite://", None),
    ],
)
def test_sqlite_path(monkeypatch: pytest.MonkeyPatch, url: str, path: Path | None) -> None:
    env(monkeypatch, database_url=url)
    s = load_settings()
    assert s.is_sqlite
    assert s.sqlite_path == path


# -- errors: one line naming the variable -------------------------------------------------------

BAD = [
    ("retry_delays", "abc", "comma-separated"),
    ("retry_delays", "60,,600", "comma-separated"),
    ("retry_delays", "60,600,", "comma-separated"),
    ("retry_delays", "60;600", "comma-separated"),
    ("retry_delays", "-1", "between 0 and 604800"),
    ("retry_delays", "60,-0.5", "between 0 and 604800"),
    ("retry_delays", "604801", "between 0 and 604800"),
    ("retry_delays", "inf", "between 0 and 604800"),
    ("retry_delays", "nan", "between 0 and 604800"),
    ("retry_delays", "60,nan", "between 0 and 604800"),
    ("retry_delays", ",".join(["1"] * 21), "at most 20"),
    ("delivery_timeout", "abc", "number"),
    ("delivery_timeout", "0", "greater than 0"),
    ("delivery_timeout", "-5", "greater than 0"),
    ("delivery_timeout", "301", "less than or equal to 300"),
    ("delivery_timeout", "nan", ""),
    ("delivery_timeout", "", "number"),
    ("disable_after", "0", "greater than or equal to 1"),
    ("disable_after", "ten", "integer"),
    ("disable_after", "1.5", "integer"),
    ("log_retention_days", "0", "greater than 0"),
    ("log_retention_days", "forever", "number"),
    ("log_retention_days", "inf", "less than or equal"),
    ("allow_http", "maybe", "boolean"),
    ("allow_http", "", "boolean"),
    ("allow_private_networks", "2", "boolean"),
    ("allow_private_networks", "enabled", "boolean"),
    ("database_url", "mysql://u:p@h/db", "expected sqlite:///path or postgresql://"),
    ("database_url", "", "expected sqlite:///path or postgresql://"),
    ("database_url", "./prometora.db", "expected sqlite:///path or postgresql://"),
    ("ca_bundle", "/nonexistent/prometora/ca.pem", "no such file"),
    ("worker_concurrency", "0", "greater than or equal to 1"),
]


@pytest.mark.parametrize(("var", "raw", "detail"), BAD)
def test_bad_values_fail_with_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, var: str, raw: str, detail: str
) -> None:
    env(monkeypatch, **{var: raw})
    with pytest.raises(ConfigError) as info:
        load_settings()
    message = str(info.value)
    name = ENV_PREFIX + var.upper()
    assert message.startswith(f"invalid {name} ")
    assert f"(got {raw!r})" in message
    assert detail in message
    assert "\n" not in message
    assert "\r" not in message
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__


def test_only_the_bad_variable_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    env(monkeypatch, retry_delays="1,2", disable_after="zero")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert "PROMETORA_WEBHOOKS_DISABLE_AFTER" in str(info.value)
    assert "RETRY_DELAYS" not in str(info.value)


def test_a_path_with_a_newline_still_gives_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    env(monkeypatch, ca_bundle="/nonexistent\nINJECTED: line")
    with pytest.raises(ConfigError) as info:
        load_settings()
    message = str(info.value)
    assert message.startswith("invalid PROMETORA_WEBHOOKS_CA_BUNDLE ")
    assert "\n" not in message


def test_bad_override_names_the_variable_without_an_env_value() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(disable_after="x")
    assert str(info.value).startswith("invalid PROMETORA_WEBHOOKS_DISABLE_AFTER: ")
    assert "got" not in str(info.value)


SENSITIVE_TOKEN = "adm_SENSITIVE_token_value_42"
SENSITIVE_KEY = "c2Vuc2l0aXZlLWtleS1tYXRlcmlhbC0zMi1ieXRlcyE="


def test_errors_never_echo_admin_token_or_secret_key(monkeypatch: pytest.MonkeyPatch) -> None:
    env(monkeypatch, admin_token=SENSITIVE_TOKEN, secret_key=SENSITIVE_KEY, retry_delays="x")
    with pytest.raises(ConfigError) as info:
        load_settings()
    message = str(info.value)
    assert "RETRY_DELAYS" in message
    assert SENSITIVE_TOKEN not in message
    assert SENSITIVE_KEY not in message


@pytest.mark.parametrize(
    ("field", "sensitive"), [("admin_token", SENSITIVE_TOKEN), ("secret_key", SENSITIVE_KEY)]
)
def test_an_error_on_a_secret_variable_names_it_but_hides_its_value(
    monkeypatch: pytest.MonkeyPatch, field: str, sensitive: str
) -> None:
    env(monkeypatch, **{field: sensitive})
    # An override of the wrong type is the only way to make these fields fail; the env value
    # is still set, so the message would show it if the field were not redacted.
    with pytest.raises(ConfigError) as info:
        load_settings(**{field: 12345})
    message = str(info.value)
    name = ENV_PREFIX + field.upper()
    assert message.startswith(f"invalid {name}: ")
    assert sensitive not in message
    assert "got" not in message
    assert "\n" not in message
