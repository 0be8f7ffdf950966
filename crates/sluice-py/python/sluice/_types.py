"""The values sluice returns: commits, refs, audit and run reports."""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa


def _time(value: str | None) -> _dt.datetime | None:
    if value is None:
        return None
    return _dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


@dataclass(frozen=True)
class Ref:
    """A branch or a tag and the snapshot it points at."""

    name: str
    kind: str
    snapshot_id: int

    @classmethod
    def _from(cls, d: dict[str, Any]) -> Ref:
        return cls(name=d["name"], kind=d["kind"], snapshot_id=d["snapshot_id"])


@dataclass(frozen=True)
class Commit:
    """One snapshot in a ref's history, as ``sluice log`` shows it.

    ``reached_at`` is when the ref reached this commit (for ``main``, when main moved onto
    it): ``lake.scan(table, ref=f"main@{commit.reached_at.isoformat()}")`` reads a state that
    includes it. ``timestamp`` is when the snapshot was written (on its audit branch).
    """

    snapshot_id: int
    parent_id: int | None
    timestamp: _dt.datetime
    reached_at: _dt.datetime
    operation: str
    message: str | None
    author: str | None
    run_id: str | None
    added_records: int | None
    total_records: int | None
    schema_id: int | None
    summary: dict[str, str]

    @classmethod
    def _from(cls, d: dict[str, Any]) -> Commit:
        return cls(
            snapshot_id=d["snapshot_id"],
            parent_id=d.get("parent_id"),
            timestamp=_time(d["timestamp"]),  # type: ignore[arg-type]
            reached_at=_time(d["reached_at"]),  # type: ignore[arg-type]
            operation=d["operation"],
            message=d.get("message"),
            author=d.get("author"),
            run_id=d.get("run_id"),
            added_records=d.get("added_records"),
            total_records=d.get("total_records"),
            schema_id=d.get("schema_id"),
            summary=dict(d.get("summary") or {}),
        )


@dataclass(frozen=True)
class CheckResult:
    """The result of one check: ``status`` is ``pass``, ``warn``, ``fail`` or ``error``."""

    name: str
    kind: str
    severity: str
    status: str
    rows_checked: int
    rows_failing: int
    observed: Any
    threshold: Any
    samples: list[dict[str, Any]]
    partitions: list[str]
    message: str
    evidence: str

    @property
    def failed(self) -> bool:
        """Whether the check failed or could not run."""
        return self.status in ("fail", "error")

    def samples_table(self) -> pa.Table:
        """The sampled failing rows as a ``pyarrow.Table`` (for pandas, polars or DuckDB)."""
        return pa.Table.from_pylist(self.samples)

    @classmethod
    def _from(cls, d: dict[str, Any]) -> CheckResult:
        return cls(
            name=d["name"],
            kind=d["kind"],
            severity=d["severity"],
            status=d["status"],
            rows_checked=d.get("rows_checked", 0),
            rows_failing=d.get("rows_failing", 0),
            observed=d.get("observed"),
            threshold=d.get("threshold"),
            samples=list(d.get("samples") or []),
            partitions=list(d.get("partitions") or []),
            message=d.get("message", ""),
            evidence=d.get("evidence", ""),
        )


@dataclass(frozen=True)
class AuditReport:
    """Every check's result. ``passed`` is true when no error-severity check failed."""

    checks: list[CheckResult]
    run_time: _dt.datetime | None = None

    @property
    def passed(self) -> bool:
        return not any(c.severity == "error" and c.failed for c in self.checks)

    @property
    def failed_checks(self) -> list[CheckResult]:
        """The checks that failed or could not run (warnings included)."""
        return [c for c in self.checks if c.failed]

    def check(self, name: str) -> CheckResult:
        """The result of the check called ``name``."""
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(f"no check named {name!r} (checks: {', '.join(c.name for c in self.checks)})")

    def failing_samples(self, name: str) -> pa.Table:
        """The sampled failing rows of the check called ``name``, as a ``pyarrow.Table``."""
        return self.check(name).samples_table()

    @classmethod
    def _from(cls, d: dict[str, Any]) -> AuditReport:
        return cls(
            checks=[CheckResult._from(c) for c in d.get("checks") or []],
            run_time=_time(d.get("run_time")),
        )


