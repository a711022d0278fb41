"""What ``CLUSTER NODES`` says, and how a cluster's provenance records each node: shared by every cluster kind.

Both the clusters we start (:mod:`~emmett_valkey_matrix.cluster`) and the ones someone else runs
(:mod:`~emmett_valkey_matrix.cluster_external`) read the nodes' view here and record each node with
:func:`node_record`. Plain functions of text: importing it costs nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

PRIMARY, REPLICA = "primary", "replica"


class NodeView(NamedTuple):
    """One line of ``CLUSTER NODES``: how one node sees another."""

    port: int
    role: str  # primary, replica, or unknown (a node still in handshake)
    primary_id: str | None
    flags: frozenset[str]
    slots: tuple[str, ...]

    def agreed(self) -> tuple[str, str | None, bool, tuple[str, ...]]:
        """Return what every node must agree on; ``fail?`` is one node's suspicion, ``fail`` the cluster's verdict."""
        return self.role, self.primary_id, "fail" in self.flags, self.slots


def parse_nodes(text: str) -> dict[str, NodeView]:
    """Parse ``CLUSTER NODES`` into node id -> :class:`NodeView` (slots in migration, ``[..]``, are left out)."""
    views: dict[str, NodeView] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 8:
            continue
        node_id, address, flags_text, master = parts[:4]
        flags = frozenset(flags_text.split(",")) - {"myself"}
        port_text = address.split("@")[0].rsplit(":", 1)[-1]
        role = PRIMARY if "master" in flags else REPLICA if "slave" in flags else "unknown"
        views[node_id] = NodeView(int(port_text) if port_text.isdigit() else 0, role,
                                  None if master == "-" else master, flags,
                                  tuple(s for s in parts[8:] if not s.startswith("[")))
    return views


def node_record(node_id: str, host: str, port: int, role: str, slots: tuple[str, ...], replica_of: str | None,
                identity: Mapping[str, Any]) -> dict[str, Any]:
    """One node of a cluster's provenance: where it is, its role and slots, and what its INFO said it is."""
    return {"node_id": node_id, "host": host, "port": port, "role": role,
            "slots": [slot_range(s) for s in slots], "replica_of": replica_of if role == REPLICA else None,
            "product": identity.get("product"), "version": identity.get("version"),
            "build_id": identity.get("build_id"), "git_sha": identity.get("git_sha"),
            "binary_sha256": identity.get("binary_sha256")}


def slot_range(text: str) -> list[int]:
    """``"0-5460"`` -> ``[0, 5460]``; a single slot ``"5461"`` -> ``[5461, 5461]`` (as ``CLUSTER NODES`` gives them)."""
    low, _, high = text.partition("-")
    return [int(low), int(high or low)]
