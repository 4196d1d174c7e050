"""docs/BENCHMARKS.md, generated from the results JSON (`python -m benchmarks.run --report-only`).

Every number in the report comes from the JSON; the readings (what limits each figure) are
written from what the runs showed and quote the figures they rest on, so they stay tied to the
measurement they explain.
"""

from __future__ import annotations

from collections.abc import Callable

TITLE = "Benchmarks"


def _fmt(value, unit: str = "") -> str:
    if value is None:
        return "-"
    if unit == "runs" and isinstance(value, float) and value.is_integer():
        value = int(value)  # a count, whether it came as a median or not
    if isinstance(value, float):
        if abs(value) >= 1000:
            text = f"{value:,.0f}"
        elif abs(value) >= 100:
            text = f"{value:.0f}"
        elif abs(value) >= 10:
            text = f"{value:.1f}"
        else:
            text = f"{value:.2f}"
    elif isinstance(value, int):
        text = f"{value:,}"
    else:
        text = str(value)
    return f"{text} {unit}".strip() if unit and unit != "x" else (text + ("x" if unit else ""))


def _verdict(met) -> str:
    return {True: "met", False: "**missed**", None: "for information"}[met]


def _target(item: dict) -> str:
    if item["target"] is None:
        return "-"
    sign = ">=" if item["direction"] == ">=" else "<="
    return f"{sign} {_fmt(float(item['target']), item['unit'])}"


def _machine(results: dict) -> list[str]:
    m = results["machine"]
    memory = f"{m['memory_bytes'] / 2**30:.1f} GiB" if m.get("memory_bytes") else "unknown"
    versions = ", ".join(f"{k} {v}" for k, v in m["versions"].items() if v)
    load = m.get("load_average_at_start")
    return [
        "| | |",
        "| --- | --- |",
        f"| CPU | {m['cpu_model']}, {m['cores']} cores |",
        f"| memory | {memory} |",
        f"| platform | {m['platform']} |",
        f"| Python | {m['python']} |",
        f"| versions | {versions} |",
        f"| load average at start (1/5/15 min) | {', '.join(map(str, load)) if load else '-'} |",
        f"| source | {_source(m.get('source'))} |",
        f"| run | `{results['command']}`, {results['mode']} mode, started "
        f"{results['started_at']}, {_fmt(results.get('seconds', 0) / 60)} min |",
    ] + (
        [
            "",
            "The last run measured only some benchmarks (`--only`); the others' figures were "
            "kept from earlier runs, each with the time and load average it was measured at.",
        ]
        if "--only" in results["command"]
        else []
    )


def _source(source: dict | None) -> str:
    if not source:
        return "not recorded"
    text = f"commit `{source['commit']}`"
    if source["uncommitted"]:
        text += ", with uncommitted changes to " + ", ".join(
            f"`{path}`" for path in source["uncommitted"]
        )
    return text


def _summary(results: dict) -> list[str]:
    lines = ["| benchmark | figure | value | target | verdict |", "| --- | --- | --- | --- | --- |"]
    for name, bench in results["benchmarks"].items():
        if bench["status"] != "ok":
            lines.append(f"| {name} | {bench['status']}: {bench.get('reason', '')} | | | |")
            continue
        for item in bench.get("checks", []):
            lines.append(
                f"| {name} | {item['name']} | {_fmt(item['value'], item['unit'])} | "
                f"{_target(item)} | {_verdict(item['met'])} |"
            )
    return lines


def _benchmark(name: str, bench: dict, results: dict) -> list[str]:
    lines = [f"## {bench['title']}", ""]
    load = bench.get("load_average")
    lines.append(
        f"`--only {name}` · measured {bench['measured_at']} in {_fmt(bench['seconds'])} s"
        + (f" on {bench['cpu_model']}" if bench.get("cpu_model") else "")
        + (f" · load average at start {load[0]}" if load else "")
    )
    lines.append("")
    if bench["status"] != "ok":
        lines += [f"**{bench['status'].capitalize()}:** {bench.get('reason', '')}", ""]
        return lines
    params = ", ".join(f"{k} = {_param(v)}" for k, v in bench.get("parameters", {}).items())
    lines += [f"Parameters: {params}.", ""]
    lines += ["| measurement | min | median | max | repeats |", "| --- | --- | --- | --- | --- |"]
    for m in bench["measurements"].values():
        unit = m["unit"]
        label = m["label"]
        depth = (len(label) - len(label.lstrip(" "))) // 2  # a part of the row above
        label = "↳" * depth + (" " if depth else "") + label.strip()
        lines.append(
            f"| {label} | {_fmt(m['min'], unit)} | {_fmt(m['median'], unit)} | "
            f"{_fmt(m['max'], unit)} | {len(m['repeats'])} |"
        )
    lines += [
        "",
        "| figure | value | target | verdict | definition |",
        "| --- | --- | --- | --- | --- |",
    ]
    for item in bench.get("checks", []):
        lines.append(
            f"| {item['name']} | {_fmt(item['value'], item['unit'])} | {_target(item)} | "
            f"{_verdict(item['met'])} | {item['definition']} |"
        )
    for note in bench.get("notes", []):
        lines += ["", f"Note: {note}."]
    # Readings explain the full run's figures; a quick run's are a smoke test and get none.
    reading = READINGS.get(name) if results["mode"] == "full" else None
    text = reading(bench, results) if reading else ""
    if text:
        lines += ["", "**Reading.** " + text]
    lines.append("")
    return lines


