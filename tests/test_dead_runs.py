"""Writers that die: a run killed inside its warehouse step, a snapshot publish killed mid-write.

Real processes, killed with SIGKILL:

- a run killed inside its warehouse-writing step (a dbt model, holding the `duckdb_warehouse`
  pool's only slot), launched each way the README shows: from the command line, from the UI
  (GraphQL through a real webserver, into the run queue, launched by a real daemon), and by a
  daemon that is then killed with its code server and run (a crash of `dagster dev`). Each
  time a second warehouse writer must complete within a bounded wait, and the killed run must
  be failed with a message saying why. The instance is deploy/dagster.yaml with run monitoring
  looking every 2 s and freeing a dead run's slots 5 s after it failed (deployed: 30 s, 60 s);
  the platform's `dead_run_check` sensor keeps its own interval (15 s);
- a publish of the analyst snapshot killed while DuckDB writes its temporary file: the next
  publish removes the dead writer's files and succeeds, and never touches the files of a
  publish that is still running (here: one stopped with SIGSTOP, then let go).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import duckdb
import pytest
import yaml
from dagster_ui import (
    BIN,
    WORKSPACE,
    Process,
    ProcessGroups,
    launch_asset_run,
    process_groups,
    stop_sensors,
    wait_until,
)

from batch_platform.paths import DATA_DIR_ENV, PROJECT_ROOT
from batch_platform.publish import SnapshotTable, publish_snapshot
from batch_platform.run_health import DEAD_RUN_SENSOR
from batch_platform.transform.dbt_assets import WAREHOUSE_POOL

# --- A run killed inside its warehouse step -------------------------------------------------

# Two warehouse writers (dbt models that read only sources: they build, empty, on an empty lake).
KILLED = dg.AssetKey(["staging", "stg_customers__customers"])
NEXT = dg.AssetKey(["staging", "stg_catalog__products"])
# How long the second writer may take, from the kill: the sensor's interval (15 s), run
# monitoring's poll and slot delay (2 s + 5 s here), and starting a run and dbt, on a busy
# machine.
BOUND_SECONDS = 150
TERMINAL = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}


@dataclass
class Platform:
    """A real instance (deploy/dagster.yaml) with its webserver and daemon, sensors but
    `dead_run_check` off, and an empty data folder."""

    home: Path
    base: Path
    url: str
    env: dict[str, str]
    processes: ProcessGroups
    webserver: Process
    daemons: list[Process] = field(default_factory=list)

    @property
    def daemon(self) -> Process:
        return self.daemons[-1]

    def instance(self) -> dg.DagsterInstance:
        return dg.DagsterInstance.from_config(str(self.home))

    def start_daemon(self) -> None:
        log = self.base / f"daemon-{len(self.daemons)}.log"
        command = [str(BIN / "dagster-daemon"), "run", *WORKSPACE]
        self.daemons.append(self.processes.start("dagster-daemon", command, self.env, log))


@pytest.fixture(scope="module")
def platform(tmp_path_factory) -> Iterator[Platform]:
    base = tmp_path_factory.mktemp("dead-runs")
    home, data = base / "home", base / "data"
    home.mkdir()
    data.mkdir()
    config = yaml.safe_load((PROJECT_ROOT / "deploy" / "dagster.yaml").read_text())
    monitoring = config["run_monitoring"]
    # What `make dev` runs must free a dead run's slots (Dagster never does by default); the
    # test keeps that choice and only shortens the waits (deployed: 30 s and 60 s, which the
    # deploy files explain), so the same code paths act sooner.
    assert monitoring.get("enabled") and monitoring.get("free_slots_after_run_end_seconds"), (
        "deploy/dagster.yaml does not free the slots of a run that died"
    )
    monitoring.update(poll_interval_seconds=2, free_slots_after_run_end_seconds=5)
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    dg.DagsterInstance.from_config(str(home)).dispose()  # create the storage once, first
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        DATA_DIR_ENV: str(data),
        "PYTHONUNBUFFERED": "1",
    }
    with process_groups() as processes:
        url, webserver = processes.start_webserver(env, base / "webserver.log")
        stop_sensors(url, webserver, keep=(DEAD_RUN_SENSOR,))
        platform = Platform(home, base, url, env, processes, webserver)
        platform.start_daemon()
        yield platform


def _children(pid: int) -> list[int]:
    """The processes `pid` started (and theirs), from Linux's /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if parent == pid:
            found += [int(entry.name), *_children(int(entry.name))]
    return found


def _writing(instance: dg.DagsterInstance, run_id: str) -> int | None:
    """The pid of `run_id`'s process once it is inside its warehouse step, holding the slot."""
    started = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.STEP_START).records
    claimed = instance.event_log_storage.get_concurrency_info(WAREHOUSE_POOL).claimed_slots
    if not started or run_id not in {slot.run_id for slot in claimed}:
        return None
    return started[0].event_log_entry.dagster_event.pid


