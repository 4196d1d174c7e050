"""The executor the environment selects, and the queue each step is tagged for (no servers)."""

from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster_celery.tags import DAGSTER_CELERY_QUEUE_TAG
from dagster_ui import free_port

from batch_platform import execution
from batch_platform.execution import (
    BROKER_ENV,
    EXECUTOR_ENV,
    BrokerUnreachableError,
    ExecutorSettingError,
    executor_name,
    select_executor,
)
from batch_platform.transform.dbt_assets import WAREHOUSE_POOL

WORKER_CONFIG = Path(__file__).resolve().parent.parent / "deploy" / "celery_worker.yaml"
BROKER = "pyamqp://guest:s3cret@127.0.0.1:5672//"


def test_in_process_is_the_default():
    assert executor_name({}) == "in_process"
    assert executor_name({EXECUTOR_ENV: ""}) == "in_process"
    assert select_executor({}) is dg.in_process_executor
    assert select_executor({EXECUTOR_ENV: "in_process"}) is dg.in_process_executor


def test_celery_is_selected_only_with_a_broker():
    assert select_executor({EXECUTOR_ENV: "celery", BROKER_ENV: BROKER}).name == "celery"
    with pytest.raises(ExecutorSettingError, match=f"^{BROKER_ENV} must be set when"):
        executor_name({EXECUTOR_ENV: "celery"})


@pytest.mark.parametrize("value", ["Celery", "multiprocess", "celery "])
def test_an_unknown_executor_is_one_line_naming_the_variable(value):
    if value.strip() == "celery":  # surrounding blanks are forgiven; the broker is then missing
        with pytest.raises(ExecutorSettingError, match=f"^{BROKER_ENV} must be set when"):
            executor_name({EXECUTOR_ENV: value})
        return
    with pytest.raises(ExecutorSettingError) as error:
        executor_name({EXECUTOR_ENV: value})
    message = str(error.value)
    assert message == f"{EXECUTOR_ENV} must be one of in_process, celery, got {value!r}"


def test_the_workers_config_matches_the_executor():
    config = yaml.safe_load(WORKER_CONFIG.read_text())["execution"]["config"]
    assert config["broker"] == {"env": BROKER_ENV}
    assert config["backend"] == execution.RESULT_BACKEND
    assert config["config_source"] == execution.CELERY_SETTINGS


def test_an_unreachable_broker_is_named_with_its_password_masked():
    port = free_port()  # nothing listens there
    with pytest.raises(BrokerUnreachableError) as error:
        execution.check_broker(f"pyamqp://guest:s3cret@127.0.0.1:{port}//", timeout=2)
    message = str(error.value)
    assert message.startswith(f"Celery broker pyamqp://guest:**@127.0.0.1:{port}// ({BROKER_ENV})")
    assert "s3cret" not in message and "\n" not in message


def test_every_warehouse_writer_and_nothing_else_goes_to_the_warehouse_queue():
    """Policy: the queue follows the pool, for every step of the graph."""
    from batch_platform.definitions import defs

    job = defs.resolve_implicit_global_asset_job_def()
    queues = {
        node.name: node.definition.tags.get(DAGSTER_CELERY_QUEUE_TAG) for node in job.graph.nodes
    }
    writers = {node.name for node in job.graph.nodes if node.definition.pool == WAREHOUSE_POOL}
    assert writers == {"dbt_partitioned_models", "dbt_whole_tables", "analytics_snapshot"}
    assert queues == {
        name: execution.WAREHOUSE_QUEUE if name in writers else None for name in queues
    }
