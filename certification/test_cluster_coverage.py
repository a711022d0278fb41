"""ValkeyCache on a cluster whose slots are partly served by nobody (CLUSTERDOWN), and after they are served again.

With ``cluster-require-full-coverage yes`` (the server's default) every node refuses key commands while a slot is
uncovered; with ``no`` only the uncovered slots' keys are refused. Either way a fail-soft handler serves misses and
no-ops (counted as errors), a raise-mode handler raises valkey-py's ``ClusterDownError`` with the server's words,
or valkey-py's ``SlotNotCoveredError`` when its slot map has no node for the slot, and once the slots are served
again the same handlers work without being made anew (the handler reloads a slot map that has no node for a slot).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from emmett_valkey import ValkeyCache
from valkey.exceptions import ClusterDownError, SlotNotCoveredError

from certification.session import ServerInfo
from certification.support import CLUSTER_RUNS, start_local_cluster

NODE_TIMEOUT_MS = 15_000

pytestmark = [pytest.mark.cluster, pytest.mark.cluster_only(CLUSTER_RUNS)]

UNCOVERED = 100  # slots taken away
DOWN = (ClusterDownError, SlotNotCoveredError)
DOWN_WORDS = "(?i)cluster is down|hash slot not served|not covered by the cluster"


@pytest.fixture(scope="module")
def cluster(server: ServerInfo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """3 primaries of the session server's build, for this module (its slots are taken away and given back)."""
    with start_local_cluster(server, tmp_path_factory.mktemp("cluster-coverage"), replicas=0,
                             node_timeout_ms=NODE_TIMEOUT_MS) as running:
        yield running


@pytest.mark.parametrize("full_coverage", ["yes", "no"])
def test_uncovered_slots_are_misses_or_a_clear_error_and_heal(cluster: Any, key_prefix: str,
                                                               full_coverage: str) -> None:
    """Slots taken from their primary on every node: soft misses/no-ops, strict a cluster error; then healed."""
    cluster.set_config("cluster-require-full-coverage", full_coverage)
    host, port = cluster.startup_nodes[0]
    common = {"host": host, "port": port, "cluster": True, "prefix": key_prefix, "socket_timeout": 2,
              "socket_connect_timeout": 2}
    soft = ValkeyCache(on_error="miss", **common)
    strict = ValkeyCache(**common)
    low = min(cluster.slots_of(cluster.primaries[2]))
    high = low + UNCOVERED - 1
    keyslot = soft.client.keyslot
    lost = [k for k in (f"u{i}" for i in range(100_000)) if low <= keyslot(key_prefix + k) <= high][:10]
    kept = [k for k in (f"c{i}" for i in range(40)) if not low <= keyslot(key_prefix + k) <= high]
    everything = {k: f"value of {k}" for k in lost + kept}
    owner = None
    try:
        assert soft.set_many(everything) and strict.get_many(list(everything)) == everything
        owner = cluster.uncover(low, high)
        # fail-soft: the uncovered slots' keys are misses and no-ops, never an exception
        errors = soft.stats()["errors"]
        assert soft.get(lost[0]) is None and soft.set(lost[0], "new") is False
        assert soft.get_many(lost) == {} and soft.delete_many(lost) == 0
        assert soft.stats()["errors"] == errors + 4
        # raise mode: the server's reason (ClusterDownError), or valkey-py's when its slot map has no node for the
        # slot (SlotNotCoveredError)
        with pytest.raises(DOWN, match=DOWN_WORDS):
            strict.get(lost[0])
        with pytest.raises(DOWN, match=DOWN_WORDS):
            strict.set(lost[0], "new")
        if full_coverage == "yes":  # every node refuses every key
            assert soft.get(kept[0]) is None
            with pytest.raises(DOWN, match=DOWN_WORDS):
                strict.get(kept[0])
        else:  # the covered slots go on being served, to both handlers
            assert soft.get_many(kept) == strict.get_many(kept) == {k: everything[k] for k in kept}
            assert strict.set(kept[0], "still served") and soft.get(kept[0]) == "still served"
            everything[kept[0]] = "still served"
        cluster.cover(low, high, owner)
        owner = None
        # the same handlers, not made anew: everything written before is served again, writes work again
        assert soft.get_many(list(everything)) == everything
        assert strict.get_many(list(everything)) == everything
        assert strict.set(lost[0], "after") and soft.get(lost[0]) == "after"
    finally:
        if owner is not None:
            cluster.cover(low, high, owner)
        cluster.set_config("cluster-require-full-coverage", "yes")
        strict.clear()
        soft.close()
        strict.close()