def _kill_run(pid: int) -> None:
    """SIGKILL the run's process and what it started (dbt), as the OOM killer or a crash would.

    dbt is killed too: a dbt the run started and that outlived it would hold DuckDB's lock
    until it finished (docs/RELIABILITY.md, known limits), which is not what is tested here.
    """
    for process in [pid, *_children(pid)]:
        try:
            os.kill(process, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _failure(instance: dg.DagsterInstance, run_id: str) -> str:
    """Everything the run's log says about how it ended (engine events and the failure)."""
    kinds = {dg.DagsterEventType.ENGINE_EVENT, dg.DagsterEventType.RUN_FAILURE}
    return "\n".join(
        record.event_log_entry.dagster_event.message or ""
        for record in instance.get_records_for_run(run_id, of_type=kinds).records
    )


def _finished(instance: dg.DagsterInstance, run_id: str) -> dg.DagsterRunStatus | None:
    status = instance.get_run_by_id(run_id).status
    return status if status in TERMINAL else None


def _assert_recovered(platform: Platform, killed: str, second: str, *why: str) -> None:
    """The second writer completes in bounded time; the killed run failed, saying one of
    `why` (where two detectors race, either may be first: both messages say why)."""
    with platform.instance() as instance:
        status = wait_until(
            lambda: _finished(instance, second),
            BOUND_SECONDS,
            "the next warehouse writer (the killed run's slot must be freed)",
            (platform.webserver, platform.daemon),
        )
        assert status == dg.DagsterRunStatus.SUCCESS, _failure(instance, second)
        assert instance.get_run_by_id(killed).status == dg.DagsterRunStatus.FAILURE
        failure = _failure(instance, killed)
        assert any(reason in failure for reason in why), failure
        claimed = instance.event_log_storage.get_concurrency_info(WAREHOUSE_POOL).claimed_slots
        assert claimed == []


def test_a_run_killed_in_its_warehouse_step_from_the_command_line_frees_the_warehouse(
    platform,
):
    with platform.instance() as instance:
        before = {r.dagster_run.run_id for r in instance.get_run_records()}
        select = f"key:{KILLED.to_user_string()}"
        cli = subprocess.Popen(  # noqa: S603 - fixed arguments
            [str(BIN / "dagster"), "asset", "materialize", "-m", "batch_platform.definitions"]
            + ["--select", select],
            cwd=PROJECT_ROOT,
            env=platform.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:

            def writing() -> tuple[str, int] | None:
                for record in instance.get_run_records():
                    run_id = record.dagster_run.run_id
                    if run_id not in before and (pid := _writing(instance, run_id)):
                        return run_id, pid
                return None

            killed, pid = wait_until(writing, 180, "the CLI run's warehouse step", (), 0.1)
            assert pid == cli.pid  # the run executes in the CLI process itself
            _kill_run(pid)
        finally:
            cli.kill()
            cli.wait()
        assert instance.get_run_by_id(killed).status == dg.DagsterRunStatus.STARTED

    # The next writer from the command line: it waits for the slot, then writes.
    second = subprocess.run(  # noqa: S603 - fixed arguments
        [str(BIN / "dagster"), "asset", "materialize", "-m", "batch_platform.definitions"]
        + ["--select", f"key:{NEXT.to_user_string()}"],
        cwd=PROJECT_ROOT,
        env=platform.env,
        capture_output=True,
        text=True,
        timeout=BOUND_SECONDS,
    )
    assert second.returncode == 0, second.stderr[-3000:]
    with platform.instance() as instance:
        (next_run,) = [
            r.dagster_run.run_id
            for r in instance.get_run_records()
            if r.dagster_run.run_id not in before | {killed}
        ]
    _assert_recovered(platform, killed, next_run, f"Run process {pid} on ")


def _launch_until_writing(platform, what: str) -> tuple[str, int]:
    """Launch the warehouse writer through GraphQL, as the UI does, and wait until its step
    holds the warehouse slot: its run id and the pid of the process running it."""
    killed = launch_asset_run(platform.url, KILLED)
    with platform.instance() as instance:
        pid = wait_until(
            lambda: _writing(instance, killed),
            180,
            what,
            (platform.webserver, platform.daemon),
            0.1,
        )
    return killed, pid


def test_a_run_launched_from_the_ui_and_killed_in_its_warehouse_step_frees_the_warehouse(
    platform,
):
    killed, pid = _launch_until_writing(platform, "the UI run's warehouse step")
    _kill_run(pid)
    second = launch_asset_run(platform.url, NEXT)
    # Two detectors race: run monitoring asks the code server that launched the run worker,
    # which saw it die of SIGKILL; the `dead_run_check` sensor finds its process gone. Which
    # one ticks first depends on when the kill falls in their intervals (CI saw both).
    _assert_recovered(
        platform, killed, second, "was terminated by signal 9 (SIGKILL)", f"Run process {pid} on "
    )


def test_a_run_killed_with_the_daemon_that_launched_it_frees_the_warehouse(platform):
    """`dagster dev` or the daemon killed with its code server and run, then started again."""
    killed, pid = _launch_until_writing(platform, "the queued run's warehouse step")
    daemon = platform.daemon.popen.pid
    doomed = [daemon, *_children(daemon)]
    assert pid in doomed  # the run worker is the daemon's code server's child
    for process in doomed:
        os.kill(process, signal.SIGKILL)
    platform.daemon.popen.wait()
    platform.start_daemon()
    second = launch_asset_run(platform.url, NEXT)
    _assert_recovered(platform, killed, second, f"Run process {pid} on ")


# --- A publish killed mid-write --------------------------------------------------------------

# The table is ~25 MB; a publish is stopped once its files hold this much of it.
WRITTEN = 4_000_000
BIG = SnapshotTable("channel", "big", dg.AssetKey(["channel", "big"]))
_PUBLISH = """
import sys
from pathlib import Path
import dagster as dg
from batch_platform.publish import SnapshotTable, publish_snapshot
table = SnapshotTable("channel", "big", dg.AssetKey(["channel", "big"]))
publish_snapshot(Path(sys.argv[1]), Path(sys.argv[2]), [table])
"""


def _warehouse(folder: Path, rows: int) -> Path:
    """A warehouse whose one analyst table takes a publish a second or so to copy."""
    path = folder / "warehouse.duckdb"
    path.unlink(missing_ok=True)
    with duckdb.connect(str(path)) as connection:
        connection.execute("CREATE SCHEMA channel")
        connection.execute(
            "CREATE TABLE channel.big AS "
            "SELECT i, md5(i::VARCHAR) AS h, hash(i) AS r FROM range(?) AS t(i)",
            [rows],
        )
    return path


def _temporaries(target: Path) -> list[Path]:
    """The publish's hidden temporary files beside the snapshot (DuckDB's `.wal` included)."""
    return sorted(target.parent.glob(f".{target.name}.*.tmp*"))


def _start_publish(warehouse: Path, target: Path) -> subprocess.Popen:
    return subprocess.Popen(  # noqa: S603 - a fixed script and our own paths
        [sys.executable, "-c", _PUBLISH, str(warehouse), str(target)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _written(files: list[Path]) -> int:
    return sum(p.stat().st_size for p in files if p.exists())


def _stop_when_writing(
    child: subprocess.Popen, target: Path, sig: signal.Signals, others: list[Path]
) -> list[Path]:
    """Send `sig` to the publish once its temporary files (not `others`) hold some of the
    table; its files, or [] if it finished first (too fast to catch)."""
    deadline = time.monotonic() + 120
    while child.poll() is None:
        own = [p for p in _temporaries(target) if p not in others]
        if _written(own) > WRITTEN:
            os.kill(child.pid, sig)
            return own
        assert time.monotonic() < deadline, "the publish neither wrote nor finished in time"
        time.sleep(0.001)
    assert child.returncode == 0, child.stderr.read().decode()
    return []


def _kill_while_writing(warehouse: Path, target: Path, others: list[Path]) -> list[Path]:
    """SIGKILL a real publish mid-write; the files it left behind."""
    for _attempt in range(5):
        child = _start_publish(warehouse, target)
        try:
            if _stop_when_writing(child, target, signal.SIGKILL, others):
                child.wait(timeout=30)
                left = [p for p in _temporaries(target) if p not in others]
                if left:
                    return left
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
    pytest.fail("the publish was never killed while writing")


def _rows(snapshot: Path) -> int:
    with duckdb.connect(str(snapshot), read_only=True) as connection:
        return connection.execute("SELECT count(*) FROM channel.big").fetchone()[0]


def test_a_killed_publish_leaves_nothing_behind_the_next_one_and_a_live_one_keeps_its_files(
    tmp_path,
):
    target = tmp_path / "analytics.duckdb"
    warehouse = _warehouse(tmp_path, 1_000_000)
    publish_snapshot(warehouse, target, [BIG])
    published = target.read_bytes()

    # A publish that is running: stopped mid-write (SIGSTOP), so it surely is still writing.
    live = _start_publish(warehouse, target)
    try:
        live_files = _stop_when_writing(live, target, signal.SIGSTOP, [])
        assert live_files, "the live publish finished before it could be stopped"

        # Another publish killed mid-write: the snapshot is the old one; the dead writer's
        # hidden files, part of a snapshot, stay beside it (no reader's glob sees them).
        dead = _kill_while_writing(warehouse, target, live_files)
        assert target.read_bytes() == published
        assert _written(dead) > WRITTEN
        assert _temporaries(target) == sorted(live_files + dead)

        # The next publish removes the dead writer's files, not the live one's, and succeeds.
        (tmp_path / "next").mkdir()
        stats = publish_snapshot(_warehouse(tmp_path / "next", 10), target, [BIG])
        assert stats.row_counts == {"channel.big": 10} and _rows(target) == 10
        assert _temporaries(target) == live_files
        assert _written(live_files) > WRITTEN
    finally:
        os.kill(live.pid, signal.SIGCONT)
    # The live publish carries on where it was stopped, and completes.
    assert live.wait(timeout=120) == 0, live.stderr.read().decode()
    assert _rows(target) == 1_000_000
    assert _temporaries(target) == []
