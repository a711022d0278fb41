"""Where result files live and what their statuses mean: one table for the writers and the report.

The certification session (``certification/results.py``) and the migration grid (``migration/results.py``) write
result documents into :data:`RESULTS_DIR` (relative to the checkout's root), the report reads them back from there
(``emmett-valkey-matrix report``) and the CI workflow uploads and downloads that directory. A document's ``status``
is one of :data:`STATUSES` (the schema's enum, checked by a test): only one that :attr:`Status.certifies` is written
to ``<id>.json`` and removes the attempt it supersedes; every other goes to ``<id>.attempt.json``. Plain data:
importing it costs nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath

RESULTS_DIR = PurePosixPath("reports/results")  # the result files; relative to the checkout's root

COMPLETED = "completed"
PARTIAL = "partial"
NOT_RUN = "not_run"
REFUSED = "refused"
ERROR = "error"


@dataclass(frozen=True)
class Status:
    """What a result status means to whoever writes the file and to the report that reads it."""

    certifies: bool  # a whole certification: written to <id>.json, and the attempt it supersedes is removed
    attempt: bool  # the report shows it beside the newest certification of its id, never instead of it
    means: str


#: every result status, in the schema's order
STATUSES: dict[str, Status] = {
    COMPLETED: Status(True, False, "the whole certification ran; its tests decide the verdict"),
    PARTIAL: Status(False, True, "only part of it ran (a narrowed or interrupted session)"),
    NOT_RUN: Status(False, True, "no server could be provided; the reason says how to provide one"),
    REFUSED: Status(False, True, "the server given is not the one the id names"),
    # never written by the suites today; a file that has it is shown as a failed run, not beside a certification
    ERROR: Status(False, False, "the session could not complete"),
}
ATTEMPT_STATUSES = tuple(name for name, status in STATUSES.items() if status.attempt)


def certifies(status: object) -> bool:
    """Whether a document of this status is a whole certification (unknown statuses never are)."""
    known = STATUSES.get(status) if isinstance(status, str) else None
    return known is not None and known.certifies


def result_name(stem: str, status: object) -> str:
    """``<stem>.json`` for a status that certifies, ``<stem>.attempt.json`` for anything less."""
    return f"{stem}.json" if certifies(status) else f"{stem}.attempt.json"
