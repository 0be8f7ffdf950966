"""Every call of the API, on the embedded default lake, observed through the lake itself."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

import sluice
from conftest import CHECKS, data_files, events, write


def test_a_run_publishes_and_the_log_shows_it(seeded: sluice.Lake, project: Path) -> None:
    write(project / "more" / "b.parquet", events(range(10, 25)))
    report = seeded.run("more", "ns.events", CHECKS, message="second batch", author="ana")
    assert report.status == "published" and report.published
    assert report.rows == 15
    assert report.audit is not None and report.audit.passed
    assert seeded.tables() == ["ns.events"]
    log = seeded.log("ns.events")
    assert log[0].snapshot_id == report.snapshot_id
    assert log[0].message == "second batch" and log[0].author == "ana"
    assert log[0].added_records == 15 and log[0].total_records == 25
    assert log[0].reached_at >= log[0].timestamp
    # The same files again: nothing to do.
    again = seeded.run("more", "ns.events", CHECKS)
    assert again.status == "nothing_to_do"
    assert seeded.scan("ns.events").num_rows == 25


def test_sql_reads_refs_and_joins_them(seeded: sluice.Lake, project: Path) -> None:
    seeded.create_tag("ns.events", "v1")
    write(project / "more" / "b.parquet", events(range(10, 25)))
    seeded.run("more", "ns.events", CHECKS)
    counts = seeded.sql(
        'SELECT (SELECT count(*) FROM ns.events) AS main_rows, '
        '(SELECT count(*) FROM ns."events@v1") AS v1_rows'
    )
    assert isinstance(counts, pa.Table)
    assert counts.to_pylist() == [{"main_rows": 25, "v1_rows": 10}]
    added = seeded.sql(
        'SELECT m.event_id FROM ns.events m LEFT JOIN "ns.events@v1" t '
        "ON m.event_id = t.event_id WHERE t.event_id IS NULL ORDER BY 1"
    )
    assert added.column("event_id").to_pylist() == list(range(10, 25))
    with pytest.raises(sluice.InvalidInput, match="does not parse"):
        seeded.sql("SELEC 1")
    with pytest.raises(sluice.NotFound, match="nightly"):
        seeded.sql('SELECT * FROM ns."events@nightly"')
    with pytest.raises(sluice.InvalidInput, match="refused"):
        seeded.sql("DROP TABLE ns.events")


def test_module_level_run_opens_the_lake_of_the_directory(project: Path) -> None:
    write(project / "raw" / "a.parquet", events(range(5)))
    report = sluice.run("raw", "ns.events")
    assert report.status == "published"
    assert sluice.Lake.open().scan("ns.events").num_rows == 5
    config = project / "elsewhere.toml"
    config.write_text(
        '[catalog]\ntype = "sql"\nuri = "other/catalog.db"\nwarehouse = "other/warehouse"\n'
        '[journal]\nlocation = "other/journal"\n'
    )
    other = sluice.run("raw", "ns.events", config=config)
    assert other.status == "published"
    assert sluice.Lake.open(config).config_source.endswith("elsewhere.toml")


def test_scan_reads_refs_times_columns_and_limits(seeded: sluice.Lake, project: Path) -> None:
    first = seeded.log("ns.events")[0]
    write(project / "more" / "b.parquet", events(range(10, 20)))
    seeded.run("more", "ns.events", CHECKS)
    table = seeded.scan("ns.events", columns=["event_id", "amount"])
    assert isinstance(table, pa.Table)
    assert table.column_names == ["event_id", "amount"]
    assert sorted(table.column("event_id").to_pylist()) == list(range(20))
    # A time copied from the log, and the same through `ns.t@ref` as the CLI writes it.
    then = seeded.scan("ns.events", ref=f"main@{first.reached_at.isoformat()}")
    assert then.num_rows == 10
    assert seeded.scan(f"ns.events@{first.snapshot_id}").num_rows == 10
    assert seeded.scan("ns.events", limit=3).num_rows == 3
    reader = seeded.scan_batches("ns.events", columns=["user_id"])
    assert isinstance(reader, pa.RecordBatchReader)
    assert reader.read_all().num_rows == 20


def test_branches_tags_merge_and_rollback(seeded: sluice.Lake, project: Path) -> None:
    base = seeded.create_branch("ns.events", "audit-1", from_ref="main")
    assert [b.name for b in seeded.branches("ns.events")] == ["audit-1", "main"]
    assert seeded.create_tag("ns.events", "v1") == base
    assert [(t.name, t.snapshot_id) for t in seeded.tags("ns.events")] == [("v1", base)]
    # main moves on; the branch is merged back (nothing new on it: main stays).
    write(project / "more" / "b.parquet", events(range(10, 20)))
    seeded.run("more", "ns.events", CHECKS)
    seeded.delete_branch("ns.events", "audit-1")
    assert [b.name for b in seeded.branches("ns.events")] == ["main"]
    # Roll main back to the tag, and forward again by merging a branch cut before.
    seeded.create_branch("ns.events", "keep")
    assert seeded.rollback("ns.events", to="v1") == base
    assert seeded.scan("ns.events").num_rows == 10
    merged = seeded.merge("ns.events", "keep", into="main")
    assert merged.kind == "fast_forward"
    assert seeded.scan("ns.events").num_rows == 20
    seeded.delete_tag("ns.events", "v1")
    assert seeded.tags("ns.events") == []


def test_audit_with_a_file_or_a_list_returns_samples_as_arrow(
    seeded: sluice.Lake, project: Path
) -> None:
    checks = project / "checks.toml"
    checks.write_text('[[check]]\nkind = "accepted_values"\ncolumn = "event_type"\nvalues = ["view"]\n')
    report = seeded.audit("ns.events", checks=checks, key_columns=["event_id"])
    assert not report.passed
    failed = report.check("accepted_values(event_type)")
    assert failed.status == "fail" and failed.rows_failing == 4
    samples = report.failing_samples(failed.name)
    assert isinstance(samples, pa.Table)
    assert set(samples.column("event_type").to_pylist()) == {"click"}
    assert sorted(samples.column("event_id").to_pylist()) == [0, 3, 6, 9]
    assert seeded.audit("ns.events", checks=CHECKS).passed


def test_a_failed_audit_raises_with_the_report_and_publishes_nothing(
    seeded: sluice.Lake, project: Path
) -> None:
    before = seeded.log("ns.events")
    files_before = data_files(project)
    write(project / "bad" / "b.parquet", events(range(10, 30), null_users=True))
    with pytest.raises(sluice.AuditFailed) as failure:
        seeded.run("bad", "ns.events", CHECKS)
    report = failure.value.report
    assert report is not None and report.status == "audit_failed"
    assert "not_null(user_id)" in str(failure.value)
    assert [c.name for c in report.audit.failed_checks] == ["not_null(user_id)"]
    assert report.audit.failing_samples("not_null(user_id)").num_rows > 0
    assert seeded.log("ns.events") == before
    assert [b.name for b in seeded.branches("ns.events")] == ["main"]
    assert data_files(project) == files_before
    # Without raising, the same report comes back.
    quiet = seeded.run("bad", "ns.events", CHECKS, raise_on_failure=False)
    assert quiet.status == "audit_failed"
    # Kept for inspection: the rejected rows are on sluice/failed/<run id>, main unchanged.
    kept = seeded.run("bad", "ns.events", CHECKS, raise_on_failure=False, keep_failed=True)
    branch = kept.raw["kept_branch"]
    assert branch == f"sluice/failed/{kept.run_id}"
    assert sorted(b.name for b in seeded.branches("ns.events")) == ["main", branch]
    assert seeded.scan("ns.events", ref=branch).num_rows == seeded.scan("ns.events").num_rows + 20
    assert seeded.log("ns.events") == before


def test_errors_map_to_the_exception_hierarchy(seeded: sluice.Lake, project: Path) -> None:
    with pytest.raises(sluice.NotFound, match="table ns.nope does not exist"):
        seeded.scan("ns.nope")
    with pytest.raises(sluice.NotFound):
        seeded.scan("ns.events", ref="nope")
    with pytest.raises(sluice.InvalidInput, match="`..` is not allowed"):
        seeded.create_branch("ns.events", "bad..name")
    seeded.create_branch("ns.events", "dev")
    with pytest.raises(sluice.ConflictError, match="dev"):
        seeded.create_branch("ns.events", "dev")
    with pytest.raises(sluice.InvalidInput, match="does not exist"):
        seeded.run("no-such-dir", "ns.events")
    with pytest.raises(sluice.InvalidInput, match="unknown variant `nonsense`"):
        seeded.audit("ns.events", checks=[{"kind": "nonsense"}])
    with pytest.raises(sluice.InvalidInput, match="mode"):
        seeded.run("seed", "ns.events", mode="sideways")
    typed = pa.table({"event_id": pa.array([100]), "amount": pa.array(["1.5"])})
    write(project / "typed" / "t.parquet", typed)
    with pytest.raises(sluice.InvalidInput, match="string in the file but double in the table"):
        seeded.run("typed", "ns.events")
    # Every one of them is a SluiceError.
    for kind in (sluice.NotFound, sluice.ConflictError, sluice.InvalidInput, sluice.AuditFailed):
        assert issubclass(kind, sluice.SluiceError)


def test_runs_and_recover(seeded: sluice.Lake) -> None:
    runs = seeded.runs()
    assert len(runs) == 1 and runs[0].state == "completed"
    shown = seeded.show_run(runs[0].run_id)
    assert [s["name"] for s in shown["steps"]] == ["write", "audit", "publish"]
    recovered = seeded.recover()
    assert recovered["recovered"] == [] and recovered["still_running"] == []


def test_a_flow_imports_audits_and_merges_step_by_step(seeded: sluice.Lake, project: Path) -> None:
    write(project / "day2" / "a.parquet", events(range(10, 20)))
    write(project / "day2" / "b.parquet", events(range(20, 25)))
    lake = seeded
    lake.create_branch("ns.events", "audit-1", from_ref="main")
    imported = lake.import_files("ns.events", "day2", branch="audit-1", mode="copy")
    assert imported.rows == 15 and len(imported.files) == 2
    assert lake.scan("ns.events").num_rows == 10  # main untouched
    assert lake.scan("ns.events", ref="audit-1").num_rows == 25
    # A retried import onto the same branch skips what it already wrote.
    again = lake.import_files("ns.events", "day2", branch="audit-1")
    assert again.files == [] and again.rows == 0
    report = lake.audit("ns.events", ref="audit-1", checks=CHECKS)
    assert report.passed
    lake.merge("ns.events", "audit-1", into="main")
    lake.delete_branch("ns.events", "audit-1")
    assert lake.scan("ns.events").num_rows == 25
    # The merge recorded the files: a run over the same source has nothing to do, and so has
    # an import onto a new branch.
    assert lake.run("day2", "ns.events", CHECKS).status == "nothing_to_do"
    assert lake.import_files("ns.events", "day2", branch="audit-2").files == []
    with pytest.raises(sluice.InvalidInput, match="not onto `main`"):
        lake.import_files("ns.events", "day2", branch="main")


def test_merging_files_main_already_holds_is_refused(seeded: sluice.Lake, project: Path) -> None:
    write(project / "day2" / "a.parquet", events(range(10, 20)))
    for branch in ("first", "second"):
        seeded.create_branch("ns.events", branch)
        assert seeded.import_files("ns.events", "day2", branch=branch).rows == 10
    seeded.merge("ns.events", "first")
    with pytest.raises(sluice.ConflictError, match="main already holds .*a.parquet"):
        seeded.merge("ns.events", "second")
    assert seeded.scan("ns.events").num_rows == 20
