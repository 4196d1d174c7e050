"""Settings fail closed: outside the demo a missing secret stops the platform, naming it.

The demo is a data folder the simulator made (its `landscape.json`) without
BATCH_PLATFORM_ENV=production. Code locations are loaded in real subprocesses, the way the
webserver, the daemon and every run load them; extracts talk to the real demo REST API and real
SQLite files; the dbt plugin runs inside a real `dbt show`.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
from support import LANDSCAPE_START

from batch_platform import pii
from batch_platform.dbt_project import DBT_EXECUTABLE, load_manifest
from batch_platform.demo_mode import (
    DEMO_API_TOKEN,
    DEMO_PII_SALT,
    ENV,
    PII_SALT_ENV,
    SHARED_API_TOKEN_ENV,
    Mode,
    SettingsError,
    current,
    is_demo_folder,
)
from batch_platform.extract.api import ApiRejected, ApiSettings, extract_api
from batch_platform.extract.database import extract_database
from batch_platform.paths import DATA_DIR_ENV, DBT_PROJECT_DIR
from batch_platform.registry import load_registry
from batch_platform.settings import PlatformSettings
from batch_platform.simulator.api_server import create_app, serve_in_thread

# Distinctive values, so any echo of them in an output is found.
SALT = "salt-9d4e1f-never-print-me"
TOKEN = "token-51c7ab-never-print-me"
SETTINGS_VARIABLES = (
    ENV,
    PII_SALT_ENV,
    SHARED_API_TOKEN_ENV,
    "CATALOG_API_TOKEN",
    "PROMOTIONS_API_TOKEN",
)
SCHEDULE_STATUS = (
    "import batch_platform.definitions as d; "
    "print(d.defs.get_schedule_def('daily_catch_up_schedule').default_status.value)"
)


@pytest.fixture(scope="module")
def specs():
    return {spec.path: spec for spec in load_registry(load_manifest())}


@pytest.fixture
def unset(monkeypatch):
    """No settings variable from the test session's environment."""
    for name in SETTINGS_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def child_env(data: Path, **variables: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in SETTINGS_VARIABLES}
    return {**env, DATA_DIR_ENV: str(data), "PYTHONUNBUFFERED": "1", **variables}


def load_code_location(data: Path, cwd: Path, validate: bool, **variables: str):
    """Load the code location as Dagster's processes do; (exit code, stdout, all output)."""
    if validate:
        dagster = str(Path(sys.executable).with_name("dagster"))
        command = [dagster, "definitions", "validate", "-m", "batch_platform.definitions"]
    else:
        command = [sys.executable, "-c", SCHEDULE_STATUS]
    result = subprocess.run(  # noqa: S603 - a fixed argument list
        command,
        cwd=cwd,  # `definitions validate` puts a temporary instance in its working folder
        env=child_env(data, **variables),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return result.returncode, result.stdout, result.stdout + result.stderr


def lines_naming(output: str, text: str) -> list[str]:
    return [line for line in output.splitlines() if text in line]


# --- the code location --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("folder", "validate", "variables", "named"),
    [
        pytest.param(
            "demo",
            True,
            {ENV: "production", SHARED_API_TOKEN_ENV: TOKEN},
            [PII_SALT_ENV],
            id="production-over-the-demo-folder-without-the-pii-key",
        ),
        pytest.param(
            "empty",
            False,
            {PII_SALT_ENV: SALT},
            [
                f"CATALOG_API_TOKEN (or {SHARED_API_TOKEN_ENV})",
                f"PROMOTIONS_API_TOKEN (or {SHARED_API_TOKEN_ENV})",
            ],
            id="a-folder-the-simulator-did-not-make-without-api-tokens",
        ),
        pytest.param(
            "demo",
            False,
            {ENV: "production", PII_SALT_ENV: DEMO_PII_SALT, "CATALOG_API_TOKEN": TOKEN},
            [f"{PII_SALT_ENV} (it holds the public demo key)", "PROMOTIONS_API_TOKEN"],
            id="production-with-the-public-demo-key-and-one-token",
        ),
        pytest.param(
            "demo",
            False,
            {ENV: "prod", PII_SALT_ENV: SALT, SHARED_API_TOKEN_ENV: TOKEN},
            [f"{ENV} must be 'production' or unset, got 'prod'"],
            id="a-typo-in-the-environment-name",
        ),
    ],
)
def test_outside_the_demo_a_missing_secret_stops_loading_with_one_line_naming_it(
    landscape, tmp_path, folder, validate, variables, named
):
    data = landscape if folder == "demo" else tmp_path / "data"
    data.mkdir(exist_ok=True)

    code, _, output = load_code_location(data, tmp_path, validate, **variables)

    assert code != 0, output[-3000:]
    [line] = {line.strip() for line in lines_naming(output, named[0])}
    assert line.startswith("batch_platform.demo_mode.SettingsError: "), output[-3000:]
    assert all(name in line for name in named), line
    assert SALT not in output and TOKEN not in output


