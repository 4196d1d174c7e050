"""The settings files under deploy/, read as Compose's `env_file` reads them.

`platform.env` holds what every Dagster process of the platform takes (the Makefile exports
it); `production.env` what they take on PostgreSQL storage. The tests and benchmarks start
daemons, webservers and runs of their own, so they read the same files instead of copying a
value.
"""

from __future__ import annotations

import os
from pathlib import Path

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
PLATFORM_ENV = DEPLOY / "platform.env"
PRODUCTION_ENV = DEPLOY / "production.env"


def deploy_environment(path: Path) -> dict[str, str]:
    """One deploy/*.env file's settings, read by python-dotenv (Compose's `env_file` rules)."""
    from dotenv import dotenv_values

    return {key: value for key, value in dotenv_values(path).items() if value is not None}


def adopt_platform_environment() -> None:
    """Give this process (and every process it starts) deploy/platform.env's settings, unless
    the environment already sets them, as `make` would have."""
    for key, value in deploy_environment(PLATFORM_ENV).items():
        os.environ.setdefault(key, value)
