"""The SQL models of `dbt_like_sql/`: read, checked and ordered before Dagster ever sees them.

A model is one `.sql` file holding a YAML header in a leading `/* ... */` comment and one SELECT. Its folder
names its schema (`staging/` → `staging`, `marts/` → `analytics`), its file name its table. Dependencies are
read from the SELECT itself with sqlglot — every `schema.table` it reads is either a loaded source table
(from `pipelines.catalog`) or another model — so nobody keeps a dependency list by hand, and a typo in a
table name or a syntax error fails when the definitions load, naming the file and the line. A model (and
each header test) is one query over warehouse tables, checked on sqlglot's tree — no second statement, no
CREATE / COPY / ATTACH / SET, no table function, nothing reading files or the environment — and models
build with DuckDB's external access disabled.

Header keys: `description`; `materialized` (`view`, `table` or `incremental`); for incremental models
`incremental_key` (a date column of the model), `lookback_days` (0: recompute from the latest day
already built, which also takes in events that arrived a day late) and `partition_by` (columns splitting
the table into partitions — grains, visitors, snapshot days — that a rebuild replaces each from its own
earliest recomputed day; without it, a rebuild replaces every day from the window's start); `columns`
(name → description, written into DuckDB as column comments) or, for a model of a shared shape, `contract`
(`{ad_report: <grain>}`: its columns, in order, with the descriptions `pipelines.ad_reporting` keeps for
every model of that shape; `{ad_names: <grain>}`: only the connection, account and level ids and names that
name a row at that grain), then under `columns` only what the model adds after them; `tests` (a list: unique, not_null,
accepted_values, relationships, row_count); `subject_columns` (columns holding a person's pseudonymous key —
a blind index — which erasure matches and removes); `changes` (a staging model's load id and day columns:
`{load_id: ..., day: ...}`).
Incremental models read `getvariable('gtg_since')` (a DATE) to limit what they recompute: their latest day,
or the earliest day that loads since their last build brought rows of (late data, found through the
`changes` of the models they read; `assets.model_loads`). A load-aware one also reads
`getvariable('gtg_loaded_after')`, to recompute only what later loads touched —
and return only rows they computed whole (a session that started before the window, seen only in part, is
left out): every day from the window's start, or with `partition_by`, in each partition they return rows for,
every stored row from the earliest day returned on, is replaced. Full builds set them to 1970-01-01 and '',
so the same SQL serves both.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import duckdb
import sqlglot
import yaml
from sqlglot import exp

from assets import model_loads
from pipelines import ad_reporting
from pipelines.sql import ident, literal

MODELS_DIR = Path(__file__).resolve().parent.parent / "dbt_like_sql"
SCHEMA_OF_FOLDER = {"staging": "staging", "marts": "analytics"}
MATERIALIZATIONS = ("view", "table", "incremental")
TEST_KINDS = ("unique", "not_null", "accepted_values", "relationships", "row_count")
FULL_BUILD_SINCE = "1970-01-01"
_HEADER = re.compile(r"\A\s*/\*(.*?)\*/", re.DOTALL)
_HEADER_KEYS = {"description", "materialized", "incremental_key", "lookback_days", "partition_by", "columns",
                "contract", "tests", "subject_columns", "changes"}
# The shared shapes a header's `contract` names, each giving the columns (in order) and descriptions for its argument.
CONTRACTS: dict[str, Callable[[str], dict[str, str]]] = {"ad_report": ad_reporting.column_docs,
                                                         "ad_names": ad_reporting.naming_docs}
_SINCE = "getvariable('gtg_since')"
_LOADED_AFTER = "getvariable('gtg_loaded_after')"


class ModelError(ValueError):
    """A model that cannot be built; the message names the file (and line where there is one)."""


@dataclass(frozen=True)
class Model:
    name: str
    schema: str
    path: Path
    sql: str
    description: str
    materialized: str
    columns: dict[str, str]
    tests: list[dict[str, Any]]
    depends_on: tuple[str, ...]  # qualified names of the tables and models it reads
    incremental_key: str | None = None
    lookback_days: int = 0
    partition_by: tuple[str, ...] = ()  # incremental models: columns splitting the table into partitions
    subject_columns: tuple[str, ...] = ()
    view_sql: str | None = None  # views: the SELECT as DuckDB stores it in the view's definition
    datasets: tuple[str, ...] = ()  # of the loaded tables it reads, directly or through other models
    changes: model_loads.Changes | None = None  # a staging model's load id and day columns (header `changes`)
    test_reads: tuple[str, ...] = ()  # tables only its header tests read (a relationships target): built first
    trackers: tuple[model_loads.Changes, ...] = ()  # incremental models: the `changes` of the models it reads
    header: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def table(self) -> str:
        return f"{self.schema}.{self.name}"

    @property
    def keeps_history(self) -> bool:
        """A daily snapshot (split by its own day): earlier days are records, never recomputed."""
        return self.incremental_key in self.partition_by

    @property
    def load_aware(self) -> bool:
        """Whether it recomputes only what the loads since its last build touched (`assets.model_loads`)."""
        return _LOADED_AFTER in self.sql


def load_models(sources: set[str], models_dir: Path = MODELS_DIR) -> dict[str, Model]:
    """Every model under `models_dir`, checked: `sources` are the loaded tables a model may read."""
    found: dict[str, Model] = {}
    for folder, schema in SCHEMA_OF_FOLDER.items():
        for path in sorted((models_dir / folder).glob("*.sql")):
            model = _read(path, schema)
            if model.table in found:
                raise ModelError(f"{path}: a second model named {model.table}")
            found[model.table] = model
    for model in found.values():
        for dependency in model.depends_on:
            if dependency not in found and dependency not in sources:
                line = _line_of(model, dependency)
                raise ModelError(f"{model.path}:{line}: unknown table {dependency!r}; a model reads loaded tables "
                                 f"({', '.join(sorted(sources))}) or other models ({', '.join(sorted(found))})")
    _check_acyclic(found)
    return {table: replace(model, datasets=_datasets_read(table, found, sources),
                           trackers=_trackers(table, found) if model.materialized == "incremental" else ())
            for table, model in found.items()}


def _upstream(table: str, models: dict[str, Model]) -> set[str]:
    """Every table the model `table` reads, directly or through other models (not what only tests read)."""
    visited, pending = set(), [table]
    while pending:
        model = models[pending.pop()]
        for dependency in set(model.depends_on) - set(model.test_reads):
            if dependency not in visited:
                visited.add(dependency)
                if dependency in models:
                    pending.append(dependency)
    return visited


def _datasets_read(table: str, models: dict[str, Model], sources: set[str]) -> tuple[str, ...]:
    """The datasets of the loaded tables the model `table` reads, directly or through other models."""
    return tuple(sorted({t.split(".", 1)[0] for t in _upstream(table, models) if t in sources}))


def _trackers(table: str, models: dict[str, Model]) -> tuple[model_loads.Changes, ...]:
    """The `changes` declarations of the models `table` reads, directly or through other models: where its
    build finds the days that later loads brought rows of (late data included). A snapshot keeps its history
    and tracks nothing."""
    if models[table].keeps_history:
        return ()
    return tuple(models[t].changes for t in sorted(_upstream(table, models)) if t in models and models[t].changes)


def _read(path: Path, schema: str) -> Model:
    text = path.read_text(encoding="utf-8")
    match = _HEADER.match(text)
    if not match:
        raise ModelError(f"{path}:1: a model starts with a /* YAML header */ (description, materialized, ...)")
    try:
        header = yaml.safe_load(match.group(1)) or {}
    except yaml.YAMLError as exc:
        raise ModelError(f"{path}: the header is not valid YAML: {exc}") from None
    unknown = set(header) - _HEADER_KEYS
    if unknown:
        raise ModelError(f"{path}: unknown header key(s) {sorted(unknown)}; allowed: {sorted(_HEADER_KEYS)}")
    materialized = header.get("materialized", "view")
    if materialized not in MATERIALIZATIONS:
        raise ModelError(f"{path}: materialized must be one of {list(MATERIALIZATIONS)}, not {materialized!r}")
    if (materialized == "incremental") != ("incremental_key" in header):
        raise ModelError(f"{path}: incremental models (and only they) name an incremental_key")
    if "partition_by" in header and materialized != "incremental":
        raise ModelError(f"{path}: only incremental models are rebuilt by partition (partition_by)")
    if materialized == "incremental" and _SINCE not in text:
        raise ModelError(f"{path}: an incremental model filters its input on {_SINCE}, or it recomputes everything")
    if materialized != "incremental" and _LOADED_AFTER in text:
        raise ModelError(f"{path}: only incremental models read {_LOADED_AFTER}")
    try:
        statements = sqlglot.parse(text, dialect="duckdb")
    except sqlglot.ParseError as exc:
        error = exc.errors[0] if exc.errors else {}
        raise ModelError(f"{path}:{error.get('line', '?')}: SQL syntax error: {error.get('description', exc)}") from None
    query = _one_query(statements, f"{path}: the model")
    ctes = {cte.alias_or_name for cte in query.find_all(exp.CTE)}
    depends_on = tuple(sorted({
        f"{t.db}.{t.name}" for t in query.find_all(exp.Table)
        if t.name and not (not t.db and t.name in ctes)
    }))
    unqualified = sorted(d for d in depends_on if d.startswith("."))
    if unqualified:
        raise ModelError(f"{path}: tables must be schema-qualified (dataset.table): {unqualified}")
    columns = _contract_columns(path, header) if "contract" in header else \
        {str(k): str(v) for k, v in (header.get("columns") or {}).items()}
    tests = header.get("tests") or []
    for test in tests:
        _check_test(path, schema, test, columns)
    # A relationships test reads its target: build that first. Its rows are not the model's, so what the model
    # reflects of the loads (`datasets`, `trackers`) does not follow it.
    test_reads = tuple(sorted({t["relationships"]["to"] for t in tests if "relationships" in t} - set(depends_on)))
    depends_on = tuple(sorted({*depends_on, *test_reads}))
    subject_columns = tuple(header.get("subject_columns") or ())
    partition_by = tuple(header.get("partition_by") or ())
    changes = header.get("changes")
    if changes is not None:
        if not isinstance(changes, dict) or set(changes) != {"load_id", "day"}:
            raise ModelError(f"{path}: changes names the model's load id and day columns: {{load_id: ..., day: ...}}")
        changes = model_loads.Changes(f"{schema}.{path.stem}", str(changes["load_id"]), str(changes["day"]))
    for column in [header.get("incremental_key"), *partition_by, *subject_columns,
                   *((changes.load_id, changes.day) if changes else ())]:
        if column and column not in columns:
            raise ModelError(f"{path}: {column!r} is named in the header but not documented under columns")
    sql = text[match.end():].strip().rstrip(";")
    return Model(
        name=path.stem, schema=schema, path=path, sql=sql,
        description=str(header.get("description", "")).strip(), materialized=materialized, columns=columns,
        tests=tests, depends_on=depends_on, test_reads=test_reads, incremental_key=header.get("incremental_key"),
        lookback_days=int(header.get("lookback_days", 0)), partition_by=partition_by, subject_columns=subject_columns,
        view_sql=_as_duckdb_stores(sql) if materialized == "view" else None, changes=changes, header=header,
    )


def _contract_columns(path: Path, header: dict[str, Any]) -> dict[str, str]:
    """The columns and descriptions of the shared shape the header's `contract` names, described once for all
    the models of that shape, followed by the header's own `columns`, which may add columns but not describe
    one of the contract's again."""
    contract = header["contract"]
    if not isinstance(contract, dict) or len(contract) != 1 or next(iter(contract)) not in CONTRACTS:
        raise ModelError(f"{path}: contract names one of {sorted(CONTRACTS)} and its argument, not {contract!r}")
    name, argument = next(iter(contract.items()))
    try:
        shared = CONTRACTS[name](str(argument))
    except ValueError as exc:
        raise ModelError(f"{path}: contract {name}: {exc}") from None
    own = {str(k): str(v) for k, v in (header.get("columns") or {}).items()}
    again = sorted(set(own) & set(shared))
    if again:
        raise ModelError(f"{path}: columns {again} are described by its contract {name}; list only added columns")
    return {**shared, **own}