def _param(value) -> str:
    if isinstance(value, list) and len(value) > 4:
        return f"{len(value)} values"
    if isinstance(value, list):
        return ", ".join(map(str, value))
    return _fmt(value) if isinstance(value, float) else str(value)


def _median(bench: dict, key: str) -> float | None:
    m = bench.get("measurements", {}).get(key)
    return m["median"] if m else None


def _check(bench: dict, name: str) -> dict | None:
    return next((c for c in bench.get("checks", []) if c["name"] == name), None)


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"


def _m(bench: dict, key: str) -> dict:
    return bench["measurements"][key]


def _v(bench: dict, name_start: str) -> dict:
    """The check whose name starts with `name_start`."""
    return next(c for c in bench["checks"] if c["name"].startswith(name_start))


def _x(value: float) -> str:
    return _fmt(value, "x")


def _met(check: dict) -> str:
    return "met" if check["met"] else "missed"


def _both(a: dict, b: dict) -> str:
    if a["met"] == b["met"]:
        return f"the 2x target is {_met(a)} on both readings"
    return f"the 2x target is {_met(a)} on the first reading and {_met(b)} on the second"


# Readings: what limits each figure. Written by hand from what the full run showed (its event
# logs, dbt's own timings, `-X importtime`, a per-statement profile); the numbers they quote
# come from the results JSON, so a re-run updates them, but the prose must be re-read against
# new figures whenever the platform changes.


def _startup(bench: dict, results: dict) -> str:
    own, bare = _median(bench, "definitions_seconds"), _median(bench, "dagster_seconds")
    parts = (bench.get("info") or {}).get("import_seconds_one_run") or {}

    def part(name: str) -> str:
        return _s(parts.get(name))

    return (
        f"A fresh interpreter loads the code location in {_s(own)}, "
        f"{_x(_v(bench, 'code location load /')['value'])} a bare `import dagster` ({_s(bare)}), "
        f"and then holds {_fmt(_median(bench, 'definitions_peak_rss_mib'), 'MiB')}. The time "
        "goes to imports, not to building the definitions. One `-X importtime` run "
        f"(total {part('total')}): dagster-dbt {part('dagster_dbt')} (it imports dbt-core: "
        f"adapters, artifact schemas, mashumaro), Dagster {part('dagster')}, the extract layer "
        f"{part('batch_platform.extract.factory')} (most of it the ADBC driver's DB-API module, "
        "which imports `pyarrow.dataset` and pandas), the automation module "
        f"{part('batch_platform.automation')} (it imports the dbt assets: dbt's graph module "
        "with networkx, then the two multi-assets built from the manifest), the definitions' "
        f"own body {part('batch_platform.definitions (own body)')}. Every run the daemon "
        "launches is a new process that pays this load before it touches data, and so does "
        "every code-server start."
    )


def _extract_events(bench: dict, results: dict) -> str:
    params = bench["parameters"]
    ratio = _v(bench, "extract throughput")
    return (
        f"The extract turned {params['landing_lines']:,} landing lines "
        f"({params['landing_mib']} MiB over {params['days']} days) into lake partitions at "
        f"{_fmt(_median(bench, 'extract_rows_per_second'))} lines/s, {_x(ratio['value'])} the "
        f"bare `read_json` copy ({_fmt(_median(bench, 'bare_rows_per_second'))} lines/s): the "
        f"0.5x target is **{_met(ratio)}**. The bare read parses each line once and writes "
        "it. The extract does more with each line: it stages the lines with their file and "
        "line number (so a rejected one can be quarantined with where it came from), asks "
        "`json_type` whether the line is a JSON object at all, extracts every contract field "
        "in one `json_extract_string` over the list of paths (and the nested columns once more "
        "with `json_extract`), types each field once, picks each record's first broken rule, "
        "lists the keys of the lines that are objects for schema drift and missing required "
        "columns, de-duplicates by event id and writes two files atomically, each flushed to "
        "disk. A profile of this benchmark's landscape (each statement of `extract_events` "
        "timed, 2026-11-29, about 165 ms per day of 15,500 lines) puts the contract statement "
        "at 45% of the time, the typed, de-duplicated load at 17%, the two Parquet writes with "
        "their fsyncs at 16%, the key scan at 8% and staging the lines at 8%. Five changes "
        "brought the ratio here: parsing each field once instead of once per column and rule "
        "(0.14x to about 0.4x); trimming only the lines that start with a space when skipping "
        "blank ones (trim copied every line: two thirds of staging); extracting only the "
        "nested paths a second time, not every path; listing keys only of the lines the "
        "contract statement found to be objects, instead of asking `json_type` again (with "
        "the previous change, 0.43x to 0.48x); and one scratch DuckDB per process, each load "
        "in a connection of its own with TEMP tables, instead of a new database per partition "
        "(creating one cost 15 to 20 ms, a tenth of a day's extract; 0.48x to about 0.58x). "
        "What is left is the contract's work itself: two parses of each line (its shape, its "
        "fields), a third for its keys, and the window that keeps each event id's first "
        "delivery. " + _events_peer(bench)
    )


