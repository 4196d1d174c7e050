"""The registry: every source table declared once in the dbt sources, validated on load."""

import copy

import pytest

from batch_platform.dbt_project import load_manifest
from batch_platform.registry import RegistryError, load_registry, spec_from_manifest_source

ORDERS = "source.batch_platform.orders.order_events"


def test_every_demo_service_is_registered_with_its_access_method():
    specs = {s.path: s for s in load_registry(load_manifest())}
    assert {path: s.access for path, s in specs.items()} == {
        "orders/order_events": "events",
        "payments/payment_events": "events",
        "shipping/shipment_events": "events",
        "clickstream/sessions": "events",
        "inventory/stock_movements": "database",
        "inventory/stock_levels": "database",
        "customers/customers": "database",
        "catalog/products": "api",
        "promotions/campaigns": "api",
    }
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