# Statements a model or test may never hold, wherever sqlglot finds them in the tree.
_STATEMENTS = tuple(getattr(exp, name) for name in (
    "Create", "Insert", "Update", "Delete", "Drop", "Copy", "Command", "Pragma", "Set", "Attach", "Detach", "Use",
    "Merge", "Alter", "Install", "Transaction", "Commit", "Rollback", "Export", "Describe", "Summarize",
) if hasattr(exp, name))
# Table sources that read nothing from outside the warehouse (generated rows).
_SAFE_TABLE_FUNCTIONS = {"unnest", "range", "generate_series"}
# Functions that read files, the environment or run SQL text, under any name DuckDB knows them by.
_FILE_FUNCTIONS = re.compile(r"^(read_.*|.*_scan|glob|getenv|query|query_table|sniff_csv|parquet_.*|iceberg_.*|"
                             r"delta_.*|load_.*|install_.*|.*_metadata)$")


def _one_query(statements: list[exp.Expression | None], what: str) -> exp.Query:
    """The single query of `statements`; a ModelError naming `what` and the reason otherwise. A model (or a
    header test) computes from the warehouse's tables and nothing else: no second statement, no statement
    that writes, attaches or configures, no table function (files, other databases, SQL text), no function
    reading files or the environment. (The build also runs with DuckDB's external access disabled.)"""
    statements = [s for s in statements if s is not None]
    if len(statements) != 1 or not isinstance(statements[0], exp.Query):
        kinds = ", ".join(type(s).__name__.upper() for s in statements) or "nothing"
        raise ModelError(f"{what} holds exactly one SELECT, not {kinds}")
    query = statements[0]
    for node in query.walk():
        if isinstance(node, _STATEMENTS):
            raise ModelError(f"{what} holds a {type(node).__name__.upper()} statement: only one SELECT is allowed")
        if isinstance(node, exp.Table) and not isinstance(node.this, exp.Identifier) and \
                _function_name(node.this) not in _SAFE_TABLE_FUNCTIONS:
            raise ModelError(f"{what} reads the table function {_function_name(node.this)!r}: models read "
                             "warehouse tables only")
        if isinstance(node, exp.Table) and node.catalog:
            raise ModelError(f"{what} reads {node.sql(dialect='duckdb')!r} from another database: models read "
                             "the warehouse's own tables only")
        if isinstance(node, exp.Func) and _FILE_FUNCTIONS.match(_function_name(node)):
            raise ModelError(f"{what} calls {_function_name(node)!r}, which reads outside the warehouse")
    return query