def _events_peer(bench: dict) -> str:
    """The dlt comparison of the events extract, or why there is none."""
    peer = _check(bench, "extract throughput / dlt throughput")
    if peer is None:
        return "dlt, the peer, was not measured in this run (not installed)."
    info = bench.get("info") or {}
    truth = info.get("ground_truth") or {}
    return (
        f"The peer, dlt {info.get('dlt_version', '')}, loaded the same files at "
        f"{_fmt(_median(bench, 'dlt_rows_per_second'))} lines/s: the extract is "
        f"{_x(peer['value'])} dlt's throughput (target >= 1.0x: **{_met(peer)}**). dlt's run "
        "is one `pipeline.run` per day into a table per day, Parquet through its filesystem "
        "destination, the resource yielding each file's JSON objects (a line that is not "
        f"one, {info.get('lines_dropped_by_dlt_as_not_objects', 0):,} here, is dropped: dlt's "
        "own `read_jsonl` would stop at it) under a Pydantic model built from the same "
        "registry columns, with `columns: discard_value` and `data_type: discard_row`, so a "
        "record that breaks a type, a required field, an accepted value or a minimum is "
        "dropped. It loaded "
        f"{info.get('rows_loaded_by_dlt', 0):,} rows against the platform's "
        f"{info.get('rows_loaded_by_extract', 0):,}: the ground truth's "
        f"{truth.get('loaded', 0):,} valid first deliveries plus its "
        f"{truth.get('duplicates', 0):,} re-delivered duplicates, which dlt keeps (its "
        "filesystem destination appends; `merge` would need a table format). What dlt does "
        "not do: keep what it rejects with the rule and the file and line (the platform's "
        "quarantine), de-duplicate, report schema drift, refuse a partition whose required "
        "column vanished, or replace lake and quarantine together atomically. What it does "
        "that the platform does not: validate each record as a Python object (the Pydantic "
        "model, then its normaliser coercing each value to the schema's type), write a load "
        "package per run with its schema, state and load records beside the data, and add "
        "`_dlt_load_id` and `_dlt_id` to every row. The platform's contract runs as a few "
        "vectorised DuckDB statements over the day's lines; dlt's runs in Python per record, "
        "which is where the difference is. The Pydantic model is not most of it: a side "
        "measurement on this landscape (2026-12-01) with typed column hints only (no checks of "
        "required fields, allowed lists or minimums; 95 more rows loaded that break the "
        "contract) "
        "took about 60% of the peer's time, still several times the extract's."
    )


def _extract_database(bench: dict, results: dict) -> str:
    rows = bench["parameters"]["rows"]
    peak = _v(bench, "extract peak RSS")
    ratio = _v(bench, "extract throughput")
    return (
        f"At {rows:,} rows in one day the extract peaked at {_fmt(peak['value'], 'MiB')} "
        f"(target < 1,024 MiB: {_met(peak)}), the bare ADBC `fetch_arrow_table` baseline at "
        f"{_fmt(_median(bench, 'baseline_peak_rss_mib'), 'MiB')}. The extract streams "
        "65,536-row Arrow batches from SQLite into a scratch DuckDB whose `memory_limit` is "
        "512 MB and which spills to disk beyond it, so its peak is the interpreter with its "
        f"libraries ({_fmt(_median(bench, 'extract_floor_rss_mib'), 'MiB')} before the first "
        "row) plus at most that cap, whatever the row count; the baseline holds the whole "
        "table as Arrow and grows with it. The extract ran at "
        f"{_fmt(_median(bench, 'extract_rows_per_second'))} rows/s, {_x(ratio['value'])} the "
        f"baseline's {_fmt(_median(bench, 'baseline_rows_per_second'))}: it reads every value "
        "as text (so that one stray value cannot break the driver's Arrow typing), then DuckDB "
        "types every value, checks every rule, de-duplicates by primary key (a window and a "
        "sort over all rows) and writes lake and quarantine files, where the baseline writes "
        "the driver's table once. Reading SQLite is single-threaded in both. "
        + _database_peer(bench)
    )


def _database_peer(bench: dict) -> str:
    """The dlt comparison of the database extract, or why there is none."""
    peer = _check(bench, "extract throughput / dlt throughput")
    if peer is None:
        return "dlt, the peer, was not measured in this run (not installed)."
    info = bench.get("info") or {}
    memory = _check(bench, "extract peak RSS / dlt peak RSS")
    return (
        f"The peer, dlt {info.get('dlt_version', '')}'s `sql_table` source, loaded the same "
        f"day at {_fmt(_median(bench, 'dlt_rows_per_second'))} rows/s: the extract is "
        f"{_x(peer['value'])} its throughput (target >= 1.0x: **{_met(peer)}**), at "
        f"{_x(memory['value'])} its peak RSS (dlt "
        f"{_fmt(_median(bench, 'dlt_peak_rss_mib'), 'MiB')}, of which "
        f"{_fmt(_median(bench, 'dlt_floor_rss_mib'), 'MiB')} before the first row). dlt's "
        "fast path, the pyarrow backend, could not load this table: it types each column from "
        'the reflected table and stops the whole load at the first stray value ("Conversion '
        "to arrow failed for field `quantity`\": the 'n/a' quantities SQLite accepts in an "
        "INTEGER column), which is why the platform reads values as text and types them "
        "itself. So dlt runs its default SQLAlchemy backend, rows as dicts in chunks of "
        "65,536, validated by a Pydantic model of the contract with `data_type: discard_row` "
        "and normalised to Parquet through its filesystem destination, a table per day. It "
        f"loaded {info.get('rows_loaded_by_dlt', 0):,} rows, the platform "
        f"{info.get('rows_loaded', 0):,} (the benchmark asserts they are equal: the table has "
        "no duplicate keys, and dlt drops exactly the rows the platform quarantines, keeping "
        "none of them). connectorx was not tried: `sql_table` works here (connectorx also "
        "builds Arrow typed by the declared columns, so it would likely meet the same stray "
        "value; not measured). The gap is per-row Python "
        "work in dlt (SQLAlchemy row objects, a dict and a Pydantic validation per row, then "
        "its normaliser), against Arrow batches and set-based DuckDB statements in the extract. "
        "dlt holds less memory because it keeps nothing across chunks: each is validated, "
        "written to an intermediate file and dropped, and it neither sorts nor de-duplicates; "
        "the extract's scratch DuckDB fills up to its 512 MB cap with the primary-key window "
        "over all the day's rows."
    )


