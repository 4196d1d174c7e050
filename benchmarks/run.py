"""Run the benchmarks and write their figures: `make bench` / `make bench-quick`.

    python -m benchmarks.run [--quick] [--only NAME ...] [--output results.json] [--report X.md]
    python -m benchmarks.run --report-only            # regenerate docs/BENCHMARKS.md

Each benchmark generates its own landscape under the work folder, points
`BATCH_PLATFORM_DATA_DIR` there, and measures the platform next to a baseline measured in the
same invocation, so its headline figure is a ratio that survives a noisy machine. Figures go to
a JSON file (machine, versions, every repeat, min/median/max, ratios, targets, met or not) and
a Markdown report is generated from it.

The full run writes `benchmarks/results.json` and `docs/BENCHMARKS.md`, the committed figures.
A quick run writes under the work folder unless `--output` says otherwise, so a smoke test
never overwrites them. With `--only`, the other benchmarks' figures already in the output file
are kept. A benchmark that cannot run is recorded as skipped with its reason; one that fails
is recorded as failed with the error, and the exit code is 1.

The full run measures one benchmark at a time. The quick run (`--jobs 3` by default) shares the
benchmarks out among three processes: its figures are a smoke test, and most of its time is
fixed costs (interpreters loading Dagster and dbt, dbt parsing the project) that overlap well.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import shlex
import signal
import sys
import time
import traceback
from contextlib import contextmanager
from pathlib import Path

from benchmarks import harness
from benchmarks.deploy_env import adopt_platform_environment
from benchmarks.harness import (
    DEFAULT_WORK,
    PROJECT_ROOT,
    Context,
    Skip,
    cpu_model,
    environment,
    fresh_folder,
    load_average,
    log,
    machine_info,
    now_utc,
    platform_env,
)

FORMAT_VERSION = 1
# In the order they run and appear in the report: cheap and independent first.
BENCHMARKS = (
    "startup",
    "extract_events",
    "extract_database",
    "backfill",
    "incremental",
    "scaling",
    "latency",
    "bootstrap",
    "celery",
    "engines",
)
MODULES = {
    "startup": "benchmarks.bench_startup",
    "extract_events": "benchmarks.bench_extract_events",
    "extract_database": "benchmarks.bench_database_extract",
    "backfill": "benchmarks.bench_backfill",
    "incremental": "benchmarks.bench_incremental",
    "scaling": "benchmarks.bench_scaling",
    "latency": "benchmarks.bench_latency",
    "bootstrap": "benchmarks.bench_bootstrap",
    "celery": "benchmarks.bench_celery",
    "engines": "benchmarks.bench_engines",
}
FULL_OUTPUT = PROJECT_ROOT / "benchmarks" / "results.json"
FULL_REPORT = PROJECT_ROOT / "docs" / "BENCHMARKS.md"


@contextmanager
def captured_output(path: Path):
    """Send this process's stdout and stderr (and its children's) to `path` for the block.

    dbt's log lines and Dagster's warnings are useful after a failure, not on the terminal;
    redirecting the file descriptors catches what subprocesses write too.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    saved_out, saved_err = os.dup(1), os.dup(2)
    with open(path, "ab") as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved_out, 1)
        os.dup2(saved_err, 2)
        os.close(saved_out)
        os.close(saved_err)


def run_benchmark(name: str, quick: bool, work_root: Path) -> dict:
    """One benchmark in its own work folder and environment; never raises."""
    module = importlib.import_module(MODULES[name])
    work = fresh_folder(work_root / name)
    # The machine's CPU per benchmark: the report merges benchmarks run on different days, and
    # this shared machine has not always had the same processor.
    entry: dict = {
        "title": module.TITLE,
        "measured_at": now_utc(),
        "cpu_model": cpu_model(),
        "load_average": load_average(),
    }
    started = time.perf_counter()
    # dagster-dbt writes a folder per dbt invocation under DBT_TARGET_PATH: never the project's.
    env = {**platform_env(work / "data"), "DBT_TARGET_PATH": str(work / "dagster-dbt-target")}
    log(f"{name}: started (output in {work / 'output.log'})")
    try:
        with environment(**env), captured_output(work / "output.log"):
            entry.update(status="ok", **module.run(Context(quick=quick, work=work)))
    except Skip as skip:
        entry.update(status="skipped", reason=str(skip))
    except Exception as error:  # recorded, and the run goes on with the next benchmark
        entry.update(
            status="failed",
            reason=f"{type(error).__name__}: {error}",
            traceback=traceback.format_exc().splitlines()[-25:],
        )
    entry["seconds"] = round(time.perf_counter() - started, 1)
    entry["load_average_end"] = load_average()
    log(f"{name}: {entry['status']} in {entry['seconds']:.0f} s" + _headline(entry))
    return entry


