"""PostgreSQL briefly unreachable under a running daemon: it carries on, no sensor cursor lost.

The daemon and everything it starts (its code server, the runs) reach PostgreSQL through a TCP
relay (tests/tcp_relay.py) that the test cuts for OUTAGE_SECONDS: nothing listens on the port
and every open connection is closed, as in a network partition or a database failover. The
machine's PostgreSQL itself keeps running (other sessions use it); this process reads the
instance directly, not through the relay.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import dagster as dg
import pytest
from dagster_ui import BIN, free_port, process_groups, wait_until
from support import API_TOKEN, scratch
from tcp_relay import TcpRelay
from test_daemon_e2e import SNAPSHOT, START, describe, finished, latest_storage_id

from batch_platform.simulator import simulate
from benchmarks.harness import sensor_tick_records
from benchmarks.postgres_storage import fresh_database, production_home

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

OUTAGE_SECONDS = 30
# The sensors whose cursors carry the platform's progress: the landing high-water mark and
# source watermarks, the last extract materialisation taken downstream, the automation's
# evaluation (its ticks number the evaluations; a lost cursor starts again at 1).
NEW_DATA, DOWNSTREAM, AUTOMATION = "new_data_sensor", "downstream_sensor", "platform_automation"
SENSORS = (NEW_DATA, DOWNSTREAM, AUTOMATION)
BOOTSTRAP_SECONDS = 600
RESUME_SECONDS = 180  # the sensors tick every 15-30 s; the daemon's loops back off after errors


def sensor_states(instance: dg.DagsterInstance) -> dict[str, object]:
    """Every sensor's stored state, by name."""
    return {
        state.name: state
        for state in instance.all_instigator_state()
        if state.instigator_type.value == "SENSOR"
    }


def ticked_since(instance: dg.DagsterInstance, moment: float) -> bool:
    """Every sensor in SENSORS has completed a tick that began after `moment`."""
    return all(
        any(
            tick.status.value in ("SUCCESS", "SKIPPED")
            for tick in sensor_tick_records(instance, name, moment)
        )
        for name in SENSORS
    )


def settled(instance: dg.DagsterInstance) -> bool:
    """No run unfinished, and every sensor ticked after the last run ended: the cursors hold
    everything the runs did, and no sensor is about to launch another."""
    if not finished(instance):
        return False
    last_end = max((record.end_time or 0 for record in instance.get_run_records()), default=0)
    return ticked_since(instance, last_end)


def heartbeats_since(instance: dg.DagsterInstance, moment: float) -> dict | None:
    """Every daemon's last heartbeat, once each is later than `moment`."""
    beats = instance.get_daemon_heartbeats()
    return beats if beats and all(b.timestamp > moment for b in beats.values()) else None


def evaluation_ids(sensor_ticks: list) -> list[int]:
    ids = (tick.automation_condition_evaluation_id for tick in sensor_ticks)
    return [evaluation for evaluation in ids if evaluation is not None]


@pytest.fixture
def postgres() -> Iterator[dict[str, str]]:
    """A database of this test's own (the session's `dagster_postgres_database` is shared by
    the daemon end-to-end test, whose runs must not mix with these)."""
    with scratch(fresh_database("bp_outage")) as pg:
        yield pg