def _backfill(bench: dict, results: dict) -> str:
    params, info = bench["parameters"], bench.get("info") or {}
    days = params["days"]
    speed = _v(bench, f"{days} single-day runs")
    dbt_ratio = _v(bench, "dbt steps of the run")
    hand = _v(bench, "one run / the same work by hand")
    single_ratio = _check(bench, "dbt steps of a single-day run / bare single-day dbt build")
    single = _m(bench, "single_day_run_seconds")
    text = (
        f"One run of {days} days took {_s(_median(bench, 'one_run_seconds'))}; a single-day "
        f"run took {_s(single['median'])} ({_s(single['min'])} to {_s(single['max'])} over "
        f"{len(single['repeats'])} days spread over the range), so {days} of them would take "
        f"about {_median(bench, 'n_runs_seconds') / 60:.0f} minutes: one run is "
        f"{_x(speed['value'])} faster (target >= 10x: {_met(speed)}; the {days} runs are "
        "extrapolated, not run). A single-day run costs about the same whatever the day holds: "
        "nearly all of it is fixed cost (a run, nine extract steps, two dbt invocations). "
    )
    if single_ratio:
        text += (
            f"Its dbt steps took {_s(_median(bench, 'single_day_dbt_seconds'))} against "
            f"{_s(_median(bench, 'bare_single_day_dbt_seconds'))} for a bare `dbt build` of "
            f"the same day right after: {_x(single_ratio['value'])} (target <= 2x: "
            f"{_met(single_ratio)}). "
        )
    text += (
        f"Where the one run's time went: {_s(_median(bench, 'one_run_before_start_seconds'))} "
        f"before it started, while Dagster wrote {info.get('planned_events', 0):,} "
        "planned-materialization events (one per asset and day) to the SQLite event log, each "
        "its own transaction (about 10 ms on this disk); "
        f"{_s(_median(bench, 'one_run_extract_seconds'))} of extract steps for "
        f"{params['partitions_extracted']:,} partitions, where the same extractors in a plain "
        f"loop took {_s(_median(bench, 'hand_extract_seconds'))} (per partition the run also "
        "records an observation with the day's figures and a materialization, and re-reads "
        "the two files it wrote for the row-accounting check); and "
        f"{_s(_median(bench, 'one_run_dbt_seconds'))} of dbt steps. Of those, "
        f"{_s(_median(bench, 'one_run_dbt_to_first_result_seconds'))} passed before dbt's "
        "first model result, for two dbt start-ups and their first models. What used to sit "
        "there is gone (issue #16): the window no longer reaches dbt as `--vars`, which made "
        "every invocation parse the whole project (a bare `dbt parse --no-partial-parse` takes "
        f"{_s(_median(bench, 'dbt_parse_seconds'))}), but through the environment, read by the "
        "macros only while executing, and every invocation starts from the last parse made for "
        "its data folder (`transform/dbt_invocation.py`); dagster-dbt's `dbt --version` "
        f"({_s(_median(bench, 'dbt_version_seconds'))} bare, once per run) and its in-process "
        "dbt adapter (1.4 to 3.4 s per invocation) are skipped (`PlatformDbtCli`). The "
        f"remaining {_s(_median(bench, 'one_run_dbt_results_seconds'))} ran the models and "
        f"tests while Dagster recorded {info.get('dbt_materializations_recorded', 0):,} "
        "materializations (each partitioned model for each day), again one SQLite transaction "
        "each. "
    )
    text += (
        f"A bare `dbt build` of the same window took {_s(_median(bench, 'bare_dbt_seconds'))}. "
        f"So the run's dbt part is {_x(dbt_ratio['value'])} the bare build and the whole run "
        f"{_x(hand['value'])} the same work by hand: {_both(dbt_ratio, hand)}. "
    )
    pg_planned = _check(bench, "planned-materialization phase: PostgreSQL / SQLite storage")
    if pg_planned:
        pg_dbt = _check(bench, "dbt steps of the run on PostgreSQL storage / bare dbt build")
        pg_hand = _check(bench, "one run on PostgreSQL storage / the same work by hand")
        text += (
            "The same run with Dagster's storage on PostgreSQL (`deploy/dagster.production."
            "yaml` and `deploy/production.env`, a scratch database) took "
            f"{_s(_median(bench, 'pg_one_run_seconds'))}: "
            f"{_s(_median(bench, 'pg_before_start_seconds'))} before it started, "
            f"{_x(pg_planned['value'])} SQLite's (target <= 0.5x: {_met(pg_planned)}), and "
            f"{_s(_median(bench, 'pg_dbt_seconds'))} of dbt steps, {_x(pg_dbt['value'])} the "
            f"bare build; the whole run {_x(pg_hand['value'])} the work by hand. What is left "
            "over a bare build is Dagster's bookkeeping, an event per asset and day, and the "
            "event log's cost per write sets its price. A profile of the partitioned dbt step "
            "on SQLite (cProfile, 30 days, 2026-12-07) put 22.4 s of its 34 s in Dagster's "
            "`store_event`, about 21 ms per event: Dagster's SQLite event log builds a new "
            "SQLAlchemy engine for every write (so each statement is compiled again) and "
            "commits every event, in the run's file and again in the index file. The two "
            "levers within reach were measured (2026-12-08, 150 materialisations "
            "stored one by one, Intel Xeon): 10.6 ms per event with the default sharded log, "
            "9.8 ms with Dagster's `ConsolidatedSqliteEventLogStorage` (one file, a "
            "`dagster.yaml` setting), 8.8 and 8.0 ms with SQLite's WAL journal set on their "
            "files: the disk's sync is not the cost, so "
            "neither is worth leaving Dagster's default for. On PostgreSQL, "
            "`DAGSTER_EVENT_BATCH_SIZE=500` (deploy/production.env) lets dagster-postgres "
            "write a range run's per-day materialisations as one INSERT per batch: a 60-day "
            "partitioned dbt step took 35.3 s without it and 16.0 s with it (2026-12-07). The "
            "planned-materialization events before the start are not batched by "
            "dagster-postgres (it batches only materialisations and observations), and every "
            "other write opens a new connection (NullPool, so that forked processes never "
            "share one), which on one machine costs more than SQLite's local transaction; "
            "PostgreSQL's gains are elsewhere (several machines, concurrent daemons, no file "
            "locking). Fewer planned events would need Dagster's "
            "`DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS` (one event per asset), which "
            "by Dagster's own account stops marking a failed run's days as failed, which the "
            "automation conditions rely on, so the platform does not set it."
        )
    else:
        text += (
            "What is left over a bare build is Dagster's bookkeeping per asset and day "
            "(PostgreSQL was not reachable for the comparison run: see the notes)."
        )
    return text


