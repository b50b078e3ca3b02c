"""The benchmark: the Dagster materialization against a plain DuckDB SQL script on the same data."""

import hashlib
import json
import logging
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb

from bike_assets.rules import REFERENCE_DIR

BENCH_PII_KEY = "bench-key"
# Each model of the baseline, with the Dagster step that builds it.
MODELS = {
    "staging.stg_customers": "staging",
    "intermediate.orders_enriched": "orders_enriched",
    "marts.customers_enriched": "customers_enriched",
    "marts.region_segment_summary": "region_segment_summary",
}

# The plain script: the same four models and rules (tables.md), written independently of the
# pipeline's SQL, with none of its machinery (no validation, quarantine, checks, staged copies).
_BASELINE_SETUP = """
create or replace temp view customers_csv as from read_csv({customers}, header = true,
    nullstr = ['NULL', ''], columns = {{'customer_id': 'BIGINT', 'first_name': 'VARCHAR',
    'last_name': 'VARCHAR', 'phone': 'VARCHAR', 'email': 'VARCHAR', 'street': 'VARCHAR',
    'city': 'VARCHAR', 'state': 'VARCHAR', 'zip_code': 'VARCHAR'}});
create or replace temp view stores_csv as from read_csv({stores}, header = true,
    nullstr = ['NULL', ''], columns = {{'store_id': 'BIGINT', 'store_name': 'VARCHAR',
    'phone': 'VARCHAR', 'email': 'VARCHAR', 'street': 'VARCHAR', 'city': 'VARCHAR',
    'state': 'VARCHAR', 'zip_code': 'VARCHAR'}});
create or replace temp view orders_csv as from read_csv({orders}, header = true,
    nullstr = ['NULL', ''], columns = {{'order_id': 'BIGINT', 'customer_id': 'BIGINT',
    'order_status': 'INTEGER', 'order_date': 'DATE', 'required_date': 'DATE',
    'shipped_date': 'DATE', 'store_id': 'BIGINT', 'staff_id': 'BIGINT'}});
create or replace temp view order_items_csv as from read_csv({order_items}, header = true,
    nullstr = ['NULL', ''], columns = {{'order_id': 'BIGINT', 'item_id': 'BIGINT',
    'product_id': 'BIGINT', 'quantity': 'INTEGER', 'list_price': 'DECIMAL(18,2)',
    'discount': 'DECIMAL(18,6)'}});
create or replace temp table regions as from read_csv({regions}, all_varchar = true);
create or replace temp table genders as from read_csv({genders}, all_varchar = true);
create schema if not exists staging;
create schema if not exists intermediate;
create schema if not exists marts;
"""

