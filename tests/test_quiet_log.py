"""A quiet log: loading the code location prints none of Dagster's beta/preview warnings.

`dagster dev` loads the definitions in every code server and every run worker; each load used
to print the same ten Beta/Preview warnings (621 lines in 45 minutes). The load runs in a fresh
interpreter, as Dagster's processes do, with Python's `-W default` so that a warning shown
once per process would be printed here too.
"""

import os
import subprocess
import sys

from batch_platform.paths import PROJECT_ROOT

DAGSTER_WARNINGS = ("BetaWarning", "PreviewWarning", "SupersessionWarning")


def test_loading_the_code_location_prints_no_dagster_lifecycle_warning():
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    done = subprocess.run(
        [
            sys.executable,
            "-W",
            "default",
            "-c",
            "from batch_platform.definitions import defs; "
            "print(len(list(defs.resolve_all_asset_specs())))",
        ],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert int(done.stdout.strip()) > 0  # the definitions did load
    noisy = [line for line in done.stderr.splitlines() if any(w in line for w in DAGSTER_WARNINGS)]
    assert noisy == []
