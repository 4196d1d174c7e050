"""The `batch-platform` command line.

Options arrive as text and are checked here rather than by click's types, so that every bad
input ends the same way: exit code 2, one `error: --option ...` line on stderr, no traceback,
and nothing written.
"""

from __future__ import annotations

import math
import os
import re
import sys
from datetime import date
from pathlib import Path
from typing import NoReturn

import click
import uvicorn

from batch_platform import paths
from batch_platform.analytics import query, tables
from batch_platform.simulator import LandscapeError
from batch_platform.simulator import simulate as simulate_landscape
from batch_platform.simulator.api_server import (
    DEFAULT_TOKEN,
    TOKEN_ENV,
    create_app,
    parse_fault_plan,
)
from batch_platform.simulator.databases import database_path
from batch_platform.simulator.landscape import MAX_SCALE

_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


def _fail(message: str) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    raise SystemExit(2)


def _whole(option: str, text: str | None, expected: str, lowest: int) -> int | None:
    if text is None:
        return None
    if not re.fullmatch(r"[+-]?\d+", text.strip()) or int(text) < lowest:
        _fail(f"--{option} must be {expected}, got {text}")
    return int(text)


def _data_dir(text: str | None) -> Path:
    return Path(text).expanduser().resolve() if text else paths.data_dir()


@click.group()
def main() -> None:
    """Batch processing for a microservice landscape: Dagster + dbt + DuckDB."""


@main.command()
@click.option("--start", metavar="YYYY-MM-DD", help="First day of a new landscape.")
@click.option("--days", metavar="N", help="How many days to generate (required).")
@click.option("--seed", metavar="S", help="Random seed of a new landscape [default: 7].")
@click.option("--scale", metavar="X", help="Volume multiplier of a new landscape [default: 1.0].")
@click.option("--append", is_flag=True, help="Generate N more days after the existing ones.")
@click.option("--replace", is_flag=True, help="Delete the existing landscape and start anew.")
@click.option(
    "--data-dir", metavar="PATH", help="Data folder [default: $BATCH_PLATFORM_DATA_DIR or ./data]."
)
def simulate(
    start: str | None,
    days: str | None,
    seed: str | None,
    scale: str | None,
    append: bool,
    replace: bool,
    data_dir: str | None,
) -> None:
    """Generate the demo landscape: event files, service databases, ground truth.

    Same arguments, same bytes. With --append, start, seed and scale come from the existing
    landscape.json, and the result equals generating all days at once.
    """
    if days is None:
        _fail("--days is required: a positive whole number of days to generate")
    day_count = _whole("days", days, "a positive whole number", 1)
    if append:
        for option, value in (("start", start), ("seed", seed), ("scale", scale)):
            if value is not None:
                _fail(f"--{option} cannot be used with --append: it comes from landscape.json")
        if replace:
            _fail("--replace cannot be used with --append")
    elif start is None:
        _fail("--start is required for a new landscape: a date like 2026-03-01")
    first = None
    if start is not None:
        try:
            if not _DAY.fullmatch(start):
                raise ValueError(start)
            first = date.fromisoformat(start)
        except ValueError:
            _fail(f"--start must be a date like 2026-03-01, got {start}")
    seed_value = _whole("seed", seed, "a whole number >= 0", 0)
    scale_value = None
    if scale is not None:
        try:
            scale_value = float(scale)
        except ValueError:
            scale_value = math.nan  # fails the range check below
        if not 0 < scale_value <= MAX_SCALE:
            _fail(f"--scale must be a number > 0 and <= 100, got {scale}")
    folder = _data_dir(data_dir)
    try:
        manifest = simulate_landscape(
            folder,
            first,
            day_count,
            seed=seed_value,
            scale=scale_value,
            append=append,
            progress=sys.stderr.isatty(),
            replace=replace,
        )
    except LandscapeError as error:
        _fail(error.cli_message())
    except OSError as error:
        click.echo(f"error: writing the landscape to {folder} failed: {error}", err=True)
        raise SystemExit(1) from None
    events = manifest["sources"]
    lines = sum(s["totals"]["lines"] for s in events.values() if s["access"] == "events")
    click.echo(
        f"landscape {manifest['start']} .. {manifest['end']} (exclusive), {manifest['days']} days, "
        f"seed {manifest['seed']}, scale {manifest['scale']:g}: {lines:,} event lines; "
        f"ground truth in {folder / 'landscape.json'}"
    )


@main.command("serve-apis")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default="8765", show_default=True, help="TCP port.")
@click.option(
    "--data-dir", metavar="PATH", help="Data folder [default: $BATCH_PLATFORM_DATA_DIR or ./data]."
)
@click.option(
    "--fault-plan",
    default="",
    metavar="LIST",
    help="Faults for the first requests, e.g. 429,503,ok.",
)
def serve_apis(host: str, port: str, data_dir: str | None, fault_plan: str) -> None:
    """Serve the catalog and promotions REST APIs from the simulated services' databases.

    Clients send `Authorization: Bearer <token>`, the token being $BATCH_PLATFORM_API_TOKEN
    (default demo-token).
    """
    port_number = _whole("port", port, "a TCP port from 1 to 65535", 1)
    if port_number is None or port_number > 65535:
        _fail(f"--port must be a TCP port from 1 to 65535, got {port}")
    try:
        steps = parse_fault_plan(fault_plan)
    except ValueError as error:
        _fail(f"--fault-plan has an {error}")
    folder = _data_dir(data_dir)
    missing = [
        n
        for n in ("catalog", "promotions")
        if not database_path(paths.services_dir(folder), n).is_file()
    ]
    if missing:
        _fail(
            f"--data-dir {folder} has no {missing[0]} database: run `batch-platform simulate` first"
        )
    token = os.environ.get(TOKEN_ENV, DEFAULT_TOKEN)
    if not token:
        _fail(f"{TOKEN_ENV} is set but empty: the APIs need a token")
    click.echo(
        f"serving /catalog/products and /promotions/campaigns from {paths.services_dir(folder)} on "
        f"http://{host}:{port_number} (bearer token from {TOKEN_ENV})",
        err=True,
    )
    uvicorn.run(create_app(folder, token, steps), host=host, port=port_number, log_level="info")


main.add_command(query)
main.add_command(tables)


@main.command()
def prepare() -> None:
    """Parse the dbt project if its manifest is missing or stale (what `make` runs)."""
    from batch_platform.dbt_project import ensure_manifest

    try:
        manifest = ensure_manifest()
    except RuntimeError as error:
        _fail(str(error).splitlines()[0])
    click.echo(f"dbt manifest ready: {manifest}")
