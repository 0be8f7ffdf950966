"""sluice: Write-Audit-Publish for Apache Iceberg lakehouses.

New parquet files are written into an Iceberg table on an isolated, zero-copy branch, audited
with data-quality checks, and published to ``main`` only if the audit passed, inside a durable
transaction that rolls back by itself.

>>> import sluice
>>> lake = sluice.Lake.open()                                                     # doctest: +SKIP
>>> report = lake.run("./raw", "analytics.events", checks="checks.toml")          # doctest: +SKIP
>>> lake.scan("analytics.events", ref="main", columns=["user_id"]).num_rows       # doctest: +SKIP
"""

from ._errors import AuditFailed, ConflictError, InvalidInput, NotFound, SluiceError
from ._lake import Checks, Lake, run
from ._sluice import __version__
from ._types import (
    AuditReport,
    CheckResult,
    Commit,
    ImportReport,
    JobReport,
    Publish,
    Ref,
    RunReport,
    RunSummary,
)

__all__ = [
    "AuditFailed",
    "AuditReport",
    "CheckResult",
    "Checks",
    "Commit",
    "ImportReport",
    "JobReport",
    "ConflictError",
    "InvalidInput",
    "Lake",
    "NotFound",
    "Publish",
    "Ref",
    "RunReport",
    "RunSummary",
    "SluiceError",
    "__version__",
    "run",
]
