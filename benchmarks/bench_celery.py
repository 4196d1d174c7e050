"""Every extract over a month in one run: in process against two Celery workers (issue #17).

The same work both ways: one `dagster asset materialize` of every extract (9 sources) over the
range, launched as an operator launches it, on the same PostgreSQL-backed instance
(deploy/dagster.production.yaml, a scratch database) and the same landscape, the lake reset in
between; only `BATCH_PLATFORM_EXECUTOR` differs. (a) `in_process`: the run's own process runs
the nine steps one after another. (b) `celery`: two `dagster-celery worker` processes, each
`--concurrency=1` on both queues, run the steps two at a time, on a RabbitMQ virtual host of
the benchmark's own. The order alternates between repeats, and the lake files the two write are
hashed and must be identical, or the benchmark fails.

What the platform launches for a range is ONE run in which each extract is ONE step covering
every day (`BackfillPolicy.single_run()`): nine steps of unequal size for two workers, so the
longest step and how the nine fall to the two workers bound the gain. The figures report the
in-process step times and, from them, the best ratio any split of those nine steps over two
workers could reach. The scale is chosen so that a step's data work dwarfs what the Celery
executor adds per step (see SCALE).

Throughput is lake rows written per second of the run (the run record's start to end: the
`dagster` command's own code-location load, equal both ways, is outside it). The headline is
Celery's throughput over the in-process throughput, target >= 1.6x on two cores (2x is the
physical bound). The workers are warmed by one untimed run of the first day before anything is
timed, as a deployment's long-running workers are; that run's first step on each worker gives
the worker's code-location load, reported with the workers' start-up for information.

Also for information: the cores the platform's processes and the whole machine used during each
run (sampled from /proc: the in-process run's DuckDB already uses more than one core at times,
which two workers cannot gain again), the executor's fixed costs read from the event log, and
which steps each worker took (the workers take one task at a time from the broker,
`worker_prefetch_multiplier: 1` in deploy/celery_worker.yaml, so a step goes to whichever
worker is free).
"""

from __future__ import annotations

import hashlib
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from benchmarks.harness import (
    BENCH_START,
    PROJECT_ROOT,
    Context,
    Skip,
    check,
    demo_apis,
    environment,
    fresh_folder,
    landscape_days,
    log,
    measurement,
    median_ratio,
    platform_env,
    reset_outputs,
    simulate_landscape,
    start_process,
    stop_process,
    wait_for,
)

NAME = "celery"
TITLE = "Scale-out: every extract for 30 days, in process vs two Celery workers"
TARGET_RATIO = 1.6
# What `dagster asset materialize` selects: every extract (the quarantine asset is not one).
EXTRACTS = "key:raw/* and not key:raw/platform/quarantine"
WORKER_CONFIG = PROJECT_ROOT / "deploy" / "celery_worker.yaml"
BIN = Path(sys.executable).parent
WORKERS = 2
# Simulator scale of the full run, picked from quick trials on this machine (2026-12-01, one
# and two days, the bare extractors timed per source): all nine sources together took about
# 0.4 s of work per day at scale 1, 0.7 s at 4, 1.0 s at 8 and 1.6 s at 16 (per-partition
# fixed costs dominate small scales: a scratch DuckDB, two files, their fsyncs). What the
# Celery executor adds does not grow with the data: about 0.2 s between one step's end and the
# same worker's next (the result over the broker, the worker building the run's instance and
# plan) and about 2 s per run (the run process polls its tasks once a second, so the run ends a
# second or two after its last step). At scale 16, 30 days make steps of about 2 to 11 s (a
# 10-day trial: 0.7 to 3.6 s) and about 50 s of work in process, so those costs are a few
# percent of the run on two workers; at scale 1 they would be a quarter of it, and the ratio
# would measure them, not the workers.
# Simulating 30 days at scale 16 takes about 4 minutes (about 1.3 GB of landing files and
# service databases); the full benchmark about 10 minutes.
SCALE = 16.0


