"""The Spark engine (BIKE_ENGINE=spark): the asset graph, its checks and its publication on
Spark, local (`local[2]`) or a cluster through Spark Connect (BIKE_SPARK_REMOTE).

The SQL is the project's, written once in DuckDB's dialect, and translated for Spark by
lib/dialects.py. Each table is a folder of Parquet files, in Spark's managed-table layout
under the warehouse's root (BIKE_SPARK_WAREHOUSE), so that any engine reads it:

    <schema>.db/<table>/v=<version>/part-*.parquet   a version of a table (one run's)
    _published/<published>-<run>/part-*.txt          one manifest per published version
    _work/<name>/                                    the last run's working tables

Publication: Spark has no transaction over several tables, so a run never replaces a table in
place. It writes each table it builds to a folder of its own version (`v=<version>`), which no
manifest names yet; when the run's last step has passed its checks (and the layers agree), it
writes the version's manifest: one JSON line naming the folder of every table of the version,
the ones the run built and the published ones it did not rebuild. The newest manifest (by
name: the time it was written) is the published version. The manifest is the run's last write,
one small Spark job whose file appears whole when the job commits (a rename into
`_published/<name>/` on a local disk or HDFS): a reader that resolves the newest manifest and
then reads the folders it names sees the previous version or the new one whole, never a mix. A
run that fails or is killed before that writes no manifest: the published version is as it
was, and the folders the run wrote are named by no manifest (removed by the next run).

Retention: with a local Spark (BIKE_SPARK_REMOTE unset), each run, at its start and after it
publishes, deletes the folders and manifests that the KEEP_VERSIONS newest manifests do not
name, and the working tables; a reader still reading a version that old gets a missing-file
error, never a mix. Through Spark Connect, the client has no way to delete files (Spark has no
such API): old versions stay until a lifecycle rule of the storage removes them.

One run at a time, as with DuckDB: a run holds `<warehouse>.lock` (lib/warehouse.RunLock) from
its first write to its end (for a warehouse that is a URI, a lock file in the system's temp
folder: it keeps apart the runs of one machine only).

The export is read by Spark's CSV reader, every column as text, each file as one partition
(`multiLine`: quoted values may hold line breaks), so that records keep the file's order and
each row gets its line, as DuckDB's reader gives it; the files are judged by the same byte scan,
header checks and contract SQL as on DuckDB (lib/export.py).
"""

import codecs
import csv
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlglot
from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame, Observation, SparkSession
from pyspark.sql import functions as F

from bike_assets.lib import dialects, export, pii
from bike_assets.lib.checks import layers_disagree
from bike_assets.lib.quarantine import (
    REJECTED,
    check_rejected_share,
    quarantine_rows,
    reason_as_written,
    rejected_rows_sql,
)
from bike_assets.lib.reference import LOOKUPS, REFERENCE_DIR
from bike_assets.lib.sql import WORK_SCHEMA, source
from bike_assets.lib.warehouse import RunLock, WarehouseError, refuse_unless_layers_agree

if TYPE_CHECKING:
    import pandas as pd

LOCAL_MASTER = "local[2]"
PUBLISHED_DIR = "_published"
WORK_DIR = "_work"
KEEP_VERSIONS = 2  # the published versions kept (the newest and the one before)
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:")


# --- Settings and the session -----------------------------------------------------------------


def is_uri(path: str) -> bool:
    """Whether a warehouse is a URI (s3a://bucket/warehouse, file:/tmp/w), not a local path."""
    return bool(_URI.match(path))


def root_of(warehouse: str) -> str:
    """The warehouse's root as Spark reads it: a URI as given, a local path made absolute (a
    local Spark resolves it from its own working folder, a cluster from nowhere)."""
    return warehouse.rstrip("/") if is_uri(warehouse) else str(Path(warehouse).resolve())