def _function_name(node: exp.Expression) -> str:
    if isinstance(node, exp.Anonymous):
        return str(node.name).lower()
    if isinstance(node, exp.Func):
        return node.sql_name().lower()
    return type(node).__name__.lower()


def _check_test(path: Path, schema: str, test: Any, columns: dict[str, str]) -> None:
    """A header test is one known kind over documented columns, and the query it becomes is one SELECT."""
    if not isinstance(test, dict) or len(test) != 1 or next(iter(test)) not in TEST_KINDS:
        raise ModelError(f"{path}: each test is one of {list(TEST_KINDS)} with its arguments, not {test!r}")
    kind, args = next(iter(test.items()))
    named = []
    try:
        if kind in ("unique", "not_null"):
            named = _columns(args)
        elif kind in ("accepted_values", "relationships"):
            named = [args["column"]]
        target = (str(args["to"]), str(args["field"])) if kind == "relationships" else None
        if kind == "row_count" and not all(isinstance(args[bound], int) for bound in args if bound in ("min", "max")):
            raise TypeError("row_count bounds are integers")
    except (KeyError, TypeError, ValueError):
        raise ModelError(f"{path}: the {kind} test's arguments are not valid: {args!r}") from None
    if target and not (re.fullmatch(r"[a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*", target[0])
                       and re.fullmatch(r"[a-z_][a-z0-9_]*", target[1])):
        raise ModelError(f"{path}: a relationships test names a schema.table (to) and a column (field)")
    unknown = [c for c in named if c not in columns]
    if unknown:
        raise ModelError(f"{path}: the {kind} test names {unknown}, not documented columns of the model")
    probe = Model(name=path.stem, schema=schema, path=path, sql="", description="", materialized="table",
                  columns=columns, tests=[], depends_on=())
    _one_query(sqlglot.parse(failing_rows_sql(probe, test), dialect="duckdb"), f"{path}: the {kind} test")


