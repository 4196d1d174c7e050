"""Where a run's steps execute: in the run's own process (the default), or on Celery workers.

`BATCH_PLATFORM_EXECUTOR` picks the executor when the definitions load:

- `in_process` (or unset): every step in the run's process, as `make dev` and the tests run.
- `celery`: Dagster's Celery executor (dagster-celery). Each step is a Celery task on the broker
  `BATCH_PLATFORM_CELERY_BROKER` (RabbitMQ), run by `dagster-celery worker` processes; results
  come back over the broker (`rpc://`). Steps that write the warehouse (the `duckdb_warehouse`
  pool) carry the op tag of the `warehouse` queue, whose worker sits beside the DuckDB file;
  every other step (the extracts, which write the shared lake) goes to the default queue,
  `dagster`. Instance
  storage must be shared by every process (PostgreSQL, deploy/dagster.production.yaml).

The broker URL is referenced as an environment variable in the executor's config, never copied
into it, so it is not stored with the run or shown in the UI; where it is named (an unreachable
broker), its password is masked. docs/CELERY.md says how to start the workers.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import dagster as dg
from dagster_celery import celery_executor
from dagster_celery.defaults import task_default_queue
from dagster_celery.executor import CELERY_CONFIG, CeleryExecutor
from dagster_celery.tags import DAGSTER_CELERY_QUEUE_TAG
from kombu import Connection
from kombu.utils.url import maybe_sanitize_url

from batch_platform.transform.dbt_assets import WAREHOUSE_OP_TAGS

EXECUTOR_ENV = "BATCH_PLATFORM_EXECUTOR"
BROKER_ENV = "BATCH_PLATFORM_CELERY_BROKER"
IN_PROCESS = "in_process"
CELERY = "celery"
EXECUTORS = (IN_PROCESS, CELERY)

# The warehouse's writers carry this queue in their op tags (transform/dbt_assets.py); every
# other step goes to dagster-celery's default queue.
WAREHOUSE_QUEUE = WAREHOUSE_OP_TAGS[DAGSTER_CELERY_QUEUE_TAG]
DEFAULT_QUEUE = task_default_queue
RESULT_BACKEND = "rpc://"  # results return over the broker: no second service to run

# Celery settings the executor and every worker share (deploy/celery_worker.yaml repeats them;
# tests/test_celery.py holds the two equal). A task is acknowledged when it ends, not when a
# worker takes it: a worker killed mid-step has not acknowledged its task, so the broker hands
# it to another worker (`task_reject_on_worker_lost` does the same when only the worker's child
# process dies). Without both the run would wait for ever on a result no worker will send.
CELERY_SETTINGS: dict[str, object] = {
    "task_acks_late": True,
    "task_reject_on_worker_lost": True,
    # A worker takes one step at a time from the broker, not four: steps are long and few (one
    # per asset of a run), and a worker holding several would leave the other idle.
    "worker_prefetch_multiplier": 1,
}
# How long the launch-time check waits for the broker before failing the run.
BROKER_CHECK_SECONDS = 5.0


class ExecutorSettingError(ValueError):
    """The environment names an executor the platform does not have, or lacks its broker."""


class BrokerUnreachableError(ConnectionError):
    """The Celery broker did not answer when a run was about to submit its first step."""


def masked(url: str) -> str:
    """The URL with its password replaced by `**`, fit for a log line or an error."""
    return maybe_sanitize_url(url)


def executor_name(environ: Mapping[str, str]) -> str:
    """The executor `BATCH_PLATFORM_EXECUTOR` names, checked (unset or empty: in_process)."""
    name = environ.get(EXECUTOR_ENV, "").strip() or IN_PROCESS
    if name not in EXECUTORS:
        raise ExecutorSettingError(
            f"{EXECUTOR_ENV} must be one of {', '.join(EXECUTORS)}, got {name!r}"
        )
    if name == CELERY and not environ.get(BROKER_ENV, "").strip():
        raise ExecutorSettingError(
            f"{BROKER_ENV} must be set when {EXECUTOR_ENV}={CELERY} "
            "(the broker URL, e.g. pyamqp://user:password@host:5672//)"
        )
    return name


class BrokerCheckedCeleryExecutor(CeleryExecutor):
    """dagster-celery's executor, which first checks that the broker answers.

    Without the check an unreachable broker fails the run deep in kombu's retries with an error
    that names neither the broker nor the setting. The check runs before the first step is
    submitted, so a run that fails it has queued nothing.
    """

    def execute(self, plan_context, execution_plan):
        check_broker(self.broker)
        yield from super().execute(plan_context, execution_plan)


def check_broker(url: str, timeout: float = BROKER_CHECK_SECONDS) -> None:
    """Raise BrokerUnreachableError (one line, password masked) unless the broker answers."""
    try:
        with Connection(url, connect_timeout=timeout) as connection:
            connection.ensure_connection(max_retries=1, timeout=timeout)
    except Exception as error:  # kombu raises several kinds for "not there"
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise BrokerUnreachableError(
            f"Celery broker {masked(url)} ({BROKER_ENV}) is unreachable: {reason}"
        ) from None


@dg.executor(
    name="celery",
    config_schema=CELERY_CONFIG,
    requirements=dg.multiple_process_executor_requirements(),
)
def broker_checked_celery_executor(init_context: dg.InitExecutorContext) -> CeleryExecutor:
    """dagster_celery.celery_executor, with the broker check of BrokerCheckedCeleryExecutor."""
    celery = celery_executor.executor_creation_fn(init_context)
    return BrokerCheckedCeleryExecutor(
        retries=celery.retries,
        broker=celery.broker,
        backend=celery.backend,
        include=celery.include,
        config_source=vars(celery.config_source),
    )


def select_executor(environ: Mapping[str, str] | None = None) -> dg.ExecutorDefinition:
    """The executor the environment selects (see the module docstring)."""
    environ = os.environ if environ is None else environ
    if executor_name(environ) == IN_PROCESS:
        return dg.in_process_executor
    return broker_checked_celery_executor.configured(
        {
            "broker": {"env": BROKER_ENV},
            "backend": RESULT_BACKEND,
            "config_source": dict(CELERY_SETTINGS),
        }
    )