# Half-up to cents of an exact amount a over n > 0: (100 * a + n // 2) // n hundredths.
_BASELINE_MODELS = {
    "staging.stg_customers": r"""
select c.customer_id, trim(c.first_name) as first_name, trim(c.last_name) as last_name,
       sha256(unhex('{opad}') || unhex(sha256(unhex('{ipad}')
           || encode(nullif(lower(trim(c.email)), ''))))) as email_hash,
       sha256(unhex('{opad}') || unhex(sha256(unhex('{ipad}')
           || encode(nullif(regexp_replace(c.phone, '\D', '', 'g'), ''))))) as phone_hash,
       trim(c.city) as city, upper(trim(c.state)) as state, trim(c.zip_code) as zip_code,
       coalesce(r.region, 'Unknown') as region, coalesce(g.gender, 'unknown') as gender
from customers_csv c
left join regions r on r.state = upper(trim(c.state))
left join genders g on g.first_name = lower(trim(c.first_name))
order by c.customer_id
""",
    "intermediate.orders_enriched": """
with products as (  -- a line repeated identically counts once
    select order_id, product_id, sum(quantity) as quantity,
           sum(list_price * quantity * (1 - discount)) as net_price
    from (select distinct * from order_items_csv) where quantity > 0
    group by order_id, product_id
),
lines as (
    select order_id, sum(quantity)::bigint as total_items, count(*) as unique_products,
           round(sum(net_price), 2)::decimal(18, 2) as net_price
    from products group by order_id
)
select order_id, customer_id, store_id, trim(stores_csv.store_name) as store_name, staff_id,
       order_status,
       ['Pending', 'Processing', 'Rejected', 'Completed'][order_status] as order_status_label,
       order_date, required_date, shipped_date,
       case when shipped_date is null then 'Pending'
            when shipped_date > required_date then 'Late' else 'On Time' end as delivery_status,
       shipped_date - order_date as days_to_ship,
       coalesce(total_items, 0) as total_items,
       coalesce(unique_products, 0) as unique_products,
       coalesce(net_price, 0)::decimal(18, 2) as total_order_net_price
from orders_csv
left join stores_csv using (store_id)
left join lines using (order_id)
""",
    "marts.customers_enriched": """
with by_store as (
    select customer_id, store_id, any_value(store_name) as store_name, count(*) as orders,
           sum(total_order_net_price) as spent, sum(total_items) as items,
           min(order_date) as first_date, max(order_date) as last_date
    from intermediate.orders_enriched where order_date <= date '{as_of}'
    group by customer_id, store_id
),
by_customer as (
    select customer_id, sum(orders)::bigint as total_orders,
           sum(spent)::decimal(18, 2) as total_spent, sum(items)::bigint as items,
           min(first_date) as first_date, max(last_date) as last_date
    from by_store group by customer_id
),
primary_store as (  -- most orders, then the latest order, then the lowest id
    select customer_id, store_id, store_name from by_store
    qualify row_number() over (
        partition by customer_id order by orders desc, last_date desc, store_id) = 1
)
select c.customer_id, c.gender, c.email_hash, c.city, c.state, c.region,
       s.store_id, s.store_name, b.total_orders, b.total_spent,
       (((b.total_spent * 100)::hugeint + b.total_orders // 2) // b.total_orders)
           ::decimal(18, 0) * 0.01 as avg_order_value,
       b.first_date as first_order_date, b.last_date as last_order_date,
       b.items as total_items_purchased,
       date '{as_of}' - b.last_date as days_since_last_order,
       case when b.total_orders >= 10 and b.total_spent >= 5000 then 'VIP'
            when b.total_orders >= 5 and b.total_spent >= 2000 then 'Loyal'
            when b.total_orders >= 2 then 'Regular' else 'New' end as customer_segment,
       case when b.total_spent >= 10000 then 'Platinum' when b.total_spent >= 5000 then 'Gold'
            when b.total_spent >= 1000 then 'Silver'
            when b.total_spent is not null then 'Bronze' end as ltv_segment,
       date '{as_of}' as as_of_date
from staging.stg_customers c
left join by_customer b using (customer_id)
left join primary_store s using (customer_id)
order by c.customer_id
""",
    "marts.region_segment_summary": """
select region, ltv_segment as customer_segment, count(*) as num_customers,
       (((sum(total_spent) * 100)::hugeint + count(*) // 2) // count(*))
           ::decimal(18, 0) * 0.01 as avg_ltv,
       ((sum(total_orders) * 100 + count(*) // 2) // count(*))::decimal(18, 0) * 0.01
           as avg_orders
from marts.customers_enriched where total_orders > 0
group by region, ltv_segment
order by region, avg_ltv desc
""",
}


def _hmac_pads(key: bytes) -> tuple[str, str]:
    """The inner and outer pads of HMAC-SHA256 (RFC 2104), as hex."""
    block = (hashlib.sha256(key).digest() if len(key) > 64 else key).ljust(64, b"\0")
    return bytes(b ^ 0x36 for b in block).hex(), bytes(b ^ 0x5C for b in block).hex()