# ---------------------------------------------------------------------------------------------
# The broker and the instance


@contextmanager
def broker() -> Iterator[str]:
    """A RabbitMQ virtual host of the benchmark's own (removed after); Skip when unavailable."""
    from benchmarks.scratch_broker import BrokerUnavailable, fresh_vhost

    with ExitStack() as stack:
        try:
            url = stack.enter_context(fresh_vhost("bp_bench_celery"))
        except BrokerUnavailable as error:
            raise Skip(str(error)) from None
        yield url


@contextmanager
def postgres_home(work: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    """DAGSTER_HOME on a scratch PostgreSQL database (dropped after), its schema created once
    before several processes race to; Skip when no PostgreSQL server answers."""
    from benchmarks.postgres_storage import PostgresUnavailable, fresh_database, production_home

    with ExitStack() as stack:
        try:
            pg = stack.enter_context(fresh_database("bp_bench_celery"))
        except PostgresUnavailable as error:
            raise Skip(str(error)) from None
        yield production_home(fresh_folder(work / "dagster_home"), pg), pg


def start_workers(
    env: dict[str, str], logs: Path
) -> tuple[dict[str, tuple[subprocess.Popen, Path]], float]:
    """Two workers, each one step at a time on both queues, started together; returns them by
    the name their step events carry, and the seconds until both said they were ready."""
    from batch_platform import execution

    started = time.perf_counter()
    workers = {}
    for letter in "ab"[:WORKERS]:
        name = f"bench-{letter}-{uuid.uuid4().hex[:6]}"
        command = [str(BIN / "dagster-celery"), "worker", "start", "-A", "dagster_celery.app"]
        command += ["-y", str(WORKER_CONFIG), "-n", name]
        command += ["-q", f"{execution.DEFAULT_QUEUE},{execution.WAREHOUSE_QUEUE}"]
        command += ["--", "--concurrency=1"]
        log_path = logs / f"{name}.log"
        workers[f"{name}@{os.uname().nodename}"] = (start_process(command, env, log_path), log_path)
    try:
        for process, log_path in workers.values():
            wait_for(
                lambda p=process, path=log_path: _ready(p, path), 180, "Celery worker ready", 0.25
            )
    except BaseException:
        for process, _ in workers.values():
            stop_process(process)
        raise
    return workers, time.perf_counter() - started


def _ready(process: subprocess.Popen, log_path: Path) -> bool:
    if process.poll() is not None:
        tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-15:])
        raise RuntimeError(f"Celery worker exited with code {process.returncode}:\n{tail}")
    return " ready." in log_path.read_text(errors="replace")


