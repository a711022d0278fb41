"""The verdict on one server: may our handler (``ValkeyCache``) be run on it.

Only tests of our handler decide; the baseline (``RedisCache``) is shown, never counted against us.
Rules, first match wins:

1. **not run**: no result file for the id ("no result file"), a file with status ``not_run`` or ``refused`` (its
   reason), a completed run with no ``ValkeyCache`` test, or one whose ``ValkeyCache`` tests were all skipped.
   **partial**: a run of part of the certification ("partial (N of M tests)" and why); never certified, whatever
   its tests did.
2. **failed**: status ``error`` (its reason), or any ``ValkeyCache`` test ``failed`` or ``error``, or any
   ``ValkeyCache`` test ``xfailed`` whose ``deviation`` is not explained in the file's ``deviations``
   (an expected failure nobody listed is a failure).
3. **certified with deviations**: every ``ValkeyCache`` test passed or was skipped, except tests
   ``xfailed`` on a deviation that the file explains, or ``xpassed`` (a listed deviation that did not occur
   here). Each such deviation is named in the reason and listed with its explanation in the report.
4. **certified**: every ``ValkeyCache`` test passed or was skipped (at least one passed). Skips are counted
   in the reason.

Latency against what is expected of each operation (``targets.LATENCY_P99``) is shown beside the verdict but
does not change it: it measures the machine as much as the handler.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .. import results as status
from .model import (
    CERTIFIED,
    CERTIFIED_WITH_DEVIATIONS,
    FAILED,
    NOT_RUN,
    OURS,
    PARTIAL,
    VERDICT_LABELS,
    Counts,
    Verdict,
)


def _verdict(code: str, reason: str) -> Verdict:
    return Verdict(code, VERDICT_LABELS[code], reason)


def _tally(counts: Counts) -> str:
    parts = [f"{counts.passed} passed"]
    parts += [f"{getattr(counts, name)} {name}" for name in ("skipped", "xfailed", "xpassed") if getattr(counts, name)]
    return ", ".join(parts)


def unexplained(test: Mapping[str, Any], explanations: Mapping[str, str]) -> bool:
    """Whether ``test`` is an expected failure without a listed, explained deviation."""
    return test["outcome"] == "xfailed" and (test.get("deviation") or "") not in explanations


def partial_text(doc: Mapping[str, Any]) -> str:
    """``partial (N of M tests)`` for a partial run's document."""
    selection = doc.get("selection") or {}
    of = selection.get("of")
    return f"partial ({selection.get('ran', len(doc.get('tests') or []))} of {of if of is not None else '?'} tests)"


def verdict_for(doc: Mapping[str, Any] | None, ours: Counts, suites_missing: Sequence[str]) -> Verdict:
    """Apply the rules in this module's docstring to one accepted result document (or none)."""
    if doc is None:
        return _verdict(NOT_RUN, "no result file")
    if doc["status"] in (status.NOT_RUN, status.REFUSED):
        return _verdict(NOT_RUN, doc.get("reason") or "not run; the result file gives no reason")
    if doc["status"] == status.PARTIAL:
        return _verdict(PARTIAL, f"{partial_text(doc)}: not a certification; {doc.get('reason') or 'no reason given'}")
    if doc["status"] == status.ERROR:
        return _verdict(FAILED, f"the run did not complete: {doc.get('reason') or 'no reason given'}")
    if ours.total == 0:
        return _verdict(NOT_RUN, f"the run recorded no {OURS} test")
    if ours.total == ours.skipped:
        return _verdict(NOT_RUN, f"all {ours.skipped} {OURS} tests were skipped")
    explanations: Mapping[str, str] = doc.get("deviations") or {}
    mine = [t for t in doc["tests"] if t["handler"] == OURS]
    broken = ours.failed + ours.error
    lost = sum(1 for t in mine if unexplained(t, explanations))
    missing = f"; suites without tests: {', '.join(suites_missing)}" if suites_missing else ""
    if broken or lost:
        parts = [f"{ours.failed} failed"] if ours.failed else []
        parts += [f"{ours.error} error"] if ours.error else []
        parts += [f"{lost} unexplained xfailed"] if lost else []
        return _verdict(FAILED, f"{', '.join(parts)} of {ours.total} {OURS} tests{missing}")
    listed = sorted({t["deviation"] for t in mine if t["outcome"] in ("xfailed", "xpassed") and t.get("deviation")})
    if ours.xfailed or ours.xpassed:
        return _verdict(CERTIFIED_WITH_DEVIATIONS, f"{_tally(ours)}; listed deviations: {', '.join(listed)}{missing}")
    return _verdict(CERTIFIED, f"{_tally(ours)}{missing}")