def _incremental(bench: dict, results: dict) -> str:
    short, long = bench["parameters"]["history_days"]
    headline = _v(bench, "new day with")

    def pair(part: str) -> str:
        a, b = _median(bench, f"{part}_{short}_seconds"), _median(bench, f"{part}_{long}_seconds")
        return f"{_s(a)} vs {_s(b)}"

    return (
        f"A new day took {pair('new_day')} after {short} and {long} days of history "
        f"({_x(headline['value'])}; target <= 1.5x: {_met(headline)}). Most of either run is "
        f"fixed: {pair('dbt_to_first_result')} of the dbt steps passed before dbt's first "
        "model result (start-up, parse, dagster-dbt's version check), which history does not "
        f"touch. The extract steps read only the day's files and rows ({pair('extract')}); "
        f"the partitioned dbt step replaces exactly the day's window ({pair('dbt_partitioned')}). "
        "What grows with history are the whole-table models, rebuilt from the whole lake by "
        "design (current-state staging tables, dimensions): "
        f"{pair('dbt_whole_tables')}. In this small landscape that growth is small next to "
        "the fixed costs; it is the part that grows as history and volume do."
    )


def _scaling(bench: dict, results: dict) -> str:
    multipliers = bench["parameters"]["multipliers"]
    records = bench["parameters"]["records"]
    first, last = multipliers[0], multipliers[-1]
    per_record = _v(bench, "time per record")
    growth = _v(bench, "run time at")

    def rest(m: int) -> float:
        return _median(bench, f"x{m}_seconds") - _median(bench, f"x{m}_dbt_seconds")

    return (
        f"From {records[0]:,} to {records[-1]:,} records ({records[-1] / records[0]:.1f}x; the "
        "catalog, stock levels and campaigns do not scale) the run went from "
        f"{_s(_median(bench, f'x{first}_seconds'))} to {_s(_median(bench, f'x{last}_seconds'))} "
        f"({_x(growth['value'])}): time per record fell to {_x(per_record['value'])} "
        f"(target: no faster than linear, {_met(per_record)}). The dbt steps took "
        f"{_s(_median(bench, f'x{first}_dbt_seconds'))} at {first}x and "
        f"{_s(_median(bench, f'x{last}_dbt_seconds'))} at {last}x, nearly all of it the fixed "
        "cost of two invocations (see Backfill). The growth is in the rest of the run, "
        f"mostly the extract steps: {_s(rest(first))} at {first}x, {_s(rest(last))} at "
        f"{last}x, at the throughputs the extract benchmarks show. Peak RSS went from "
        f"{_fmt(_median(bench, f'x{first}_peak_rss_mib'), 'MiB')} to "
        f"{_fmt(_median(bench, f'x{last}_peak_rss_mib'), 'MiB')}: the run's own process, "
        "which holds the code location (see Start-up) and each extract's scratch DuckDB "
        "(capped at 512 MB), is larger than the dbt subprocesses."
    )


def _run_time(day: dict, kind: str) -> float:
    """Seconds the runs of `kind` spent running (start to end) for one day."""
    return sum(v for k, v in (day.get("run_seconds") or {}).items() if k.split()[0] == kind)


