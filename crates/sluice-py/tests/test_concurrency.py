"""Calls release the GIL and run side by side; Ctrl-C stops a run and leaves the lake as it was."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pyarrow as pa
import pytest

import sluice
from conftest import CHECKS, data_files, events, write


def test_two_threads_run_and_scan_at_once(seeded: sluice.Lake, project: Path) -> None:
    for k in range(2):
        write(project / f"src{k}" / "a.parquet", events(range(100 + 100 * k, 150 + 100 * k)))
    errors: list[BaseException] = []
    reports: list[sluice.RunReport] = []
    rows_seen: list[int] = []

    def run(k: int) -> None:
        try:
            reports.append(seeded.run(f"src{k}", "ns.events", CHECKS))
            rows_seen.append(seeded.scan("ns.events").num_rows)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(r.status for r in reports) == ["published", "published"]
    # Both batches exactly once, whichever published first (the other rebased).
    ids = sorted(seeded.scan("ns.events").column("event_id").to_pylist())
    assert ids == list(range(10)) + list(range(100, 150)) + list(range(200, 250))
    assert all(rows in (60, 110) for rows in rows_seen)


def test_ctrl_c_during_a_run_rolls_it_back_and_raises(
    seeded: sluice.Lake, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The test wheel is built with the crash-testing pause points: the run writes its data
    # files, then waits (up to an hour) before it commits them to its branch, so Ctrl-C
    # always lands while the run is in flight, however fast or loaded the machine is.
    monkeypatch.setenv("SLUICE_PAUSE_AT", "write")
    n = 20_000
    for k in range(4):
        table = pa.table(
            {
                "event_id": pa.array(range(1_000_000 * (k + 1), 1_000_000 * (k + 1) + n), pa.int64()),
                "user_id": pa.array([i % 977 for i in range(n)], pa.int64()),
                "event_type": pa.array(["view"] * n),
                "amount": pa.array([float(i) for i in range(n)], pa.float64()),
            }
        )
        write(project / "big" / f"{k}.parquet", table)
    log_before = seeded.log("ns.events")
    files_before = data_files(project)
    wrote = threading.Event()

    def press_ctrl_c_once_the_run_wrote() -> None:
        # The run's data files are on disk: it is paused before its branch commit.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if len(data_files(project)) > len(files_before):
                wrote.set()
                os.kill(os.getpid(), signal.SIGINT)
                return
            time.sleep(0.01)
        # Never paused: stop the run anyway so that the test fails instead of hanging.
        os.kill(os.getpid(), signal.SIGINT)

    watcher = threading.Thread(target=press_ctrl_c_once_the_run_wrote)
    watcher.start()
    with pytest.raises(KeyboardInterrupt):
        seeded.run("big", "ns.events", CHECKS)
    watcher.join()
    assert wrote.is_set()
    # main as it was, no branch, no file left behind, and the journal says it rolled back.
    assert seeded.log("ns.events") == log_before
    assert [b.name for b in seeded.branches("ns.events")] == ["main"]
    assert data_files(project) == files_before
    assert seeded.runs(limit=1)[0].state == "rolled_back"
    # The same files publish on the next run.
    monkeypatch.delenv("SLUICE_PAUSE_AT")
    assert seeded.run("big", "ns.events", CHECKS).rows == 4 * n
