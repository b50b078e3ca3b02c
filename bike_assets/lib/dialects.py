"""DuckDB's SQL on Spark: every spelling the Spark engine needs, in one place, with its reason.

The project's SQL is written once, in DuckDB's dialect: the models and the business rules
(sql/), the checks (sql/checks/), the export's validations (lib/export.py). On Spark
(BIKE_ENGINE=spark) sqlglot translates it (`sqlglot.transpile(sql, read="duckdb",
write="spark")`), which already spells most of DuckDB for Spark: `sha256(x)` as `sha2(x, 256)`,
`encode(x)` as `encode(x, 'utf-8')`, `date_diff('day', a, b)` as `datediff(DAY, a, b)`,
`qualify` as a subquery, `any_value(x)` with `ignore nulls` (DuckDB's any_value skips nulls),
`order by` with DuckDB's `nulls last` written out, `//` as `div`, `x::varchar` as a cast to
STRING, `regexp_replace(..., 'g')` as Spark's (which replaces every match), `strpos` as
`locate`. What it leaves for Spark to refuse, or what Spark would compute differently, is
rewritten here (`to_spark`), each rewrite with its reason; the settings that make Spark
compute as DuckDB does are SESSION_CONF. Nothing here is a business rule: a rule lives in
sql/macros/rules.sql and nowhere else.

Known differences that no rewrite removes (the README lists them): upper() and lower() follow
Java's case mapping on Spark (upper('ß') is 'SS', DuckDB's 'ẞ'); the HMAC pads of the PII key
are Spark session variables, whose values Spark's plans (Spark UI, event logs) show.
"""

import re
from collections.abc import Callable, Iterable, Mapping

import sqlglot
from sqlglot import exp

# Spark SQL settings of every session of a run (set at the start of each run).
SESSION_CONF = {
    # DuckDB computes decimals exactly and fails when a result does not fit. By default Spark
    # cuts the scale of a product whose precision passes 38 (decimal(18,2) x int x
    # decimal(19,6) would keep 6 decimals of its 8, then round the cents from those): off, a
    # result keeps its scale and fails when it does not fit, as in DuckDB.
    "spark.sql.decimalOperations.allowPrecisionLoss": "false",
    # An overflow or a bad cast fails the query (DuckDB's behaviour) instead of giving null.
    # Spark 4's default; set in case a cluster turns it off.
    "spark.sql.ansi.enabled": "true",
    # The pipeline's values are dates, never instants; a fixed zone keeps any conversion the
    # same on every machine.
    "spark.sql.session.timeZone": "UTC",
}

# Spark's type names (DataType.simpleString) as DuckDB writes them in the contract
# (specs.Table.columns, checked by columns_match_contract); decimals keep their (p,s).
_CONTRACT_TYPES = {
    "tinyint": "TINYINT",
    "smallint": "SMALLINT",
    "int": "INTEGER",
    "bigint": "BIGINT",
    "float": "FLOAT",
    "double": "DOUBLE",
    "boolean": "BOOLEAN",
    "string": "VARCHAR",
    "binary": "BLOB",
    "date": "DATE",
    "timestamp": "TIMESTAMP WITH TIME ZONE",
    "timestamp_ntz": "TIMESTAMP",
}

# DuckDB's whole numbers wider than BIGINT, as the Spark decimal that holds every value.
_WIDE_WHOLE = {
    exp.DataType.Type.INT128: 38,  # HUGEINT: divide_half_up's exact sums of cents
    exp.DataType.Type.UINT128: 38,
    exp.DataType.Type.UBIGINT: 20,
}

# The columns of information_schema.columns that a check reads (columns_match_contract).
_INFORMATION_SCHEMA = ("table_catalog", "table_schema", "table_name", "column_name", "data_type")

# Columns is: (schema, table, column, DuckDB type name) of every table of the version.
Columns = Callable[[], Iterable[tuple[str, str, str, str]]]


class UnknownTable(KeyError):
    """A query names a schema.table that the run's version of the warehouse does not hold."""


