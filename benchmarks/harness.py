"""What every benchmark shares: repeats and their summary, landscapes, the pipeline, subprocesses.

Each benchmark measures the platform next to a baseline in the same invocation, so what it
reports is a ratio that survives a busy machine; the absolute seconds are for information.
Everything a benchmark writes stays under its own folder in the work directory
(`benchmarks/work/` by default, git-ignored), and `BATCH_PLATFORM_DATA_DIR` points there while
it runs, so a benchmark never touches `data/` or another benchmark's files.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"
DEFAULT_WORK = PROJECT_ROOT / "benchmarks" / "work"
API_TOKEN = "bench-api-token-not-secret"
# A fixed first day for landscapes whose days need not be real partitions yet; the latency
# benchmark, which needs the daemon to see its days as past partitions, picks recent days.
BENCH_START = date(2026, 3, 1)
# The PII key dbt's plugin needs; a fixed one keeps the demo-key warning out of every run.
PII_SALT = "bench-salt-not-secret"


# ---------------------------------------------------------------------------------------------
# Figures


def summary(values: Sequence[float], unit: str, digits: int = 3) -> dict[str, Any]:
    """Repeats and their min/median/max: the median is the figure, min/max show the noise."""
    if not values:
        raise ValueError("a measurement needs at least one repeat")
    return {
        "unit": unit,
        "repeats": [round(v, digits) for v in values],
        "min": round(min(values), digits),
        "median": round(statistics.median(values), digits),
        "max": round(max(values), digits),
    }


def check(
    name: str,
    value: float,
    definition: str,
    target: float | None = None,
    direction: str = ">=",
    unit: str = "x",
    note: str = "",
) -> dict[str, Any]:
    """A figure held against its target (None: reported for information) and whether it is met.

    Most are ratios (unit "x") of the platform to a baseline measured in the same invocation.
    """
    met = None
    if target is not None:
        met = bool(value >= target if direction == ">=" else value <= target)
    entry = {
        "name": name,
        "value": round(value, 3),
        "unit": unit,
        "definition": definition,
        "target": target,
        "direction": direction,
        "met": met,
    }
    if note:
        entry["note"] = note
    return entry


def median_ratio(numerators: Sequence[float], denominators: Sequence[float]) -> float:
    """The ratio of repeat i's pair, median over the repeats (pairs run back to back)."""
    return statistics.median(n / d for n, d in zip(numerators, denominators, strict=True))