@dataclass(frozen=True)
class Publish:
    """How a merge moved its target: ``fast_forward`` or ``rebase``."""

    kind: str
    snapshot_id: int
    previous: int | None

    @classmethod
    def _from(cls, d: dict[str, Any]) -> Publish:
        return cls(kind=d["kind"], snapshot_id=d["snapshot_id"], previous=d.get("previous"))


@dataclass(frozen=True)
class RunReport:
    """What one Write-Audit-Publish run did.

    ``status`` is ``published``, ``nothing_to_do``, ``audit_failed``, ``failed`` or
    ``interrupted``; ``raw`` holds every field of the report, as ``sluice --json run`` prints.
    """

    status: str
    table: str
    run_id: str | None
    files: list[str]
    rows: int
    snapshot_id: int | None
    publish: str | None
    audit: AuditReport | None
    failed_step: str | None
    error: str | None
    raw: dict[str, Any] = field(repr=False)

    @property
    def published(self) -> bool:
        return self.status == "published"

    @classmethod
    def _from(cls, d: dict[str, Any]) -> RunReport:
        audit = d.get("audit")
        return cls(
            status=d["status"],
            table=d["table"],
            run_id=d.get("run_id"),
            files=list(d.get("files") or []),
            rows=d.get("rows", 0),
            snapshot_id=d.get("snapshot_id"),
            publish=d.get("publish"),
            audit=AuditReport._from(audit) if audit else None,
            failed_step=d.get("failed_step"),
            error=d.get("error"),
            raw=d,
        )


@dataclass(frozen=True)
class JobReport:
    """What one job (several tables, one transaction) did.

    ``status`` is the job's, shared by every table: ``published``, ``nothing_to_do``,
    ``audit_failed``, ``failed`` or ``interrupted``. ``tables`` has one :class:`RunReport` per
    table of the job file, in its order; ``raw`` holds every field, as
    ``sluice --json run --job`` prints.
    """

    status: str
    run_id: str | None
    branch: str | None
    atomic: bool
    tables: list[RunReport]
    failed_step: str | None
    error: str | None
    raw: dict[str, Any] = field(repr=False)

    @property
    def published(self) -> bool:
        return self.status == "published"

    def table(self, name: str) -> RunReport:
        """The report of table ``name``."""
        for t in self.tables:
            if t.table == name:
                return t
        raise KeyError(name)

    @classmethod
    def _from(cls, d: dict[str, Any]) -> JobReport:
        return cls(
            status=d["status"],
            run_id=d.get("run_id"),
            branch=d.get("branch"),
            atomic=d.get("atomic", True),
            tables=[RunReport._from(t) for t in d.get("tables") or []],
            failed_step=d.get("failed_step"),
            error=d.get("error"),
            raw=d,
        )


@dataclass(frozen=True)
class RunSummary:
    """One past run, as ``sluice runs list`` shows it."""

    run_id: str
    name: str
    state: str
    started_at: _dt.datetime
    ended_at: _dt.datetime | None
    steps: int
    error: str | None

    @classmethod
    def _from(cls, d: dict[str, Any]) -> RunSummary:
        return cls(
            run_id=d["run_id"],
            name=d["name"],
            state=d["state"],
            started_at=_time(d["started_at"]),  # type: ignore[arg-type]
            ended_at=_time(d.get("ended_at")),
            steps=d.get("steps", 0),
            error=d.get("error"),
        )


@dataclass(frozen=True)
class ImportReport:
    """What :meth:`Lake.import_files` wrote onto a branch (nothing audited or published)."""

    table: str
    branch: str
    files: list[str]
    rows: int
    snapshot_id: int | None
    copied_as_is: int

    @classmethod
    def _from(cls, d: dict[str, Any]) -> ImportReport:
        return cls(
            table=d["table"],
            branch=d["branch"],
            files=list(d.get("files") or []),
            rows=d.get("rows", 0),
            snapshot_id=d.get("snapshot_id"),
            copied_as_is=d.get("copied_as_is", 0),
        )
