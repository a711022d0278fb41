"""Cluster result files for the report tests, made from a recorded standalone one of the same build.

``as_cluster(doc)`` gives what ``pytest --server <id>-cluster`` writes: the same schema and handler, id
``<id>-cluster``, the server block of the build the nodes run with ``"topology": "cluster"`` and the nodes (3
primaries over the 16384 slots, a replica each), the same tests rerun with ``tox -e <id>-cluster``, the suites that
only apply to one server skipped with their reason, and latency measured through the cluster.
"""

from __future__ import annotations

import copy
from typing import Any

SLOTS = ((0, 5460), (5461, 10922), (10923, 16383))
#: suites the fabricated cluster run skips, as the certification does for standalone-only tests
STANDALONE_ONLY = {"faults": "standalone only: restarts, stalls and memory limits of one server process"}


def node_id(n: int) -> str:
    """Make a 40-hex-digit node id, distinct per node."""
    return f"{n:x}" * 40 if n < 16 else f"{n:040x}"


def nodes(product: str, version: str, base_port: int = 23001) -> list[dict[str, Any]]:
    """3 primaries with the slots split as the matrix splits them, then one replica of each."""
    out: list[dict[str, Any]] = []
    for i, (start, end) in enumerate(SLOTS):
        out.append({"node_id": node_id(i + 1), "host": "127.0.0.1", "port": base_port + i, "role": "primary",
                    "slots": [[start, end]], "replica_of": None, "product": product, "version": version})
    for i in range(len(SLOTS)):
        out.append({"node_id": node_id(i + 4), "host": "127.0.0.1", "port": base_port + 3 + i, "role": "replica",
                    "slots": [], "replica_of": node_id(i + 1), "product": product, "version": version})
    return out


def as_cluster(doc: dict[str, Any], *, latency_factor: float = 1.5) -> dict[str, Any]:
    """Make the cluster run of ``doc``'s build: same tests (standalone-only ones skipped), nodes in its server."""
    sid = doc["server_id"]
    out = copy.deepcopy(doc)
    out["server_id"] = f"{sid}-cluster"
    out.pop("_origin", None)
    server = out["server"]
    server["topology"] = "cluster"
    server["cluster"] = {"primaries": 3, "replicas": 3, "nodes": nodes(server["product"], server["version"])}
    out["command"] = [part.replace(sid, f"{sid}-cluster") if part == sid else part for part in out["command"]]
    for test in out["tests"]:
        test["nodeid"] = test["nodeid"].replace(f"[{sid}", f"[{sid}-cluster")
        test["rerun"] = test["rerun"].replace(f"tox -e {sid} ", f"tox -e {sid}-cluster ").replace(
            f"[{sid}", f"[{sid}-cluster")
        if test["suite"] in STANDALONE_ONLY and test["outcome"] != "skipped":
            test.update(outcome="skipped", message=STANDALONE_ONLY[test["suite"]], deviation=None)
    for samples in (out.get("latency") or {}).values():
        for sample in samples.values():
            for key in ("p50_ms", "p99_ms"):
                if key in sample:
                    sample[key] = round(sample[key] * latency_factor, 4)
    return out
