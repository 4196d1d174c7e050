"""Runs whose process died: failed, so that the warehouse slot they held is freed.

Every asset that writes the DuckDB warehouse holds the `duckdb_warehouse` pool's only slot
while its step runs (deploy/dagster.yaml). Dagster frees a step's slot when the step ends, or,
for a run that has *ended*, `free_slots_after_run_end_seconds` after it ended (run
monitoring). A run whose process is killed (SIGKILL, the out-of-memory killer, a crash) never
ends its step; what then marks the run failed depends on how it was launched:

- launched from the UI or by a sensor, schedule or backfill: the run queue's daemon starts it
  through its code server, and the code server notices within a second that the run's process
  died and fails the run (its log says which signal killed it);
- run from the command line (`dagster asset materialize`) or a script (`dg.materialize`): the
  run executes in that process itself, and nobody watches it;
- launched by a code server that died with it (`dagster dev` or the daemon killed, the machine
  restarted): nobody is left to notice.

In the last two cases the run stays *Started* for good, and every later warehouse writer waits
("Step blocked by limit for pool duckdb_warehouse") for ever. Dagster's own run monitoring
cannot see it: it asks the run launcher about a run worker's health, and the DefaultRunLauncher
(`dagster dev`, `dagster-daemon`) cannot tell (`supports_check_run_worker_health` is False);
the `dagster/max_runtime` tag would fail a dead run only after a time that a long backfill must
also be allowed. So `dead_run_check` looks at every started run: the process that started it
(the pid of its RUN_START event) no longer exists, or has exited and waits to be reaped, then
the run is dead and is marked failed, with a message saying so in its log. Run monitoring then
frees its slots like those of any failed run.
"""

from __future__ import annotations

import json
import socket

import dagster as dg

from batch_platform.processes import process_is_running

DEAD_RUN_SENSOR = "dead_run_check"
INTERVAL_SECONDS = 15  # one query for the started runs, one per started run

# How a code server that launched a run names its host in the run's `.dagster/grpc_info` tag.
_LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1", socket.gethostname()}


def run_process(instance: dg.DagsterInstance, run: dg.DagsterRun) -> int | None:
    """The pid of the process executing `run`, if it runs on this host.

    That is the process that logged the run's start: the CLI (or script) itself, or the run
    worker a code server started. None when the run was launched through a code server on
    another host, whose own check watches its run workers.
    """
    try:
        host = json.loads(run.tags.get(".dagster/grpc_info") or "{}").get("host", "localhost")
    except (ValueError, AttributeError):
        return None  # not a tag Dagster wrote: better not to judge the run
    if host not in _LOCAL_HOSTS:
        return None
    records = instance.get_records_for_run(
        run.run_id, of_type=dg.DagsterEventType.RUN_START, limit=1
    ).records
    if not records or records[0].event_log_entry.dagster_event is None:
        return None
    return records[0].event_log_entry.dagster_event.pid


def fail_dead_runs(instance: dg.DagsterInstance) -> list[str]:
    """Mark every started run whose process is gone as failed; the messages said."""
    said = []
    started = dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED])
    for record in instance.get_run_records(filters=started):
        run = record.dagster_run
        pid = run_process(instance, run)
        if pid is None or process_is_running(pid):
            continue
        # The process is gone, so it can write nothing more: the status read now is final,
        # unless the run ended just before it died.
        current = instance.get_run_by_id(run.run_id)
        if current is None or current.status != dg.DagsterRunStatus.STARTED:
            continue
        message = (
            f"Run process {pid} on {socket.gethostname()} is gone (killed, or its machine "
            f"restarted) while the run was started: marked failed by the {DEAD_RUN_SENSOR} "
            "sensor. Run monitoring frees the concurrency slots it held (pool "
            "duckdb_warehouse) free_slots_after_run_end_seconds later."
        )
        instance.report_run_failed(current, message)
        said.append(f"{run.run_id}: {message}")
    return said


@dg.sensor(
    name=DEAD_RUN_SENSOR,
    minimum_interval_seconds=INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Fails started runs whose process no longer exists (killed, or its machine restarted), "
        "so that the warehouse pool slot they held is freed. Needed for runs launched from the "
        "command line, which no daemon watches; see docs/RELIABILITY.md."
    ),
)
def dead_run_check(context: dg.SensorEvaluationContext) -> dg.SkipReason:
    """Fail the dead runs of this instance (the sensor requests no run of its own)."""
    if context.instance.run_launcher.supports_check_run_worker_health:
        return dg.SkipReason("the run launcher checks run workers itself (run monitoring)")
    said = fail_dead_runs(context.instance)
    for message in said:
        context.log.error(message)
    return dg.SkipReason("; ".join(said) if said else "every started run's process is running")
