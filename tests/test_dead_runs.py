"""Writers that die: a run killed inside its warehouse step, a snapshot publish killed mid-write.

Real processes, killed with SIGKILL:

- a publish of the analyst snapshot killed while DuckDB writes its temporary file: the next
  publish removes the dead writer's files and succeeds, and never touches the files of a
  publish that is still running (here: one stopped with SIGSTOP, then let go);
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from batch_platform.publish import SnapshotTable, publish_snapshot

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
