"""Latency: a landing file appears -> a run starts -> the channel mart is fresh, daemon running.

A deployment in miniature on a temporary `DAGSTER_HOME` (a copy of `deploy/dagster.yaml`: run
queue, `duckdb_warehouse` pool, freshness daemon): `dagster-daemon run` with the project's
workspace, which starts the code server, evaluates the sensors and launches every run as its
own process. The landscape ends a few days before today so the appended days are real
(complete) partitions. The daemon starts from a steady state, as a deployment that has run
for a while: history built as one run recorded in the instance, the `landing_sensor` and
`watermark_sensor` cursors set past what the sources hold, the warehouse pool created.

Per repeat, `batch-platform simulate --append --days 1` delivers a new day (new `dt=` folders,
late files in the three days before, new rows in the service databases and APIs), then the
instance is polled for the first run the landing sensor launched (created, started) and for
the materialisation of `channel/channel_daily_kpis` for the new day. The sensors involved are
`landing_sensor` (every 15 s), `watermark_sensor` (every 60 s) and the automation sensor
`platform_automation` (every 30 s), which moves each layer after its upstream partitions
updated.

The baseline is the work itself without waiting: the same day as ONE whole-graph run in
process. latency / work says how much of the latency is waiting (sensor intervals, the run
queue, the single warehouse pool, a process per run) rather than work.

Two new days are measured, one after the other (each with 900 s to reach the mart; the second
lands once every run the first triggered has finished). Through the daemon a day takes minutes
on this machine, which is why quick mode skips this benchmark.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from benchmarks.harness import (
    PROJECT_ROOT,
    Context,
    Pipeline,
    Skip,
    check,
    dbt_target,
    demo_apis,
    environment,
    fresh_folder,
    landscape_days,
    log,
    measurement,
    platform_env,
    run_child,
    simulate_landscape,
    timed,
)

NAME = "latency"
TITLE = "Latency: landing file -> run start -> mart fresh (daemon running)"
MART = ("channel", "channel_daily_kpis")
HISTORY_DAYS = 6
SCALE = 0.05


def _set_cursor(env: dict, sensor: str, cursor: str) -> None:
    """Set a sensor's cursor in the instance before the daemon starts, leaving it running.

    Dagster's CLI stores the cursor in a new instigator state marked STOPPED, which would turn
    off a sensor that is RUNNING by default; `dagster sensor start` then turns it on again and
    keeps the cursor (both are the public CLI a user would run).
    """
    dagster = str(Path(sys.executable).with_name("dagster"))
    for args in (["cursor", sensor, "--set", cursor], ["start", sensor]):
        subprocess.run(
            [dagster, "sensor", *args, "-w", "workspace.yaml"],
            cwd=PROJECT_ROOT,
            env=env,
            check=True,
            capture_output=True,
        )


def _preset_cursors(env: dict, data_dir: Path, days: list[str]) -> None:
    """Mark what the sources already hold as seen, as long-running sensors would have.

    Without this, the first tick of each sensor requests every day of history again and the
    daemon spends minutes re-extracting it before the measured day. The cursors are computed
    with the sensors' own functions.
    """
    import logging

    from batch_platform import sensors
    from batch_platform.dbt_project import load_manifest
    from batch_platform.registry import load_registry

    specs = load_registry(load_manifest())
    events = [s for s in specs if s.access == "events"]
    landing = sensors.LandingCursor().advance(sensors.scan_landing(events, data_dir / "landing"))
    _set_cursor(env, "landing_sensor", landing.dump())
    polled = [s for s in specs if s.access in ("database", "api")]
    logger = logging.getLogger("benchmarks.latency")
    _, watermarks = sensors.watermark_run_requests(polled, {}, set(days), logger)
    _set_cursor(env, "watermark_sensor", json.dumps(watermarks, sort_keys=True))


def _ticks(instance, name: str) -> int:
    """How many ticks the daemon has recorded for the sensor `name`."""
    for state in instance.all_instigator_state():
        if state.instigator_name == name:
            return len(instance.get_ticks(state.instigator_origin_id, state.selector_id))
    return 0


def _wait(predicate, timeout: float, what: str, interval: float = 1.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"no {what} within {timeout:.0f} s")


def _runs_after(instance, after: float) -> list:
    from dagster import RunsFilter

    created = datetime.fromtimestamp(after, UTC)
    return list(instance.get_run_records(filters=RunsFilter(created_after=created)))


def _mart_time(instance, day: str, after: float) -> float | None:
    from dagster import AssetKey, AssetRecordsFilter

    records = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=AssetKey(list(MART)), asset_partitions=[day]),
        limit=1,
    ).records
    if records and records[0].timestamp > after:
        return records[0].timestamp
    return None


def _unfinished(record) -> bool:
    from dagster import DagsterRunStatus

    return record.dagster_run.status in {
        DagsterRunStatus.QUEUED,
        DagsterRunStatus.NOT_STARTED,
        DagsterRunStatus.STARTING,
        DagsterRunStatus.STARTED,
        DagsterRunStatus.CANCELING,
    }


def _busy(instance, after: float) -> bool:
    return any(_unfinished(r) for r in _runs_after(instance, after))


def _failure(instance, run_id: str) -> str:
    """A failed run's assets and the first line of what dbt or the step said."""
    from dagster import DagsterEventType

    run = instance.get_run_by_id(run_id)
    assets = ", ".join(k.to_user_string() for k in run.asset_selection or [])
    for record in instance.all_logs(run_id, of_type=DagsterEventType.STEP_FAILURE):
        error = record.dagster_event.event_specific_data.error
        text = re.sub(r"\x1b\[[0-9;]*m|\s*\.{3,}\s*", " ", error.message if error else "")
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        # dagster-dbt puts dbt's own error after this line; it says more than the exception.
        marker = "Errors parsed from dbt logs:"
        reason = lines[lines.index(marker) + 1] if marker in lines[:-1] else lines[0]
        return f"{assets}: {reason[:200]}"
    return f"{assets}: the run failed before a step did"