def session(remote: str, root: str, conf: Mapping[str, str] | None = None) -> SparkSession:
    """The Spark session of a run: through Spark Connect at `remote` (sc://host:15002), or
    local (LOCAL_MASTER) when `remote` is empty; one per process, reused by the next run.

    Every run sets dialects.SESSION_CONF on it (the settings that make Spark compute as
    DuckDB does). A local session shows no UI (its plans would show the PII key's pads) and
    logs only Spark's errors; `conf` adds settings to a local session when this call starts
    it (the tests start a Spark Connect server in theirs).
    """
    if remote:
        # Spark Connect's own session class (it needs the packages of pyspark[connect]):
        # `SparkSession.builder.remote` refuses to start one in a process that runs a local
        # Spark too (as the tests' Spark Connect server does).
        from pyspark.sql.connect.session import SparkSession as ConnectSession

        spark = ConnectSession.builder.remote(remote).getOrCreate()
    else:
        spark = (
            SparkSession.builder.master(LOCAL_MASTER)
            .appName("bike_assets")
            .config("spark.sql.warehouse.dir", root)
            .config("spark.ui.enabled", "false")
            .config("spark.ui.showConsoleProgress", "false")
            # two cores: Spark's default of 200 shuffle partitions makes 200 tiny tasks a stage
            .config("spark.sql.shuffle.partitions", "4")
            .config(map=dict(conf or {}))
            .getOrCreate()
        )
        spark.sparkContext.setLogLevel("ERROR")
    for key, value in dialects.SESSION_CONF.items():
        spark.conf.set(key, value)
    return spark


# --- Published versions: the manifests --------------------------------------------------------


@dataclass(frozen=True)
class Manifest:
    """A published version: the folder (relative to the root) of each of its tables.

    `name` is its folder under _published: '<published, UTC>-<run id's first 8>', so that the
    newest sorts last.
    """

    name: str
    run_id: str
    tables: dict[str, str]
    rows: dict[str, int]

    def line(self) -> str:
        return json.dumps(
            {"name": self.name, "run_id": self.run_id, "tables": self.tables, "rows": self.rows},
            sort_keys=True,
        )

    @classmethod
    def from_line(cls, line: str) -> "Manifest":
        data = json.loads(line)
        return cls(data["name"], data["run_id"], data["tables"], data["rows"])


def read_manifests(spark: SparkSession, root: str) -> list["Manifest"]:
    """Every published version under `root`, oldest first (empty when none)."""
    try:
        lines = spark.read.text(f"{root}/{PUBLISHED_DIR}/*").collect()
    except AnalysisException as error:
        if "PATH_NOT_FOUND" in str(error):
            return []
        raise
    return sorted((Manifest.from_line(row.value) for row in lines), key=lambda m: m.name)


def collect_garbage(root: str, manifests: Sequence[Manifest]) -> None:
    """Delete (local warehouse only) the manifests older than the KEEP_VERSIONS newest of
    `manifests` (all, oldest first), the table folders that none of those names (left by older
    versions, and by failed or killed runs), and the working tables. Called by the run that
    holds the lock, before it writes and after it publishes."""
    base = Path(root)
    kept = manifests[-KEEP_VERSIONS:]
    named = {folder for manifest in kept for folder in manifest.tables.values()}
    for manifest in manifests[:-KEEP_VERSIONS]:
        shutil.rmtree(base / PUBLISHED_DIR / manifest.name, ignore_errors=True)
    for folder in base.glob("*.db/*/v=*"):
        relative = folder.relative_to(base).as_posix()
        if relative not in named:
            shutil.rmtree(folder, ignore_errors=True)
    shutil.rmtree(base / WORK_DIR, ignore_errors=True)


def lock_path(root: str) -> Path:
    """The run lock's file: `<warehouse>.lock` beside a local warehouse; for a URI, a file
    of the system's temp folder named after it."""
    if is_uri(root):
        digest = hashlib.sha256(root.encode()).hexdigest()[:16]
        return Path(tempfile.gettempdir()) / f"bike_assets-spark-{digest}.lock"
    return Path(root + ".lock")


