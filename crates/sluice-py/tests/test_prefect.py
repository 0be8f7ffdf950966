"""The Prefect example (examples/prefect/wap_flow.py) end to end, on a temporary Prefect server
and the embedded default lake: a good batch published, a bad one rolled back by the hook."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

import sluice
from conftest import CHECKS, data_files, events, write

prefect_testing = pytest.importorskip("prefect.testing.utilities")

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "prefect" / "wap_flow.py"


@pytest.fixture(scope="module")
def prefect_server():
    with prefect_testing.prefect_test_harness():
        yield


@pytest.fixture
def example(prefect_server):
    spec = importlib.util.spec_from_file_location("wap_flow", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    sys.modules["wap_flow"] = module
    spec.loader.exec_module(module)
    return module


def checks_file(project: Path) -> str:
    path = project / "checks.toml"
    path.write_text(
        '[[check]]\nkind = "not_null"\ncolumns = ["user_id"]\n\n'
        '[[check]]\nkind = "unique"\ncolumns = ["event_id"]\nscope = "table"\n'
    )
    return str(path)


def test_the_prefect_transaction_publishes_a_good_batch_and_its_hook_rolls_back_a_bad_one(
    example, project: Path
) -> None:
    checks = checks_file(project)
    lake = sluice.Lake.open()
    write(project / "good" / "a.parquet", events(range(0, 100)))
    snapshot = example.wap_flow(str(project / "good"), "ns.events", checks)
    assert lake.scan("ns.events").num_rows == 100
    assert lake.log("ns.events")[0].snapshot_id == snapshot
    # on_commit dropped the branch after the merge.
    assert [b.name for b in lake.branches("ns.events")] == ["main"]

    log_before = lake.log("ns.events")
    files_before = data_files(project)
    write(project / "bad" / "b.parquet", events(range(100, 200), null_users=True))
    with pytest.raises(ValueError, match="audit of ns.events@wap-.* failed: not_null"):
        example.wap_flow(str(project / "bad"), "ns.events", checks)
    # The rollback hook deleted the branch: main as it was, nothing on any branch.
    assert lake.log("ns.events") == log_before
    assert [b.name for b in lake.branches("ns.events")] == ["main"]
    # The import's data files stay until maintenance removes them: no ref reaches them.
    assert len(data_files(project)) > len(files_before)


def test_the_sluice_run_version_and_a_backfill(example, project: Path) -> None:
    checks = checks_file(project)
    lake = sluice.Lake.open()
    for day in range(3):
        write(project / f"day{day}" / "a.parquet", events(range(100 * day, 100 * day + 50)))
    outcomes = example.backfill_flow(
        [str(project / f"day{day}") for day in range(3)], "ns.events", checks
    )
    assert outcomes == ["published"] * 3
    assert lake.scan("ns.events").num_rows == 150
    # Again: every file is already in main.
    assert example.sluice_run_flow(str(project / "day0"), "ns.events", checks) == "nothing_to_do"
    # A bad batch: sluice rolls itself back, the task does not retry a failed audit, and
    # nothing was published.
    write(project / "bad" / "b.parquet", events(range(1000, 1100), null_users=True))
    with pytest.raises(sluice.AuditFailed):
        example.sluice_run_flow(str(project / "bad"), "ns.events", checks)
    assert lake.scan("ns.events").num_rows == 150
    assert [b.name for b in lake.branches("ns.events")] == ["main"]
    runs = lake.runs(limit=2)
    assert runs[0].state == "rolled_back"
    assert runs[1].state != "rolled_back"  # one attempt, not three