def _sql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def run_baseline(job: dict) -> dict[str, float]:
    """Build the four models with the plain script into job['database']; seconds per model."""
    raw = Path(job["raw_dir"])
    files = {
        name: _sql_text(str(raw / f"{name}.csv"))
        for name in ("customers", "stores", "orders", "order_items")
    }
    files["regions"] = _sql_text(str(REFERENCE_DIR / "us_census_regions.csv"))
    files["genders"] = _sql_text(str(REFERENCE_DIR / "first_name_genders.csv"))
    ipad, opad = _hmac_pads(job["pii_key"].encode())
    config = {"memory_limit": job["memory_limit"], "threads": str(job["threads"])}
    seconds = {}
    with duckdb.connect(job["database"], config=config) as conn:
        conn.execute(_BASELINE_SETUP.format(**files))
        for table, select in _BASELINE_MODELS.items():
            started = time.perf_counter()
            sql = select.format(ipad=ipad, opad=opad, as_of=job["as_of"])
            conn.execute(f"create or replace table {table} as {sql}")
            seconds[MODELS[table]] = time.perf_counter() - started
    return seconds


def run_dagster(job: dict) -> dict[str, float]:
    """Materialize every asset with its checks (daily_refresh) into job['database']."""
    import dagster as dg

    from bike_assets.definitions import build_definitions
    from bike_assets.settings import Settings

    settings = Settings(
        duckdb_path=job["database"],
        raw_dir=job["raw_dir"],
        pii_key=job["pii_key"],
        duckdb_memory_limit=job["memory_limit"],
        duckdb_threads=job["threads"],
    )
    result = (
        build_definitions(settings)
        .resolve_job_def("daily_refresh")
        .execute_in_process(
            run_config={"ops": {"customers_enriched": {"config": {"as_of_date": job["as_of"]}}}},
            instance=dg.DagsterInstance.ephemeral(),
            raise_on_error=False,
        )
    )
    if not result.success:
        failure = next(e for e in result.all_events if e.is_step_failure)
        error = failure.step_failure_data.error
        while error.cause is not None:
            error = error.cause
        raise RuntimeError(f"step {failure.step_key}: {error.message.strip().splitlines()[0]}")
    return {
        event.step_key: event.event_specific_data.duration_ms / 1000
        for event in result.all_events
        if event.event_type == dg.DagsterEventType.STEP_SUCCESS
    }


SIDES: dict[str, Callable[[dict], dict[str, float]]] = {
    "baseline": run_baseline,
    "dagster": run_dagster,
}


@dataclass(frozen=True)
class Measure:
    """One side's run in its own process: wall time, peak RSS, in-process time, step times."""

    wall: float  # seconds, process start to exit (interpreter start and imports included)
    cpu: float  # seconds of CPU, user + system, over the process's threads
    peak_bytes: int  # peak resident set size of the process
    run: float  # seconds inside the process, from connecting or building to done
    steps: dict[str, float]
    error: str | None = None  # why the run failed (then run and steps are empty)


def _child_environment() -> dict[str, str]:
    """The environment, with this copy of bike_assets importable whatever the working folder."""
    root = str(Path(__file__).parent.parent)
    path = os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path}


def measure(side: str, job: dict, workdir: Path) -> Measure:
    """Run one side in a fresh Python process and measure it (wait4 gives its own peak RSS)."""
    job_file, log_file = workdir / f"{side}.json", workdir / f"{side}.log"
    job_file.write_text(json.dumps(job))
    Path(job["database"]).unlink(missing_ok=True)
    with log_file.open("w") as log:
        started = time.perf_counter()
        pid = os.posix_spawn(
            sys.executable,
            [sys.executable, "-m", "bike_assets.bench", side, str(job_file)],
            _child_environment(),
            file_actions=[
                (os.POSIX_SPAWN_DUP2, log.fileno(), 1),
                (os.POSIX_SPAWN_DUP2, log.fileno(), 2),
            ],
        )
        _, status, usage = os.wait4(pid, 0)
        wall = time.perf_counter() - started
    cpu = usage.ru_utime + usage.ru_stime
    result = json.loads(job_file.read_text())
    if os.waitstatus_to_exitcode(status) != 0:
        error = result.get("error") or log_file.read_text(errors="replace")[-2000:]
        return Measure(wall, cpu, usage.ru_maxrss * 1024, 0.0, {}, error)
    return Measure(wall, cpu, usage.ru_maxrss * 1024, result["run"], result["steps"])


