"""The lake: branches, tags, commits, scans, audits and Write-Audit-Publish runs."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import Any, Union

import pyarrow as pa

from . import _errors
from ._sluice import NativeLake
from ._types import (
    AuditReport,
    Commit,
    ImportReport,
    JobReport,
    Publish,
    Ref,
    RunReport,
    RunSummary,
)

#: A checks file (TOML, see docs/checks.md), or the checks themselves as a list of dicts with
#: the same keys: ``[{"kind": "not_null", "columns": ["user_id"]}]``.
Checks = Union[str, "os.PathLike[str]", Sequence[Mapping[str, Any]]]


def _checks_args(checks: Checks | None) -> dict[str, Any]:
    if checks is None:
        return {}
    if isinstance(checks, (str, os.PathLike)):
        return {"checks_path": os.fspath(checks)}
    return {"checks_json": json.dumps([dict(c) for c in checks])}


def _target(table: str, ref: str | None) -> tuple[str, str]:
    """``ns.t`` and a ref, also from ``ns.t@ref`` as the command line writes it."""
    if "@" in table:
        name, _, at = table.partition("@")
        if ref is not None and ref != at:
            raise _errors.InvalidInput(f"{table!r} names a ref and ref={ref!r} names another")
        return name, at
    return table, ref or "main"


class Lake:
    """A lake of Iceberg tables: their catalog, storage and run journal, as ``sluice.toml``
    describes them.

    >>> import sluice
    >>> lake = sluice.Lake.open()                        # ./sluice.toml, or ./.sluice/
    >>> lake.create_branch("ns.events", "audit-1")       # doctest: +SKIP
    >>> lake.scan("ns.events", ref="audit-1").num_rows    # doctest: +SKIP
    """

    def __init__(self, native: NativeLake) -> None:
        self._native = native

    @classmethod
    def open(cls, config: str | os.PathLike[str] | None = None) -> Lake:
        """Opens the lake a ``sluice.toml`` describes. Without ``config``: ``$SLUICE_CONFIG``,
        then ``./sluice.toml``, then the embedded default under ``./.sluice/`` (a SQLite
        catalog and a local warehouse, nothing to start)."""
        return cls(NativeLake.open(None if config is None else os.fspath(config)))

    @property
    def config_source(self) -> str:
        """The configuration file the lake was opened from (or the embedded default)."""
        return self._native.config_source

    def __repr__(self) -> str:
        return f"Lake({self.config_source!r})"

    # Tables and refs

    def tables(self, namespace: str | None = None) -> list[str]:
        """Tables of the catalog (of ``namespace`` and the namespaces nested in it)."""
        return self._native.tables(namespace)

    def branches(self, table: str) -> list[Ref]:
        """The branches of ``table``, ``main`` included."""
        return [Ref._from(r) for r in self._native.refs(table) if r["kind"] == "branch"]

    def tags(self, table: str) -> list[Ref]:
        """The tags of ``table``."""
        return [Ref._from(r) for r in self._native.refs(table) if r["kind"] == "tag"]

    def create_branch(self, table: str, name: str, from_ref: str = "main") -> int:
        """Creates branch ``name`` at ``from_ref`` (a branch, tag, snapshot id or
        ``ref@time``); returns its snapshot id. Zero-copy: one catalog commit."""
        return self._native.create_ref(table, name, from_ref, True)

    def delete_branch(self, table: str, name: str) -> None:
        """Deletes a branch (``main`` cannot be deleted; a tag of that name is left alone)."""
        self._native.delete_ref(table, name, True)

    def create_tag(self, table: str, name: str, at: str = "main") -> int:
        """Tags the snapshot ``at`` resolves to; returns its id."""
        return self._native.create_ref(table, name, at, False)

    def delete_tag(self, table: str, name: str) -> None:
        """Deletes a tag (a branch of that name is left alone)."""
        self._native.delete_ref(table, name, False)

    def merge(self, table: str, branch: str, into: str = "main") -> Publish:
        """Publishes ``branch`` into ``into``: a fast-forward, or a rebase of its appends
        when ``into`` moved since the branch was cut. The branch stays.

        Into ``main``, the source files :meth:`import_files` wrote onto the branch are added to
        the table's ingest ledger in the same commit, so later runs and imports skip them; if
        ``main`` already holds one of them (imported and merged elsewhere), nothing changes and
        :class:`~sluice.ConflictError` names it."""
        return Publish._from(self._native.merge(table, branch, into))

    def merge_tables(self, tables: Sequence[str], branch: str, into: str = "main") -> list[Publish]:
        """Publishes ``branch`` of every table in ``tables`` (a lake-wide branch) into
        ``into`` in ONE atomic catalog commit: every table moves, or none does.

        >>> lake.merge_tables(["shop.orders", "shop.order_lines"], "fix-1")  # doctest: +SKIP
        """
        return [Publish._from(p) for p in self._native.merge_tables(list(tables), branch, into)]

    def run_job(
        self,
        job: str | os.PathLike[str],
        *,
        author: str | None = None,
        raise_on_failure: bool = True,
    ) -> JobReport:
        """Runs a job file (``wap.toml``, see ``docs/lake.md``): every table written on one
        branch, all audited, published together in one catalog commit or not at all. The same
        job as ``sluice run --job``.

        Raises :class:`~sluice.AuditFailed` (carrying the :class:`JobReport`) when a table's
        audit failed, another :class:`~sluice.SluiceError` when the job failed; either way no
        table was published. With ``raise_on_failure=False`` the report is returned instead.

        >>> report = lake.run_job("wap.toml")                          # doctest: +SKIP
        >>> report.table("shop.orders").rows                           # doctest: +SKIP
        """
        report = JobReport._from(self._native.run_job(os.fspath(job), author))
        if raise_on_failure and report.status == "audit_failed":
            raise _errors.AuditFailed(f"{report.error}; rolled back, no table was published", report)
        if raise_on_failure and report.status == "failed":
            raise _errors.SluiceError(f"job failed in step {report.failed_step}: {report.error}")
        return report

    def import_files(
        self,
        table: str,
        source: str | os.PathLike[str],
        branch: str,
        *,
        mode: str = "copy",
        partition_by: str | None = None,
        message: str | None = None,
        author: str | None = None,
        rewrite: bool = False,
        on_schema_change: str = "fail",
        truncate_timestamps: bool = False,
    ) -> ImportReport:
        """Writes the parquet files of ``source`` that neither ``main`` nor an earlier import
        onto ``branch`` holds onto ``branch`` (created from ``main`` when missing), without an
        audit or a publish: the *write* of a Write-Audit-Publish flow that the caller drives
        (see :meth:`audit` and :meth:`merge`). ``mode="copy"`` copies the data into the
        warehouse; ``"register"`` adds the files in place.

        A failed import deletes what it wrote. It is not a durable transaction: a process
        killed during one leaves files no ref reaches, and undoing a successful import is the
        caller's (``delete_branch``). :meth:`run` does all three steps durably."""
        if on_schema_change not in ("fail", "add-columns"):
            raise _errors.InvalidInput(
                f'on_schema_change must be "fail" or "add-columns", not {on_schema_change!r}'
            )
        return ImportReport._from(
            self._native.import_files(
                os.fspath(source),
                table,
                branch,
                mode=mode,
                partition_by=partition_by,
                message=message,
                author=author,
                rewrite=rewrite,
                add_columns=on_schema_change == "add-columns",
                truncate_timestamps=truncate_timestamps,
            )
        )

    def rollback(self, table: str, to: str, branch: str = "main") -> int:
        """Moves ``branch`` back to ``to`` (an ancestor: a snapshot id, a tag, ``ref@time``);
        returns the snapshot id it now points at."""
        return self._native.rollback(table, to, branch)

    def log(self, table: str, ref: str | None = None, limit: int | None = None) -> list[Commit]:
        """The commits of ``ref`` (default ``main``), newest first."""
        name, at = _target(table, ref)
        return [Commit._from(c) for c in self._native.log(name, at, limit)]

    # Reading

    def scan_batches(
        self,
        table: str,
        ref: str | None = None,
        columns: Sequence[str] | None = None,
        limit: int | None = None,
    ) -> pa.RecordBatchReader:
        """The rows of ``table`` at ``ref`` as a ``pyarrow.RecordBatchReader``."""
        name, at = _target(table, ref)
        return self._native.scan(name, at, None if columns is None else list(columns), limit)

    def scan(
        self,
        table: str,
        ref: str | None = None,
        columns: Sequence[str] | None = None,
        limit: int | None = None,
    ) -> pa.Table:
        """The rows of ``table`` at ``ref`` as a ``pyarrow.Table``, with the schema the
        snapshot was written with (a renamed column reads under its old name).

        ``ref`` is a branch, a tag, a snapshot id, or ``ref@time``
        (``"main@2026-11-30T10:00:00Z"``). The buffers come from Rust as they are (Arrow's C
        stream interface), so ``.to_pandas()``, ``polars.from_arrow()`` and DuckDB take them
        without another copy.
        """
        return self.scan_batches(table, ref, columns, limit).read_all()

    def sql(self, query: str) -> pa.Table:
        """The rows of one read-only SQL query (Apache DataFusion) over the lake's tables, each
        at the ref its name gives: ``analytics.events`` is ``main``,
        ``analytics."events@audit"`` a branch or tag, ``analytics."events@main@2026-11-30T10:00:00Z"``
        a point in time (see docs/sql.md).

        >>> lake.sql('SELECT count(*) AS n FROM analytics."events@v1"')

        A query that does not parse or names a missing column raises ``InvalidInput``; a
        missing table or ref, ``NotFound``. Statements that would change anything are refused.
        """
        return self._native.sql(query).read_all()

    # Auditing and running

    def audit(
        self,
        table: str,
        ref: str | None = None,
        checks: Checks | None = None,
        samples: int = 5,
        key_columns: Sequence[str] = (),
    ) -> AuditReport:
        """Runs ``checks`` against ``table`` at ``ref``; nothing changes.

        ``report.passed`` says whether the data may be published; each failing check keeps up
        to ``samples`` failing rows (with ``key_columns`` added to each)."""
        if checks is None:
            raise _errors.InvalidInput("give the checks: a checks file or a list of checks")
        name, at = _target(table, ref)
        report = self._native.audit(name, at, samples=samples, key_columns=list(key_columns), **_checks_args(checks))
        return AuditReport._from(report)

    def run(
        self,
        source: str | os.PathLike[str],
        table: str,
        checks: Checks | None = None,
        *,
        mode: str = "copy",
        partition_by: str | None = None,
        message: str | None = None,
        author: str | None = None,
        rewrite: bool = False,
        on_schema_change: str = "fail",
        truncate_timestamps: bool = False,
        samples: int = 5,
        key_columns: Sequence[str] = (),
        keep_failed: bool = False,
        raise_on_failure: bool = True,
    ) -> RunReport:
        """One Write-Audit-Publish run over the files of ``source`` not yet in ``main``:
        written on an audit branch, audited, published only if every error-severity check
        passed, all in a durable transaction (a crash is rolled back by :meth:`recover` or
        the next run). The same run as ``sluice run``.

        Returns the report when the run published or had nothing to do. Raises
        :class:`~sluice.AuditFailed` (with the report) when the audit failed, and another
        :class:`~sluice.SluiceError` when the run failed; either way nothing was published.
        With ``raise_on_failure=False`` the report is returned instead. Ctrl-C stops the run
        at its next safe point, rolls it back and raises ``KeyboardInterrupt``.
        ``keep_failed=True`` keeps a batch the audit rejected on branch
        ``sluice/failed/<run id>`` (``report.raw["kept_branch"]``) instead of deleting it.
        Rows set aside by ``on_fail = "quarantine"`` checks are in ``report.raw["quarantine"]``.
        """
        if on_schema_change not in ("fail", "add-columns"):
            raise _errors.InvalidInput(
                f'on_schema_change must be "fail" or "add-columns", not {on_schema_change!r}'
            )
        raw = self._native.run(
            os.fspath(source),
            table,
            mode=mode,
            partition_by=partition_by,
            message=message,
            author=author,
            rewrite=rewrite,
            add_columns=on_schema_change == "add-columns",
            truncate_timestamps=truncate_timestamps,
            samples=samples,
            key_columns=list(key_columns),
            keep_failed=keep_failed,
            **_checks_args(checks),
        )
        report = RunReport._from(raw)
        if raise_on_failure and report.status == "audit_failed":
            failing = ", ".join(c.name for c in report.audit.failed_checks) if report.audit else ""
            raise _errors.AuditFailed(
                f"audit failed for {len(report.files)} file(s) into {report.table}: {failing}; "
                "rolled back, nothing was published",
                report,
            )
        if raise_on_failure and report.status == "failed":
            kind = {
                "NotFound": _errors.NotFound,
                "Conflict": _errors.ConflictError,
                "InvalidInput": _errors.InvalidInput,
            }.get(raw.get("error_kind", ""), _errors.SluiceError)
            raise kind(f"run failed in step {report.failed_step}: {report.error}")
        return report

    def runs(self, limit: int | None = 20) -> list[RunSummary]:
        """Past runs, newest first."""
        return [RunSummary._from(r) for r in self._native.runs(limit)]

    def show_run(self, run_id: str) -> dict[str, Any]:
        """One run: its steps, attempts, errors and compensations, as ``sluice runs show``."""
        return self._native.show_run(run_id)

    def recover(self) -> dict[str, Any]:
        """Finishes or rolls back what dead processes left open (``sluice recover``)."""
        return self._native.recover()


def run(
    source: str | os.PathLike[str],
    table: str,
    checks: Checks | None = None,
    *,
    config: str | os.PathLike[str] | None = None,
    **options: Any,
) -> RunReport:
    """One Write-Audit-Publish run on the lake ``config`` describes: ``Lake.open(config).run(...)``.

    >>> import sluice
    >>> report = sluice.run(source="./raw", table="ns.events", checks="checks.toml")  # doctest: +SKIP
    >>> report.status                                                                   # doctest: +SKIP
    'published'
    """
    return Lake.open(config).run(source, table, checks, **options)
