"""What the suite moves: the entries a real Emmett cache holds, written by both handlers, and the check after a move.

Entries are written on the source by ``ValkeyCache`` (under ``<prefix>vc:``) and by Emmett's ``RedisCache`` (under
``<prefix>rc:``), each with a TTL of about an hour, so that every key expires at a known wall-clock moment. After the
move ``ValkeyCache`` on the target must read each one equal (``RedisCache``'s bools, stored as ``b"True"``, read as
bools), see the remaining TTL within :data:`TTL_TOLERANCE_S`, keep counting the counters, and find every key with
``clear()`` under the prefix.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import valkey

PREFIX = "mig:"
#: how far a moved key's expiry may be from the source's (RESTORE takes the TTL left when it runs; RDB and
#: replication carry the absolute expiry): generous for a busy two-core machine, far below the hour of the TTLs
TTL_TOLERANCE_S = 3.0
BIG_BYTES = 3 * 1024 * 1024


class Nested:
    """A user class inside a pickled value (picklable at module level, as an application's classes are)."""

    def __init__(self, items: dict[str, Any]) -> None:
        self.items = items

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Nested) and other.items == self.items

    __hash__ = None  # type: ignore[assignment]


def _values() -> dict[str, Any]:
    nested = {"user": {"id": 7, "roles": ("admin", "editor"), "tags": {"a", "b"}},
              "page": [1, 2.5, None, b"\x00\xff", "é"], "obj": Nested({"k": [1, {"x": (2, 3)}]})}
    return {"int": 2**53 + 1, "negative": -42, "zero": 0, "bigint": 10**40, "true": True, "false": False,
            "str": "héllo wörld ✓", "bytes": bytes(range(256)), "nested": nested, "none": None}


@dataclass
class Dataset:
    """What was written on a source: key -> (value as ValkeyCache reads it, absolute expiry in ms)."""

    prefix: str = PREFIX
    values: dict[str, Any] = field(default_factory=dict)
    expire_at_ms: dict[str, int] = field(default_factory=dict)
    counters: tuple[str, ...] = ()

    @property
    def names(self) -> list[str]:
        return [self.prefix + key for key in self.values]


def write(host: str, port: int, prefix: str = PREFIX) -> Dataset:
    """Write the dataset on the source with both handlers; record each key's expiry as the source reports it."""
    from emmett_core.cache.handlers import RedisCache
    from emmett_valkey import ValkeyCache

    data = Dataset(prefix)
    ours = ValkeyCache(host=host, port=port, prefix=prefix + "vc:")
    theirs = RedisCache(host=host, port=port, prefix=prefix + "rc:")
    try:
        for i, (key, value) in enumerate(_values().items()):
            ours.set(key, value, 3600 + i)
            data.values["vc:" + key] = value
            theirs.set(key, value, 3600 + i)
            data.values["rc:" + key] = value
        big = bytes(range(256)) * (BIG_BYTES // 256)
        ours.set("big", big, 3700)
        data.values["vc:big"] = big
        ours.incr("hits", 41, 3800)
        ours.incr("hits", 1, 3800)
        data.values["vc:hits"] = 42
        theirs.set("visits", 1000, 3800)  # RedisCache has no incr: its counters are ints it set
        data.values["rc:visits"] = 1000
        data.counters = ("vc:hits", "rc:visits")
    finally:
        ours.close()
        theirs._cache.close()
    raw = valkey.Valkey(host=host, port=port)
    try:
        pipe = raw.pipeline(transaction=False)
        for name in data.names:
            pipe.pttl(name)
        now_ms = int(time.time() * 1000)
        for key, pttl in zip(data.values, pipe.execute(), strict=True):
            assert pttl > 0, f"{key} has no TTL on the source ({pttl})"
            data.expire_at_ms[key] = now_ms + pttl
        assert len(list(raw.scan_iter(match=prefix + "*"))) == len(data.values), "keys other than the dataset"
    finally:
        raw.close()
    return data


def check(host: str, port: int, data: Dataset) -> list[str]:
    """What the move lost, as sentences (empty: everything arrived); ends with ``clear()`` of the target's prefix."""
    from emmett_valkey import ValkeyCache

    lost: list[str] = []
    cache = ValkeyCache(host=host, port=port, prefix=data.prefix)
    try:
        got = cache.get_many(list(data.values))
        missing = [key for key in data.values if key not in got]
        if missing:
            lost.append(f"{len(missing)} of {len(data.values)} entries missing ({', '.join(missing[:6])})")
        wrong = [key for key, value in got.items() if value != data.values[key]
                 or type(value) is not type(data.values[key])]
        if wrong:
            lost.append(f"read back different: {', '.join(wrong)}")
        off = []
        for key in got:
            ttl = cache.ttl(key)
            left = (data.expire_at_ms[key] - time.time() * 1000) / 1000
            if ttl is None or abs(ttl - left) > TTL_TOLERANCE_S:
                off.append(f"{key} {ttl} s vs {left:.1f} s")
        if off:
            lost.append(f"TTL not kept within {TTL_TOLERANCE_S:g} s: {'; '.join(off[:4])}")
        for key in data.counters:
            if key not in got:
                continue
            try:
                counted = cache.incr(key)
            except valkey.ResponseError as exc:
                lost.append(f"counter {key} no longer counts: {exc}")
                continue
            if counted != data.values[key] + 1:
                lost.append(f"counter {key} no longer counts: incr gave {counted}")
        cleared = cache.clear()
        if cleared != len(got):
            lost.append(f"clear() deleted {cleared} keys of the {len(got)} present")
        left_over = list(cache.client.scan_iter(match=data.prefix + "*"))
        if left_over:
            lost.append(f"{len(left_over)} keys left under the prefix after clear()")
    finally:
        cache.close()
    return lost
