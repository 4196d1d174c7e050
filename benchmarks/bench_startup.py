"""Start-up: how long a fresh process takes to load the code location, next to bare Dagster.

Every run the daemon launches, every code-server restart and every `dagster dev` reload pays
this in a new interpreter, so it is measured in one: `python -c "import
batch_platform.definitions"` (registry from the dbt manifest, one asset per source, two dbt
multi-assets, policies) against `python -c "import dagster"`, the floor any code location pays.
The two alternate within each repeat so a busy moment hits both. The manifest is brought up to
date first and re-checked before every repeat: a stale one would add a `dbt parse` to the
figure, which is a different cost (see `batch_platform.dbt_project.ensure_manifest`).
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys

from benchmarks.harness import (
    API_TOKEN,
    PII_SALT,
    Context,
    check,
    environment,
    measurement,
    median_ratio,
    run_process,
)

NAME = "startup"
TITLE = "Start-up: loading the code location"

_DEFINITIONS = "import batch_platform.definitions"
_IMPORT_LINE = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \|( +)(\S+)$")
_DAGSTER = "import dagster"
_PEAK = "; print(open('/proc/self/status').read().split('VmHWM:')[1].split()[0])"  # kB


def import_breakdown(env: dict) -> dict[str, float]:
    """Where the load goes: `python -X importtime`, the modules the definitions import directly.

    Cumulative seconds of each direct import of `batch_platform.definitions` that takes more
    than 50 ms (in import order, so a package shared by two is charged to the first), and the
    module's own body (`self`).
    """
    child_env = {**os.environ, **env}
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", _DEFINITIONS],
        env=child_env,
        capture_output=True,
        text=True,
        check=True,
    )
    parts: dict[str, float] = {}
    for line in result.stderr.splitlines():
        match = _IMPORT_LINE.match(line)
        if not match:
            continue
        own, cumulative, indent, name = match.groups()
        if name == "batch_platform.definitions":
            parts["total"] = int(cumulative) / 1e6
            parts["batch_platform.definitions (own body)"] = int(own) / 1e6
        elif len(indent) == 3 and int(cumulative) > 50_000:
            parts[name] = round(parts.get(name, 0.0) + int(cumulative) / 1e6, 3)
    return parts


def _load(statement: str, env: dict) -> tuple[float, float]:
    """A fresh interpreter running `statement`; (wall seconds, its peak RSS in MiB).

    The process reports its own high-water mark (VmHWM) as it ends: seen from here, the
    kernel's figure would start from this process's size (see `harness.peak_rss_bytes`).
    """
    seconds, stdout = run_process([sys.executable, "-c", statement + _PEAK], env)
    return seconds, int(stdout.split()[-1]) / 1024


def run(ctx: Context) -> dict:
    from batch_platform.dbt_project import ensure_manifest as parse_if_stale
    from batch_platform.dbt_project import manifest_is_stale

    def ensure_manifest() -> None:  # into the project's target/, which the code location reads
        with environment(DBT_TARGET_PATH=None):
            parse_if_stale()

    repeats = ctx.pick(full=5, quick=1)
    # The work folder holds no demo landscape, so the platform runs as outside the demo and
    # loads only with its secrets set (batch_platform/settings.py): stand-ins of our own.
    env = {
        "BATCH_PLATFORM_DATA_DIR": str(ctx.work),
        "BATCH_PLATFORM_PII_SALT": PII_SALT,
        "BATCH_PLATFORM_API_TOKEN": API_TOKEN,
        "PYTHONWARNINGS": "ignore",
    }
    ensure_manifest()
    if not ctx.quick:
        # One untimed load of each first, so both start with the same warm file cache.
        for statement in (_DAGSTER, _DEFINITIONS):
            run_process([sys.executable, "-c", statement], env)
    definitions, dagster, definitions_rss, dagster_rss = [], [], [], []
    reparsed = 0
    for _ in range(repeats):
        if manifest_is_stale():
            reparsed += 1  # someone edited the dbt project meanwhile: parse outside the timing
            ensure_manifest()
        seconds, rss = _load(_DAGSTER, env)
        dagster.append(seconds)
        dagster_rss.append(rss)
        seconds, rss = _load(_DEFINITIONS, env)
        definitions.append(seconds)
        definitions_rss.append(rss)
    breakdown = {} if ctx.quick else import_breakdown(env)
    notes = []
    if reparsed:
        notes.append(f"the dbt manifest went stale {reparsed} time(s) and was re-parsed untimed")
    return {
        "parameters": {"repeats": repeats},
        "measurements": {
            "definitions_seconds": measurement(
                "`import batch_platform.definitions`", definitions, "s"
            ),
            "dagster_seconds": measurement("`import dagster` (baseline)", dagster, "s"),
            "definitions_peak_rss_mib": measurement(
                "peak RSS, code location", definitions_rss, "MiB", 0
            ),
            "dagster_peak_rss_mib": measurement("peak RSS, bare Dagster", dagster_rss, "MiB", 0),
        },
        "checks": [
            check(
                "code location load / bare dagster import",
                median_ratio(definitions, dagster),
                "wall time of a fresh interpreter importing the definitions, divided by one "
                "importing dagster alone (median of per-repeat ratios)",
            ),
            check(
                "code location load",
                statistics.median(definitions),
                "median seconds to import batch_platform.definitions in a fresh process",
                unit="s",
            ),
        ],
        "info": {"import_seconds_one_run": breakdown},
        "notes": notes,
    }
