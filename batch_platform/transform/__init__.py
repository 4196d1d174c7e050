"""Transform layer: dbt models in the DuckDB warehouse, as Dagster assets."""
