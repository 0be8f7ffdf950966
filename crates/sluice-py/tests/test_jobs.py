"""Jobs from Python: several tables on one branch, published together or not at all."""

from __future__ import annotations

from pathlib import Path

import pytest

import sluice
from conftest import events, write

JOB = """
[[table]]
name = "shop.order_lines"
source = "raw/lines"
checks = "lines.toml"

[[table]]
name = "shop.orders"
source = "raw/orders"
"""

LINES = """
[[check]]
kind = "relationships"
column = "user_id"
to_table = "shop.orders"
to_column = "event_id"
"""


def test_a_job_publishes_every_table_or_none(lake: sluice.Lake, project: Path) -> None:
    (project / "wap.toml").write_text(JOB)
    (project / "lines.toml").write_text(LINES)
    write(project / "raw" / "orders" / "o0.parquet", events(range(10)))
    # user ids 0..9: orders of the same batch, on the job's branch.
    write(project / "raw" / "lines" / "l0.parquet", events(range(100, 110)))
    report = lake.run_job("wap.toml")
    assert report.published and report.atomic
    assert report.table("shop.order_lines").rows == 10
    assert report.table("shop.orders").rows == 10
    assert lake.scan("shop.orders").num_rows == 10

    # Lines that reference orders nobody sent: neither table changes.
    write(project / "raw" / "orders" / "o1.parquet", events(range(10, 15)))
    write(project / "raw" / "lines" / "l1.parquet", events(range(130, 140)))
    with pytest.raises(sluice.AuditFailed) as failed:
        lake.run_job(project / "wap.toml")
    job = failed.value.report
    assert isinstance(job, sluice.JobReport)
    check = job.table("shop.order_lines").audit.checks[0]
    assert check.kind == "relationships" and check.rows_failing == 10
    assert lake.scan("shop.orders").num_rows == 10
    assert lake.scan("shop.order_lines").num_rows == 10
    branches = [r.name for r in lake.branches("shop.orders") if r.name.startswith("sluice/")]
    assert branches == []


def test_a_lake_wide_branch_merges_in_one_call(lake: sluice.Lake, project: Path) -> None:
    (project / "wap.toml").write_text(JOB.replace('checks = "lines.toml"\n', ""))
    write(project / "raw" / "orders" / "o0.parquet", events(range(10)))
    write(project / "raw" / "lines" / "l0.parquet", events(range(100, 110)))
    lake.run_job("wap.toml")
    tables = ["shop.orders", "shop.order_lines"]
    for t in tables:
        lake.create_branch(t, "dev")
    write(project / "more" / "orders" / "o.parquet", events(range(20, 25)))
    write(project / "more" / "lines" / "l.parquet", events(range(120, 125)))
    lake.import_files("shop.orders", project / "more" / "orders", branch="dev")
    lake.import_files("shop.order_lines", project / "more" / "lines", branch="dev")
    published = lake.merge_tables(tables, "dev")
    assert [p.kind for p in published] == ["fast_forward", "fast_forward"]
    assert lake.scan("shop.orders").num_rows == 15
    assert lake.scan("shop.order_lines").num_rows == 15