def _latency(bench: dict, results: dict) -> str:
    from statistics import median

    info = bench.get("info") or {}
    days = info.get("per_day") or []
    ratio = _v(bench, "latency to fresh snapshot /")
    windows = sorted({tuple(d["downstream_window"]) for d in days if d.get("downstream_window")})
    kinds: dict[str, int] = {}
    for d in days:
        for kind, count in (d.get("runs_by_trigger") or {}).items():
            kinds[kind] = kinds.get(kind, 0) + count
    by_kind = ", ".join(f"{count} {kind}" for kind, count in sorted(kinds.items()))
    extract = median(_run_time(d, "new_data") for d in days) if days else None
    downstream = median(_run_time(d, "downstream") for d in days) if days else None
    text = (
        f"A new day landed -> its first extract run created "
        f"{_s(_median(bench, 'to_run_created_seconds'))}, started "
        f"{_s(_median(bench, 'to_run_start_seconds'))} (median of {len(days)} days): the "
        "`new_data_sensor` ticks every 10 s, and a run starts as a new process that loads the "
        "code location (see Start-up). The sensor requests one extract run per stretch of "
        "consecutive days touched: the new day, and the older days its late files re-open, "
        "which need not be next to it. The downstream run started "
        f"{_s(_median(bench, 'to_downstream_start_seconds'))} after the landing: the extract "
        "runs, then the `downstream_sensor` (every 5 s) seeing their materialisations, then "
        "another process start. The analyst snapshot held the new day's channel KPIs after "
        f"{_s(_median(bench, 'to_snapshot_seconds'))}"
        + (
            ", exactly the simulator's figures for the day,"
            if days and all(d.get("snapshot_matches_truth") for d in days)
            else " (not every day's equal to the simulator's figures: see the notes),"
        )
        + f" with {by_kind} runs over the {len(days)} days. Of that time "
        f"the runs themselves ran {_s(extract)} (extracts) and {_s(downstream)} (the "
        "downstream run), medians per day; the rest is waiting: sensor intervals and two "
        "process starts with their code-location loads. The downstream run covers more than "
        "the day: the days touched and 7 days either side (the settlement window of "
        "order-keyed models), here "
        + (", ".join(f"{a} to {b}" for a, b in windows) or "-")
        + ", then the whole-table models and the snapshot: two dbt steps. The same "
        "day as one whole-graph run in process (extracts, quarantine, dbt, snapshot) took "
        f"{_s(_median(bench, 'work_seconds'))}: the latency is {_x(ratio['value'])} the work "
        f"(target <= 3x: {_met(ratio)}). "
        "What dominates the latency is waiting: the sensors' intervals and two run processes "
        "started by the queue. They were shortened for issue #14: the `new_data_sensor` looks "
        "every 10 s (was 30 s), the `downstream_sensor` every 5 s (was 15 s; Dagster's sensor "
        "daemon evaluates sensors at most every 5 s) and the run queue every second (was "
        "Dagster's 5 s; `run_coordinator` in deploy/dagster.yaml, merged with the "
        "`concurrency` limits). A tick costs "
        f"{_s(_median(bench, 'new_data_sensor_tick_seconds'))} (`new_data_sensor`: the landing "
        "zone listed, one watermark query per database and API) and "
        f"{_s(_median(bench, 'downstream_sensor_tick_seconds'))} (`downstream_sensor`: the "
        "event log read), medians. Before, the same day took 63.5 s (3.47x). "
        "One source of extra runs per day is gone: the "
        "`platform_automation` sensor used to request the reconciliation "
        "models again over the days of the downstream run but the last, and the snapshot "
        "after them (4 runs per day), because Dagster's `executed_with_tags` looks only at "
        "an asset's latest materialisation; the platform now recognises the downstream "
        "sensor's runs per day (`all_new_updates_have_run_tags`)."
    )
    if any(d.get("to_snapshot") is None for d in days):
        text += " At least one day timed out; its latency is a lower bound."
    if any(d.get("runs_failed") for d in days):
        text += (
            " Runs failed on the way (see the notes); the new day reached the snapshot all "
            "the same, and its latency is what is reported."
        )
    return text


def _bootstrap(bench: dict, results: dict) -> str:
    params, info = bench["parameters"], bench.get("info") or {}
    verdict = _v(bench, "bootstrap to every asset")
    runs = info.get("runs") or []

    def created(seconds: float) -> str:
        when = "after" if seconds >= 0 else "before"
        return f"created {_s(abs(seconds))} {when} the webserver answered"

    described = "; ".join(
        f"{r['trigger']} over {r['partitions'][0] or '-'} to {r['partitions'][1] or '-'} "
        f"({r['assets']} assets, {created(r['created_after_answer_seconds'])}, ran "
        f"{_s(r['run_seconds'])}, {r['status'].lower()})"
        for r in runs
    )
    running = sum(r["run_seconds"] or 0 for r in runs)
    return (
        f"On a fresh instance with `make dev`'s landscape ({params['days']} days at scale "
        f"{params['scale']}, {_fmt(info.get('landscape_mib'), 'MiB')} of landing files and "
        "service databases), the daemon and the webserver were started together; the "
        f"webserver answered after {_s(_median(bench, 'webserver_seconds'))}, and "
        f"{_s(_median(bench, 'bootstrap_seconds'))} later every one of the {params['assets']} "
        "assets had a materialisation and the analysts' snapshot file existed (target <= "
        f"300 s: {_met(verdict)}). It took {len(runs)} runs: {described}. The runs themselves "
        f"ran {_s(running)} (every source extracted for every day in one process; the "
        "quarantine, the two dbt steps over every day and the snapshot in another); the "
        "rest is the `downstream_sensor`'s interval and a process start with its "
        "code-location load for each run. At this volume the target leaves a wide margin; "
        "the work grows with the landscape, the waiting does not."
    )