# --- DuckDB's SQL over a version ----------------------------------------------------------------


@dataclass
class Result:
    """A query's result, as much of a DuckDB cursor as the pipeline reads: `description`
    (column names first), `fetchall()`, `fetchone()`."""

    description: list[tuple[str]]
    rows: list[tuple[Any, ...]]

    def fetchall(self) -> list[tuple[Any, ...]]:
        return self.rows

    def fetchone(self) -> tuple[Any, ...] | None:
        return self.rows[0] if self.rows else None


class SparkConnection:
    """DuckDB's SQL run on Spark over one version of the warehouse: `tables` maps each of its
    tables (schema.table) to its folder, relative to `root`.

    What the IO manager's preview, the assets' charts (Model.describe) and the checks call
    `execute` on, as on a DuckDB connection; values come back as DuckDB gives them (int,
    Decimal, date, str). A query reads each table through a temporary view over its folder
    (`<schema>__<table>__<hash of the folder>`), made on first use: Spark lists the folder's
    files and reads their schema once, not at every query.
    """

    def __init__(self, spark: SparkSession, root: str, tables: Mapping[str, str]) -> None:
        self.spark = spark
        self.root = root
        self.tables = tables
        self._views: dict[str, str] = {}  # folder -> its temporary view

    def path(self, table: str) -> str:
        return f"{self.root}/{self.tables[table]}"

    def view(self, table: str) -> str:
        """The temporary view that reads `table`'s folder (made now if need be)."""
        folder = self.tables[table]
        if folder not in self._views:
            digest = hashlib.sha256(folder.encode()).hexdigest()[:10]
            view = f"{table.replace('.', '__')}__{digest}"
            self.spark.read.parquet(self.path(table)).createOrReplaceTempView(view)
            self._views[folder] = view
        return self._views[folder]

    def forget(self, folder: str) -> None:
        """The folder was written again: its view is made anew on next use."""
        self._views.pop(folder, None)

    def to_spark(self, sql: str, parameters: Sequence[Any] = ()) -> str:
        """The Spark SQL of DuckDB's `sql` over this version; `?` parameters inlined."""
        if parameters:
            sql = _inline(sql, parameters)
        return dialects.to_spark(sql, _Views(self), self._information_schema)

    def frame(self, sql: str, parameters: Sequence[Any] = ()) -> DataFrame:
        """A query (DuckDB SQL) as a Spark DataFrame, not yet computed."""
        return self.spark.sql(self.to_spark(sql, parameters))

    def execute(self, sql: str, parameters: Sequence[Any] = ()) -> Result:
        """Run a query (DuckDB SQL, `?` parameters) and fetch its rows."""
        frame = self.frame(sql, parameters)
        rows = [tuple(row) for row in frame.collect()]
        return Result([(name,) for name in frame.columns], rows)

    def query_rows(self, sql: str, limit: int) -> tuple[list[str], list[tuple[Any, ...]], int]:
        """(column names, first `limit` rows, row count) of a query, computed once: its
        first rows, each with the count of all (a check's failing rows are few)."""
        spark_sql = self.to_spark(sql)
        if not limit:
            frame = self.spark.sql(spark_sql)
            return list(frame.columns), [], frame.count()
        frame = self.spark.sql(f"select *, count(1) over () from ({spark_sql}) limit {limit}")
        first = frame.collect()
        rows = [tuple(row)[:-1] for row in first]
        return list(frame.columns)[:-1], rows, first[0][-1] if first else 0

    def read_frame(self, table: str) -> "pd.DataFrame":
        """A table as a pandas DataFrame."""
        return self.spark.table(self.view(table)).toPandas()

    def _information_schema(self) -> list[tuple[str, str, str, str]]:
        """(schema, table, column, DuckDB type) of every column of the version's tables."""
        rows = []
        for table in sorted(self.tables):
            schema_name, name = table.split(".")
            rows += [
                (schema_name, name, f.name, dialects.contract_type(f.dataType.simpleString()))
                for f in self.spark.table(self.view(table)).schema
            ]
        return rows


