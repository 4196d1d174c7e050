"""A scratch PostgreSQL database for Dagster's instance storage, for tests and benchmarks.

Both run the platform on `deploy/dagster.production.yaml` (PostgreSQL storage) next to the
embedded SQLite default, each on a database of its own that is dropped afterwards. Kept free
of pytest so the benchmarks can use it too; tests/conftest.py turns `PostgresUnavailable` into
a skip (or a failure on CI).
"""

from __future__ import annotations

import getpass
import os
import shutil
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import unquote, urlsplit

from benchmarks.deploy_env import DEPLOY, PRODUCTION_ENV, deploy_environment

PRODUCTION_YAML = DEPLOY / "dagster.production.yaml"


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server answered; the message names every address and user tried."""


def postgres_admin() -> dict[str, str | int]:
    """psycopg2 connection arguments for a reachable PostgreSQL server's `test` database.

    $TEST_POSTGRES_URL when set, else 127.0.0.1:5432 with trust authentication as `postgres`,
    then as the current user (a root container has a `root` role, a Debian host a `postgres`
    one).
    """
    import psycopg2

    configured = os.environ.get("TEST_POSTGRES_URL")
    if configured:
        parts = urlsplit(configured)
        candidates = [
            {
                "host": parts.hostname or "127.0.0.1",
                "port": parts.port or 5432,
                "user": unquote(parts.username or "postgres"),
                "password": unquote(parts.password or ""),
                "dbname": parts.path.lstrip("/") or "test",
            }
        ]
    else:
        candidates = [
            {"host": "127.0.0.1", "port": 5432, "user": user, "password": "", "dbname": "test"}
            for user in dict.fromkeys(("postgres", getpass.getuser()))
        ]
    errors = []
    for arguments in candidates:
        try:
            psycopg2.connect(connect_timeout=5, **arguments).close()
            return arguments
        except psycopg2.Error as error:
            where = f"{arguments['user']}@{arguments['host']}:{arguments['port']}"
            errors.append(f"{where}: {str(error).strip().splitlines()[0]}")
    raise PostgresUnavailable("PostgreSQL is unreachable: " + "; ".join(errors))


@contextmanager
def fresh_database(prefix: str = "bp_dagster") -> Iterator[dict[str, str]]:
    """A new database, dropped on exit; yields the DAGSTER_PG_* variables the production
    instance config reads, with the settings of deploy/production.env.

    The name is unique (two pytest-xdist workers or two checkouts never share one); dropping
    terminates the connections a daemon's or webserver's processes may have left.
    """
    import psycopg2
    from psycopg2 import sql

    admin = postgres_admin()
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    connection = psycopg2.connect(**admin)
    connection.autocommit = True  # CREATE/DROP DATABASE cannot run inside a transaction
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        yield {
            "DAGSTER_PG_HOST": str(admin["host"]),
            "DAGSTER_PG_PORT": str(admin["port"]),
            "DAGSTER_PG_USER": str(admin["user"]),
            "DAGSTER_PG_PASSWORD": str(admin["password"]),
            "DAGSTER_PG_DB": name,
            **deploy_environment(PRODUCTION_ENV),
        }
    finally:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                (name,),
            )
            cursor.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
        connection.close()


def production_home(home: Path, storage: Mapping[str, str]) -> Path:
    """`home` made a DAGSTER_HOME on deploy/dagster.production.yaml over `storage` (the
    DAGSTER_PG_* variables of `fresh_database`), its schema created once, here, before several
    processes race to create it."""
    import dagster as dg

    from batch_platform.transform.dbt_invocation import environment

    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(PRODUCTION_YAML, home / "dagster.yaml")
    with environment(storage):
        dg.DagsterInstance.from_config(str(home)).dispose()
    return home