def _celery(bench: dict, results: dict) -> str:
    params, info = bench["parameters"], bench.get("info") or {}
    ratio = _v(bench, "Celery throughput /")
    bound = _v(bench, "best split of these steps")
    steps = info.get("in_process_step_seconds") or {}
    longest = max(steps, key=steps.get) if steps else "-"
    runs = info.get("celery_assignment") or [{"workers": {}, "split_bound": None}]
    split = "; ".join(
        f"{worker}: {len(part['steps'])} steps, {_s(part['busy_seconds'])} busy"
        for worker, part in runs[0]["workers"].items()
    )
    allowed = ", ".join(_x(run["split_bound"]) for run in runs if run["split_bound"])
    in_process_cores = _median(bench, "in_process_cores") or 0.0
    cores = (
        f"the in-process run's processes used {_fmt(in_process_cores)} cores on average, the "
        f"Celery run's (its process and the two workers) {_fmt(_median(bench, 'celery_cores'))}"
        ", and the whole machine (PostgreSQL, RabbitMQ, the benchmark's API server, anyone "
        f"else) was busy on {_fmt(_median(bench, 'in_process_machine_cores'))} and "
        f"{_fmt(_median(bench, 'celery_machine_cores'))} cores."
    )
    if in_process_cores >= 1.1:
        cores += (
            " The in-process run is not one core's work (DuckDB runs an extract's statements "
            "on both cores where it can), so two workers can gain at most about "
            f"{_x(2 / in_process_cores)}."
        )
    first = _median(bench, "worker_first_step_seconds")
    gap = _median(bench, "warm_step_gap_seconds")
    overhead = _median(bench, "in_process_command_seconds") - _median(bench, "in_process_seconds")
    return (
        f"Every extract over {params['days']} days at scale {params['scale']} "
        f"({params['rows']:,} lake rows, {params['lake_files']:,} files) took "
        f"{_s(_median(bench, 'in_process_seconds'))} as one run in process and "
        f"{_s(_median(bench, 'celery_seconds'))} on two Celery workers "
        f"({_fmt(_median(bench, 'in_process_rows_per_second'))} against "
        f"{_fmt(_median(bench, 'celery_rows_per_second'))} rows/s): {_x(ratio['value'])} the "
        f"in-process throughput (target >= 1.6x: **{_met(ratio)}**; 2x is the bound on two "
        "cores), the lake files byte-identical both ways. What limits it. First, the cores: "
        + cores
        + " Second, the steps: a "
        "range run is ONE step per extract covering every day (`BackfillPolicy.single_run()`), "
        f"nine steps of {_s(min(steps.values(), default=None))} to "
        f"{_s(max(steps.values(), default=None))} in process, the longest {longest} "
        f"({info.get('longest_step_share', 0):.0%} of the work); the best split of those nine "
        f"over two workers would reach {_x(bound['value'])}"
        + (
            ", so their granularity costs little at this volume. "
            if bound["value"] >= 1.9
            else ": their granularity is itself a limit at this volume. "
        )
        + "Celery does not look for that split: the run submits all nine at once and each "
        "worker takes the next step from the queue when it is free (one task at a time, "
        "`worker_prefetch_multiplier: 1`), so which steps share a worker depends on the order "
        f"they were queued in (the first run: {split}); the splits Celery made allowed "
        f"{allowed} at best. Per-day runs would not help (not measured): each "
        "is a new process that loads the code location (the command took "
        f"{_s(overhead)} more than its run) and nine more steps with their per-step cost, "
        f"{params['days']} times over. Third, the executor's own costs, which do not grow "
        "with the data: "
        f"{_s(_median(bench, 'celery_to_first_step_seconds'))} from the run's start to its "
        f"first step begun on a worker, {_s(gap)} between one step's success and the same "
        "worker's next (the result back over the broker, the worker building the run's "
        "instance and execution plan), and "
        f"{_s(_median(bench, 'celery_after_last_step_seconds'))} from the last step's success "
        "to the run's end (the run process polls its tasks once a second, then handles the "
        "events each task returns). Every step writes its events, one materialization per "
        "day, straight to the PostgreSQL event log from whichever process runs it, the same "
        "both ways. Fourth, start-up, outside the timed runs: two workers started together "
        f"were ready after {_s(_median(bench, 'workers_ready_seconds'))}, and a worker's "
        f"first step began {_s(first)} after it was submitted, nearly all of it the worker "
        "loading the code location (once in the worker's life: the benchmark warms the "
        "workers with an untimed one-day run, as a deployment's long-running workers are)."
    )


