"""The raw layer: the export's files, as the shops' system writes them (not built here).

Each file is an observable source asset: observing it records its size and modification time
as its data version (metadata `size_bytes`, `modified_at`, `path`), so the UI shows when the
export last changed, and marks the staging tables "upstream data changed" when the export was
observed to change after they were built. `daily_refresh` observes the export as its first step
(the staging tables then record which version of each file they were built from); "Observe
sources" in the UI (or a run of `observe_export` alone) observes it at any time.
"""

import warnings
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg

from bike_assets.defs.resources import RawExport, Warehouse
from bike_assets.lib.export import EXPORT
from bike_assets.lib.specs import CONTRACT, OWNERS

MISSING = "missing"  # the data version of a file that is not in BIKE_RAW_DIR

# A tuple, not a list: the definitions loader collects lists of specs, and these are declared by
# the observable asset below.
_SPECS = tuple(
    dg.AssetSpec(
        dg.AssetKey(["raw", Path(spec.name).stem]),
        description=f"The shops' BikeStores export file `{spec.name}` in BIKE_RAW_DIR, read as "
        f"it is written (contract: {CONTRACT}, 'Raw input'). Columns used: "
        f"{', '.join(spec.columns)}. Observed: its data version is the file's size and "
        "modification time.",
        group_name="raw",
        kinds={"csv"},
        owners=OWNERS,
        metadata={"file_name": spec.name},
    )
    for spec in EXPORT
)

# The keys the staging tables depend on.
raw_files = tuple(spec.key for spec in _SPECS)


def file_version(path: Path) -> tuple[dg.DataVersion, dict[str, dg.MetadataValue]]:
    """A file's data version (its size and modification time) and the observation's metadata.

    A missing file is observed too, with the data version "missing" (the run that reads the
    export then fails naming it).
    """
    metadata = {"path": dg.MetadataValue.path(str(path))}
    try:
        stat = path.stat()
    except FileNotFoundError:
        return dg.DataVersion(MISSING), metadata
    modified = datetime.fromtimestamp(stat.st_mtime_ns / 1e9, UTC)
    version = f"{stat.st_size} bytes, modified {modified.isoformat(timespec='microseconds')}"
    return dg.DataVersion(version), {
        **metadata,
        "size_bytes": dg.MetadataValue.int(stat.st_size),
        "modified_at": dg.MetadataValue.timestamp(modified),
    }


def _observe_export(
    context: dg.AssetExecutionContext, raw_export: RawExport, warehouse: Warehouse
) -> Iterator[dg.ObserveResult]:
    """Record each selected file's data version. In a run that builds tables, the step then
    tells the warehouse it is done (the run publishes when all its steps are)."""
    for spec in _SPECS:
        if spec.key in context.selected_asset_keys:
            version, metadata = file_version(raw_export.folder / spec.metadata["file_name"])
            yield dg.ObserveResult(asset_key=spec.key, data_version=version, metadata=metadata)
    own_step = str(context.op_execution_context.op_handle)
    planned = context.run.step_keys_to_execute or [n.name for n in context.job_def.nodes]
    if set(planned) - {own_step}:  # an observation alone publishes and summarizes nothing
        warehouse.finish_step(context)


with warnings.catch_warnings():
    warnings.simplefilter("ignore", dg.BetaWarning)  # observable source assets: beta in 1.13
    observe_export = dg.multi_observable_source_asset(
        specs=_SPECS,
        name="observe_export",
        can_subset=True,
        description="Observes the export's files in BIKE_RAW_DIR: size and modification time.",
    )(_observe_export)
