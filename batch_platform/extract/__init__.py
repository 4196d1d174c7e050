"""Extract layer: one Dagster asset per registry entry; writes the raw lake, never the warehouse."""