def timed(function: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = function()
    return time.perf_counter() - started, result


# Where progress goes; the runner points it at the terminal while it sends each benchmark's own
# output (dbt's log lines, Dagster's warnings) to a log file.
progress = sys.stderr


def log(message: str) -> None:
    """One progress line, so a long `make bench` shows where it is."""
    stamp = datetime.now().strftime("%H:%M:%S")
    print(f"[bench {stamp}] {message}", file=progress, flush=True)


# ---------------------------------------------------------------------------------------------
# Machine


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_bytes() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _version(distribution: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:
        return None


def source_state() -> dict[str, Any]:
    """The commit measured, and which of the platform's files differed from it (uncommitted)."""

    def git(*args: str) -> str:
        result = subprocess.run(
            ["git", *args], cwd=PROJECT_ROOT, capture_output=True, text=True, check=False
        )
        return result.stdout.rstrip("\n")

    changed = git("status", "--porcelain", "--", "batch_platform", "dbt_project", "deploy")
    return {
        "commit": git("rev-parse", "--short", "HEAD") or None,
        "uncommitted": sorted(line[3:] for line in changed.splitlines()),
    }


def machine_info() -> dict[str, Any]:
    """What the figures were measured on; ratios move less than seconds between machines."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        "cores": os.cpu_count(),
        "memory_bytes": _memory_bytes(),
        "cpu_model": cpu_model(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": {
            name: _version(name)
            for name in ("dagster", "dagster-dbt", "dbt-core", "dbt-duckdb", "duckdb", "pyarrow")
        },
        "load_average_at_start": [round(x, 2) for x in load] if load else None,
        "source": source_state(),
    }


def load_average() -> list[float] | None:
    """The 1/5/15-minute load, recorded per benchmark: other work on the machine shows here."""
    return [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None


def now_utc() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat()


# ---------------------------------------------------------------------------------------------
# Environment and landscapes


@contextmanager
def environment(**values: str | None) -> Iterator[None]:
    """Set (or, with None, remove) environment variables for the block, then restore them
    (the platform's own helper, which its dbt steps use for the partition window)."""
    from batch_platform.transform.dbt_invocation import environment as platform_environment

    with platform_environment(values):
        yield


def fresh_folder(path: Path) -> Path:
    """An empty folder at `path` (whatever an earlier run left there is removed)."""
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


def day_keys(start: date, days: int) -> list[str]:
    return [(start + timedelta(days=i)).isoformat() for i in range(days)]


def simulate_landscape(
    data_dir: Path, start: date, days: int, scale: float, seed: int = 7
) -> tuple[float, dict]:
    """A new demo landscape in an emptied `data_dir`; returns (seconds, manifest)."""
    from batch_platform.simulator import simulate

    fresh_folder(data_dir)
    return timed(lambda: simulate(data_dir, start=start, days=days, seed=seed, scale=scale))


def landscape_days(manifest: dict) -> list[str]:
    first = date.fromisoformat(manifest["start"])
    return day_keys(first, manifest["days"])


def reset_outputs(data_dir: Path) -> None:
    """Forget what the platform wrote (lake, warehouse), keep what the services delivered."""
    shutil.rmtree(data_dir / "lake", ignore_errors=True)
    for name in ("warehouse.duckdb", "warehouse.duckdb.wal"):
        (data_dir / name).unlink(missing_ok=True)


@contextmanager
def demo_apis(data_dir: Path) -> Iterator[str]:
    """The demo catalog and promotions APIs on a free port, with the env pointing at them."""
    from batch_platform.simulator.api_server import create_app, serve_in_thread

    with serve_in_thread(create_app(data_dir, API_TOKEN)) as base_url:
        with environment(
            CATALOG_API_URL=f"{base_url}/catalog",
            PROMOTIONS_API_URL=f"{base_url}/promotions",
            BATCH_PLATFORM_API_TOKEN=API_TOKEN,
        ):
            yield base_url


def platform_env(data_dir: Path, start: str | None = None) -> dict[str, str | None]:
    """The variables every platform process of a benchmark runs with."""
    return {
        "BATCH_PLATFORM_DATA_DIR": str(data_dir),
        "BATCH_PLATFORM_PII_SALT": os.environ.get("BATCH_PLATFORM_PII_SALT", PII_SALT),
        "BATCH_PLATFORM_START_DATE": start,
        # the registry defaults under the data folder, never a developer's own databases
        "INVENTORY_DB_URL": None,
        "CUSTOMERS_DB_URL": None,
    }


def dbt_target(data_dir: Path, seed: bool = True) -> dict[str, str]:
    """`DBT_TARGET_PATH` for in-process runs over `data_dir`, seeded as a deployment's is.

    dagster-dbt gives every dbt invocation its own folder under `$DBT_TARGET_PATH` and starts it
    from the `partial_parse.msgpack` found there. A deployment's was written by `batch-platform
    prepare` with the deployment's own data folder, so its invocations without vars (current
    state, dimensions) parse partially, and those with window vars (partitioned models) parse
    the project afresh. The project's own file was parsed with another data folder, which is
    part of the dbt profile, and would make every invocation of a benchmark parse afresh: so
    an untimed `dbt parse` with this data folder writes the seed. Quick mode (`seed=False`)
    saves that parse and runs every invocation with a full parse.
    """
    target = data_dir.parent / "dagster-dbt-target"
    target.mkdir(parents=True, exist_ok=True)
    if seed:
        bare_dbt(data_dir, data_dir.parent, ["parse"], target=target)
    return {"DBT_TARGET_PATH": str(target)}


# ---------------------------------------------------------------------------------------------
# The pipeline, in process


class Pipeline:
    """The platform's assets materialised in process, as `tests/support.build_pipeline` does.

    Runs go to one SQLite-backed instance per benchmark (like `make dev`'s), so each run pays
    for writing its event log the way a deployed run does; console logging is cut to warnings
    so the terminal is not the bottleneck.

    A run covers the whole graph (`whole=True`): every extract and the two dbt selections
    (partitioned models, then the whole tables), each one dbt invocation. Quick mode runs a
    smaller graph (`whole=False`): the extracts and the partitioned models, ONE dbt invocation,
    since on this machine every dbt invocation costs 5-10 s whatever the data.

    With `publish=True` the whole graph is the deployment's whole graph: also the quarantine
    asset and the analyst snapshot, which is what a new day must reach before analysts see it
    (the latency benchmarks' baseline). Without it, the benchmarks that compare a run with
    `dbt build` by hand keep to what dbt builds.
    """

    _QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}

    def __init__(
        self, instance_dir: Path | None = None, instance=None, publish: bool = False
    ) -> None:
        """Runs go to `instance` if given, else to a new SQLite instance in `instance_dir`."""
        import dagster as dg

        from batch_platform.definitions import (
            dbt_partitioned_models,
            dbt_whole_tables,
            defs,
            extracts,
            transforms,
        )

        self.dg = dg
        self.resources = {"dbt": defs.resources["dbt"]}
        self.extracts = extracts
        self.everything = [*self.extracts, dbt_partitioned_models, dbt_whole_tables]
        if publish:  # the quarantine and the snapshot too: everything the platform builds
            self.everything += [a for a in transforms if a not in self.everything]
        self.selections = {
            True: dg.AssetSelection.assets(*self.everything),
            False: dg.AssetSelection.assets(*self.extracts, dbt_partitioned_models),
        }
        if instance is None:
            if instance_dir is None:
                raise ValueError("a Pipeline needs an instance or a folder for one")
            fresh_folder(instance_dir)
            instance = dg.DagsterInstance.local_temp(
                str(instance_dir), overrides={"telemetry": {"enabled": False}}
            )
        self.instance = instance

    @staticmethod
    def graph_name(whole: bool) -> str:
        return "whole graph" if whole else "extracts + partitioned models (quick)"

    def dbt_models(self, whole: bool) -> list[str]:
        """The dbt models a run of the graph builds, for `dbt build --select` by hand."""
        keys = self.selections[whole].resolve(self.everything)
        return sorted(k.path[-1] for k in keys if k.path[0] != "raw")

    def run(self, days: Sequence[str], whole: bool = True, selection=None):
        """One run over `days`: a single partition, or the range as ONE run (what a backfill
        with `BackfillPolicy.single_run()` launches: each extract walks its days, each dbt
        selection is one invocation for the range)."""
        tags = None
        partition_key = days[0] if len(days) == 1 else None
        if len(days) > 1:
            tags = {
                "dagster/asset_partition_range_start": days[0],
                "dagster/asset_partition_range_end": days[-1],
            }
        result = self.dg.materialize(
            self.everything,
            selection=selection if selection is not None else self.selections[whole],
            resources=self.resources,
            partition_key=partition_key,
            tags=tags,
            instance=self.instance,
            run_config=self._QUIET,
            raise_on_error=True,
        )
        if not result.success:
            raise RuntimeError(f"run of {days[0]}..{days[-1]} failed")
        return result

    def extract(self, days: Sequence[str]):
        return self.run(days, selection=self.dg.AssetSelection.assets(*self.extracts))

    def step_seconds(self, run_id: str) -> dict[str, float]:
        """Wall seconds of each step of a run, from its event log (start to success)."""
        from dagster import DagsterEventType

        started, seconds = {}, {}
        records = self.instance.all_logs(
            run_id, of_type={DagsterEventType.STEP_START, DagsterEventType.STEP_SUCCESS}
        )
        for record in records:
            if record.dagster_event.event_type == DagsterEventType.STEP_START:
                started[record.step_key] = record.timestamp
            elif record.step_key in started:
                seconds[record.step_key] = record.timestamp - started[record.step_key]
        return seconds

    def split(self, run_id: str) -> dict[str, float]:
        """A run's step time by kind: extracts, the partitioned dbt step, the whole-table ones."""
        steps = self.step_seconds(run_id)
        return {
            "extract": sum(v for k, v in steps.items() if not k.startswith("dbt_")),
            "dbt_partitioned": steps.get("dbt_partitioned_models", 0.0),
            "dbt_whole_tables": steps.get("dbt_whole_tables", 0.0),
        }

    def dbt_phases(self, run_id: str) -> dict[str, float]:
        """The run's dbt steps in two phases, from its event log, summed over the steps.

        `to_first_result`: step start to dbt's first model result (dagster-dbt's `dbt
        --version` and adapter set-up, dbt's start-up and parse). `results`: first to last
        result (the models and tests run, and Dagster records each model's materialization per
        partition as it arrives). `materializations`: how many it recorded.
        """
        from dagster import DagsterEventType

        phases = {"to_first_result": 0.0, "results": 0.0, "materializations": 0}
        events = self.instance.all_logs(run_id)
        steps = {e.step_key for e in events if e.step_key and e.step_key.startswith("dbt_")}
        for step in steps:
            mine = [e for e in events if e.step_key == step and e.dagster_event]
            kinds = [e.dagster_event.event_type for e in mine]
            start = mine[kinds.index(DagsterEventType.STEP_START)].timestamp
            end = mine[kinds.index(DagsterEventType.STEP_SUCCESS)].timestamp
            results = [
                e.timestamp
                for e, kind in zip(mine, kinds, strict=True)
                if kind in (DagsterEventType.STEP_OUTPUT, DagsterEventType.ASSET_MATERIALIZATION)
            ]
            first = min(results, default=end)
            phases["to_first_result"] += first - start
            phases["results"] += end - first
            phases["materializations"] += kinds.count(DagsterEventType.ASSET_MATERIALIZATION)
        return phases

    def before_start(self, run_id: str) -> tuple[float, int]:
        """Seconds between creating a run and its RUN_START, and the planned-materialization
        events written in between (one per asset and partition of the run)."""
        from dagster import DagsterEventType

        logs = self.instance.all_logs(run_id)
        created = self.instance.get_run_record_by_id(run_id).create_timestamp.timestamp()
        types = [e.dagster_event.event_type if e.dagster_event else None for e in logs]
        run_start = DagsterEventType.RUN_START
        started = [e.timestamp for e, t in zip(logs, types, strict=True) if t == run_start]
        start = started[0] if started else created
        planned = types.count(DagsterEventType.ASSET_MATERIALIZATION_PLANNED)
        return start - created, planned


def bare_extract(data_dir: Path, days: Sequence[str]) -> None:
    """Every source's extractor called directly for every day: no Dagster at all.

    Used to build history quickly where the history itself is not what is measured.
    """
    from batch_platform.dbt_project import load_manifest
    from batch_platform.extract.factory import EXTRACTORS
    from batch_platform.registry import load_registry

    specs = load_registry(load_manifest())
    for spec in specs:
        for day in days:
            EXTRACTORS[spec.access](spec, date.fromisoformat(day), data_dir)


def dbt_vars(days: Sequence[str]) -> str:
    """The dbt vars for the half-open window covering `days`, as Dagster passes them."""
    end = date.fromisoformat(days[-1]) + timedelta(days=1)
    return json.dumps({"max_date": end.isoformat(), "min_date": days[0]}, sort_keys=True)


def bare_dbt(data_dir: Path, work: Path, args: Sequence[str], target: Path | None = None) -> float:
    """`dbt <args>` as a person runs it by hand, in a subprocess; returns wall seconds.

    Its target and log folders are private (under `work`, unless `target` says otherwise), so
    the project's own `target/` (the manifest the code location reads) is never rewritten.
    """
    target = target or work / "dbt-target"
    command = [
        str(Path(sys.executable).with_name("dbt")),
        *args,
        "--project-dir",
        str(DBT_PROJECT_DIR),
        "--profiles-dir",
        str(DBT_PROJECT_DIR),
        "--target-path",
        str(target),
        "--log-path",
        str(work / "dbt-logs"),
    ]
    child_env = {k: v for k, v in os.environ.items()}
    for name, value in platform_env(data_dir).items():
        if value is None:
            child_env.pop(name, None)
        else:
            child_env[name] = value
    started = time.perf_counter()
    result = subprocess.run(
        command, cwd=DBT_PROJECT_DIR, env=child_env, capture_output=True, text=True, check=False
    )
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        tail = "\n".join(result.stdout.strip().splitlines()[-15:])
        raise RuntimeError(f"dbt {' '.join(args)} failed (exit {result.returncode}):\n{tail}")
    return seconds


def bare_build(data_dir: Path, work: Path, days: Sequence[str], models: list[str] | None) -> float:
    """`dbt build` of the window covering `days` by hand: every model, or only `models`."""
    args = ["build", "--vars", dbt_vars(days)]
    if models:
        args += ["--select", *models]
    return bare_dbt(data_dir, work, args)


# ---------------------------------------------------------------------------------------------
# Subprocesses, and peak memory


def peak_rss_bytes() -> int:
    """The largest resident set of this process, or of any child it waited for, in bytes.

    Called by a measured process about itself, because the kernel's own figure for a child,
    as its parent sees it through wait4 (or `/usr/bin/time`), starts from the parent's size:
    Linux counts a process's resident set from the fork, before it execs, so a small command
    started by a 1 GiB process reports 1 GiB. `VmHWM` is this process's own high-water mark
    since its exec; its children's figures start from this process's size at their fork,
    which VmHWM already covers, so the larger of the two is right. Not a sum over processes.
    """
    import resource

    status = Path("/proc/self/status").read_text()
    own = int(status.split("VmHWM:")[1].split()[0]) * 1024  # kB
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024  # KiB on Linux
    return max(own, children)


def _child_env(env: dict[str, str | None] | None) -> dict[str, str]:
    child_env = dict(os.environ)
    for name, value in (env or {}).items():
        if value is None:
            child_env.pop(name, None)
        else:
            child_env[name] = value
    return child_env


def run_process(
    argv: Sequence[str], env: dict[str, str | None] | None = None, timeout: float | None = None
) -> tuple[float, str]:
    """Run a command to completion in the project folder; (wall seconds, its stdout)."""
    started = time.perf_counter()
    result = subprocess.run(
        list(argv),
        cwd=PROJECT_ROOT,
        env=_child_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        tail = "\n".join(result.stderr.strip().splitlines()[-20:])
        raise RuntimeError(f"{' '.join(argv)} failed with exit code {result.returncode}:\n{tail}")
    return seconds, result.stdout


def run_child(
    module_args: Sequence[str], env: dict[str, str | None] | None = None
) -> tuple[float, dict[str, Any]]:
    """`python -m <module_args>` in a fresh interpreter; (wall seconds, its last stdout line
    as JSON, where a measured child reports its own `peak_rss_bytes()`)."""
    seconds, stdout = run_process([sys.executable, "-m", *module_args], env)
    lines = [line for line in stdout.splitlines() if line.strip()]
    return seconds, json.loads(lines[-1]) if lines else {}


# ---------------------------------------------------------------------------------------------
# A deployment in miniature: the daemon (and the webserver) as processes, the instance polled


def start_process(argv: Sequence[str], env: dict[str, str], log_path: Path) -> subprocess.Popen:
    """A server started in the project folder in a session of its own, its output to `log_path`.

    Its own session, so that `stop_process` ends its children too (the daemon's code server
    and the run workers it launches).
    """
    with open(log_path, "wb") as log_file:  # the child keeps its own descriptor
        return subprocess.Popen(
            list(argv),
            cwd=PROJECT_ROOT,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop_process(process: subprocess.Popen) -> None:
    """SIGTERM to the server's process group, SIGKILL if it is still there after a minute."""
    import signal

    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 1.0):
    """Poll `predicate` until it returns something true, which is returned; TimeoutError after."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"no {what} within {timeout:.0f} s")


def sensor_tick_records(instance, name: str, after: float | None = None) -> list:
    """The ticks the daemon has recorded for the sensor `name` (begun after `after`, if given)."""
    for state in instance.all_instigator_state():
        if state.instigator_name == name:
            return list(
                instance.get_ticks(state.instigator_origin_id, state.selector_id, after=after)
            )
    return []


def sensor_ticks(instance, name: str) -> int:
    """How many ticks the daemon has recorded for the sensor `name`."""
    return len(sensor_tick_records(instance, name))


def tick_seconds(instance, name: str) -> list[float]:
    """How long each finished tick of the sensor `name` took, in seconds."""
    ticks = sensor_tick_records(instance, name)
    return [t.end_timestamp - t.timestamp for t in ticks if t.end_timestamp]


def runs_after(instance, after: float) -> list:
    """The run records created after the epoch second `after`."""
    from dagster import RunsFilter

    created = datetime.fromtimestamp(after, UTC)
    return list(instance.get_run_records(filters=RunsFilter(created_after=created)))


def unfinished(record) -> bool:
    from dagster import DagsterRunStatus

    return record.dagster_run.status in {
        DagsterRunStatus.QUEUED,
        DagsterRunStatus.NOT_STARTED,
        DagsterRunStatus.STARTING,
        DagsterRunStatus.STARTED,
        DagsterRunStatus.CANCELING,
    }


def failed(record) -> bool:
    from dagster import DagsterRunStatus

    return record.dagster_run.status == DagsterRunStatus.FAILURE


def run_failure(instance, run_id: str) -> str:
    """A failed run's assets and the first line of what dbt or the step said."""
    import re

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


def settle(
    instance, after: float, timeout: float = 600.0, sensor: str = "platform_automation"
) -> float | None:
    """Wait until the runs created after `after` have finished and stay finished.

    Quiet means: no run unfinished, and the automation sensor ticked twice more without
    launching one (what a run just built may still make it request, such as a rebuild after
    a model it reads updated, comes in those ticks). Returns when the last of those runs
    ended (epoch seconds), None if none was launched; TimeoutError after `timeout`.
    """
    deadline = time.monotonic() + timeout
    while True:
        wait_for(
            lambda: not any(unfinished(r) for r in runs_after(instance, after)),
            deadline - time.monotonic(),
            "quiet instance",
            2.0,
        )
        count = len(runs_after(instance, after))
        seen = sensor_ticks(instance, sensor)
        wait_for(
            lambda seen=seen: sensor_ticks(instance, sensor) >= seen + 2,
            deadline - time.monotonic(),
            f"two {sensor} ticks",
            2.0,
        )
        runs = runs_after(instance, after)
        if len(runs) == count and not any(unfinished(r) for r in runs):
            ends = [r.end_time for r in runs if r.end_time is not None]
            return max(ends) if ends else None


def run_kind(record) -> str:
    """Who asked for a run: the platform's sensors tag theirs; automation runs carry
    Dagster's `dagster/auto...` tags."""
    from batch_platform.sensors import TRIGGER_TAG

    tags = record.dagster_run.tags
    if tags.get(TRIGGER_TAG):
        return tags[TRIGGER_TAG]
    return "automation" if any(k.startswith("dagster/auto") for k in tags) else "other"


def run_seconds(record) -> float | None:
    """A finished run's wall time from its start to its end, as the instance recorded them."""
    if record.start_time is None or record.end_time is None:
        return None
    return record.end_time - record.start_time


# ---------------------------------------------------------------------------------------------
# What a benchmark gets and gives back


class Skip(Exception):
    """A benchmark that cannot run here or now; its message is the reason, kept in the results."""


@dataclass
class Context:
    """One benchmark's run: quick or full, and the folder it may write."""

    quick: bool
    work: Path

    def pick(self, full: Any, quick: Any) -> Any:
        return quick if self.quick else full

    @property
    def whole(self) -> bool:
        """Runs cover the whole graph, except in quick mode (see `Pipeline`)."""
        return not self.quick


def measurement(label: str, values: Sequence[float], unit: str, digits: int = 3) -> dict:
    return {"label": label, **summary(values, unit, digits)}