def test_with_every_secret_set_production_loads_and_the_demo_loads_with_none(landscape, tmp_path):
    empty = tmp_path / "data"
    empty.mkdir()
    code, printed, output = load_code_location(
        empty,
        tmp_path,
        False,
        **{
            ENV: "production",
            PII_SALT_ENV: SALT,
            "CATALOG_API_TOKEN": TOKEN,
            "PROMOTIONS_API_TOKEN": TOKEN,
        },
    )
    assert code == 0, output[-3000:]
    assert printed.split() == ["RUNNING"]  # the daily catch-up runs by default in production
    assert SALT not in output and TOKEN not in output

    code, printed, output = load_code_location(landscape, tmp_path, False)  # no variable at all
    assert code == 0, output[-3000:]
    assert printed.split() == ["STOPPED"]


# --- what the demo is ---------------------------------------------------------------------


def test_the_demo_is_a_folder_the_simulator_made_and_never_production(
    landscape, tmp_path, monkeypatch
):
    assert is_demo_folder(landscape)
    assert Mode(production=False, data_dir=landscape).demo
    assert not Mode(production=True, data_dir=landscape).demo
    assert not is_demo_folder(tmp_path)  # empty: a fresh production folder starts like this
    for text in ("{}", "not json", '["format_version", "seed"]'):
        (tmp_path / "landscape.json").write_text(text)
        assert not is_demo_folder(tmp_path), text
    (tmp_path / "landscape.json").unlink()
    (tmp_path / "landscape.json").mkdir()
    assert not is_demo_folder(tmp_path)

    monkeypatch.setenv(DATA_DIR_ENV, str(landscape))
    monkeypatch.setenv(ENV, "Production")
    with pytest.raises(SettingsError, match=f"^{ENV} must be 'production' or unset"):
        current()
    monkeypatch.setenv(ENV, "production")
    assert current() == Mode(production=True, data_dir=landscape)


def test_the_resource_holds_variable_names_never_secret_values(specs, landscape, monkeypatch):
    monkeypatch.setenv(DATA_DIR_ENV, str(landscape))
    monkeypatch.setenv(ENV, "production")
    monkeypatch.setenv(PII_SALT_ENV, SALT)
    monkeypatch.setenv("CATALOG_API_TOKEN", TOKEN)
    monkeypatch.delenv("PROMOTIONS_API_TOKEN", raising=False)
    monkeypatch.setenv(SHARED_API_TOKEN_ENV, TOKEN + "-shared")

    settings = PlatformSettings.from_environment(specs.values()).check()

    shown = json.dumps(settings.model_dump(), default=repr)
    assert SALT not in shown and TOKEN not in shown
    assert settings.pii_key() == SALT.encode()
    assert settings.api_token(specs["catalog/products"]) == (TOKEN, "$CATALOG_API_TOKEN")
    assert settings.api_token(specs["promotions/campaigns"]) == (
        TOKEN + "-shared",
        f"${SHARED_API_TOKEN_ENV}",
    )


# --- extracts -----------------------------------------------------------------------------


def customers_database(data: Path) -> None:
    """One customer updated on DAY that breaks the contract (so its PII must be masked)."""
    (data / "services").mkdir(parents=True)
    with sqlite3.connect(data / "services" / "customers.sqlite") as db:
        db.execute(
            "CREATE TABLE customers (customer_id TEXT, email TEXT, phone TEXT, full_name TEXT, "
            "country TEXT, created_at TEXT, updated_at TEXT)"
        )
        db.execute(
            "INSERT INTO customers VALUES ('c1', 'ann@example.com', NULL, 'Ann', 'DE', 'soon', "
            "'2026-03-02 08:00:00')"
        )


