"""Words, symbols and number formats shared by the Markdown and HTML renderers.

Every state is shown as a symbol *and* a word or count, never by colour alone.
"""

from __future__ import annotations

from .model import (
    CERTIFIED,
    CERTIFIED_WITH_DEVIATIONS,
    FAILED,
    NOT_RUN,
    VERDICT_LABELS,
    Column,
    Counts,
    InputFile,
    Report,
)

SHORT_VERDICTS = {CERTIFIED: "certified", CERTIFIED_WITH_DEVIATIONS: "deviations", FAILED: "failed", NOT_RUN: "not run"}
VERDICT_SYMBOLS = {CERTIFIED: "✔", CERTIFIED_WITH_DEVIATIONS: "◐", FAILED: "✘", NOT_RUN: "○"}

# outcome -> (symbol, word); order is the order shown in a cell
OUTCOME_SYMBOLS = {
    "failed": ("✘", "failed"),
    "error": ("⚠", "error"),
    "passed": ("✔", "passed"),
    "xfailed": ("≈", "xfailed: listed deviation occurred"),
    "xpassed": ("↑", "xpassed: listed deviation did not occur"),
    "skipped": ("⊘", "skipped"),
}
STATE_WORDS = {
    "pass": "all passed",
    "fail": "failures",
    "deviation": "listed deviations",
    "skip": "skipped only",
    "empty": "no tests",
    "not_run": "not run",
}
SUITE_LABELS = {"async_": "async", "pattern_clear": "pattern clear"}
HANDLER_ROLES = {"ValkeyCache": "ours", "RedisCache": "baseline"}


def verdict_text(column: Column) -> str:
    """``✔ certified``."""
    return f"{VERDICT_SYMBOLS[column.verdict.code]} {column.verdict.label}"


def counts_short(counts: Counts | None, *, not_run: bool = False) -> str:
    """``✔ 21 · ⊘ 1``: each non-zero outcome as symbol and count; ``—`` for none, ``not run`` when not run."""
    if counts is None:
        return "not run" if not_run else "—"
    parts = [f"{sym} {getattr(counts, o)}" for o, (sym, _) in OUTCOME_SYMBOLS.items() if getattr(counts, o)]
    return " · ".join(parts) or "—"


def counts_long(counts: Counts | None) -> str:
    """``21 passed, 1 skipped``, for titles and screen readers."""
    if counts is None:
        return "not run"
    parts = [f"{getattr(counts, o)} {o}" for o in OUTCOME_SYMBOLS if getattr(counts, o)]
    return ", ".join(parts) or "no tests"


def legend() -> str:
    """One line that explains every symbol."""
    return " · ".join(f"{sym} {word}" for sym, word in OUTCOME_SYMBOLS.values()) + " · — no tests in this suite"


def suite_label(suite: str) -> str:
    """Display name of a suite marker."""
    return SUITE_LABELS.get(suite, suite)


def ms(value: float | None) -> str:
    """Milliseconds with up to three significant decimals, or ``—``."""
    if value is None:
        return "—"
    return f"{value:.3g}" if value < 100 else f"{value:.0f}"


def ops(value: float | None) -> str:
    """Operations per second, grouped by thousands, or ``—``."""
    return "—" if value is None else f"{value:,.0f}"


def column_of(report: Report, server_id: str) -> Column:
    """Return the column with this id."""
    return next(c for c in report.columns if c.id == server_id)


def short_sha(value: str | None) -> str:
    """First 12 hex digits of a sha256 (the full value is in the JSON and the HTML title)."""
    return value[:12] if value else "—"


def input_status(item: InputFile) -> str:
    """``rejected: stale`` or ``superseded``."""
    return item.status if item.problem in (None, item.status) else f"{item.status}: {item.problem}"


def at_a_glance(report: Report) -> str:
    """One line: which servers fall under each verdict, e.g. ``✔ certified: Valkey 9.1.2 · ✘ failed: ...``."""
    parts = []
    for code, label in VERDICT_LABELS.items():
        names = [c.label for c in report.columns if c.verdict.code == code]
        if names:
            parts.append(f"{VERDICT_SYMBOLS[code]} {label}: {', '.join(names)}")
    return " · ".join(parts)