class _Views(Mapping[str, str]):
    """The version's tables as the temporary views that read them, made when a query names
    them (dialects.to_spark looks up only the tables a query reads)."""

    def __init__(self, connection: SparkConnection) -> None:
        self.connection = connection

    def __getitem__(self, table: str) -> str:
        if table not in self.connection.tables:
            raise KeyError(table)
        return self.connection.view(table)

    def __iter__(self) -> Iterator[str]:
        return iter(self.connection.tables)

    def __len__(self) -> int:
        return len(self.connection.tables)


def _inline(sql: str, parameters: Sequence[Any]) -> str:
    """DuckDB SQL with its `?` parameters replaced by literals, in order."""
    values = iter(parameters)

    def literal(node: sqlglot.exp.Expression) -> sqlglot.exp.Expression:
        if isinstance(node, sqlglot.exp.Placeholder):
            return sqlglot.exp.convert(next(values))
        return node

    return sqlglot.parse_one(sql, read="duckdb").transform(literal).sql(dialect="duckdb")


# --- A run's version ------------------------------------------------------------------------


def _observing(frame: DataFrame) -> tuple[Any, type]:
    """The functions module and the Observation class of a DataFrame's kind of session: Spark
    Connect's, or a local Spark's (pyspark picks one per process, and the tests run both)."""
    if type(frame).__module__.startswith("pyspark.sql.connect"):
        from pyspark.sql.connect import functions
        from pyspark.sql.connect.observation import Observation as ConnectObservation

        return functions, ConnectObservation
    return F, Observation


@dataclass
class SparkCandidate:
    """The version of the warehouse a run builds: the published tables, and the ones it
    (re)builds, each written to `<schema>.db/<table>/v=<version>`; published whole by
    `publish` (its manifest)."""

    spark: SparkSession
    root: str
    run_id: str
    published: Manifest | None
    local: bool  # whether this process may delete the run's folders (local warehouse)
    version: str = field(init=False)
    tables: dict[str, str] = field(init=False)
    built: dict[str, int] = field(default_factory=dict)  # schema.table rebuilt -> its rows
    connection: SparkConnection = field(init=False)

    def __post_init__(self) -> None:
        self.version = f"{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}-{self.run_id[:8]}"
        self.tables = dict(self.published.tables) if self.published else {}
        self.connection = SparkConnection(self.spark, self.root, self.tables)

    def folder(self, table: str) -> str:
        """Where the run writes `table`: its version's folder, or _work/<name> for a working
        table (schema work)."""
        schema, name = table.split(".")
        if schema == WORK_SCHEMA:
            return f"{WORK_DIR}/{name}"
        return f"{schema}.db/{name}/v={self.version}"

    def create_table(self, table: str, select: str) -> int:
        """Make `select`'s result (DuckDB SQL) the version's `table` (schema.table); returns
        its rows."""
        rows = self.write(table, self.connection.frame(select))
        if not table.startswith(f"{WORK_SCHEMA}."):
            self.built[table] = rows
        return rows

    def write(self, table: str, frame: DataFrame) -> int:
        """Write a DataFrame as the version's `table`; returns its rows."""
        folder = self.folder(table)
        functions, observation = _observing(frame)
        rows = observation(f"rows of {table}")  # counted as the rows are written
        counted = frame.observe(rows, functions.count(functions.lit(1)).alias("rows"))
        counted.write.mode("overwrite").parquet(f"{self.root}/{folder}")
        self.tables[table] = folder
        self.connection.forget(folder)
        return rows.get["rows"]

    def inherited(self) -> list[str]:
        """The published tables this run did not rebuild (kept as they are)."""
        return sorted(
            table
            for table in self.tables
            if table not in self.built and not table.startswith(f"{WORK_SCHEMA}.")
        )

    def publish(self) -> Manifest:
        """Write the version's manifest, the run's last write: from then on it is the
        published version. Returns it."""
        tables = {t: f for t, f in self.tables.items() if not t.startswith(f"{WORK_SCHEMA}.")}
        rows = {table: self.built.get(table) for table in tables}
        published = self.published.rows if self.published else {}
        manifest = Manifest(
            f"{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}-{self.run_id[:8]}",
            self.run_id,
            tables,
            {table: n if n is not None else published.get(table, -1) for table, n in rows.items()},
        )
        frame = self.spark.createDataFrame([(manifest.line(),)], "value string")
        frame.coalesce(1).write.mode("error").text(f"{self.root}/{PUBLISHED_DIR}/{manifest.name}")
        return manifest

    def discard(self) -> None:
        """Delete the folders this run wrote (local warehouse; nothing names them)."""
        if self.local:
            for folder in Path(self.root).glob(f"*.db/*/v={self.version}"):
                shutil.rmtree(folder, ignore_errors=True)
            shutil.rmtree(Path(self.root) / WORK_DIR, ignore_errors=True)


