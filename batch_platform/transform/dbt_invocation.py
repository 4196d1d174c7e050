"""How a step starts dbt: the window in its environment, and a project parse it can reuse.

A dbt invocation parses the whole project before it builds anything, unless it finds the
parse of an earlier invocation (`partial_parse.msgpack`) made with the same vars, profile and
target; then it re-parses only the files that changed. dagster-dbt gives every invocation a
fresh target folder and seeds it with `dbt_project/target/partial_parse.msgpack`, the one
`batch-platform prepare` wrote. That one rarely fits: the profile names the warehouse under
`BATCH_PLATFORM_DATA_DIR`, which differs between `make dev`, the tests and the benchmarks, and
the window used to arrive as `--vars` (now it comes through the environment, `dbt_vars`).

So each invocation is seeded with the parse the last invocation made for the same data folder
and hands its own back when it finishes. dbt checks a parse before trusting it (file hashes,
vars, profile, dbt version) and parses again where it does not fit, so a stale parse costs
a full parse, never a wrong build. The parse is kept in the data folder itself
(`paths.dbt_parse_path`), replaced atomically.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from batch_platform.paths import DBT_PROJECT_DIR

PARTIAL_PARSE = "partial_parse.msgpack"


def target_root() -> Path:
    """dbt's target folder: DBT_TARGET_PATH if set (as dbt and dagster-dbt read it), else
    `target`, relative to the dbt project."""
    return DBT_PROJECT_DIR / os.environ.get("DBT_TARGET_PATH", "target")


def new_target_path(step_name: str, run_id: str) -> Path:
    """A target folder of this invocation's own, named as dagster-dbt names them (the
    artifacts of concurrent invocations must not mix)."""
    return target_root() / f"{step_name}-{run_id[:7]}-{uuid.uuid4().hex[:7]}"


def seed_parse(target: Path, cache: Path) -> bool:
    """Put the kept parse into a new invocation's target folder; False if there is none."""
    if not cache.is_file():
        return False
    target.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(cache, target / PARTIAL_PARSE)
    return True


def keep_parse(target: Path, cache: Path) -> bool:
    """Keep the parse an invocation wrote, for the next one; False if it wrote none.

    Copied to a temporary name beside the cache first, then renamed over it: a concurrent
    invocation reads either the old parse or the new one, never half of one.
    """
    written = target / PARTIAL_PARSE
    if not written.is_file():
        return False
    cache.parent.mkdir(parents=True, exist_ok=True)
    partial = cache.with_name(f".{cache.name}.{uuid.uuid4().hex}.tmp")
    shutil.copyfile(written, partial)
    os.replace(partial, cache)
    return True


@contextmanager
def environment(values: Mapping[str, str | None]) -> Iterator[None]:
    """Set (or, for None, unset) environment variables for what starts inside, then restore.

    dagster-dbt hands dbt a copy of this process's environment when it starts it and takes no
    environment of its own; the step runs its dbt invocation on its own thread of control, so
    the change is seen by that dbt process only.
    """
    saved = {name: os.environ.get(name) for name in values}
    try:
        _apply(values)
        yield
    finally:
        _apply(saved)


def _apply(values: Mapping[str, str | None]) -> None:
    for name, value in values.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