@pytest.mark.timeout(BOOTSTRAP_SECONDS + OUTAGE_SECONDS + RESUME_SECONDS + 180)
def test_daemon_survives_a_postgres_outage_and_keeps_every_sensor_cursor(
    tmp_path, monkeypatch, postgres
):
    """Bootstrap a small landscape with the daemon on PostgreSQL, cut PostgreSQL off for 30 s,
    restore it: the daemon process lives on, every daemon heartbeats again, the sensors tick
    again, the cursors stored before the outage are still there (the landing mark and the
    downstream mark unchanged, the automation's evaluations numbered on), and no day is
    extracted again (a lost new-data cursor would re-request the whole history)."""
    pg = postgres
    relay = TcpRelay(pg["DAGSTER_PG_HOST"], int(pg["DAGSTER_PG_PORT"]))
    try:
        relay.start()
        data, home = tmp_path / "data", production_home(tmp_path / "dagster_home", pg)
        simulate(data, start=START, days=2, seed=3, scale=0.02)
        for name, value in pg.items():  # this process reads the instance directly
            monkeypatch.setenv(name, value)
        api_port = free_port()
        env = {
            **os.environ,
            **pg,
            "DAGSTER_PG_PORT": str(relay.port),  # the daemon and all it starts: via the relay
            "DAGSTER_HOME": str(home),
            "BATCH_PLATFORM_DATA_DIR": str(data),
            "BATCH_PLATFORM_START_DATE": START.isoformat(),
            "BATCH_PLATFORM_END_DATE": "2026-03-03",  # both simulated days are partitions
            "BATCH_PLATFORM_API_TOKEN": API_TOKEN,
            "CATALOG_API_URL": f"http://127.0.0.1:{api_port}/catalog",
            "PROMOTIONS_API_URL": f"http://127.0.0.1:{api_port}/promotions",
        }
        with (
            process_groups() as groups,
            dg.DagsterInstance.from_config(str(home)) as instance,
        ):
            apis = groups.start(
                "apis",
                [str(BIN / "batch-platform"), "serve-apis", "--port", str(api_port)],
                env,
                tmp_path / "apis.log",
            )
            daemon = groups.start(
                "dagster-daemon",
                [str(BIN / "dagster-daemon"), "run", "-w", "workspace.yaml"],
                env,
                tmp_path / "daemon.log",
            )
            alive = (apis, daemon)

            # 1. The bootstrap, then a full round of sensor ticks after its last run ended, so
            # that the cursors hold everything it did and no run is in flight at the cut.
            wait_until(
                lambda: latest_storage_id(instance, SNAPSHOT) and settled(instance),
                BOOTSTRAP_SECONDS,
                "the bootstrap to publish the snapshot and the sensors to tick after it",
                alive,
                interval=3,
            )
            runs_before = instance.get_run_records()
            assert finished(instance), describe(runs_before)
            before = {
                name: sensor_states(instance)[name].instigator_data.cursor for name in SENSORS
            }
            evaluated_before = max(evaluation_ids(sensor_tick_records(instance, AUTOMATION)))

            # 2. The outage.
            log_offset = daemon.log.stat().st_size
            relay.cut()
            time.sleep(OUTAGE_SECONDS)
            assert daemon.popen.poll() is None, f"the daemon died in the outage\n{daemon.tail()}"
            during = daemon.log.read_bytes()[log_offset:].decode(errors="replace")
            connected_before = relay.accepted
            relay.start()
            restored = time.time()

            # 3. After: every daemon heartbeats again and every sensor ticks again.
            wait_until(
                lambda: ticked_since(instance, restored),
                RESUME_SECONDS,
                "sensor ticks after the restore",
                alive,
                3,
            )
            heartbeats = wait_until(
                lambda: heartbeats_since(instance, restored),
                RESUME_SECONDS,
                "a heartbeat of every daemon after the restore",
                alive,
                3,
            )
            after = {name: sensor_states(instance)[name].instigator_data.cursor for name in SENSORS}
            resumed = sensor_tick_records(instance, AUTOMATION, restored)
            runs_after = instance.get_run_records()
            assert daemon.popen.poll() is None, daemon.tail()
    finally:
        relay.cut()

    # The cut reached the daemon: its loops failed to connect through the relay meanwhile.
    assert f"port {relay.port} failed" in during, during[-3000:]
    assert relay.accepted > connected_before, "nothing reconnected after the restore"
    assert {"SENSOR", "SCHEDULER", "QUEUED_RUN_COORDINATOR"} <= set(heartbeats), heartbeats
    assert all(before.values()), f"a sensor stored no cursor before the outage: {before}"
    assert after[NEW_DATA] == before[NEW_DATA]
    assert after[DOWNSTREAM] == before[DOWNSTREAM]
    assert after[AUTOMATION], "the automation's cursor was lost"
    assert min(evaluation_ids(resumed)) > evaluated_before, (evaluated_before, resumed)
    # Nothing was requested again, and no run failed.
    assert len(runs_after) == len(runs_before), describe(runs_after)
    assert dg.DagsterRunStatus.FAILURE not in {r.dagster_run.status for r in runs_after}
