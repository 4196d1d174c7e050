"""The dlt peer of the extract benchmarks enforces the platform's contract, no more, no less.

The benchmark's ratio to dlt is only fair if dlt is made to do the same checks: its Pydantic
model (`benchmarks.dlt_peer.contract_model`, built from the registry) must accept exactly the
lines the simulator's own judge (`simulator.contract.classify`) calls valid, for every line of
a generated landscape; and a real dlt load of those files must write exactly the valid lines,
duplicates included (dlt does not de-duplicate).
"""

import json
from datetime import date

import pytest
from pydantic import ValidationError

from batch_platform.dbt_project import load_manifest
from batch_platform.registry import load_registry
from batch_platform.simulator import simulate
from batch_platform.simulator.contract import EVENT_SOURCES, classify

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def landscape(tmp_path_factory):
    folder = tmp_path_factory.mktemp("peer-landscape")
    return folder, simulate(folder, date(2026, 3, 1), 2, seed=11, scale=0.5)


@pytest.fixture(scope="module")
def specs():
    return {s.path: s for s in load_registry(load_manifest()) if s.access == "events"}


@pytest.fixture(autouse=True)
def _benchmarks_importable(monkeypatch):
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parent.parent))


def test_contract_model_accepts_exactly_the_valid_lines(landscape, specs):
    from benchmarks.dlt_peer import contract_model

    folder, _ = landscape
    judged = 0
    for source in EVENT_SOURCES:
        model = contract_model(specs[source])
        for path in sorted((folder / "landing" / source).rglob("*.jsonl")):
            for line in path.read_text().splitlines():
                verdict, _ = classify(source, line)
                try:
                    record = json.loads(line)
                except ValueError:
                    assert verdict == "malformed", (source, line)
                    continue
                if not isinstance(record, dict):
                    assert verdict == "malformed", (source, line)
                    continue
                try:
                    model.model_validate(record)
                    accepted = True
                except ValidationError:
                    accepted = False
                assert accepted == (verdict == "valid"), (source, verdict, line)
                judged += 1
    assert judged > 1000


def test_dlt_loads_the_valid_lines_with_their_duplicates(landscape, specs, tmp_path):
    pytest.importorskip("dlt", reason="the bench extra (pip install -e '.[bench]') is missing")
    from benchmarks.dlt_peer import load_events

    folder, manifest = landscape
    spec = specs["orders/order_events"]
    truth = manifest["sources"][spec.path]["totals"]
    days = sorted(manifest["sources"][spec.path]["partitions"])
    loaded = load_events(spec, folder, tmp_path, days)
    assert loaded["lines_not_objects"] == truth["malformed"]
    assert loaded["rows"] == truth["loaded"] + truth["duplicates"]
    assert (tmp_path / "dlt-pipelines" / "events_peer").is_dir()  # dlt's state stays here