def _headline(entry: dict) -> str:
    if entry["status"] != "ok":
        return f" ({entry.get('reason', '')})"
    parts = []
    for item in entry.get("checks", []):
        verdict = {True: "met", False: "MISSED", None: "info"}[item["met"]]
        parts.append(f"{item['name']} = {item['value']}{item['unit']} [{verdict}]")
    return "".join(f"\n    {p}" for p in parts)


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def _load(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _write_json(path: Path, results: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(results, indent=2) + "\n")
    os.replace(temporary, path)


# Rough cost of each benchmark in quick mode, to share them out among parallel processes.
QUICK_COST = {"scaling": 6, "incremental": 5, "backfill": 4, "celery": 4, "startup": 1}
QUICK_JOBS = 3


def _run_lanes(selected: list[str], jobs: int, quick: bool, work_root: Path) -> dict:
    """Run the benchmarks in `jobs` processes, each a sequential run of its share of them.

    Shares are balanced by QUICK_COST, longest first. Returns each benchmark's entry.
    """
    import subprocess

    lanes: list[list[str]] = [[] for _ in range(jobs)]
    for name in sorted(selected, key=lambda n: -QUICK_COST.get(n, 0)):
        min(lanes, key=lambda lane: sum(QUICK_COST.get(n, 0) for n in lane)).append(name)
    processes = []
    for number, lane in enumerate(lane for lane in lanes if lane):
        output = work_root / f"lane-{number}.json"
        output.unlink(missing_ok=True)
        command = [sys.executable, "-m", "benchmarks.run", "--lane", "--jobs", "1"]
        command += ["--quick"] if quick else []
        command += ["--only", ",".join(lane), "--output", str(output), "--work", str(work_root)]
        processes.append((lane, output, subprocess.Popen(command, cwd=PROJECT_ROOT)))
    try:
        for _, _, process in processes:
            process.wait()
    finally:  # interrupted: the lanes unwind too (they stop what they started)
        for _, _, process in processes:
            if process.poll() is None:
                process.terminate()
                process.wait()
    entries = {}
    for lane, output, process in processes:
        results = _load(output) or {"benchmarks": {}}
        for name in lane:
            entries[name] = results["benchmarks"].get(name) or {
                "title": importlib.import_module(MODULES[name]).TITLE,
                "measured_at": now_utc(),
                "status": "failed",
                "reason": f"its process exited with code {process.returncode}",
                "seconds": 0.0,
            }
    return entries


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, ~3 minutes")
    parser.add_argument(
        "--only",
        action="append",
        metavar="NAME",
        help=f"run only these (repeatable or comma-separated): {', '.join(BENCHMARKS)}",
    )
    parser.add_argument("--output", type=Path, help="results JSON [full: benchmarks/results.json]")
    parser.add_argument("--report", type=Path, help="Markdown report [beside --output, or docs/]")
    parser.add_argument("--work", type=Path, help="work folder [benchmarks/work/<full|quick>]")
    parser.add_argument(
        "--report-only", action="store_true", help="regenerate the report from the JSON"
    )
    parser.add_argument(
        "--jobs",
        type=int,
        help=f"benchmarks run in this many parallel processes [quick: {QUICK_JOBS}, full: 1, so "
        "that full figures are never measured next to another benchmark]",
    )
    parser.add_argument("--lane", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    adopt_platform_environment()  # the daemons the benchmarks start take what `make` gives

    from benchmarks.report import render

    mode = "quick" if args.quick else "full"
    if args.output:
        output = args.output.resolve()
        report = (args.report or output.with_suffix(".md")).resolve()
    elif args.quick:
        output = DEFAULT_WORK / "results-quick.json"
        report = (args.report or DEFAULT_WORK / "BENCHMARKS-quick.md").resolve()
    else:
        output, report = FULL_OUTPUT, (args.report or FULL_REPORT).resolve()

    if args.report_only:
        results = _load(output)
        if results is None:
            parser.error(f"no results to report in {output}")
        report.write_text(render(results))
        log(f"report written to {report}")
        return 0

    selected = list(BENCHMARKS)
    if args.only:
        wanted = [n.strip() for item in args.only for n in item.split(",") if n.strip()]
        unknown = sorted(set(wanted) - set(BENCHMARKS))
        if unknown:
            parser.error(f"unknown benchmark(s) {', '.join(unknown)}; known: {BENCHMARKS}")
        selected = [n for n in BENCHMARKS if n in wanted]

    # A terminated run unwinds like Ctrl-C, so a benchmark's `finally` stops what it started
    # (the latency and bootstrap benchmarks' daemon, code server and webserver).
    signal.signal(signal.SIGTERM, _interrupt)
    work_root = (args.work or DEFAULT_WORK / mode).resolve()
    work_root.mkdir(parents=True, exist_ok=True)
    # The terminal gets progress lines; each benchmark's own output goes to its log file.
    harness.progress = os.fdopen(os.dup(2), "w", buffering=1)

    # The manifest must be current before anything is timed: a stale one costs a `dbt parse`.
    if not args.lane:
        from batch_platform.dbt_project import ensure_manifest

        with environment(DBT_TARGET_PATH=None):
            ensure_manifest()

    previous = _load(output) if args.only else None
    keep = previous if previous and previous.get("mode") == mode else None
    results = {
        "format_version": FORMAT_VERSION,
        "mode": mode,
        "command": shlex.join(["python", "-m", "benchmarks.run", *(argv or sys.argv[1:])]),
        "started_at": now_utc(),
        "machine": machine_info(),
        "benchmarks": dict(keep["benchmarks"]) if keep else {},
    }
    started = time.perf_counter()
    jobs = args.jobs or (QUICK_JOBS if args.quick else 1)
    log(f"{mode} run of {', '.join(selected)} ({jobs} at a time); figures to {output}")

    def save() -> None:  # after every benchmark, so a crash keeps what was done
        results["benchmarks"] = {
            n: results["benchmarks"][n] for n in BENCHMARKS if n in results["benchmarks"]
        }
        results["finished_at"] = now_utc()
        results["seconds"] = round(time.perf_counter() - started, 1)
        _write_json(output, results)

    if jobs > 1 and len(selected) > 1:
        results["jobs"] = jobs
        results["benchmarks"].update(_run_lanes(selected, jobs, args.quick, work_root))
        save()
    else:
        for name in selected:
            results["benchmarks"][name] = run_benchmark(name, args.quick, work_root)
            save()
    if args.lane:
        return 0
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(render(results))
    log(f"done in {results['seconds']:.0f} s; figures in {output}, report in {report}")
    failed = [n for n in selected if results["benchmarks"][n]["status"] == "failed"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