def _one_day(instance, env: dict, data_dir: Path, timeout: float, settle: bool) -> dict:
    """Append a day and follow it to the mart; the figures of one repeat.

    With `settle`, wait afterwards for the runs the day triggered to finish (other marts,
    re-opened days), so that a next day starts from a quiet instance.
    """
    from dagster import DagsterRunStatus

    started = time.time()
    subprocess.run(
        [str(Path(sys.executable).with_name("batch-platform")), "simulate", "--append"]
        + ["--days", "1", "--data-dir", str(data_dir)],
        env=env,
        check=True,
        capture_output=True,
    )
    landed = time.time()  # every file of the day is in place
    day = landscape_days(json.loads((data_dir / "landscape.json").read_text()))[-1]
    log(f"latency: day {day} landed; waiting for its mart (timeout {timeout:.0f} s)")

    def first_landing_run():
        runs = [
            r
            for r in _runs_after(instance, started)
            if r.dagster_run.tags.get("batch_platform/trigger") == "landing_file"
            and r.start_time is not None
        ]
        return min(runs, key=lambda r: r.start_time) if runs else None

    first = _wait(first_landing_run, timeout, "run launched by the landing sensor")
    try:
        mart = _wait(
            lambda: _mart_time(instance, day, landed),
            timeout - (time.time() - landed),
            "fresh mart",
        )
    except TimeoutError:
        mart = None  # reported as a lower bound, with where the runs stood
    waiting = sum(1 for r in _runs_after(instance, started) if _unfinished(r))
    quiet = None
    if mart is not None and settle:
        try:
            _wait(lambda: not _busy(instance, started), 300, "quiet instance", 2.0)
            quiet = time.time()
        except TimeoutError:
            pass
    runs = _runs_after(instance, started)
    kinds: dict[str, int] = {}
    for record in runs:
        trigger = record.dagster_run.tags.get("batch_platform/trigger") or (
            "automation"
            if any(k.startswith("dagster/auto") for k in record.dagster_run.tags)
            else "other"
        )
        kinds[trigger] = kinds.get(trigger, 0) + 1
    return {
        "day": day,
        "to_run_created": first.create_timestamp.timestamp() - landed,
        "to_run_start": first.start_time - landed,
        "to_mart": None if mart is None else mart - landed,
        "to_quiet": None if quiet is None else quiet - landed,
        "runs": len(runs),
        "runs_unfinished_when_mart_fresh_or_timeout": waiting,
        "runs_by_trigger": kinds,
        "runs_failed": [
            _failure(instance, r.dagster_run.run_id)
            for r in runs
            if r.dagster_run.status == DagsterRunStatus.FAILURE
        ],
    }


