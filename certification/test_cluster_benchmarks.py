"""Benchmarks on a cluster: ValkeyCache beside valkey-py's raw ``ValkeyCluster`` doing the same work.

A local cluster of 3 primaries and 3 replicas of the session server's build, for this module. Comparisons are
paired (A, B, B, A blocks, see support_bench.py) and stored in ``benchmark.extra_info`` with the ops
``cluster_get``, ``cluster_set`` and ``cluster_get_many``, which ``emmett_valkey_matrix.bench`` judges against
the cluster targets of ``emmett_valkey_matrix.targets``. With ``--benchmark-disable`` (ordinary runs) each
benchmark runs once at check size as a correctness check.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest
from emmett_valkey import ValkeyCache
from valkey.cluster import ValkeyCluster

from certification.session import ServerInfo
from certification.support import on_local_cluster, open_cluster_client, start_local_cluster
from certification.support_bench import CHECK, FULL, Sizes, dumps, loads, paired

NODE_TIMEOUT_MS = 15_000

pytestmark = [pytest.mark.benchmark, pytest.mark.cluster]

VALUE = b"v" * 100
TTL_MS = 300_000
BATCH = 100


@pytest.fixture(scope="module")
def cluster(server: ServerInfo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """3 primaries and 3 replicas of the session server's build, for this module."""
    workdir = tmp_path_factory.mktemp("cluster-bench")
    with start_local_cluster(server, workdir, node_timeout_ms=NODE_TIMEOUT_MS) as running:
        yield running


@pytest.fixture
def sizes(benchmark: Any) -> Sizes:
    """Full sizes when pytest-benchmark measures; check sizes under --benchmark-disable."""
    return CHECK if benchmark.disabled else FULL


@pytest.fixture
def ours(cluster: Any, key_prefix: str) -> Iterator[ValkeyCache]:
    """ValkeyCache on the cluster (default settings), on this test's prefix; its keys are removed after."""
    yield from on_local_cluster(cluster, key_prefix)


@pytest.fixture
def raw_cluster(cluster: Any) -> Iterator[ValkeyCluster]:
    """valkey-py's cluster client with the handler's socket timeout: the same work without the handler."""
    yield from open_cluster_client(cluster, socket_timeout=5.0, socket_connect_timeout=5.0,
                                   require_full_coverage=False)


def _describe(benchmark: Any, op: str, group: str, size: Sizes, **extra: Any) -> None:
    benchmark.group = group
    benchmark.extra_info.update(role="ours", op=op, size="full" if size.full else "check", topology="cluster",
                                **extra)


def test_cluster_get(benchmark: Any, ours: ValkeyCache, raw_cluster: ValkeyCluster, key_prefix: str,
                     sizes: Sizes) -> None:
    """GET of a 100-byte value through the handler returns it; paired with the raw cluster client's GET + decode."""
    ours.set("k", VALUE)
    name = key_prefix + "k"

    def mine() -> Any:
        return ours.get("k")

    def raw() -> Any:
        return loads(raw_cluster.get(name))

    assert mine() == raw() == VALUE
    _describe(benchmark, "cluster_get", "cluster-get-100B", sizes, paired={"vs_raw": paired(mine, raw, sizes)})
    assert benchmark(mine) == VALUE


def test_cluster_set(benchmark: Any, ours: ValkeyCache, raw_cluster: ValkeyCluster, key_prefix: str,
                     sizes: Sizes) -> None:
    """SET of a 100-byte value with its lifetime; paired with the raw cluster client's encode + SET PX."""
    name = key_prefix + "k"

    def mine() -> Any:
        return ours.set("k", VALUE, TTL_MS / 1000)

    def raw() -> Any:
        return raw_cluster.set(name, dumps(VALUE), px=TTL_MS)

    _describe(benchmark, "cluster_set", "cluster-set-100B", sizes, paired={"vs_raw": paired(mine, raw, sizes)})
    assert benchmark(mine) is True
    assert loads(raw_cluster.get(name)) == VALUE and TTL_MS - 60_000 < raw_cluster.pttl(name) <= TTL_MS


def test_cluster_get_many(benchmark: Any, ours: ValkeyCache, raw_cluster: ValkeyCluster, key_prefix: str,
                          sizes: Sizes) -> None:
    """get_many of 100 keys on every primary returns all 100; paired against 100 handler gets and raw MGETs."""
    keys = [f"m{i}" for i in range(BATCH)]
    expect = {k: VALUE + k.encode() for k in keys}
    names = [key_prefix + k for k in keys]
    assert len({raw_cluster.get_node_from_key(n).name for n in names}) == 3  # spread over every primary
    assert len({raw_cluster.keyslot(n) for n in names}) > 90  # and (nearly) a slot each
    ours.set_many(expect)

    def many() -> Any:
        return ours.get_many(keys)

    def singles() -> Any:
        return {k: ours.get(k) for k in keys}

    def raw_mget() -> Any:
        values = raw_cluster.mget_nonatomic(names)
        return {k: loads(v) for k, v in zip(keys, values, strict=True) if v is not None}

    assert singles() == raw_mget() == expect
    sizes = dataclasses.replace(sizes, rounds=min(sizes.rounds, 101))  # a side makes 100 round trips per call
    pairs = {"vs_singles": paired(many, singles, sizes), "vs_raw": paired(many, raw_mget, sizes)}
    _describe(benchmark, "cluster_get_many", "cluster-get_many-100", sizes, paired=pairs, keys=BATCH)
    assert benchmark(many) == expect