def _engines(bench: dict, results: dict) -> str:
    session = _median(bench, "spark_session_seconds")
    if "multipliers" not in bench["parameters"]:
        return f"A Spark session took {_s(session)} to start and prepare."
    first, last = bench["parameters"]["multipliers"][0], bench["parameters"]["multipliers"][-1]
    r1, r16 = bench["parameters"]["records"][0], bench["parameters"]["records"][-1]
    days = bench["parameters"]["days"]

    def dbt(engine: str, m: int) -> float:
        return _median(bench, f"{engine}_x{m}_dbt_seconds")

    # dbt time = fixed + per_record * records, from the two volumes.
    slope = {e: (dbt(e, last) - dbt(e, first)) / (r16 - r1) for e in ("duckdb", "spark")}
    fixed = {e: dbt(e, first) - slope[e] * r1 for e in ("duckdb", "spark")}
    gap = fixed["spark"] - fixed["duckdb"]
    text = (
        f"The dbt steps took {_s(dbt('duckdb', first))} on DuckDB and "
        f"{_s(dbt('spark', first))} on Spark at {first}x ({r1:,} records), "
        f"{_s(dbt('duckdb', last))} and {_s(dbt('spark', last))} at {last}x ({r16:,}): "
        f"{r16 / r1:.0f} times the records cost both engines almost nothing more. Spark pays "
        f"{_s(session)} "
        "to start a session in each of the run's two dbt steps, then a fraction of a second for "
        "every one of the ~95 statements (a model, a test) where DuckDB pays milliseconds: that "
        f"fixed cost, about {_s(gap)} more than DuckDB's, is nearly all of its time here. "
        "**Where a cluster would pay.** A cluster divides the per-record cost by its executors "
        "but not the fixed cost: a long-lived cluster session saves the start-up, but every "
        "statement is still a job to plan and schedule, so the gap stays tens of seconds per run. "
    )
    if slope["duckdb"] > 0:
        crossover = gap / slope["duckdb"]
        per_day = r16 / days
        text += (
            f"Fitted as fixed + per-record from these two points, DuckDB adds "
            f"{1000 * slope['duckdb']:.4f} s per 1,000 records; even a cluster that made Spark's "
            f"per-record cost vanish would catch up only at about {crossover / 1e6:,.0f} million "
            f"records in one run, some {crossover / per_day:,.0f} days at the {last}x volume. "
            "That slope is a difference of fractions of a second between two single runs on a "
            "shared machine, so read the figure as an order of magnitude: tens of millions of "
            "records per run, far beyond the demo. "
        )
    return text + (
        "In practice the switch comes earlier, from memory and disk rather than time: DuckDB "
        "runs on one machine, and a day whose working set outgrows that machine spills and then "
        "fails, while a cluster adds machines; and on Spark day-runs go side by side, where "
        "DuckDB's single writer queues them. These are Spark local figures on the same two "
        "cores as DuckDB: they place the crossover, they do not measure a cluster."
    )


OVERALL = (
    "**In short.** At the demo's volumes nearly every figure is bounded by fixed costs, not "
    "by data: a fresh process loading Dagster and dbt-core for every run, a dbt start-up for "
    "every dbt invocation (two per run; the project parse is reused between runs), and a "
    "SQLite event-log write, one transaction each, for every asset and partition. Hence one "
    "run beats many, a new day costs the same after 7 or 180 days of history, and 15x the "
    "volume costs little more time; and hence what is left of the run's overhead over a bare "
    "`dbt build` is Dagster's bookkeeping, priced by the event log it is written to (see "
    "Backfill for SQLite against PostgreSQL). The events extract is bounded by "
    "data instead: it parses each JSON line three times (is it an object, its contract "
    "fields, its keys) and checks it, where the bare read parses it once."
)

READINGS: dict[str, Callable[[dict, dict], str]] = {
    "startup": _startup,
    "extract_events": _extract_events,
    "extract_database": _extract_database,
    "backfill": _backfill,
    "incremental": _incremental,
    "scaling": _scaling,
    "latency": _latency,
    "bootstrap": _bootstrap,
    "celery": _celery,
    "engines": _engines,
}


def render(results: dict) -> str:
    lines = [
        f"# {TITLE}",
        "",
        "<!-- Generated by `python -m benchmarks.run` from benchmarks/results.json and the "
        "readings in benchmarks/report.py: edit those, not this page. -->",
        "",
        "How fast the platform is. Each benchmark measures the platform next to a **baseline "
        "measured in the same invocation** (a bare DuckDB read, a bare ADBC read, a bare `dbt "
        "build`, the same work without Dagster, a bare `import dagster`; for the two "
        "extracts also a peer, the same load done by dlt), so its headline "
        "figure is a ratio that survives a busy machine (this one has two cores and is shared); "
        "seconds and rows per second are there for information. The bootstrap is the exception: "
        "a wall time held against the 5 minutes issue #14 allows. Each benchmark generates its "
        "own demo landscape under `benchmarks/work/` (git-ignored), points "
        "`BATCH_PLATFORM_DATA_DIR` at it and repeats its measurement: tables show min / median "
        "/ max over the repeats. Peak RSS is the largest resident set of a process or of any "
        "child it waited for (Linux `wait4`), not their sum. The load average at the start of "
        "each benchmark is recorded: seconds move with it, ratios much less.",
        "",
        "```sh",
        "make bench         # full run (about 45 min here): benchmarks/results.json + this page",
        "make bench-quick   # small sizes, 3 benchmarks at a time, under 3 min: benchmarks/work/",
        ".venv/bin/python -m benchmarks.run --only backfill     # one benchmark, others kept",
        ".venv/bin/python -m benchmarks.run --report-only       # regenerate this page",
        "```",
        "",
        "Quick mode is a smoke test (the test suite runs it once and judges no number): tiny "
        "landscapes, one repeat, runs of the extracts and the partitioned models only (one dbt "
        "invocation instead of two), no latency or bootstrap benchmark (each takes minutes "
        "through the daemon).",
        "",
        "## Machine",
        "",
        "Of the latest invocation; each benchmark below names the CPU it was measured on (this "
        "shared machine has not always had the same one).",
        "",
        *_machine(results),
        "",
        "## Summary",
        "",
        *(
            [
                "**Quick mode**: small sizes for a smoke test, not the platform's figures.",
                "",
            ]
            if results["mode"] == "quick"
            else []
        ),
        *_summary(results),
        "",
        *([OVERALL, ""] if results["mode"] == "full" else []),
    ]
    for name, bench in results["benchmarks"].items():
        lines += _benchmark(name, bench, results)
    return "\n".join(lines).rstrip() + "\n"
