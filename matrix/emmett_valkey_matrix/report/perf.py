"""Latency per server and handler, each operation's p99 judged against what is expected of it (``targets``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..targets import LATENCY_P99
from .model import HANDLERS, LatencyRow, OpLatency

#: operation -> the p99 (ms) it is expected to stay under (``targets.LATENCY_P99``)
EXPECTED_P99_MS: dict[str, float] = {op: target.limit for op, target in LATENCY_P99.items()}
OPS = ("get", "set", "get_many", "pattern_clear")
OP_LABELS = {"get": "GET", "set": "SET", "get_many": "get_many", "pattern_clear": "pattern clear"}


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _op(op: str, sample: Mapping[str, Any]) -> OpLatency:
    p99 = _number(sample.get("p99_ms"))
    target = LATENCY_P99.get(op)
    n = sample.get("n")
    return OpLatency(
        op=op,
        n=n if isinstance(n, int) else None,
        p50_ms=_number(sample.get("p50_ms")),
        p99_ms=p99,
        expected_p99_ms=None if target is None else target.limit,
        met=None if target is None or p99 is None else target.met(p99),
    )


def latency(docs: Sequence[tuple[str, Mapping[str, Any]]]) -> tuple[LatencyRow, ...]:
    """Per server and handler (ours first), every operation that has a sample."""
    rows = []
    for handler in HANDLERS:
        for server_id, doc in docs:
            samples = (doc.get("latency") or {}).get(handler) or {}
            ops = tuple(_op(op, samples[op]) for op in OPS if samples.get(op))
            if ops:
                rows.append(LatencyRow(server_id, handler, ops))
    return tuple(rows)
