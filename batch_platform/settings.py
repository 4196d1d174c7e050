"""The platform's settings in one Dagster resource, checked when the definitions load.

`PlatformSettings` gathers what the platform takes from the environment: whether this is
production, the data folder, the warehouse engine (`batch_platform.warehouse`), the PII key
and the API tokens the registry's sources need. It is
built by `from_environment` from `dg.EnvVar` references to the variables that are set, so the
resource in Dagster's UI names its variables and never holds a secret's value; a secret is read
only when used. Which secrets must be set, and where the demo's public stand-ins may be used,
is the rule in `batch_platform.demo_mode` (kept free of Dagster for the dbt plugin).

`check_settings` is what definitions.py calls: outside the demo, a missing secret stops the
code location from loading with one line naming every missing variable.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import dagster as dg

from batch_platform import paths
from batch_platform.demo_mode import (
    ENV,
    PII_SALT_ENV,
    PRODUCTION,
    SHARED_API_TOKEN_ENV,
    Mode,
    environment,
)
from batch_platform.registry import SourceSpec
from batch_platform.warehouse import WAREHOUSE_ENV, Engine, engine


def _reference(name: str) -> dg.EnvVar | None:
    """An EnvVar for a variable that is set (an empty value counts as unset), else None.

    Only set variables become EnvVars: Dagster refuses to start a run whose resource config
    names an unset variable, and in the demo most are unset on purpose.
    """
    return dg.EnvVar(name) if os.environ.get(name) else None


def _value(setting: str | None) -> str | None:
    """A field's value. Outside a run Dagster has not resolved an EnvVar: read it now."""
    if isinstance(setting, dg.EnvVar):
        setting = setting.get_value()
    return setting or None


class PlatformSettings(dg.ConfigurableResource):
    """Every setting the platform takes from the environment, checked in one place.

    `api_tokens` maps a token variable to its EnvVar (only the set ones); `api_sources` maps
    each API source (service/entity) to the variable its registry entry names for its token,
    so `check` knows which tokens are needed.
    """

    environment: str = ""
    data_dir: str
    # BATCH_PLATFORM_WAREHOUSE: duckdb (unset) or spark (batch_platform/warehouse.py)
    warehouse: str = ""
    pii_salt: str | None = None
    api_tokens: dict[str, str] = {}
    api_sources: dict[str, str] = {}

    @classmethod
    def from_environment(cls, specs: Iterable[SourceSpec] = ()) -> PlatformSettings:
        """The settings as the environment gives them now, for the sources in `specs`."""
        environment()  # refuses a BATCH_PLATFORM_ENV that is neither production nor unset
        engine(os.environ.get(WAREHOUSE_ENV))  # refuses an engine that is not duckdb or spark
        api_sources = {s.path: s.options["token_env"] for s in specs if s.access == "api"}
        names = sorted({SHARED_API_TOKEN_ENV, *api_sources.values()})
        return cls(
            environment=_reference(ENV) or "",
            data_dir=str(paths.data_dir()),
            warehouse=_reference(WAREHOUSE_ENV) or "",
            pii_salt=_reference(PII_SALT_ENV),
            api_tokens={name: reference for name in names if (reference := _reference(name))},
            api_sources=api_sources,
        )

    @property
    def production(self) -> bool:
        """Whether BATCH_PLATFORM_ENV=production (the daily catch-up runs by default then)."""
        return _value(self.environment) == PRODUCTION

    @property
    def engine(self) -> Engine:
        """The engine the dbt models run on (DuckDB unless BATCH_PLATFORM_WAREHOUSE=spark)."""
        return engine(_value(self.warehouse))

    @property
    def mode(self) -> Mode:
        return Mode(production=self.production, data_dir=Path(self.data_dir))

    def _token_candidates(self, variable: str) -> list[tuple[str, str | None]]:
        names = (variable, SHARED_API_TOKEN_ENV)
        return [(name, _value(self.api_tokens.get(name))) for name in names]

    def missing(self) -> list[str]:
        """The variables that must be set and are not, each named once; none in the demo."""
        mode = self.mode
        problems = [problem] if (problem := mode.salt_problem(_value(self.pii_salt))) else []
        for variable in sorted(set(self.api_sources.values())):
            if mode.api_token(self._token_candidates(variable)) is None:
                problems.append(f"{variable} (or {SHARED_API_TOKEN_ENV})")
        return problems

    def check(self) -> PlatformSettings:
        """Raise SettingsError naming every missing secret; return self when none is."""
        if missing := self.missing():
            raise self.mode.refuse(missing)
        return self

    def pii_key(self) -> bytes:
        """The PII masking key; the public demo key only in the demo."""
        return self.mode.pii_key(_value(self.pii_salt))

    def api_token(self, spec: SourceSpec) -> tuple[str, str]:
        """(token, the variable it came from) for an API source; the demo token only in the
        demo. Raises SettingsError naming the variables otherwise."""
        variable = spec.options["token_env"]
        found = self.mode.api_token(self._token_candidates(variable))
        if found is None:
            raise self.mode.refuse([f"{variable} (or {SHARED_API_TOKEN_ENV})"])
        return found


def check_settings(specs: Iterable[SourceSpec]) -> PlatformSettings:
    """The settings for the registry's sources, checked. Called when definitions load, so
    outside the demo a code location with a missing secret does not load at all."""
    return PlatformSettings.from_environment(specs).check()