class SparkEngine:
    """A Spark warehouse (`warehouse`, a folder or URI) through a session (`remote`: a Spark
    Connect URL, or empty for a local Spark): a run's candidate, the published version, and
    publication. Settings are validated by the Dagster resource (defs/resources.py)."""

    def __init__(self, remote: str, warehouse: str, lock_timeout_seconds: float) -> None:
        self.remote = remote
        self.warehouse = warehouse
        self.root = root_of(warehouse)
        self.lock_timeout_seconds = lock_timeout_seconds
        self.local = not remote and not is_uri(warehouse)
        self.candidate: SparkCandidate | None = None
        self._lock: RunLock | None = None
        self._reader: SparkConnection | None = None
        self._spark: SparkSession | None = None
        self._manifests: list[Manifest] = []  # the published versions when the run started

    @property
    def spark(self) -> SparkSession:
        if self._spark is None:
            self._spark = session(self.remote, self.root)
        return self._spark

    def open(self, run_id: str) -> SparkCandidate:
        """The run's candidate, opened on first use: waits for any other run (the lock),
        removes what killed runs left, starts from the newest published version."""
        if self.candidate is None:
            lock = lock_path(self.root)
            lock.parent.mkdir(parents=True, exist_ok=True)
            holder = f"run {run_id} (pid {os.getpid()})"
            self._lock = RunLock(lock, self.lock_timeout_seconds, holder)
            self._lock.acquire()
            manifests = read_manifests(self.spark, self.root)
            if self.local:
                collect_garbage(self.root, manifests)
            self._manifests = manifests
            self.candidate = SparkCandidate(
                self.spark, self.root, run_id, manifests[-1] if manifests else None, self.local
            )
        return self.candidate

    def reading(self) -> SparkConnection:
        """The run's candidate when it builds tables, else the published version.

        Raises WarehouseError when nothing has been published yet.
        """
        if self.candidate is not None:
            return self.candidate.connection
        if self._reader is None:
            manifests = read_manifests(self.spark, self.root)
            if not manifests:
                raise WarehouseError(
                    f"No table has been published yet: BIKE_SPARK_WAREHOUSE={self.warehouse} "
                    f"holds no published version ({PUBLISHED_DIR}/). Run the daily_refresh "
                    "job first."
                )
            self._reader = SparkConnection(self.spark, self.root, manifests[-1].tables)
        return self._reader

    def publish(self, passed: Collection[str] = ()) -> list[str]:
        """Publish the run's candidate (after the layers-agree gate, which skips the tables in
        `passed`: see lib/checks.layers_disagree); the summary's lines.

        Raises WarehouseError when the layers disagree: nothing is published then.
        """
        candidate = self.candidate
        if candidate is None:
            return []
        disagree = layers_disagree(candidate.connection.query_rows, candidate.tables, passed)
        refuse_unless_layers_agree(disagree)
        inherited = candidate.inherited()
        manifest = candidate.publish()
        self.candidate = None
        if self.local:
            collect_garbage(self.root, [*self._manifests, manifest])
        self.release()
        lines = [f"version {manifest.name} ({PUBLISHED_DIR}/{manifest.name})"]
        lines += [f"{table} ({rows:,} rows)" for table, rows in sorted(candidate.built.items())]
        if inherited:
            lines.append(f"kept from the previous version: {', '.join(inherited)}")
        return lines

    def release(self) -> None:
        """End of the run: an unpublished candidate's folders removed, the lock released."""
        if self.candidate is not None:
            self.candidate.discard()
            self.candidate = None
        if self._lock is not None:
            self._lock.release()
            self._lock = None
        self._reader = None

    # --- the export (the staging step) ------------------------------------------------------

    def stage_export(
        self, run_id: str, raw_dir: Path, max_share: float, key: bytes, log: Callable[[str], Any]
    ) -> dict[str, int]:
        """Read the export into the run's working tables, validated and quarantined (as
        DuckDB's reader does: lib/export.py, lib/quarantine.py), load the lookups and set the
        PII key's pads. Returns each file's rows read ({'customers.csv': 3000, ...}).

        Raises export.RawExportError naming the file, the line, the column and the value.
        """
        candidate = self.open(run_id)
        rows_read = {spec.name: read_file(candidate, raw_dir, spec) for spec in export.EXPORT}
        log(f"Read {raw_dir}: {rows_read}")
        quarantine(
            candidate, {name: Lines(raw_dir / name, rows) for name, rows in rows_read.items()}
        )
        check_rejected_share(candidate.connection, rows_read, max_share)
        load_lookups(candidate)
        set_pii_key(self.spark, key)
        return rows_read


