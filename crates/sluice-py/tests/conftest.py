"""Fixtures: an empty project directory with the embedded default lake, and event files."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import sluice

CHECKS = [
    {"kind": "not_null", "columns": ["user_id"]},
    {"kind": "unique", "columns": ["event_id"], "scope": "table"},
]


def events(ids: range, null_users: bool = False) -> pa.Table:
    """User-interaction events with ids ``ids``; every seventh user id null if asked."""
    return pa.table(
        {
            "event_id": pa.array(list(ids), pa.int64()),
            "user_id": pa.array(
                [None if null_users and i % 7 == 0 else i % 100 for i in ids], pa.int64()
            ),
            "event_type": pa.array(["view" if i % 3 else "click" for i in ids]),
            "amount": pa.array([float(i) for i in ids], pa.float64()),
        }
    )


def write(path: Path, table: pa.Table) -> Path:
    """Writes ``table`` as parquet (snappy, as pyarrow does by default)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    return path


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty directory, the current one, without any sluice configuration around."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SLUICE_CONFIG", raising=False)
    return tmp_path


@pytest.fixture
def lake(project: Path) -> sluice.Lake:
    """The embedded default lake of the project directory (``./.sluice``)."""
    return sluice.Lake.open()


@pytest.fixture
def seeded(lake: sluice.Lake, project: Path) -> sluice.Lake:
    """``ns.events`` with one published batch: event ids 0..10."""
    write(project / "seed" / "a.parquet", events(range(10)))
    report = lake.run("seed", "ns.events", CHECKS)
    assert report.status == "published", report
    return lake


def data_files(project: Path) -> list[str]:
    """Every parquet file under the warehouse."""
    root = project / ".sluice" / "warehouse"
    return sorted(
        os.path.join(d, f) for d, _, files in os.walk(root) for f in files if f.endswith(".parquet")
    )