def _as_duckdb_stores(sql: str) -> str:
    """A SELECT as DuckDB prints it back into a view's definition (parsed, nothing bound, so no warehouse is
    needed): a build then tells an unchanged view from the catalog alone."""
    with duckdb.connect() as con:
        return con.execute("SELECT json_deserialize_sql(json_serialize_sql(?))", [sql]).fetchall()[0][0]


def _line_of(model: Model, dependency: str) -> int | str:
    schema, name = dependency.split(".", 1)
    for table in sqlglot.parse_one(model.path.read_text(encoding="utf-8"), dialect="duckdb").find_all(exp.Table):
        if table.db == schema and table.name == name:
            return table.this.meta.get("line", "?")
    return "?"


def _check_acyclic(models: dict[str, Model]) -> None:
    state: dict[str, int] = {}

    def visit(name: str, trail: list[str]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            raise ModelError(f"models depend on each other in a cycle: {' -> '.join([*trail, name])}")
        state[name] = 1
        for dependency in models[name].depends_on:
            if dependency in models:
                visit(dependency, [*trail, name])
        state[name] = 2

    for name in models:
        visit(name, [])


# -- building ---------------------------------------------------------------------------------------------


def build(con, model: Model, full_refresh: bool = False,
          sources: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """Create or refresh `model` in the warehouse behind `con`; returns what it did (mode, since, rows).

    Tables and views are replaced whole. An incremental model recomputes only from `lookback_days` before
    its latest `incremental_key` value and replaces what the result covers (`_replace_partitions`), in one
    transaction, so a reader never sees a half-built day. A source table not loaded yet (no mailbox
    connected, say) reads as empty, typed from its declaration in `sources`, so the model exists, empty,
    and everything downstream still builds."""
    sources = sources or {}
    con.execute("SET enable_external_access = false")  # a model reads the warehouse, never a file
    loaded = [t for t in model.depends_on if t in sources]
    incremental = model.materialized == "incremental"
    # An incremental model's table is read for its latest day anyway, which also tells that it exists; the
    # catalog is asked only for the rest (loaded sources, a table's comment, a view's SQL).
    latest = _latest(con, model) if incremental and not full_refresh else None
    stored = _stored(con, model, loaded) if loaded or not incremental else {}
    current = latest is not None if incremental else not full_refresh and model.table in stored
    missing = [t for t in loaded if t not in stored]
    kind = "VIEW" if model.materialized == "view" else "TABLE"
    tracked = bool(model.trackers) or model.load_aware
    since, loaded_after = window(con, model, latest)
    rows = None if since == FULL_BUILD_SINCE else latest[1]  # counted as the build goes where it can, else at the end
    if current and missing and set(missing) == set(model.depends_on):
        mode = "waiting"  # built empty before, and none of its sources is loaded yet: nothing can have changed
    elif current and kind == "VIEW" and not missing and stored[model.table].sql == model.view_sql:
        mode = "unchanged"  # a view holds no data; recreating it would only rewrite its comments
    else:
        loaded_until = model_loads.completed(con, model.datasets) if tracked else None  # before reading
        record = (lambda: model_loads.remember(con, model.table, loaded_until)) if tracked else None
        con.execute(f"SET TimeZone = 'UTC'; SET VARIABLE gtg_since = DATE '{since}'; "
                    f"SET VARIABLE gtg_loaded_after = {literal(loaded_after)}")
        sql = _bound_sql(model, missing, sources)
        refilled = _refill(con, model, sql) if current and model.materialized == "table" else None
        if refilled is not None:
            mode, rows = "refilled", refilled
        elif since == FULL_BUILD_SINCE:
            mode, rows = "full", None
            con.execute(f"CREATE SCHEMA IF NOT EXISTS {model.schema}; "
                        f"CREATE OR REPLACE {kind} {model.table} AS {sql}")
            if record:
                record()
        else:
            mode = "incremental"
            rows += _replace_partitions(con, model, sql, since, record)
    if mode in ("full", "refilled"):  # an incremental insert cannot change the columns, nor the comments
        _document(con, model, kind, stored[model.table].comment if mode == "refilled" else None)
    if rows is None:
        rows = con.execute(f"SELECT count(*) FROM {model.table}").fetchall()[0][0]
    return {"mode": mode, "since": since, "rows": rows, **({"waiting_for": missing} if missing else {}),
            **({"loaded_after": loaded_after} if tracked else {})}


def window(con, model: Model, latest: tuple[Any, int] | None) -> tuple[str, str]:
    """What an incremental build of `model` recomputes, given its stored `latest` day (`_latest`): the first day
    (`gtg_since`, `lookback_days` before the window's start) and the load its last build reflected
    (`gtg_loaded_after`); (FULL_BUILD_SINCE, '') for a full build. The Spark runner computes the same."""
    tracked = bool(model.trackers) or model.load_aware
    loaded_after = model_loads.seen(con, model.table) if tracked and latest and latest[0] is not None else ""
    start = _window_start(con, model, latest[0], loaded_after) if latest and latest[0] is not None else None
    if start is None:
        return FULL_BUILD_SINCE, ""
    return str(start - dt.timedelta(days=model.lookback_days)), loaded_after


def _window_start(con, model: Model, latest: dt.date, loaded_after: str) -> dt.date | None:
    """The first day an incremental build recomputes (before `lookback_days`): its latest day, or the earliest
    day that loads since its last build brought rows of, if earlier (late data); None — everything — when a
    tracked model has no record of what it reflects (first build since, or forgotten by the privacy engine)."""
    if not model.trackers:
        return latest
    if not loaded_after:
        return None
    late = model_loads.earliest_changed_day(con, model.trackers, loaded_after)
    return min(latest, late) if late is not None else latest


@dataclass(frozen=True)
class _Stored:
    """A table or view as the catalog holds it."""

    comment: str | None
    sql: str | None  # a view's SELECT as DuckDB stores it; None for a table


def _latest(con, model: Model) -> tuple[Any, int] | None:
    """An incremental model's latest `incremental_key` value and its rows; None before its first build."""
    try:
        latest, rows = con.execute(f"SELECT max({model.incremental_key}), count(*) FROM {model.table}").fetchall()[0]
    except duckdb.CatalogException:
        return None
    return latest, rows


def _stored(con, model: Model, sources: list[str]) -> dict[str, _Stored]:
    """Which of the model and its loaded `sources` exist in the warehouse, with their comment and (a view's)
    SELECT: one catalog query, since each look-up costs about a millisecond — on an incremental run, as much
    as a small model's data. Views are listed only for a view (listing them prints every view's SQL)."""
    relations = ("SELECT database_name, schema_name || '.' || table_name AS name, comment, NULL AS sql "
                 "FROM duckdb_tables()")
    if model.materialized == "view":
        relations += (" UNION ALL SELECT database_name, schema_name || '.' || view_name, comment, sql "
                      "FROM duckdb_views()")
    rows = con.execute(f"SELECT name, comment, sql FROM ({relations}) WHERE database_name = current_database() "
                       "AND list_contains(?, name)", [[model.table, *sources]]).fetchall()
    # A view's definition is `CREATE VIEW <name> AS <select>;`
    return {name: _Stored(comment, sql and sql.split(" AS ", 1)[1].rstrip(";")) for name, comment, sql in rows}


def _replace_partitions(con, model: Model, sql: str, since: str, record: Callable[[], None] | None) -> int:
    """Replace what the recomputed rows cover (dbt's delete+insert), in one transaction with `record` (what a
    load-aware model notes of the loads it reflects); returns how many rows the table gained. Without
    `partition_by` they cover every day from `since` on. With it, each partition they fall in is replaced
    from their earliest day in it on: earlier days stay as they were (a daily snapshot keeps them), and so
    do partitions the window did not reach (a visitor not seen since, a grain's earlier periods) — which
    takes holding the rows in a temporary table first."""
    key, partitions = model.incremental_key, model.partition_by
    con.execute("BEGIN")
    try:
        if partitions:
            con.execute(f"CREATE OR REPLACE TEMP TABLE _gtg_fresh AS {sql}")
            deleted = con.execute(
                f"DELETE FROM {model.table} AS stored USING (SELECT {', '.join(partitions)}, min({key}) AS since "
                f"FROM _gtg_fresh GROUP BY ALL) AS fresh WHERE stored.{key} >= fresh.since"
                + "".join(f" AND stored.{c} = fresh.{c}" for c in partitions)).fetchall()[0][0]
            inserted = con.execute(f"INSERT INTO {model.table} SELECT * FROM _gtg_fresh").fetchall()[0][0]
            con.execute("DROP TABLE _gtg_fresh")
        else:
            deleted = con.execute(f"DELETE FROM {model.table} WHERE {key} >= DATE '{since}'").fetchall()[0][0]
            inserted = con.execute(f"INSERT INTO {model.table} SELECT * FROM ({sql}) "
                                   f"WHERE {key} >= DATE '{since}'").fetchall()[0][0]  # never a day twice
        if record:
            record()
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return inserted - deleted


_DUCKDB_TYPES = {"text": "VARCHAR", "bigint": "BIGINT", "bool": "BOOLEAN", "timestamp": "TIMESTAMPTZ",
                 "date": "DATE", "binary": "BLOB", "double": "DOUBLE", "json": "JSON", "decimal": "DECIMAL(38, 9)",
                 "time": "TIME", "wei": "DECIMAL(38, 0)"}


def _bound_sql(model: Model, missing: list[str], sources: dict[str, dict[str, Any]]) -> str:
    """The model's SQL with every missing source replaced by an empty, typed relation (its declared columns
    plus dlt's own), so the model builds empty instead of failing."""
    if not missing:
        return model.sql

    def empty(table: str) -> exp.Expression:
        columns = {**sources[table], "_dlt_load_id": {"data_type": "text"}, "_dlt_id": {"data_type": "text"}}
        select = ", ".join(f"CAST(NULL AS {_DUCKDB_TYPES[c.get('data_type', 'text')]}) AS {ident(name)}"
                           for name, c in columns.items())
        return sqlglot.parse_one(f"SELECT {select} WHERE false", dialect="duckdb")

    def swap(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Table) and f"{node.db}.{node.name}" in missing:
            return empty(f"{node.db}.{node.name}").subquery(node.alias_or_name)
        return node

    return sqlglot.parse_one(model.sql, dialect="duckdb").transform(swap).sql(dialect="duckdb")


def _refill(con, model: Model, sql: str) -> int | None:
    """Empty and refill an existing table in one transaction, keeping its comments (recreating it would drop
    them, and rewriting them costs more than a small mart's data); returns its rows, or None when the SELECT
    no longer fits the table (columns changed), so the caller recreates it."""
    con.execute("BEGIN")
    try:
        con.execute(f"DELETE FROM {model.table}")
        rows = con.execute(f"INSERT INTO {model.table} BY NAME {sql}").fetchall()[0][0]
    except duckdb.Error:
        con.execute("ROLLBACK")
        return None
    con.execute("COMMIT")
    return rows


def _document(con, model: Model, kind: str, table_comment: str | None) -> None:
    """Check the header documents exactly the SELECT's columns, and write what changed of the docs as
    DuckDB comments (a refill usually writes none: each comment is a catalog change); `table_comment` is the
    stored one."""
    stored = dict(con.execute(
        "SELECT column_name, comment FROM duckdb_columns() WHERE schema_name = ? AND table_name = ?",
        [model.schema, model.name]).fetchall())
    undocumented = sorted(stored.keys() - model.columns.keys())
    missing = sorted(model.columns.keys() - stored.keys())
    if undocumented or missing:
        raise ModelError(f"{model.path}: the header's columns do not match the SELECT "
                         f"(undocumented: {undocumented}, documented but absent: {missing})")
    statements = [f"COMMENT ON {kind} {model.table} IS {literal(model.description)}"] \
        if model.description and table_comment != model.description else []
    statements += [f"COMMENT ON COLUMN {model.table}.{column} IS {literal(text)}"
                   for column, text in model.columns.items() if stored[column] != text]
    if statements:
        con.execute(";\n".join(statements))


# -- tests ------------------------------------------------------------------------------------------------


def _columns(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def check_name(test: dict[str, Any]) -> str:
    """A stable check name for a header test, e.g. `unique__session_id`, `not_null`."""
    kind, args = next(iter(test.items()))
    if kind in ("unique",):
        return f"unique__{'__'.join(_columns(args))}"
    if kind in ("accepted_values", "relationships"):
        return f"{kind}__{args['column']}"
    return kind


def failing_rows_sql(model: Model, test: dict[str, Any]) -> str:
    """A query returning one number: how many rows (or groups) break `test` (0 passes)."""
    kind, args = next(iter(test.items()))
    table = model.table
    if kind == "unique":
        cols = ", ".join(_columns(args))
        return f"SELECT count(*) FROM (SELECT {cols} FROM {table} GROUP BY ALL HAVING count(*) > 1)"
    if kind == "not_null":
        return f"SELECT count(*) FROM {table} WHERE " + " OR ".join(f"{c} IS NULL" for c in _columns(args))
    if kind == "accepted_values":
        values = ", ".join(literal(str(v)) for v in args["values"])
        return f"SELECT count(*) FROM {table} WHERE {args['column']} IS NOT NULL AND {args['column']} NOT IN ({values})"
    if kind == "relationships":
        return (f"SELECT count(*) FROM {table} WHERE {args['column']} IS NOT NULL AND {args['column']} NOT IN "
                f"(SELECT {args['field']} FROM {args['to']})")
    bounds = [f"count(*) < {int(args['min'])}"] if "min" in args else []
    bounds += [f"count(*) > {int(args['max'])}"] if "max" in args else []
    return f"SELECT CASE WHEN {' OR '.join(bounds) or 'false'} THEN 1 ELSE 0 END FROM {table}"


# Values that look like personal data, whatever column they hide in.
PII_PATTERNS = {
    "email": r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}",
    # International (+...) or separated (555-123-4567) numbers; a bare run of digits is an id, not a phone.
    "phone": r"(^|[^0-9A-Za-z])(\+[0-9][0-9 ().-]{6,}[0-9]|\(?[0-9]{3}\)?[ .-][0-9]{3}[ .-][0-9]{4})([^0-9A-Za-z]|$)",
    "ipv4": r"\b(25[0-5]|2[0-4][0-9]|1?[0-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1?[0-9]?[0-9])){3}\b",
    "ipv6": r"\b[0-9A-Fa-f]{1,4}(:[0-9A-Fa-f]{0,4}){2,7}\b",
}


def readable_personal_data(con, model: Model, personal_columns: set[str]) -> dict[str, int]:
    """Per finding, how many cells of `model` hold readable personal data: a column named like a declared
    personal column, a binary column other than the declared subject key, or a text value that looks like an
    e-mail, phone number or IP address. Aggregate-safe columns (an IP *network*, `/24`) are not flagged."""
    types = dict(con.execute(
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = ? AND table_name = ?",
        [model.schema, model.name]).fetchall())
    found: dict[str, int] = {}
    for column, data_type in types.items():
        if column in personal_columns:
            found[f"{column}: declared personal column"] = 1
        elif data_type == "BLOB" and column not in model.subject_columns:
            found[f"{column}: binary column"] = 1
        elif data_type == "VARCHAR":
            checks = ", ".join(f"count_if(regexp_matches({column}, '{p}'))" for p in PII_PATTERNS.values())
            counts = con.execute(f"SELECT {checks} FROM {model.table}").fetchone()
            for name, count in zip(PII_PATTERNS, counts):
                if count:
                    found[f"{column}: {name}"] = int(count)
    return found


def pseudonymous_tables(models: dict[str, Model]) -> dict[str, dict[str, dict[str, Any]]]:
    """The stored models that hold people's pseudonymous keys, declared as the privacy engine reads tables
    (`x-pseudonym` columns beside `workspace_id`, and the date they are kept by), so retention, erasure and
    access cover them with no code of their own."""
    return {
        model.table: {"workspace_id": {"data_type": "text"},
                      **({model.incremental_key: {"data_type": "date"}} if model.incremental_key else {}),
                      **{column: {"data_type": "binary", "x-pseudonym": True} for column in model.subject_columns}}
        for model in models.values() if model.subject_columns and model.materialized != "view"
    }


def build_order(models: dict[str, Model]) -> list[Model]:
    """The models with every model after those it reads (what Dagster's graph does, for scripts)."""
    ordered: dict[str, Model] = {}

    def visit(name: str) -> None:
        if name in ordered:
            return
        for dependency in models[name].depends_on:
            if dependency in models:
                visit(dependency)
        ordered[name] = models[name]

    for name in models:
        visit(name)
    return list(ordered.values())