# --- The export on Spark --------------------------------------------------------------------
#
def _written(spec: export.RawFile) -> str:
    """work.<file>__written: record (0, 1, ... in file order), then each contract column as
    written (text; NULL and empty are null), then __corrupt (the record, when it does not
    have the header's number of fields)."""
    return f"{spec.table}__written"


class Lines:
    """The line of each record of a file (the header is line 1), found only for the records
    a message or a quarantined row names (lib/export.py's mapping: a file's lines shift
    with blank lines and line breaks inside quoted values)."""

    def __init__(self, path: Path, rows: int) -> None:
        self.path = path
        self.rows = rows

    def of(self, records: Iterable[int]) -> dict[int, int]:
        """record (from 0) -> its line."""
        records = set(records)
        starts = export.record_lines(self.path, self.path, self.rows, {r + 1 for r in records})
        if starts is None:  # record n is on line n + 2
            return {record: record + 2 for record in records}
        return {record: starts[record + 1] for record in records}


def read_file(candidate: SparkCandidate, raw_dir: Path, spec: export.RawFile) -> int:
    """Read one file of the export into spec.table (record, then the contract's columns
    typed; every row of the file); return its rows.

    The file is judged as DuckDB's reader judges it (lib/export.py): the byte scan and the
    header, then each record's number of fields (Spark's CSV reader), each value by the
    contract's rules (the same SQL), money. Spark reads the file as one partition, in file
    order (`multiLine`: quoted values may hold line breaks), so that each row keeps its record
    number, and faults are named by their lines. Raises export.RawExportError naming the
    file, the line, the key, the column and the value as written.
    """
    path = raw_dir / spec.name
    export.scan(path, spec)
    header = export.read_header(path, spec)
    _check_decoding(path)
    names = [name if name in spec.columns else f"__extra_{i}" for i, name in enumerate(header)]
    records = candidate.spark.read.csv(
        str(path.resolve()),
        schema=", ".join(f"`{name}` string" for name in names) + ", __corrupt string",
        header=True,
        multiLine=True,
        quote='"',
        escape='"',
        encoding="UTF-8",
        mode="PERMISSIVE",
        columnNameOfCorruptRecord="__corrupt",
    ).selectExpr(
        "monotonically_increasing_id() as record",  # one partition: 0, 1, ... in file order
        *(f"nullif(`{column}`, 'NULL') as `{column}`" for column in spec.columns),
        "__corrupt",
    )
    rows = candidate.write(_written(spec), records)
    lines = Lines(path, rows)
    conn = candidate.connection
    _fail_on_fields(conn, path, header, spec, lines)
    _fail_on_values(conn, path, spec, lines)
    typed = ", ".join(
        export.KINDS[kind].guarded(name, name in spec.not_null)
        for name, kind in spec.columns.items()
    )
    candidate.create_table(spec.table, f"select record, {typed} from {_written(spec)}")
    if rows == 0:
        raise export.RawExportError(
            f"{path}: file has a header but no rows; expected at least one row"
        )
    if spec.money:
        _check_money(conn, path, spec, lines)
    return rows


