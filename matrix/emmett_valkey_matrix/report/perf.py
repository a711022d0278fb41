"""Latency against the original design's expectations, and pytest-benchmark figures."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from ..targets import LATENCY_P99
from .model import BASELINE, HANDLERS, OURS, BenchmarkRow, LatencyRow, OpLatency

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


def _handler_of(bench: Mapping[str, Any]) -> str | None:
    params = bench.get("params") or {}
    texts = [str(v) for v in params.values()] if isinstance(params, Mapping) else []
    texts.append(str(bench.get("name", "")))
    for handler in HANDLERS:
        if any(handler in text for text in texts):
            return handler
    return None


def _plain_name(name: str) -> str:
    """``test_get[valkey-9.1.2-ValkeyCache]`` -> ``test_get``; other parameters are kept."""
    base, _, params = name.partition("[")
    parts = [
        p
        for p in params.rstrip("]").split("-")
        if p and p not in HANDLERS and not re.fullmatch(r"(valkey|redis)|\d+(\.\d+)*", p)
    ]
    return f"{base}[{'-'.join(parts)}]" if parts else base


def benchmarks(by_server: Sequence[tuple[str, Mapping[str, Any]]]) -> tuple[BenchmarkRow, ...]:
    """Median ops/s (1 / median seconds) per benchmark, ours and baseline, and their ratio."""
    rows = []
    for server_id, doc in by_server:
        figures: dict[tuple[str, str], dict[str, float]] = defaultdict(dict)
        for bench in doc.get("benchmarks") or []:
            handler = _handler_of(bench)
            median = _number((bench.get("stats") or {}).get("median"))
            if handler is None or not median:
                continue
            key = (str(bench.get("group") or "-"), _plain_name(str(bench.get("name", ""))))
            figures[key][handler] = round(1.0 / median, 1)
        for (group, name), by_handler in sorted(figures.items()):
            ours, base = by_handler.get(OURS), by_handler.get(BASELINE)
            ratio = round(ours / base, 3) if ours and base else None
            rows.append(BenchmarkRow(server_id, group, name, ours, base, ratio))
    return tuple(rows)
