"""batch_platform: a Dagster + dbt + DuckDB batch platform for a microservice landscape.

Dagster marks two APIs the code location relies on as not yet stable, and says so with a
warning every time the definitions are loaded: `backfill_policy` on `@asset` (beta; a backfill
of any range is one run, see extract/factory.py) and `Definitions.map_asset_specs` /
`map_resolved_asset_specs` (preview; applies freshness and automation once, see
definitions.py). Neither has a stable replacement in this Dagster version. `dagster dev` loads
the code in every code server and every run worker, so the same ten warnings filled the log
(621 lines in 45 minutes). They are silenced here, where every process that loads the
definitions passes first, by their exact text: any other beta, preview or superseded API still
warns. The filter matches the message rather than Dagster's BetaWarning/PreviewWarning
classes because importing Dagster here would slow down `batch-platform query`, which never
loads it (analytics.py).
"""

import warnings

# Each pattern is the start of Dagster's message for one API we chose knowingly.
_KNOWN_UNSTABLE_APIS = (
    r"Parameter `backfill_policy` of function `asset` is currently in beta",
    r"Function `Definitions\.map_asset_specs` is currently in preview",
    r"Function `Definitions\.map_resolved_asset_specs` is currently in preview",
)
for _pattern in _KNOWN_UNSTABLE_APIS:
    warnings.filterwarnings("ignore", message=_pattern)
