"""The raw layer: the export's files, as the shops' system writes them (not built here)."""

import dagster as dg

from bike_assets.lib.export import EXPORT
from bike_assets.lib.specs import CONTRACT, OWNERS

raw_files = [
    dg.AssetSpec(
        dg.AssetKey(["raw", spec.name.removesuffix(".csv")]),
        description=f"The shops' BikeStores export file `{spec.name}` in BIKE_RAW_DIR, read as "
        f"it is written (contract: {CONTRACT}, 'Raw input'). Columns used: "
        f"{', '.join(spec.columns)}.",
        group_name="raw",
        kinds={"csv"},
        owners=OWNERS,
    )
    for spec in EXPORT
]