def contract_type(spark_type: str) -> str:
    """A Spark type (DataType.simpleString(): 'bigint', 'decimal(18,2)') as DuckDB names it
    in the contract ('BIGINT', 'DECIMAL(18,2)'); other types upper-cased as Spark names them."""
    if spark_type.startswith("decimal"):
        return spark_type.upper().replace(" ", "")
    return _CONTRACT_TYPES.get(spark_type, spark_type.upper())


def glob_to_regex(pattern: str) -> str:
    """A GLOB pattern (`*`, `?`, `[...]`, `[!...]`) as the Java regular expression that
    matches the same whole strings: '*[!0-9+-]*' is '^.*[^0-9+-].*$'."""
    out, i = ["^"], 0
    while i < len(pattern):
        char = pattern[i]
        if char == "*":
            out.append(".*")
        elif char == "?":
            out.append(".")
        elif char == "[" and "]" in pattern[i + 2 :]:
            start = i + 2 if pattern[i + 1] == "!" else i + 1
            start += pattern[start : start + 1] == "]"  # a ] first in the set is itself
            end = pattern.index("]", start)
            body = pattern[i + 1 : end]
            if body.startswith("!"):
                body = "^" + body[1:]
            out.append("[" + body.replace("\\", "\\\\").replace("[", "\\[") + "]")
            i = end
        else:
            out.append(re.escape(char))
        i += 1
    return "".join(out) + "$"


def to_spark(sql: str, relations: Mapping[str, str], columns: Columns | None = None) -> str:
    """One statement of DuckDB SQL as Spark SQL, over a version of the warehouse.

    `relations` maps each table the version holds ('staging.stg_customers', 'work.orders')
    to the Spark relation that reads it (a temporary view over its folder of Parquet files:
    Spark's catalog does not hold the version's tables); a query reads it in the table's
    place, under the table's name. `columns` gives the version's columns, read only when the
    query reads information_schema.columns. Raises UnknownTable naming a schema.table the
    version does not hold, sqlglot.ParseError for SQL that is not DuckDB's.
    """
    tree = sqlglot.parse_one(sql, read="duckdb")
    tree = tree.transform(lambda node: _rewrite(node, relations, columns))
    return tree.sql(dialect="spark")


def _rewrite(node: exp.Expression, relations: Mapping[str, str], columns: Columns | None):
    # getvariable('x'): DuckDB reads a session variable with a function, Spark by its name
    # (set by `set_variable`); qualified, so that no column of the same name hides it.
    if isinstance(node, exp.Anonymous) and node.name.lower() == "getvariable":
        (name,) = node.expressions
        return exp.column(name.name, table="session", db="system")
    # error(message): DuckDB's, to fail a query on a value; Spark's is raise_error.
    if isinstance(node, exp.Anonymous) and node.name.lower() == "error":
        return exp.Anonymous(this="raise_error", expressions=node.expressions)
    # x GLOB 'pattern': Spark has no GLOB; the same whole-string match as a regex.
    if isinstance(node, exp.Glob) and isinstance(node.expression, exp.Literal):
        return exp.RegexpLike(
            this=node.this, expression=exp.Literal.string(glob_to_regex(node.expression.name))
        )
    # regexp_full_match(x, p): DuckDB matches the whole string; Spark's RLIKE any part of it.
    if isinstance(node, exp.RegexpFullMatch) and isinstance(node.expression, exp.Literal):
        pattern = f"^(?:{node.expression.name})$"
        return exp.RegexpLike(this=node.this, expression=exp.Literal.string(pattern))
    # HUGEINT and unsigned whole numbers: Spark's widest whole number is BIGINT; a decimal of
    # scale 0 holds every value (divide_half_up: twice a sum of cents).
    if isinstance(node, exp.DataType) and node.this in _WIDE_WHOLE:
        return exp.DataType.build(f"DECIMAL({_WIDE_WHOLE[node.this]}, 0)")
    # string_agg(distinct x, sep order by x): Spark 4.3 fails on a query with two
    # listagg(distinct ...) (a ClassCastException in RewriteDistinctAggregates); the set of
    # values, sorted and joined, is the same text.
    if isinstance(node, exp.GroupConcat) and _distinct_sorted(node.this):
        (value,) = node.this.this.expressions
        separator = node.args.get("separator") or exp.Literal.string(",")
        return sqlglot.parse_one(
            f"array_join(array_sort(collect_set({value.sql('spark')})), {separator.sql('spark')})",
            read="spark",
        )
    # list(x order by y): Spark's collect_list keeps no order; sort (y, x) pairs, keep x.
    if isinstance(node, exp.ArrayAgg) and isinstance(node.this, exp.Order):
        return _ordered_list(node.this)
    if isinstance(node, exp.Table) and node.args.get("db") is not None:
        return _relation(node, relations, columns)
    return node