def _check_decoding(path: Path) -> None:
    """Refuse what Spark's CSV reader would take without a word, and DuckDB's refuses: bytes
    that are not UTF-8 (Spark reads them as U+FFFD), a quoted value never closed (an odd
    number of quote characters). One pass over the file, naming the line."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    line, quotes = 1, 0
    with path.open("rb") as handle:
        while chunk := handle.read(export.CHUNK_BYTES):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as error:
                at = line + chunk.count(b"\n", 0, max(error.start, 0))
                raise export.RawExportError(
                    f"{path} line {at}: not valid UTF-8 (a byte {chunk[error.start]:02X} that "
                    "UTF-8 does not allow there); expected a UTF-8 export (re-export as UTF-8)"
                ) from None
            line += chunk.count(b"\n")
            quotes += chunk.count(b'"')
    if quotes % 2:
        raise export.RawExportError(
            f"{path}: a quoted value is not closed (the file holds an odd number of quote "
            'characters); expected "..." with any quote inside written twice'
        )


def _fail_on_fields(
    conn: SparkConnection, path: Path, header: list[str], spec: export.RawFile, lines: Lines
) -> None:
    """Fail on the records that do not have the header's number of fields, by their lines."""
    bad = conn.execute(
        f"select record, __corrupt, count(*) over () from {_written(spec)} "
        f"where __corrupt is not null order by record limit {export.MAX_EXAMPLES}"
    ).fetchall()
    if not bad:
        return
    line_of = lines.of(record for record, *_ in bad)
    expected = f"expected {len(header)} fields ({', '.join(header)})"
    messages = []
    for record, text, _ in bad:
        fields = len(next(csv.reader([text]), []))
        where = (
            f"column {header[fields]}: missing,"
            if fields < len(header)
            else f"after column {header[-1]}:"
        )
        messages.append(
            f"{path} line {line_of[record]}, {where} the row has {fields} fields; {expected}"
        )
    raise export.RawExportError(export.and_more(messages, bad[0][2]))


def _fail_on_values(conn: SparkConnection, path: Path, spec: export.RawFile, lines: Lines) -> None:
    """Fail naming the first faulty values by their lines, keys and columns (a row by the
    first rule it breaks: lib/export.py's rules, in their order); return when none."""
    bad = conn.execute(export.broken_rows_sql(spec, _written(spec), "record")).fetchall()
    if not bad:
        return
    line_of = lines.of(record for record, *_ in bad)
    named = [(line_of[record], *rest) for record, *rest in bad]
    raise export.broken_rows_error(path, spec, named)


