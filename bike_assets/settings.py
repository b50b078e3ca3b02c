"""Runtime configuration: every BIKE_* environment variable, its default and its meaning."""

import os
from dataclasses import dataclass

# The documented development key: hashes made with it are stable but not secret.
DEVELOPMENT_PII_KEY = "local-bike-development-key-not-secret"


@dataclass(frozen=True)
class Settings:
    """The pipeline's configuration, read from the environment (see .env.example)."""

    duckdb_path: str = "data/warehouse.duckdb"  # BIKE_DUCKDB_PATH
    raw_dir: str = "data/raw"  # BIKE_RAW_DIR
    as_of_date: str | None = None  # BIKE_AS_OF_DATE, YYYY-MM-DD; unset: today
    pii_key: str | None = None  # BIKE_PII_KEY; unset: DEVELOPMENT_PII_KEY, with a warning
    schedule_timezone: str = "UTC"  # BIKE_SCHEDULE_TIMEZONE
    max_rejected_share: float = 0.01  # BIKE_MAX_REJECTED_SHARE
    duckdb_memory_limit: str = "1GB"  # BIKE_DUCKDB_MEMORY_LIMIT
    duckdb_threads: int = 2  # BIKE_DUCKDB_THREADS
    lock_timeout_seconds: float = 30.0  # BIKE_LOCK_TIMEOUT_SECONDS

    @classmethod
    def from_env(cls) -> "Settings":
        env = os.environ
        return cls(
            duckdb_path=env.get("BIKE_DUCKDB_PATH") or cls.duckdb_path,
            raw_dir=env.get("BIKE_RAW_DIR") or cls.raw_dir,
            as_of_date=env.get("BIKE_AS_OF_DATE") or None,
            pii_key=env.get("BIKE_PII_KEY") or None,
            schedule_timezone=env.get("BIKE_SCHEDULE_TIMEZONE") or cls.schedule_timezone,
            max_rejected_share=float(env.get("BIKE_MAX_REJECTED_SHARE") or cls.max_rejected_share),
            duckdb_memory_limit=env.get("BIKE_DUCKDB_MEMORY_LIMIT") or cls.duckdb_memory_limit,
            duckdb_threads=int(env.get("BIKE_DUCKDB_THREADS") or cls.duckdb_threads),
            lock_timeout_seconds=float(
                env.get("BIKE_LOCK_TIMEOUT_SECONDS") or cls.lock_timeout_seconds
            ),
        )