def _distinct_sorted(node: exp.Expression) -> bool:
    """Whether an aggregate's argument is `distinct x order by x` (ascending)."""
    if not (isinstance(node, exp.Order) and isinstance(node.this, exp.Distinct)):
        return False
    values, keys = node.this.expressions, node.expressions
    return (
        len(values) == 1
        and len(keys) == 1
        and not keys[0].args.get("desc")
        and keys[0].this == values[0]
    )


def _ordered_list(order: exp.Order) -> exp.Expression:
    keys = order.expressions
    if any(key.args.get("desc") for key in keys):
        raise NotImplementedError(f"list(... order by ... desc) on Spark: {order.sql('duckdb')}")
    fields = ", ".join(f"'k{i}', {key.this.sql('spark')}" for i, key in enumerate(keys))
    return sqlglot.parse_one(
        f"transform(array_sort(collect_list(named_struct({fields}, 'v', "
        f"{order.this.sql('spark')}))), e -> e.v)",
        read="spark",
    )


def _relation(
    table: exp.Table, relations: Mapping[str, str], columns: Columns | None
) -> exp.Expression:
    name = f"{table.db}.{table.name}"
    alias = table.alias or table.name
    # information_schema.columns: Spark's catalog does not hold the version's tables (they
    # are folders of Parquet files): their columns, typed as DuckDB names them, as VALUES.
    if name.lower() == "information_schema.columns":
        if columns is None:
            raise UnknownTable(f"{name}: this query cannot read the version's columns")
        return exp.Subquery(this=_columns_relation(columns()), alias=exp.TableAlias(this=alias))
    if name not in relations:
        raise UnknownTable(
            f"{name}: no such table in this version of the warehouse "
            f"(it holds {', '.join(sorted(relations)) or 'no table'})"
        )
    return exp.to_table(relations[name]).as_(alias)


def _columns_relation(rows: Iterable[tuple[str, str, str, str]]) -> exp.Expression:
    """SELECT current_database() AS table_catalog, ... FROM VALUES (...): the rows of
    information_schema.columns for the given (schema, table, column, type)."""
    values = [tuple(exp.Literal.string(v) for v in row) for row in rows]
    names = ", ".join(_INFORMATION_SCHEMA[1:])
    if not values:
        return sqlglot.parse_one(
            "select cast(null as string) as table_catalog, "
            + ", ".join(f"cast(null as string) as {n}" for n in _INFORMATION_SCHEMA[1:])
            + " where false",
            read="spark",
        )
    rows_sql = ", ".join("(" + ", ".join(v.sql("spark") for v in row) + ")" for row in values)
    return sqlglot.parse_one(
        f"select current_database() as table_catalog, {names} "
        f"from values {rows_sql} as information_schema_columns({names})",
        read="spark",
    )


def set_variable_sql(name: str) -> tuple[str, str]:
    """The Spark statements that declare the session variable `name` (BINARY) and set it from
    the parameter :value: DuckDB's `set variable name = ?::blob` (read by getvariable)."""
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
        raise ValueError(f"not a variable name: {name!r}")
    return (
        f"declare or replace variable {name} binary",
        f"set var {name} = :value",
    )