def _child(side: str, job_file: Path) -> None:
    job = json.loads(job_file.read_text())
    started = time.perf_counter()
    try:
        steps = SIDES[side](job)
    except Exception as error:
        job_file.write_text(json.dumps({"error": f"{type(error).__name__}: {error}"}))
        raise
    job_file.write_text(json.dumps({"run": time.perf_counter() - started, "steps": steps}))
    # The run is done and its warehouse closed. Tearing the interpreter down would now take
    # 0.5-0.8 s with Dagster loaded, none of it the run's work: both sides exit at once.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


@contextmanager
def _attached(first: str, second: str) -> Iterator[duckdb.DuckDBPyConnection]:
    with duckdb.connect() as conn:
        conn.execute(f"attach {_sql_text(first)} as a (read_only)")
        conn.execute(f"attach {_sql_text(second)} as b (read_only)")
        yield conn


def same_tables(first: str, second: str, tables: list[str]) -> dict[str, bool]:
    """Per table: same column names and types, and the same rows (as a multiset) in both files."""
    same = {}
    with _attached(first, second) as conn:
        for table in tables:
            columns = [conn.execute(f"describe {db}.{table}").fetchall() for db in ("a", "b")]
            names = ", ".join(f'"{column[0]}"' for column in columns[0])
            fingerprints = [
                conn.execute(
                    f"select count(*), sum(hash({names})::hugeint) from {db}.{table}"
                ).fetchone()
                for db in ("a", "b")
            ]
            same[table] = columns[0] == columns[1] and fingerprints[0] == fingerprints[1]
    return same


class _ProgressBar:
    """A one-line progress bar on stderr, for generate_export's progress(step, done, total)."""

    def __init__(self) -> None:
        self.started = time.perf_counter()

    def __call__(self, step: str, done: int, total: int) -> None:
        filled = 30 * done // total
        elapsed = time.perf_counter() - self.started
        print(
            f"\r  [{'#' * filled}{'.' * (30 - filled)}] {done}/{total} {step:<16} {elapsed:6.1f} s",
            end="\n" if done == total else "",
            file=sys.stderr,
            flush=True,
        )


def _export(raw_dir: Path, customers: int, seed: int, reuse: bool) -> dict[str, int]:
    """Generate the export (or reuse the one already there for the same customers and seed)."""
    from bike_assets.generate import generate_export

    marker = raw_dir / "bench.json"
    wanted = {"customers": customers, "seed": seed}
    if reuse and marker.is_file():
        made = json.loads(marker.read_text())
        if {key: made[key] for key in wanted} == wanted:
            print(f"Reusing the export in {raw_dir}", file=sys.stderr)
            return made["rows"]
    print(f"Generating {customers:,} customers (seed {seed}) into {raw_dir}", file=sys.stderr)
    marker.unlink(missing_ok=True)
    rows = generate_export(raw_dir, customers, seed=seed, progress=_ProgressBar())
    marker.write_text(json.dumps({**wanted, "rows": rows}))
    return rows


