"""Benchmarks of the local cache, paired like test_benchmarks.py (A, B, B, A blocks in the same test).

- a hot-key get served by the local cache (its look at the invalidation connection included), against a server get
  through the same handler without it, against RedisCache and against Emmett's in-process RamCache (``local_get``);
- get_many of 100 keys all held locally, against a server get_many of them (``local_get_many``);
- a miss with the local cache (GET and PTTL, nothing stored) against a miss without it (``local_miss``);
- a mixed workload, 90% reads over a skewed key set and 10% writes, with the local cache against without
  (``local_mixed``; the figure is a speed-up in operations per second).

The figures and their targets are data: ``emmett_valkey_matrix.bench`` / ``targets``.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterator
from typing import Any

import pytest
import valkey
from emmett_core.cache.handlers import RamCache
from emmett_valkey import LocalCache, ValkeyCache

from certification.session import ServerInfo
from certification.support import make_handler, scan_delete
from certification.support_bench import Sizes, paired, parsers
from certification.support_faults import poll
from certification.support_local import cached_locally, warm
from certification.test_benchmarks import BATCH, CHECK, FULL, VALUES

pytestmark = pytest.mark.benchmark

MIXED_KEYS = 100
MIXED_OPS = 200  # operations per timed call of the mixed workload


@pytest.fixture
def sizes(benchmark: Any) -> Sizes:
    """Full sizes when pytest-benchmark measures; check sizes under --benchmark-disable or xdist."""
    return CHECK if benchmark.disabled else FULL


class Trio:
    """The same prefix through ValkeyCache with and without the local cache, and through RedisCache."""

    def __init__(self, server: ServerInfo, prefix: str) -> None:
        self.local = make_handler("ValkeyCache", server, prefix, local_cache=LocalCache(max_staleness=5))
        self.plain: ValkeyCache = make_handler("ValkeyCache", server, prefix)
        self.baseline = make_handler("RedisCache", server, prefix)
        assert self.local.local.wait_active(10)

    def close(self) -> None:
        self.local.close()
        self.plain.close()
        self.baseline._cache.close()


@pytest.fixture
def trio(server: ServerInfo, key_prefix: str, raw: valkey.Valkey) -> Iterator[Trio]:
    t = Trio(server, key_prefix)
    yield t
    t.close()
    scan_delete(raw, key_prefix)


def _describe(benchmark: Any, op: str, group: str, sizes: Sizes, **extra: Any) -> None:
    benchmark.group = group
    benchmark.extra_info.update(role="ours", op=op, size="full" if sizes.full else "check", parser=parsers(),
                                **extra)


@pytest.mark.parametrize("case", ["int", "100B", "10KB"])
def test_local_hot_get(benchmark: Any, trio: Trio, case: str, sizes: Sizes) -> None:
    """A hot key served by the local cache returns the stored value; paired with a server get, RedisCache, RamCache."""
    value = VALUES[case]
    trio.local.set("hot", value, 300)
    assert warm(trio.local, "hot") == value
    ram = RamCache(prefix=trio.local.prefix)
    ram.set("hot", value, 300)
    hits = trio.local.local.stats.hits  # type: ignore[union-attr]

    def ours() -> Any:
        return trio.local.get("hot")

    pairs = {"vs_server_get": paired(ours, lambda: trio.plain.get("hot"), sizes),
             "vs_baseline": paired(ours, lambda: trio.baseline.get("hot"), sizes),
             "vs_ramcache": paired(ours, lambda: ram.get("hot"), sizes)}
    assert trio.local.local.stats.hits > hits  # type: ignore[union-attr]  # the local cache served them
    _describe(benchmark, "local_get", f"local-get-{case}", sizes, paired=pairs)
    assert benchmark(ours) == value


def test_local_get_many(benchmark: Any, trio: Trio, sizes: Sizes) -> None:
    """get_many of 100 keys held locally returns them all from this process; paired with a server get_many."""
    keys = [f"g{i}" for i in range(BATCH)]
    expected = {k: i for i, k in enumerate(keys)}
    trio.local.set_many(expected, 300)
    poll(lambda: trio.local.get_many(keys) == expected and all(cached_locally(trio.local, k) for k in keys), 5,
         interval=0.005)
    hits = trio.local.local.stats.hits  # type: ignore[union-attr]

    def ours() -> Any:
        return trio.local.get_many(keys)

    pairs = {"vs_server_get_many": paired(ours, lambda: trio.plain.get_many(keys), sizes)}
    assert trio.local.local.stats.hits >= hits + BATCH  # type: ignore[union-attr]  # served locally
    _describe(benchmark, "local_get_many", "local-get-many-100", sizes, paired=pairs)
    assert benchmark(ours) == expected


def test_local_miss(benchmark: Any, trio: Trio, sizes: Sizes) -> None:
    """A miss with the local cache is a miss; paired with a miss of the handler without it."""

    def ours() -> Any:
        return trio.local.get("absent")

    pairs = {"vs_without": paired(ours, lambda: trio.plain.get("absent"), sizes)}
    assert not trio.local.local.store.entries  # type: ignore[union-attr]
    _describe(benchmark, "local_miss", "local-miss", sizes, paired=pairs)
    assert benchmark(ours) is None


def _workload(seed: int) -> list[tuple[bool, str]]:
    """MIXED_OPS operations: 10% writes, keys drawn with weight 1/(rank+1) (a few hot keys, a long tail)."""
    rng = random.Random(seed)
    keys = [f"m{i}" for i in range(MIXED_KEYS)]
    weights = [1 / (i + 1) for i in range(MIXED_KEYS)]
    return [(rng.random() < 0.1, rng.choices(keys, weights)[0]) for _ in range(MIXED_OPS)]


def test_local_mixed_workload(benchmark: Any, trio: Trio, sizes: Sizes) -> None:
    """90% reads over a skewed key set and 10% writes read back what was last written; paired without local cache."""
    ops = _workload(15)
    trio.plain.set_many({f"m{i}": i for i in range(MIXED_KEYS)}, 300)

    def run(h: ValkeyCache) -> int:
        wrong = 0
        for n, (write, key) in enumerate(ops):
            if write:
                h.set(key, n, 300)
                wrong += h.get(key) != n  # read-your-writes, with or without the local cache
            else:
                wrong += h.get(key) is None
        return wrong

    rounds = dataclasses.replace(sizes, rounds=min(sizes.rounds, 31))  # each call is 200 operations
    pairs = {"vs_without": paired(lambda: run(trio.local), lambda: run(trio.plain), rounds)}
    ops_per_s = MIXED_OPS / (pairs["vs_without"]["a_median_us"] / 1e6)
    _describe(benchmark, "local_mixed", "local-mixed-90-10", sizes, paired=pairs, ops=MIXED_OPS,
              ops_per_s_with=round(ops_per_s))
    assert benchmark(lambda: run(trio.local)) == 0