# ---------------------------------------------------------------------------------------------
# CPU: how many cores the platform's processes used while a run ran


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def sessions_cpu_seconds(sessions: set[int]) -> float:
    """CPU seconds (user + system, with their waited-for children's) of every process in these
    sessions, from /proc: each server and each command is started in a session of its own."""
    ticks = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended meanwhile
            continue
        # after the command name: state ppid pgrp session ... utime stime cutime cstime (12-15)
        if int(fields[3]) in sessions:
            ticks += sum(int(value) for value in fields[11:15])
    return ticks / CLOCK_TICKS


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine has spent not idle (every process, anyone's), /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle, iowait
    return (sum(values[:8]) - idle) / CLOCK_TICKS


class CpuSampler:
    """Samples, a few times a second, the CPU seconds of some sessions and of the machine, so
    that the cores used between two instants (a run's start and end, as the instance recorded
    them, on the same clock) can be read afterwards."""

    def __init__(self, sessions: set[int], interval: float = 0.5) -> None:
        import threading

        self.sessions = set(sessions)
        self.interval = interval
        self.samples: list[tuple[float, float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _sample(self) -> None:
        self.samples.append(
            (time.time(), sessions_cpu_seconds(self.sessions), machine_busy_seconds())
        )

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.interval)

    def __enter__(self) -> CpuSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def _at(self, when: float, column: int) -> float:
        """The column's value at `when`, interpolated between the samples around it."""
        before = [s for s in self.samples if s[0] <= when] or self.samples[:1]
        after = [s for s in self.samples if s[0] >= when] or self.samples[-1:]
        (t0, *a), (t1, *b) = before[-1], after[0]
        if t1 <= t0:
            return a[column]
        return a[column] + (b[column] - a[column]) * (when - t0) / (t1 - t0)

    def cores(self, start: float, end: float) -> tuple[float, float]:
        """(the sessions' cores, the whole machine's busy cores) on average from start to end."""
        span = max(end - start, 1e-9)
        return tuple(  # type: ignore[return-value]
            (self._at(end, column) - self._at(start, column)) / span for column in (0, 1)
        )


# ---------------------------------------------------------------------------------------------
# Runs and what they wrote


def materialize(env: dict[str, str], days: list[str], sampler: CpuSampler) -> float:
    """`dagster asset materialize` of every extract over `days` as ONE run, in a session of its
    own that `sampler` watches; its wall seconds."""
    command = [str(BIN / "dagster"), "asset", "materialize", "-m", "batch_platform.definitions"]
    command += ["--select", EXTRACTS, "--partition-range", f"{days[0]}...{days[-1]}"]
    started = time.perf_counter()
    process = subprocess.Popen(  # noqa: S603 - a fixed argument list
        command,
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    sampler.sessions.add(process.pid)
    try:
        _, stderr = process.communicate(timeout=3600)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    if process.returncode != 0:
        tail = "\n".join(stderr.strip().splitlines()[-20:])
        raise RuntimeError(
            f"{' '.join(command)} failed with exit code {process.returncode}:\n{tail}"
        )
    return time.perf_counter() - started


def latest_run(instance, before: set[str]):
    """The one run created since `before` (run ids), checked successful."""
    import dagster as dg

    records = [r for r in instance.get_run_records() if r.dagster_run.run_id not in before]
    if len(records) != 1:
        raise RuntimeError(f"expected one new run, found {len(records)}")
    record = records[0]
    if record.dagster_run.status != dg.DagsterRunStatus.SUCCESS:
        raise RuntimeError(f"run {record.dagster_run.run_id} ended {record.dagster_run.status}")
    return record


def steps_of(instance, run_id: str) -> dict[str, dict]:
    """Per step: start, end, seconds, and on Celery the worker, when it was submitted and when
    the worker began it (the worker's engine event, after it built the run's plan)."""
    import dagster as dg

    steps: dict[str, dict] = {}
    for record in instance.all_logs(run_id):
        event = record.dagster_event
        if event is None or not record.step_key:
            continue
        step = steps.setdefault(record.step_key, {})
        kind = event.event_type
        if kind == dg.DagsterEventType.STEP_START:
            step["start"] = record.timestamp
        elif kind == dg.DagsterEventType.STEP_SUCCESS:
            step["end"] = record.timestamp
        elif kind == dg.DagsterEventType.ENGINE_EVENT:
            metadata = event.engine_event_data.metadata if event.engine_event_data else {}
            if "Celery worker" in metadata:
                step["worker"] = metadata["Celery worker"].value
                step["begun"] = record.timestamp
            elif (event.message or "").startswith("Submitting celery task"):
                step["submitted"] = record.timestamp
    for key, step in steps.items():
        if "start" not in step or "end" not in step:
            raise RuntimeError(f"step {key} of run {run_id} has no start or no success")
        step["seconds"] = step["end"] - step["start"]
    return steps


def lake_digest(data_dir: Path) -> dict[str, str]:
    """sha256 of every file the extracts wrote (lake and quarantine), by relative path."""
    lake = data_dir / "lake"
    return {
        str(path.relative_to(lake)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(lake.rglob("*"))
        if path.is_file()
    }


def lake_rows(data_dir: Path) -> int:
    """Rows of every raw lake partition (what the extracts loaded)."""
    import pyarrow.parquet as pq

    return sum(
        pq.ParquetFile(path).metadata.num_rows
        for path in (data_dir / "lake" / "raw").rglob("*.parquet")
    )


def same_lake(expected: dict[str, str], got: dict[str, str], what: str) -> None:
    """Raise AssertionError naming the first files that differ."""
    if expected == got:
        return
    differing = sorted(k for k in expected.keys() | got.keys() if expected.get(k) != got.get(k))
    raise AssertionError(
        f"{what}: lake files differ from the in-process run's in {len(differing)} file(s), "
        f"e.g. {', '.join(differing[:3])}"
    )


def best_split_ratio(seconds: list[float], workers: int = WORKERS) -> float:
    """The best speed-up any assignment of these steps to `workers` could give, no overhead:
    the sum over the longest worker's share (exact for a handful of steps)."""
    from itertools import product

    best = sum(seconds)
    for assignment in product(range(workers), repeat=len(seconds)):
        loads = [0.0] * workers
        for worker, value in zip(assignment, seconds, strict=True):
            loads[worker] += value
        best = min(best, max(loads))
    return sum(seconds) / best


def first_steps(steps: dict[str, dict]) -> dict[str, float]:
    """Per worker, its first step's seconds from submitted to begun: on a worker that has not
    run a step yet, mostly its code-location load (both workers are idle when a run starts)."""
    first: dict[str, float] = {}
    for step in sorted(steps.values(), key=lambda s: s.get("begun", 0)):
        if "worker" in step and "submitted" in step:
            first.setdefault(step["worker"], step["begun"] - step["submitted"])
    return first


def worker_profile(steps: dict[str, dict]) -> dict:
    """Per worker: its steps in order, busy seconds; and the gaps between a step's success and
    the same worker beginning its next step (the per-step cost of a warm worker)."""
    by_worker: dict[str, list[tuple[str, dict]]] = {}
    for key, step in steps.items():
        by_worker.setdefault(step.get("worker", "?"), []).append((key, step))
    gaps, workers = [], {}
    for worker, items in by_worker.items():
        items.sort(key=lambda item: item[1]["start"])
        for (_, before), (_, after) in zip(items, items[1:], strict=False):
            if "begun" in after:
                gaps.append(after["begun"] - before["end"])
        workers[worker.split("@")[0]] = {
            "steps": [key for key, _ in items],
            "busy_seconds": round(sum(step["seconds"] for _, step in items), 2),
        }
    return {"workers": workers, "gaps": gaps}


# ---------------------------------------------------------------------------------------------
# The benchmark


def run(ctx: Context) -> dict:
    import dagster as dg

    from batch_platform import execution

    days_count, scale, repeats = ctx.pick(full=(30, SCALE, 3), quick=(2, 0.2, 1))
    data_dir = ctx.work / "data"
    with ExitStack() as stack:
        url = stack.enter_context(broker())
        home, pg = stack.enter_context(postgres_home(ctx.work))
        log(f"celery: simulating {days_count} days at scale {scale}")
        simulate_seconds, manifest = simulate_landscape(data_dir, BENCH_START, days_count, scale)
        days = landscape_days(manifest)
        stack.enter_context(demo_apis(data_dir))  # the API sources, for every process
        stack.enter_context(environment(**pg))  # this process reads the instance too
        base = {
            **os.environ,
            **{k: v for k, v in platform_env(data_dir, start=days[0]).items() if v is not None},
            **pg,
            "DAGSTER_HOME": str(home),
            execution.BROKER_ENV: url,
            "PYTHONWARNINGS": "ignore",
            # The worker runs the venv's `celery`.
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        }
        for name in ("INVENTORY_DB_URL", "CUSTOMERS_DB_URL"):
            base.pop(name, None)
        envs = {
            "in_process": {**base, execution.EXECUTOR_ENV: execution.IN_PROCESS},
            "celery": {**base, execution.EXECUTOR_ENV: execution.CELERY},
        }
        logs = fresh_folder(ctx.work / "logs")
        instance = stack.enter_context(dg.DagsterInstance.from_config(str(home)))
        workers: dict[str, tuple[subprocess.Popen, Path]] = {}

        def stop_workers() -> None:
            for process, _ in workers.values():
                stop_process(process)

        stack.callback(stop_workers)
        # Per way of running: seconds (run start to end), command seconds, cores, busy cores.
        figures: dict[str, dict[str, list[float]]] = {}
        digests: dict[str, dict[str, str]] = {}
        rows: set[int] = set()
        in_process_steps: list[dict[str, float]] = []
        profiles: dict[str, list[dict]] = {}
        edges: list[tuple[float, float]] = []  # run start to first step begun, last end to end

        def one(how: str, run_days: list[str], name: str | None = None) -> dict[str, dict]:
            """One timed run of `how` over `run_days`, its figures kept under `name`."""
            before = {r.dagster_run.run_id for r in instance.get_run_records()}
            with CpuSampler({p.pid for p, _ in workers.values()}) as sampler:
                wall = materialize(envs[how], run_days, sampler)
            record = latest_run(instance, before)
            steps = steps_of(instance, record.dagster_run.run_id)
            if name is None:
                return steps
            kept = figures.setdefault(name, {"seconds": [], "wall": [], "cores": [], "busy": []})
            kept["seconds"].append(record.end_time - record.start_time)
            kept["wall"].append(wall)
            for key, value in zip(
                ("cores", "busy"), sampler.cores(record.start_time, record.end_time), strict=True
            ):
                kept[key].append(value)
            digest = lake_digest(data_dir)
            digests.setdefault(name, digest)
            same_lake(digests.get("in_process", digest), digest, name)
            rows.add(lake_rows(data_dir))
            if how == "in_process":
                in_process_steps.append({k: s["seconds"] for k, s in steps.items()})
                return steps
            used = {step.get("worker") for step in steps.values()}
            if used != set(workers):
                raise AssertionError(f"{name}: the steps ran on {used}, not on both workers")
            profiles.setdefault(name, []).append(worker_profile(steps))
            if name == "celery":
                edges.append(
                    (
                        min(s["begun"] for s in steps.values()) - record.start_time,
                        record.end_time - max(s["end"] for s in steps.values()),
                    )
                )
            return steps

        def start() -> tuple[float, dict[str, float]]:
            """New workers (the old ones stopped); seconds until ready, and each one's first
            step from submission to begun, in an untimed one-day run (full mode: quick mode
            saves that run and takes the figure from its first timed run)."""
            stop_workers()
            workers.clear()
            started, ready = start_workers(envs["celery"], logs)
            workers.update(started)
            if ctx.quick:
                return ready, {}
            log("celery: warming the workers (one day, untimed)")
            reset_outputs(data_dir)
            return ready, first_steps(one("celery", days[:1]))

        log("celery: starting two workers as docs/CELERY.md does")
        workers_ready, first_step = start()
        for repeat in range(repeats):
            order = ("in_process", "celery") if repeat % 2 == 0 else ("celery", "in_process")
            for how in order:
                log(f"celery: repeat {repeat + 1}/{repeats}, {how}, {days[0]}...{days[-1]}")
                reset_outputs(data_dir)
                steps = one(how, days, how)
                if how == "celery" and not first_step:
                    first_step = first_steps(steps)
        if len(rows) != 1:
            raise AssertionError(f"the runs wrote different row counts: {sorted(rows)}")

    total_rows = rows.pop()
    partitions = len(in_process_steps[0]) * days_count
    step_medians = {
        key: statistics.median(run[key] for run in in_process_steps) for key in in_process_steps[0]
    }
    longest = max(step_medians, key=step_medians.get)
    gaps = [gap for profile in profiles["celery"] for gap in profile["gaps"]]
    seconds = {name: kept["seconds"] for name, kept in figures.items()}

    def assignment(name: str) -> list[dict]:
        """Each Celery run's split of the steps, and the best ratio that split allows: the
        in-process step times summed per worker, the total over the larger share."""
        runs = []
        for profile in profiles[name]:
            loads = [
                sum(step_medians[key] for key in part["steps"])
                for part in profile["workers"].values()
            ]
            runs.append(
                {
                    "workers": profile["workers"],
                    "split_bound": round(sum(step_medians.values()) / max(loads), 3),
                }
            )
        return runs

    def rates(name: str, label: str) -> dict:
        return {
            f"{name}_seconds": measurement(
                f"{label}: one range run (start to end)", seconds[name], "s"
            ),
            f"{name}_rows_per_second": measurement(
                f"{label}: lake rows/s", [total_rows / s for s in seconds[name]], "rows/s", 0
            ),
            f"{name}_partitions_per_second": measurement(
                f"{label}: partitions/s", [partitions / s for s in seconds[name]], "partitions/s", 2
            ),
        }

    def usage(name: str, label: str) -> dict:
        kept = figures[name]
        return {
            f"{name}_command_seconds": measurement(
                f"{label}: the whole `dagster asset materialize` command", kept["wall"], "s"
            ),
            f"{name}_cores": measurement(
                f"{label}: cores the run's process and the workers used", kept["cores"], "cores", 2
            ),
            f"{name}_machine_cores": measurement(
                f"{label}: the machine's busy cores (anyone's processes)", kept["busy"], "cores", 2
            ),
        }

    optional = {
        "worker_first_step_seconds": (
            "a cold worker's first step: submitted to begun (code-location load)",
            list(first_step.values()),
        ),
        "warm_step_gap_seconds": ("a warm worker: one step's success to its next begun", gaps),
    }
    return {
        "parameters": {
            "sources": len(step_medians),
            "days": days_count,
            "scale": scale,
            "repeats": repeats,
            "workers": WORKERS,
            "worker_concurrency": 1,
            "rows": total_rows,
            "lake_files": len(digests["in_process"]),
            "instance": "PostgreSQL (deploy/dagster.production.yaml)",
        },
        "measurements": {
            **rates("in_process", "in process"),
            **rates("celery", "two Celery workers"),
            **usage("in_process", "in process"),
            **usage("celery", "two Celery workers"),
            "longest_step_seconds": measurement(
                f"longest step in process ({longest})",
                [run[longest] for run in in_process_steps],
                "s",
            ),
            "workers_ready_seconds": measurement(
                "two workers started together, until both are ready", [workers_ready], "s"
            ),
            **{
                key: measurement(label, values, "s")
                for key, (label, values) in optional.items()
                if values
            },
            "celery_to_first_step_seconds": measurement(
                "Celery run: run start to its first step begun on a worker",
                [edge[0] for edge in edges],
                "s",
            ),
            "celery_after_last_step_seconds": measurement(
                "Celery run: last step's success to the run's end", [edge[1] for edge in edges], "s"
            ),
        },
        "checks": [
            check(
                "Celery throughput / in-process throughput",
                median_ratio(seconds["in_process"], seconds["celery"]),
                f"every extract over {days_count} days as one run, the same instance and lake: "
                "in-process run seconds divided by the run's seconds on two Celery workers "
                "started as docs/CELERY.md does (median of per-repeat ratios, the order "
                "alternating; 2x is the bound on two cores)",
                target=TARGET_RATIO,
            ),
            check(
                "best split of these steps over two workers",
                best_split_ratio(list(step_medians.values())),
                "the in-process step times (medians): their sum over the larger worker's "
                "share in the best assignment of the nine steps to two workers, no overhead; "
                "the most the range run's step granularity allows",
            ),
        ],
        "info": {
            "simulate_seconds": round(simulate_seconds, 1),
            "in_process_step_seconds": {k: round(v, 2) for k, v in sorted(step_medians.items())},
            "longest_step_share": round(step_medians[longest] / sum(step_medians.values()), 3),
            "celery_assignment": assignment("celery"),
            "worker_first_step_seconds": {
                k.split("@")[0]: round(v, 2) for k, v in first_step.items()
            },
        },
    }
