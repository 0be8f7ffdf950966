"""Rows cross into Python without a copy, and read the same as other engines read them."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

import sluice
from conftest import events, write


def test_scan_equals_what_pyiceberg_reads(seeded: sluice.Lake, project: Path) -> None:
    catalog_sql = pytest.importorskip("pyiceberg.catalog.sql")
    write(project / "more" / "b.parquet", events(range(10, 40)))
    seeded.run("more", "ns.events")
    catalog = catalog_sql.SqlCatalog(
        "default",
        uri=f"sqlite:///{project / '.sluice' / 'catalog.db'}",
        warehouse=f"file://{project / '.sluice' / 'warehouse'}",
    )
    theirs = catalog.load_table("ns.events").scan().to_arrow().sort_by("event_id")
    ours = seeded.scan("ns.events").sort_by("event_id")
    assert ours.num_rows == 40
    assert ours.column_names == theirs.column_names
    for name in ours.column_names:
        assert ours.column(name).to_pylist() == theirs.column(name).to_pylist(), name


def test_a_million_rows_arrive_without_a_copy(lake: sluice.Lake, project: Path) -> None:
    n = 1_000_000
    table = pa.table(
        {
            "event_id": pa.array(range(n), pa.int64()),
            "amount": pa.array([float(i % 1000) for i in range(n)], pa.float64()),
        }
    )
    write(project / "big" / "a.parquet", table)
    assert lake.run("big", "ns.big").rows == n
    allocated = pa.total_allocated_bytes()
    read = lake.scan("ns.big")
    assert read.num_rows == n
    assert read.column("amount").to_pylist()[:3] == [0.0, 1.0, 2.0]
    # 16 MB of values: pyarrow's own pool allocated none of them (the buffers are Rust's).
    assert read.nbytes >= 16 * n
    assert pa.total_allocated_bytes() - allocated < 1_000_000
    # pandas, polars and DuckDB take the table as it is; here pyarrow's own compute reads it.
    assert pa.compute.sum(read.column("event_id")).as_py() == n * (n - 1) // 2
