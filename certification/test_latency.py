"""Latency profile: per-operation GET, SET and get_many timings of both handlers, recorded for the report.

These are measurements, not speed assertions: each test checks only that what it read back is right and that the
numbers are finite and positive. ``record_property("latency", ...)`` hands them to results.py, which files them under
the result file's ``latency`` field (handler -> operation -> sample).
"""

from __future__ import annotations

import gc
import json
import math
import time
from collections.abc import Callable
from typing import Any

import pytest
from emmett_valkey import ValkeyCache

pytestmark = pytest.mark.unit

N_OPS = 2000
VALUE_BYTES = 100
N_MANY = 200
MANY_KEYS = 100


def value_for(i: int) -> bytes:
    """A 100-byte value unique to key *i*."""
    return (f"{i:06d}-" * (VALUE_BYTES // 7 + 1)).encode()[:VALUE_BYTES]


def timed(op: Callable[[Any], Any], args: list[Any]) -> tuple[list[int], list[Any]]:
    """Run *op* once per argument, timing each call alone with perf_counter_ns."""
    samples, results = [], []
    clock = time.perf_counter_ns
    for arg in args:
        t0 = clock()
        result = op(arg)
        samples.append(clock() - t0)
        results.append(result)
    return samples, results


def profile(samples_ns: list[int]) -> dict[str, Any]:
    """n, p50, p99 and max in milliseconds (nearest-rank percentiles)."""
    ordered = sorted(samples_ns)
    n = len(ordered)

    def rank(p: float) -> float:
        return ordered[max(0, math.ceil(p * n) - 1)] / 1e6

    return {"n": n, "p50_ms": round(rank(0.50), 6), "p99_ms": round(rank(0.99), 6),
            "max_ms": round(ordered[-1] / 1e6, 6)}


def record(record_property: Callable[[str, object], None], handler: str, op: str, samples_ns: list[int]) -> None:
    sample = profile(samples_ns)
    assert sample["n"] == len(samples_ns) > 0
    for field in ("p50_ms", "p99_ms", "max_ms"):
        assert math.isfinite(sample[field]) and sample[field] > 0, f"{op}: {field} = {sample[field]!r}"
    assert sample["p50_ms"] <= sample["p99_ms"] <= sample["max_ms"]
    record_property("latency", json.dumps({"handler": handler, "op": op, **sample}))


def test_latency_get_and_set(handler: Any, record_property: Callable[[str, object], None]) -> None:
    """2,000 SETs and 2,000 GET hits of 100-byte values read back exactly; their latencies are recorded."""
    kind = type(handler).__name__
    keys = [f"lat{i}" for i in range(N_OPS)]
    handler.set("warm", b"w")  # the connection is made before the clock runs
    assert handler.get("warm") == b"w"
    gc.collect()
    set_ns, _ = timed(lambda i: handler.set(keys[i], value_for(i), 300), list(range(N_OPS)))
    get_ns, got = timed(handler.get, keys)
    assert got == [value_for(i) for i in range(N_OPS)]
    record(record_property, kind, "set", set_ns)
    record(record_property, kind, "get", get_ns)


def test_latency_get_many(ours: ValkeyCache, record_property: Callable[[str, object], None]) -> None:
    """200 get_many calls of 100 keys each return exactly their keys' values; their latencies are recorded."""
    ours.set_many({f"lm{i}": value_for(i) for i in range(N_OPS)}, 300)
    assert ours.get_many(["lm0"]) == {"lm0": value_for(0)}
    windows = [[f"lm{(j * MANY_KEYS + k) % N_OPS}" for k in range(MANY_KEYS)] for j in range(N_MANY)]
    gc.collect()
    many_ns, got = timed(ours.get_many, windows)
    for window, result in zip(windows, got, strict=True):
        assert result == {key: value_for(int(key[2:])) for key in window}
    record(record_property, "ValkeyCache", "get_many", many_ns)
