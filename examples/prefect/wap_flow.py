"""Write-Audit-Publish as a Prefect 3 flow, with sluice as the lakehouse.

Two versions of the same pipeline:

* ``wap_flow``: the pattern as it is usually shown, three tasks inside Prefect's
  ``transaction()``: ``write`` imports the new files on a fresh branch, ``audit`` checks the
  branch, ``publish`` merges it into ``main``. If anything in the block fails, Prefect runs the
  ``on_rollback`` hook of ``write``, which deletes the branch; when the block succeeds, the
  ``on_commit`` hook deletes it after the merge.
* ``sluice_run_flow``: one task that calls ``sluice.run``, whose own durable transaction does all
  three steps, rolls back by itself, and is recovered after a crash.

``backfill_flow`` runs either over a list of historical sources, one transaction each, and
``__main__`` serves the incremental flow on a schedule. See the README next to this file for
what each version guarantees.

    python wap_flow.py run ./raw analytics.events checks.toml     # one run, now
    python wap_flow.py serve ./raw analytics.events checks.toml   # every 5 minutes
"""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.transactions import get_transaction, transaction

import sluice


# The lake: sluice.toml in the working directory, or the embedded default in ./.sluice/.
def open_lake() -> sluice.Lake:
    return sluice.Lake.open()


@task
def write(table: str, source: str, branch: str) -> int:
    """Imports the new files of ``source`` onto a new branch; returns the rows written."""
    lake = open_lake()
    # The hooks below find the branch through the transaction.
    get_transaction().set("branch", branch)
    get_transaction().set("table", table)
    # The branch is cut from main (and the table created from the files, the first time).
    report = lake.import_files(table, source, branch=branch, mode="copy")
    get_run_logger().info("imported %d rows from %d file(s) onto %s", report.rows, len(report.files), branch)
    return report.rows


@write.on_rollback
def delete_branch(txn) -> None:
    """Undo of ``write``: the branch goes, and with it everything the import wrote."""
    table, branch = txn.get("table"), txn.get("branch")
    lake = open_lake()
    if any(b.name == branch for b in lake.branches(table)):
        lake.delete_branch(table, branch)


@write.on_commit
def drop_published_branch(txn) -> None:
    """After a publish the branch is no longer needed: ``main`` holds its commits."""
    open_lake().delete_branch(txn.get("table"), txn.get("branch"))


@task
def audit(table: str, branch: str, checks: str) -> None:
    """Audits the branch; a failed audit raises, which rolls the transaction back."""
    report = open_lake().audit(table, ref=branch, checks=checks)
    if not report.passed:
        failed = ", ".join(c.name for c in report.failed_checks)
        raise ValueError(f"audit of {table}@{branch} failed: {failed}")


@task
def publish(table: str, branch: str) -> int:
    """Merges the branch into ``main``; returns main's new snapshot."""
    return open_lake().merge(table, branch, into="main").snapshot_id


@flow(name="wap")
def wap_flow(source: str, table: str, checks: str) -> int:
    """Write, audit and publish ``source`` into ``table`` inside a Prefect transaction."""
    branch = f"wap-{uuid.uuid4().hex[:12]}"
    with transaction():
        write(table, source, branch)
        audit(table, branch, checks)
        return publish(table, branch)


def retry_unless_the_audit_failed(task, task_run, state) -> bool:
    """Retry what may pass next time (storage, catalog); a failed audit will fail again."""
    try:
        state.result()
    except sluice.AuditFailed:
        return False
    except Exception:
        return True
    return False


@task(retries=2, retry_delay_seconds=5, retry_condition_fn=retry_unless_the_audit_failed)
def sluice_run(table: str, source: str, checks: str) -> str:
    """The whole Write-Audit-Publish in sluice's durable transaction."""
    try:
        report = sluice.run(source, table, checks)
    except sluice.AuditFailed as failed:
        # The data is wrong: nothing was published, and a retry would fail the same way.
        get_run_logger().error("%s", failed)
        raise
    return report.status


@flow(name="sluice-run")
def sluice_run_flow(source: str, table: str, checks: str) -> str:
    """The same pipeline, with sluice's own transaction doing the work."""
    return sluice_run(table, source, checks)


@flow(name="wap-backfill")
def backfill_flow(sources: list[str], table: str, checks: str, durable: bool = True) -> list[str]:
    """Historical sources, oldest first, each its own transaction; a failed one stops the
    backfill, and running it again resumes (published files are skipped)."""
    outcomes = []
    for source in sources:
        if durable:
            outcomes.append(sluice_run_flow(source, table, checks))
        else:
            outcomes.append(str(wap_flow(source, table, checks)))
    return outcomes


if __name__ == "__main__":
    command, source, table, checks = sys.argv[1:5]
    source = str(Path(source).resolve())
    if command == "run":
        print(wap_flow(source, table, checks))
    elif command == "serve":
        # Incremental: every five minutes, the new files of the source.
        sluice_run_flow.serve(
            name="wap-every-5-minutes",
            cron="*/5 * * * *",
            parameters={"source": source, "table": table, "checks": checks},
        )
    else:
        sys.exit(f"unknown command {command!r}: run or serve")