def run(ctx: Context) -> dict:
    if ctx.quick:
        raise Skip(
            "not in quick mode: through the daemon one new day takes minutes however small "
            "(about 20 runs, each a new process and a dbt invocation, one at a time through "
            "the warehouse pool), more than the whole quick budget; `make bench` measures it"
        )
    import dagster as dg

    repeats, timeout = 2, 900.0
    today = datetime.now(UTC).date()
    # History ends repeats + 1 days before today: every appended day is a complete partition.
    start = today - timedelta(days=HISTORY_DAYS + repeats + 1)
    data_dir = ctx.work / "data"
    home = fresh_folder(ctx.work / "dagster_home")
    shutil.copy(PROJECT_ROOT / "deploy" / "dagster.yaml", home / "dagster.yaml")
    log(f"latency: {HISTORY_DAYS} days of history from {start} at scale {SCALE}")
    simulate_landscape(data_dir, start, HISTORY_DAYS, SCALE)
    target = dbt_target(data_dir)

    with demo_apis(data_dir) as api:
        env = dict(os.environ)
        base = {
            **platform_env(data_dir, start=start.isoformat()),
            "DAGSTER_HOME": str(home),
            "CATALOG_API_URL": f"{api}/catalog",
            "PROMOTIONS_API_URL": f"{api}/promotions",
            "PYTHONWARNINGS": "ignore",
            **target,
        }
        for name, value in base.items():
            if value is None:
                env.pop(name, None)
            else:
                env[name] = value
        log("latency: building history as one run in the instance")
        _, history = run_child(
            ["benchmarks.child", "--data-dir", str(data_dir), "--dagster-home"], env=base
        )
        _preset_cursors(
            env, data_dir, landscape_days(json.loads((data_dir / "landscape.json").read_text()))
        )
        notes = []

        with environment(DAGSTER_HOME=str(home)):
            instance = dg.DagsterInstance.get()
        # A deployment in its steady state has used the warehouse pool before. On an instance
        # where it never was, Dagster's run queue (1.13) reads the configured pools before it
        # creates the pool from `default_limit`, so its first pass lets every queued warehouse
        # run start at once and all but one fail on DuckDB's file lock.
        from batch_platform.transform.dbt_assets import WAREHOUSE_POOL

        instance.event_log_storage.initialize_concurrency_limit_to_default(WAREHOUSE_POOL)
        log_file = open(ctx.work / "daemon.log", "wb")  # noqa: SIM115 - closed below
        daemon = subprocess.Popen(
            [str(Path(sys.executable).with_name("dagster-daemon")), "run", "-w", "workspace.yaml"],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its code server and run workers share its process group
        )
        figures = []
        try:
            daemon_started = time.time()
            _wait(lambda: _ticks(instance, "landing_sensor") >= 1, 300, "landing sensor tick")
            _wait(lambda: _ticks(instance, "platform_automation") >= 1, 300, "automation tick")
            ready = time.time() - daemon_started
            # Whatever the first ticks launched (nothing, if the steady state holds) finishes.
            _wait(lambda: not _busy(instance, daemon_started), 600, "quiet instance", 2.0)
            startup_runs = len(_runs_after(instance, daemon_started))
            if startup_runs:
                notes.append(f"the daemon's first ticks launched {startup_runs} run(s)")
            for repeat in range(repeats):
                try:
                    settle = repeat < repeats - 1
                    figures.append(_one_day(instance, env, data_dir, timeout, settle))
                except TimeoutError as error:
                    notes.append(f"repeat {repeat + 1}: {error}")
                    break
                if figures[-1]["to_mart"] is None:
                    notes.append(
                        f"day {figures[-1]['day']}: the mart was not fresh within the "
                        f"{timeout:.0f} s timeout ({figures[-1]['runs']} runs launched, "
                        f"{figures[-1]['runs_unfinished_when_mart_fresh_or_timeout']} still queued "
                        "or running); its latency is reported as the timeout, a lower bound"
                    )
                    break  # the queue is still full: another day would measure the backlog
        finally:
            os.killpg(daemon.pid, signal.SIGTERM)
            try:
                daemon.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(daemon.pid, signal.SIGKILL)
                daemon.wait()
            log_file.close()

        if not figures:
            raise TimeoutError("; ".join(notes) or "no day reached the mart")
        for f in figures:
            for failure in f["runs_failed"]:
                notes.append(f"a run of day {f['day']} failed: {failure}")

        # The baseline: the same day's work done directly, one run in process: no sensors, no
        # queue, no process per run.
        work = []
        pipeline = Pipeline(ctx.work / "baseline-instance")
        with environment(BATCH_PLATFORM_DATA_DIR=str(data_dir), **target):
            for f in figures:
                seconds, _ = timed(lambda day=f["day"]: pipeline.run([day]))
                work.append(seconds)

    def series(key: str) -> list[float]:
        return [f[key] for f in figures]

    # A day whose mart never got fresh counts as the timeout: a lower bound, said in the notes.
    latency = [timeout if f["to_mart"] is None else f["to_mart"] for f in figures]
    bound = any(f["to_mart"] is None for f in figures)
    return {
        "parameters": {
            "history_days": HISTORY_DAYS,
            "scale": SCALE,
            "repeats": len(figures),
            "timeout_seconds": timeout,
            "days": [f["day"] for f in figures],
        },
        "measurements": {
            "to_run_created_seconds": measurement(
                "files landed -> first run created", series("to_run_created"), "s", 1
            ),
            "to_run_start_seconds": measurement(
                "files landed -> first run started", series("to_run_start"), "s", 1
            ),
            "to_mart_seconds": measurement(
                f"files landed -> {'/'.join(MART)} materialised", latency, "s", 1
            ),
            "work_seconds": measurement(
                "baseline: the day's extract + partitioned models, in process", work, "s", 1
            ),
            "runs_per_day": measurement("runs launched per new day", series("runs"), "runs", 0),
        },
        "checks": [
            check(
                "latency to fresh mart / the work itself",
                sum(latency) / sum(work),
                "files landed -> mart materialised, divided by extracting the day and running "
                "its partitioned models directly",
            ),
            check(
                "latency to fresh mart",
                statistics.median(latency),
                "seconds from the last file of a new day landing to channel_daily_kpis "
                "materialised for that day (median)",
                unit="s",
                note="lower bound: timed out" if bound else "",
            ),
        ],
        "info": {
            "daemon_ready_seconds": round(ready, 1),
            "runs_launched_at_daemon_start": startup_runs,
            "history_run_seconds": round(history["seconds"], 1),
            "per_day": figures,
        },
        "notes": notes,
    }
