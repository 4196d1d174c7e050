"""The registry: every source table declared once in the dbt sources, validated on load.

Expectations are read from the `_sources.yml` files themselves and from the simulator, never
listed here, so adding a service as docs/REGISTRY.md describes keeps this file passing.
"""

import copy
import json
import shutil
from pathlib import Path

import dagster as dg
import pytest
import yaml

from batch_platform.dbt_project import ensure_manifest, load_manifest
from batch_platform.definitions import days as platform_days
from batch_platform.demo_mode import ENV, SHARED_API_TOKEN_ENV
from batch_platform.extract.factory import build_extract_asset, build_extract_assets
from batch_platform.paths import DATA_DIR_ENV, DBT_PROJECT_DIR
from batch_platform.registry import RegistryError, load_registry, spec_from_manifest_source
from batch_platform.settings import PlatformSettings
from batch_platform.simulator.contract import EVENT_SOURCES
from batch_platform.simulator.databases import TABLE_SOURCES

ORDERS = "source.batch_platform.orders.order_events"


def declared_extracts(project: Path) -> dict[str, str]:
    """service/entity -> access method, read straight from every `_sources.yml` (not via dbt)."""
    declared = {}
    for path in sorted((project / "models" / "staging").glob("*/_sources.yml")):
        for source in yaml.safe_load(path.read_text())["sources"]:
            for table in source.get("tables") or []:
                meta = (table.get("config") or {}).get("meta") or table.get("meta") or {}
                if "extract" in meta:
                    declared[f"{source['name']}/{table['name']}"] = meta["extract"]["access"]
    return declared


def test_every_declared_extract_is_registered_with_its_access_method():
    specs = {s.path: s for s in load_registry(load_manifest())}
    declared = declared_extracts(DBT_PROJECT_DIR)
    assert {path: s.access for path, s in specs.items()} == declared
    # Every source the demo landscape feeds is declared, with the access the simulator serves.
    simulated = {path: "events" for path in EVENT_SOURCES}
    simulated |= {path: source[3] for path, source in TABLE_SOURCES.items()}
    assert simulated.items() <= declared.items()
    customers = specs["customers/customers"]
    assert customers.pii_columns == ("email", "phone", "full_name")
    assert customers.options["connection_env"] == "CUSTOMERS_DB_URL"
    orders = specs["orders/order_events"]
    assert orders.column("total_amount").data_type == "DECIMAL(12,2)"
    assert orders.column("channel").accepted_values == ("mobile", "web", "mini_program")
    assert orders.owner == "team:orders"
    assert orders.service_url is None  # no service repository to link to (no placeholder)


def _orders_source():
    return copy.deepcopy(load_manifest()["sources"][ORDERS])


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda s: s["meta"]["extract"].update(access="ftp"), "access must be one of"),
        (
            lambda s: s["columns"]["total_amount"].update(data_type=None),
            "column 'total_amount' needs a data_type",
        ),
        (
            lambda s: s["columns"]["total_amount"].update(data_type="int; drop table x"),
            "is not a DuckDB type",
        ),
        (
            lambda s: s["meta"]["extract"].update(landing="../../etc/{date}/*.jsonl"),
            "relative path pattern",
        ),
        (
            lambda s: s["meta"]["extract"].update(landing="/abs/{date}/*.jsonl"),
            "relative path pattern",
        ),
        (lambda s: s["meta"]["extract"].update(landing="orders/*.jsonl"), "containing {date}"),
        (
            lambda s: s["meta"]["extract"].update(primary_key="id'; --"),
            "primary_key must be a lower-case identifier",
        ),
        (lambda s: s["meta"]["extract"].update(event_time="nope"), "not in the contract"),
        (lambda s: s.update(source_name="Orders-Service"), "source name (service)"),
    ],
)
def test_a_bad_entry_fails_loading_with_a_message_naming_it(mutate, message):
    source = _orders_source()
    # Table-level meta is what the manifest carries merged from config; edit both places.
    source["meta"] = source["config"]["meta"] = copy.deepcopy(source["config"]["meta"])
    mutate(source)
    with pytest.raises(RegistryError) as raised:
        spec_from_manifest_source(source)
    assert "registry entry '" in str(raised.value)
    assert message in str(raised.value)
    assert "\n" not in str(raised.value)


def test_a_source_without_extract_meta_is_not_an_extract():
    source = _orders_source()
    source["meta"] = {}
    source["config"]["meta"] = {}
    assert spec_from_manifest_source(source) is None


LOYALTY_SOURCES = """
version: 2
sources:
  - name: loyalty
    description: Loyalty service, added the way docs/REGISTRY.md says.
    config:
      external_location: "read_parquet('{lake}/raw/{schema}/{name}/*/*.parquet',
        hive_partitioning = true, union_by_name = true)"
      meta:
        lake: "{{ env_var('BATCH_PLATFORM_DATA_DIR', '../data') }}/lake"
    tables:
      - name: points
        config:
          meta:
            extract:
              access: api
              base_url_env: LOYALTY_API_URL
              base_url_default: "http://127.0.0.1:8765/loyalty"
              token_env: LOYALTY_API_TOKEN
              path: /points
              primary_key: entry_id
              event_time: updated_at
              watermark: updated_at
              owner: "team:loyalty"
        columns:
          - name: entry_id
            data_type: varchar
            config: {meta: {required: true}}
          - name: points
            data_type: integer
            config: {meta: {required: true, min: 0}}
          - name: updated_at
            data_type: timestamp
            config: {meta: {required: true}}
"""


def test_adding_a_service_as_documented_adds_its_asset_and_its_production_secret(
    tmp_path, monkeypatch
):
    """Step 1 of docs/REGISTRY.md's "Adding a service" in a copy of the dbt project: the new
    table is registered, becomes an extract asset, the registry test's expectations follow it,
    and production asks for its token."""
    project = tmp_path / "dbt_project"
    shutil.copytree(DBT_PROJECT_DIR, project, ignore=shutil.ignore_patterns("target", "logs"))
    (project / "models" / "staging" / "loyalty").mkdir()
    (project / "models" / "staging" / "loyalty" / "_sources.yml").write_text(LOYALTY_SOURCES)

    specs = load_registry(json.loads(ensure_manifest(project).read_text()))

    declared = declared_extracts(project)
    assert declared["loyalty/points"] == "api"
    assert {s.path: s.access for s in specs} == declared
    keys = {asset.key for asset in build_extract_assets(specs, platform_days)}
    assert dg.AssetKey(["raw", "loyalty", "points"]) in keys

    monkeypatch.setenv(ENV, "production")
    monkeypatch.setenv("LOYALTY_API_TOKEN", "")  # empty counts as unset
    monkeypatch.delenv(SHARED_API_TOKEN_ENV, raising=False)
    missing = PlatformSettings.from_environment(specs).missing()
    assert f"LOYALTY_API_TOKEN (or {SHARED_API_TOKEN_ENV})" in missing


def test_an_extract_asset_points_at_the_lake_of_the_configured_data_folder(tmp_path, monkeypatch):
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path))
    spec = next(s for s in load_registry(load_manifest()) if s.path == "orders/order_events")
    asset = build_extract_asset(spec, platform_days)
    lake_path = asset.metadata_by_key[asset.key]["lake_path"]
    assert Path(lake_path.path) == tmp_path / "lake" / "raw" / "orders" / "order_events"