DAY = date(2026, 3, 2)


def test_a_pii_source_outside_the_demo_without_the_key_is_refused_and_writes_nothing(
    specs, tmp_path, landscape, unset, monkeypatch
):
    spec = specs["customers/customers"]
    data = tmp_path / "data"
    customers_database(data)
    monkeypatch.setenv(DATA_DIR_ENV, str(data))
    with pytest.raises(SettingsError, match=f"^{PII_SALT_ENV} must be set") as refused:
        extract_database(spec, DAY, data)
    assert "\n" not in str(refused.value)
    assert not (data / "lake").exists()

    # The same extract in the demo masks with the public demo key ...
    (data / "landscape.json").write_bytes((landscape / "landscape.json").read_bytes())
    stats = extract_database(spec, DAY, data)
    assert stats.rows_quarantined == 1
    # ... and production refuses it again, even over the demo folder.
    monkeypatch.setenv(ENV, "production")
    with pytest.raises(SettingsError, match=f"\\({ENV}=production\\)$"):
        pii.salt()
    monkeypatch.setenv(PII_SALT_ENV, DEMO_PII_SALT)
    with pytest.raises(SettingsError, match="holds the public demo key"):
        pii.salt()


def test_an_api_source_outside_the_demo_without_a_token_sends_nothing(
    specs, landscape, tmp_path, unset, monkeypatch
):
    """The demo API accepts the demo token, so the old fallback silently succeeded."""
    spec = specs["catalog/products"]
    requests: list[str] = []
    app = create_app(landscape, DEMO_API_TOKEN)

    async def recording(scope, receive, send):
        if scope["type"] == "http":
            requests.append(scope["path"])
        await app(scope, receive, send)

    data = tmp_path / "data"
    data.mkdir()
    monkeypatch.setenv(DATA_DIR_ENV, str(data))
    with serve_in_thread(recording) as base:
        monkeypatch.setenv("CATALOG_API_URL", f"{base}/catalog")
        with pytest.raises(ApiRejected) as refused:
            extract_api(spec, LANDSCAPE_START, data, ApiSettings())
        message = refused.value.description
        assert message.startswith("catalog/products: CATALOG_API_TOKEN (or BATCH_PLATFORM_API_")
        assert requests == [] and not (data / "lake").exists()

        monkeypatch.setenv("CATALOG_API_TOKEN", DEMO_API_TOKEN)  # the public token, set by hand
        with pytest.raises(ApiRejected, match="refused outside the demo"):
            extract_api(spec, LANDSCAPE_START, data, ApiSettings())
        assert requests == []

        # In the demo nobody sets a token: the demo token is sent and the day loads.
        monkeypatch.delenv("CATALOG_API_TOKEN")
        monkeypatch.setenv(DATA_DIR_ENV, str(landscape))
        stats = extract_api(spec, LANDSCAPE_START, data, ApiSettings())
    assert stats.rows_loaded > 0 and requests


# --- the dbt plugin -----------------------------------------------------------------------


def dbt_pii_mask(data: Path, value: str, **variables: str) -> tuple[int, str]:
    """`pii_mask(value)` through a real `dbt show` (the profile loads the plugin)."""
    env = {k: v for k, v in child_env(data, **variables).items() if not k.startswith("DBT_")}
    result = subprocess.run(  # noqa: S603 - a fixed argument list
        [
            DBT_EXECUTABLE,
            "show",
            "--inline",
            f"select pii_mask('{value}') as masked",
            "--output",
            "json",
            "--target-path",
            str(data / "target"),
            "--log-path",
            str(data / "logs"),
        ],
        cwd=DBT_PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return result.returncode, result.stdout + result.stderr


def test_dbt_refuses_the_demo_key_outside_the_demo_and_uses_it_in_the_demo(data_dir, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    code, output = dbt_pii_mask(empty, "ann@example.com")
    assert code != 0
    [line] = lines_naming(output, PII_SALT_ENV)
    assert f"pii_mask: {PII_SALT_ENV} must be set" in line

    code, output = dbt_pii_mask(data_dir, "ann@example.com")  # the demo, no variable
    assert code == 0, output[-3000:]
    assert pii.mask("ann@example.com", DEMO_PII_SALT.encode()) in output