def _format(
    rows: dict[str, int],
    csv_bytes: int,
    job: dict,
    measures: dict[str, Measure],
    same: dict[str, bool],
    repeat: int,
) -> str:
    base, dag = measures["baseline"], measures["dagster"]
    lines = [
        f"{rows['customers.csv']:,} customers, {rows['orders.csv']:,} orders, "
        f"{rows['order_items.csv']:,} order lines ({csv_bytes / 1e6:,.0f} MB of CSV); "
        f"DuckDB memory_limit {job['memory_limit']}, threads {job['threads']}; "
        f"{os.cpu_count()} cores" + (f"; fastest of {repeat} runs" if repeat > 1 else ""),
        f"{'':<26}{'plain DuckDB':>14}{'Dagster':>12}{'ratio':>8}",
    ]

    failed = [side for side, measure in measures.items() if measure.error]

    def row(label: str, first: float | None, second: float | None, unit: str) -> None:
        cells = [f"{'-' if v is None else f'{v:.2f}'} {unit:<2}" for v in (first, second)]
        ratio = f"{second / first:.2f}" if first and second is not None and not failed else ""
        lines.append(f"{label:<26}{cells[0]:>14}{cells[1]:>12}{ratio:>8}".rstrip())

    for step in MODELS.values():
        row(f"  {step}", base.steps.get(step), dag.steps.get(step), "s")
    if not failed:
        row("in process", base.run, dag.run, "s")
    row("wall (whole process)", base.wall, dag.wall, "s")
    row("CPU (user + system)", base.cpu, dag.cpu, "s")
    row("peak memory (RSS)", base.peak_bytes / 2**30, dag.peak_bytes / 2**30, "GB")
    for side in failed:
        lines.append(
            f"the {side} side FAILED after {measures[side].wall:.0f} s: {measures[side].error}"
        )
    if not failed:
        differ = ", ".join(table for table, equal in same.items() if not equal)
        verdict = f"NO, {differ}" if differ else "yes"
        lines.append(f"same four tables in both warehouses: {verdict}")
    return "\n".join(lines)


def bench(
    customers: int,
    seed: int = 42,
    workdir: Path | None = None,
    reuse: bool = False,
    memory_limit: str | None = None,
    repeat: int = 1,
) -> tuple[str, dict[str, Measure], dict[str, bool]]:
    """Generate the data, run both sides on it and compare their tables; return the report.

    With repeat > 1 the sides take turns, and each side's fastest run is kept: on a shared
    machine, other processes only ever slow a run down.
    """
    from bike_assets.generate import LAST_DAY
    from bike_assets.settings import Settings

    with tempfile.TemporaryDirectory(prefix="bike-bench-") as scratch:
        folder = Path(workdir or scratch)
        folder.mkdir(parents=True, exist_ok=True)
        raw_dir = folder / "raw"
        rows = _export(raw_dir, customers, seed, reuse)
        settings = Settings.from_env()
        job = {
            "raw_dir": str(raw_dir),
            "as_of": str(LAST_DAY),
            "pii_key": BENCH_PII_KEY,
            "memory_limit": memory_limit or settings.duckdb_memory_limit,
            "threads": settings.duckdb_threads,
        }
        runs: dict[str, list[Measure]] = {side: [] for side in SIDES}
        for turn in range(1, repeat + 1):
            for side in SIDES:
                print(f"Running the {side} side ({turn}/{repeat})...", file=sys.stderr)
                database = str(folder / f"{side}.duckdb")
                runs[side].append(measure(side, {**job, "database": database}, folder))
        # A failed run is kept (it says why); else each side's fastest run.
        measures = {
            side: min(found, key=lambda m: (m.error is None, m.wall))
            for side, found in runs.items()
        }
        same = {}
        if not any(measure.error for measure in measures.values()):
            same = same_tables(
                str(folder / "baseline.duckdb"), str(folder / "dagster.duckdb"), list(MODELS)
            )
        csv_bytes = sum(path.stat().st_size for path in raw_dir.glob("*.csv"))
        report = _format(rows, csv_bytes, job, measures, same, repeat)
        return report, measures, same


if __name__ == "__main__":
    _child(sys.argv[1], Path(sys.argv[2]))