def _check_money(conn: SparkConnection, path: Path, spec: export.RawFile, lines: Lines) -> None:
    """Money must fit (lib/export.py's check, over spec.table): one DOUBLE pass bounds every
    amount; only near the limit are the amounts computed exactly, and the faulty lines named
    with their values as written."""
    faulty_lines, orders = export.money_faults(conn, spec)
    if not faulty_lines and not orders:
        return
    keys = " or ".join(
        [f"(t.order_id = {o} and t.item_id = {i})" for o, i in faulty_lines]
        + [f"t.order_id = {o}" for o in orders]
    )
    names = ["record", *spec.columns]
    written = [
        dict(zip(names, values, strict=True))
        for values in conn.execute(
            f"select w.record, {', '.join(f'w.{c}' for c in spec.columns)} "
            f"from {_written(spec)} w join {spec.table} t using (record) where {keys} "
            "order by w.record"
        ).fetchall()
    ]
    line_of = lines.of(row["record"] for row in written)
    for row in written:
        row["line"] = line_of[row["record"]]
    raise export.money_error(path, spec, written, faulty_lines, orders)


# --- Quarantine: the rows of the export that are not loaded ---------------------------------
#
# lib/quarantine.py's rules and statements (quarantine_rows): Spark writes the kept rows
# anew (folders of Parquet files cannot delete rows in place) and names a row by its line
# from the record-to-line mapping of lib/export.py.


class SparkRows:
    """The quarantine on Spark: spec.table (record, then the contract's columns, typed) is
    replaced by work.<file>__kept, the rows that are not left out."""

    def __init__(self, candidate: SparkCandidate) -> None:
        self.candidate = candidate

    def rows(self, spec: export.RawFile) -> str:
        return spec.table

    def create(self, table: str, select: str) -> int:
        return self.candidate.create_table(table, select)

    def drop(self, spec: export.RawFile, records: str, faults: str | None) -> None:
        kept = f"{spec.table}__kept"
        self.create(kept, f"select * from {spec.table} r anti join ({records}) d using (record)")
        self.candidate.tables[spec.table] = self.candidate.tables[kept]


def quarantine(candidate: SparkCandidate, lines: Mapping[str, Lines]) -> None:
    """Clean the export's rows (lib/quarantine.quarantine_rows: spec.table, what the models
    read, is then the kept rows, as DuckDB leaves it), and build work.rejected_rows (file,
    line, key, column_name, reason): one row per quarantined line, its faults together, each
    reason quoting the value as written."""
    found = quarantine_rows(SparkRows(candidate))
    per_line = []
    for spec in export.EXPORT:
        if spec.name not in found:
            continue
        faulty = [
            record
            for (record,) in candidate.connection.execute(
                f"select distinct record from {found[spec.name]}"
            ).fetchall()
        ]
        line_of = candidate.spark.createDataFrame(
            sorted(lines[spec.name].of(faulty).items()), "record bigint, line bigint"
        )
        candidate.write(f"{spec.table}__lines", line_of)
        per_line.append(
            f"select f.file, l.line, f.key, f.column_name, "
            f"{reason_as_written(spec, 'w')} as reason "
            f"from {found[spec.name]} f join {_written(spec)} w using (record) "
            f"join {spec.table}__lines l using (record)"
        )
    candidate.create_table(REJECTED, rejected_rows_sql(per_line))


def load_lookups(candidate: SparkCandidate) -> None:
    """The shipped lookups (lib/reference.py) as working tables: read here and sent to Spark
    (a cluster does not see the package's files)."""
    for name in LOOKUPS:
        with (REFERENCE_DIR / f"{name}.csv").open(encoding="utf-8", newline="") as handle:
            reader = csv.reader(handle)
            header = next(reader)
            rows = [tuple(row) for row in reader]
        schema = ", ".join(f"`{column}` string" for column in header)
        candidate.write(source(name), candidate.spark.createDataFrame(rows, schema))


def set_pii_key(spark: SparkSession, key: bytes) -> None:
    """The session variables pii_inner_pad and pii_outer_pad (BINARY) that keyed_hash reads
    (DuckDB's `set variable`, lib/pii.set_key)."""
    for name, pad in zip(("pii_inner_pad", "pii_outer_pad"), pii.hmac_pads(key), strict=True):
        declare, assign = dialects.set_variable_sql(name)
        spark.sql(declare)
        spark.sql(assign, args={"value": bytearray(pad)})
