"""The baseline on a cluster: Emmett's RedisCache pointed at one node of the cluster under certification.

RedisCache builds a plain (non-cluster) client on the host and port it is given, so on a cluster it serves only
the keys whose slot that node owns, and gets ``MOVED`` for every other key. Which node owns a test's key depends on
the key's text, and key prefixes carry a random run id: so these tests choose their keys by slot, never by luck.
A key owned by the seed node works for both handlers; a key owned by another node, and a clear of keys spread over
every primary, work for ValkeyCache and are the deviations ``baseline_no_cluster_client`` and
``baseline_clear_one_node`` for RedisCache (strict xfails on the cluster topology). Every other test that needs
the baseline is skipped on a cluster with the one reason ``support.BASELINE_ON_CLUSTER``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from certification.session import ServerInfo
from certification.support import build_handler, close_handler, scan_delete

pytestmark = [pytest.mark.unit, pytest.mark.cluster_only("RedisCache pointed at one node of a cluster")]


@pytest.fixture
def handler(request: pytest.FixtureRequest, server: ServerInfo, key_prefix: str, raw: Any) -> Iterator[Any]:
    """Ours as a cluster handler; the baseline as an Emmett application would configure it: the seed's host and port."""
    if request.param == "ValkeyCache":
        h = build_handler("ValkeyCache", server.host, server.port, key_prefix, **server.handler_kwargs())
    else:
        h = build_handler("RedisCache", server.host, server.port, key_prefix)
    try:
        yield h
    finally:
        close_handler(h)
        scan_delete(raw, key_prefix)


def key_owned(raw: Any, prefix: str, port: int, *, by_seed: bool) -> str:
    """The first of ``k0, k1, ...`` whose full key's slot is owned by the node on ``port`` (or by another node)."""
    for i in range(10_000):
        key = f"k{i}"
        if (raw.get_node_from_key(prefix + key).port == port) is by_seed:
            return key
    raise AssertionError(f"no key of 10000 is {'' if by_seed else 'not '}owned by the node on port {port}")


def test_key_owned_by_the_seed_node_roundtrips(handler: Any, server: ServerInfo, raw: Any, key_prefix: str) -> None:
    """A key whose slot the seed node owns is set and read back, by a cluster client and a single-node one alike."""
    key = key_owned(raw, key_prefix, server.port, by_seed=True)
    handler.set(key, {"on": "seed"}, 60)
    assert handler.get(key) == {"on": "seed"}
    assert raw.get(key_prefix + key) is not None


def test_key_owned_by_another_node_roundtrips(handler: Any, server: ServerInfo, raw: Any, key_prefix: str) -> None:
    """A key whose slot another node owns is set and read back (a single-node client gets MOVED for it)."""
    key = key_owned(raw, key_prefix, server.port, by_seed=False)
    handler.set(key, {"on": "another node"}, 60)
    assert handler.get(key) == {"on": "another node"}
    assert raw.get(key_prefix + key) is not None


def test_clear_reaches_every_primary(handler: Any, server: ServerInfo, raw: Any, key_prefix: str) -> None:
    """clear() removes the prefix's keys on every primary; the keys written here are on every primary."""
    keys = [f"k{i}" for i in range(60)]
    for key in keys:
        raw.set(key_prefix + key, b"1")
    owners = {raw.get_node_from_key(key_prefix + k).port for k in keys}
    assert len(owners) == len(raw.get_primaries()) > 1
    handler.clear()
    assert [k for k in keys if raw.exists(key_prefix + k)] == []
