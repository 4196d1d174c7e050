"""The benchmark harness runs end to end in quick mode and writes well-formed results.

The numbers are not judged here (a shared CI machine is too noisy for that); what is checked is
that every benchmark either produced its figures or says why it was skipped, so `make bench`
cannot silently rot. Results go to a temporary folder: the committed benchmarks/results.json
and docs/BENCHMARKS.md are never touched.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

PROJECT_ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.timeout(1800)
def test_quick_benchmarks_complete_with_well_formed_results(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(PROJECT_ROOT))  # benchmarks/ is not an installed package
    from benchmarks.run import BENCHMARKS, FULL_OUTPUT, FULL_REPORT

    committed = {p: p.stat().st_mtime_ns for p in (FULL_OUTPUT, FULL_REPORT) if p.exists()}
    output = tmp_path / "results.json"
    completed = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--quick", "--output", str(output)]
        + ["--work", str(tmp_path / "work")],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]

    results = json.loads(output.read_text())
    assert results["mode"] == "quick"
    assert {"cores", "memory_bytes", "cpu_model", "python", "versions"} <= set(results["machine"])
    assert set(results["benchmarks"]) == set(BENCHMARKS)
    for name, bench in results["benchmarks"].items():
        assert bench["status"] in {"ok", "skipped"}, (name, bench.get("reason"))
        if bench["status"] == "skipped":
            assert bench["reason"].strip(), name
            continue
        assert bench["measurements"] and bench["checks"], name
        for m in bench["measurements"].values():
            assert m["repeats"], (name, m)
            assert m["min"] <= m["median"] <= m["max"], (name, m)
        for check in bench["checks"]:
            assert isinstance(check["value"], int | float), (name, check)
            assert check["met"] in {True, False, None}, (name, check)
            assert (check["target"] is None) == (check["met"] is None), (name, check)

    report = output.with_suffix(".md").read_text()
    assert report.startswith("# Benchmarks")
    for name in BENCHMARKS:
        assert f"--only {name}" in report
    # The committed figures are not overwritten by a quick run.
    assert {p: p.stat().st_mtime_ns for p in committed} == committed
