"""The exceptions sluice raises.

Every error is a :class:`SluiceError`; the subclasses say what kind of problem it is, so that
callers (an orchestrator's retry policy, say) can tell them apart without reading messages.
The messages are the ones the ``sluice`` command prints.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._types import JobReport, RunReport


class SluiceError(Exception):
    """Something went wrong; the message says what, to what, and what to do."""


class NotFound(SluiceError, LookupError):
    """A table, namespace, branch, tag, snapshot, column or run does not exist."""


class ConflictError(SluiceError):
    """Another writer got there first (a ref moved, a name is taken, a run of the same files
    is in progress). Running again usually succeeds."""


class InvalidInput(SluiceError, ValueError):
    """A name, file, schema, partition spec or checks definition that cannot be used."""


class AuditFailed(SluiceError):
    """A run's audit failed: nothing was published and the run was rolled back.

    ``report`` is the run's :class:`~sluice.RunReport` (``report.audit`` says which checks
    failed and holds samples of the failing rows), or a job's :class:`~sluice.JobReport`.
    """

    def __init__(self, message: str, report: RunReport | JobReport | None = None) -> None:
        super().__init__(message)
        self.report = report
