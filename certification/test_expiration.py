"""Expiration suite: default, explicit and sub-second durations, touch, and an expired entry seen as a miss.

Timing is observed, never slept on: PTTL read back from the server, and polling to a deadline for expiry.
"""

from __future__ import annotations

import asyncio
import pickle
import time
from collections.abc import Callable
from typing import Any

import pytest
import valkey
from emmett_valkey import ValkeyCache

from certification.support import make_handler

pytestmark = pytest.mark.expiration

YEAR_MS = 365 * 24 * 3600 * 1000
DEADLINE_S = 3.0  # how long a 30-150 ms entry may take to be seen as gone, on a loaded CI machine


def wait_for(predicate: Callable[[], bool], timeout: float = DEADLINE_S) -> bool:
    """Poll *predicate* every 5 ms until it holds (True) or *timeout* seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)


def close_handler(handler: Any) -> None:
    """Close either handler's connections (RedisCache has no close())."""
    if isinstance(handler, ValkeyCache):
        handler.close()
    else:
        handler._cache.close()


def test_default_duration_uses_default_expire(handler: Any, server: Any, key_prefix: str, raw: valkey.Valkey) -> None:
    """Without a duration, or with "default", an entry lives default_expire seconds (300, or as configured)."""
    handler.set("implicit", 1)
    assert 299_000 < raw.pttl(key_prefix + "implicit") <= 300_000
    seven = make_handler(type(handler).__name__, server, key_prefix, default_expire=7)
    try:
        seven.set("seven", "v")
        seven.set("seven-explicit", "v", "default")
    finally:
        close_handler(seven)
    assert 6_000 < raw.pttl(key_prefix + "seven") <= 7_000
    assert 6_000 < raw.pttl(key_prefix + "seven-explicit") <= 7_000


@pytest.mark.parametrize("seconds", [1, 59, 3600, 30 * 86400])
def test_explicit_duration_in_seconds(handler: Any, raw: valkey.Valkey, key_prefix: str, seconds: int) -> None:
    """An int duration is a lifetime of that many seconds, from one second to a month."""
    handler.set("e", "x", seconds)
    assert seconds * 1000 - 1_000 < raw.pttl(key_prefix + "e") <= seconds * 1000


def test_none_duration_lives_one_year(handler: Any, raw: valkey.Valkey, key_prefix: str) -> None:
    """A duration of None is one year (Emmett's meaning), never a key without expiry."""
    handler.set("y", "x", None)
    assert YEAR_MS - 5_000 < raw.pttl(key_prefix + "y") <= YEAR_MS


@pytest.mark.parametrize(("seconds", "floor_ms"), [(0.15, 0), (2.5, 2_000)])
def test_fractional_duration_to_the_millisecond(
    handler: Any, raw: valkey.Valkey, key_prefix: str, seconds: float, floor_ms: int
) -> None:
    """A fractional duration is kept to the millisecond: 0.15 s gives 0 < PTTL <= 150, 2.5 s more than 2 s."""
    handler.set("f", "x", seconds)
    assert floor_ms < raw.pttl(key_prefix + "f") <= seconds * 1000


def test_subsecond_entry_becomes_a_miss(handler: Any, raw: valkey.Valkey, key_prefix: str) -> None:
    """An entry set for 50 ms reads as a miss within the deadline, and is gone from the server."""
    handler.set("short", "x", 0.05)
    assert raw.pttl(key_prefix + "short") <= 50
    assert wait_for(lambda: handler.get("short") is None), "a 50 ms entry was still served after 3 s"
    assert raw.exists(key_prefix + "short") == 0


@pytest.mark.parametrize("value", [42, {"a": [1, 2]}, "text"], ids=["int", "dict", "str"])
def test_expired_entry_is_a_miss_for_both_handlers(
    ours: ValkeyCache, baseline: Any, raw: valkey.Valkey, key_prefix: str, value: Any
) -> None:
    """An entry the server expired (written raw with PX 30) is a miss for ValkeyCache and RedisCache alike."""
    wire = str(value).encode() if type(value) is int else b"!" + pickle.dumps(value)
    raw.set(key_prefix + "twin", wire, px=60_000)  # same bytes, long-lived: proves both handlers decode them
    raw.set(key_prefix + "short", wire, px=30)
    assert ours.get("twin") == value and baseline.get("twin") == value

    def both_miss() -> bool:
        return ours.get("short") is None and baseline.get("short") is None

    assert wait_for(both_miss), "an entry written with PX 30 was still served after 3 s"
    assert ours.get_many(["short", "twin"]) == {"twin": value}


def test_get_or_set_recomputes_after_expiry(handler: Any, raw: valkey.Valkey, key_prefix: str) -> None:
    """get_or_set serves the cached value until it expires, then computes and stores a fresh one."""
    calls: list[int] = []

    def compute() -> str:
        calls.append(1)
        return f"v{len(calls)}"

    assert handler.get_or_set("g", compute, 30) == "v1"
    assert handler.get_or_set("g", compute, 30) == "v1" and len(calls) == 1
    raw.pexpire(key_prefix + "g", 20)  # the server expires it in 20 ms

    assert wait_for(lambda: handler.get_or_set("g", compute, 30) == "v2"), "no recompute 3 s after expiry"
    assert len(calls) == 2
    assert 29_000 < raw.pttl(key_prefix + "g") <= 30_000, "the recomputed value was not stored with its duration"


def test_set_overwrites_ttl(handler: Any, raw: valkey.Valkey, key_prefix: str) -> None:
    """A set replaces the lifetime as well as the value: longer, shorter, and on a key that had none."""
    name = key_prefix + "o"
    handler.set("o", "year", None)
    handler.set("o", "short", 30)
    assert 29_000 < raw.pttl(name) <= 30_000 and handler.get("o") == "short"
    handler.set("o", "long", 3600)
    assert 3_599_000 < raw.pttl(name) <= 3_600_000 and handler.get("o") == "long"
    raw.set(name, b"7")  # no expiry at all
    handler.set("o", 8, 30)
    assert 29_000 < raw.pttl(name) <= 30_000 and handler.get("o") == 8


# -- ValkeyCache only: touch, ttl, incr, set_many, async and fractional default_expire -----------------------------


def test_touch_extends_lifetime(ours: ValkeyCache, raw: valkey.Valkey, key_prefix: str) -> None:
    """touch() gives an entry a new lifetime: it outlives a sentinel set with the same 100 ms, value unchanged."""
    ours.set("t", "v", 0.1)
    ours.set("sentinel", 1, 0.1)
    assert ours.touch("t", 30) is True
    assert 29_000 < raw.pttl(key_prefix + "t") <= 30_000
    assert wait_for(lambda: ours.get("sentinel") is None), "the 100 ms sentinel never expired"
    assert ours.get("t") == "v"
    assert ours.touch("t", None) is True and YEAR_MS - 5_000 < raw.pttl(key_prefix + "t") <= YEAR_MS
    assert ours.touch("t") is True and 299_000 < raw.pttl(key_prefix + "t") <= 300_000


def test_touch_can_shorten_and_misses_absent(ours: ValkeyCache, raw: valkey.Valkey, key_prefix: str) -> None:
    """touch() with 50 ms makes an entry expire soon; on an absent key it returns False and creates nothing."""
    ours.set("t", "v", 3600)
    assert ours.touch("t", 0.05) is True and raw.pttl(key_prefix + "t") <= 50
    assert wait_for(lambda: ours.get("t") is None), "an entry touched to 50 ms was still served after 3 s"
    assert ours.touch("t", 30) is False and raw.exists(key_prefix + "t") == 0
    ours.set("keep", "v", 30)
    with pytest.raises(ValueError, match="0"):
        ours.touch("keep", 0)
    assert 29_000 < raw.pttl(key_prefix + "keep") <= 30_000, "a refused touch changed the lifetime"


def test_ttl_reports_seconds_left(ours: ValkeyCache, raw: valkey.Valkey, key_prefix: str) -> None:
    """ttl() is the time left in seconds to the millisecond, inf without expiry, None once expired or absent."""
    ours.set("s", "v", 0.15)
    assert 0 < (ours.ttl("s") or 0) <= 0.15
    ours.set("y", "v", None)
    assert YEAR_MS / 1000 - 5 < (ours.ttl("y") or 0) <= YEAR_MS / 1000
    raw.set(key_prefix + "forever", b"1")
    assert ours.ttl("forever") == float("inf")
    assert ours.ttl("absent") is None
    assert wait_for(lambda: ours.ttl("s") is None), "ttl() still reported a 150 ms entry after 3 s"


def test_incr_created_counter_expires(ours: ValkeyCache, raw: valkey.Valkey, key_prefix: str) -> None:
    """A counter incr() creates gets the (sub-second) duration; an existing counter keeps its own lifetime."""
    assert ours.incr("c", 1, 0.05) == 1
    assert 0 < raw.pttl(key_prefix + "c") <= 50 or raw.exists(key_prefix + "c") == 0
    assert wait_for(lambda: ours.get("c") is None), "a counter made with 50 ms was still served after 3 s"
    ours.set("n", 5, 30)
    assert ours.incr("n", 1, 0.05) == 6
    assert 29_000 < raw.pttl(key_prefix + "n") <= 30_000


def test_set_many_subsecond_duration(ours: ValkeyCache, raw: valkey.Valkey, key_prefix: str) -> None:
    """set_many applies a 150 ms duration to every entry, and all of them expire to misses."""
    ours.set_many({f"m{i}": i for i in range(20)}, 0.15)
    assert all(0 < raw.pttl(key_prefix + f"m{i}") <= 150 for i in range(0, 20, 5))
    assert wait_for(lambda: ours.get_many([f"m{i}" for i in range(20)]) == {}), "set_many entries outlived 3 s"


def test_fractional_default_expire(server: Any, key_prefix: str, raw: valkey.Valkey) -> None:
    """A fractional default_expire (0.2 s) applies to the "default" duration and expires to a miss."""
    h = ValkeyCache(**server.handler_args(), prefix=key_prefix, default_expire=0.2)
    try:
        h.set("d", "x")
        assert 0 < raw.pttl(key_prefix + "d") <= 200
        assert wait_for(lambda: h.get("d") is None), "a 200 ms default entry was still served after 3 s"
    finally:
        h.close()


def test_async_subsecond_entry_becomes_a_miss(ours: ValkeyCache, raw: valkey.Valkey, key_prefix: str) -> None:
    """An entry aset() for 50 ms has that PTTL, and aget() polls to a miss within the deadline."""

    async def main() -> bool:
        await ours.aset("a", "x", 0.05)
        assert raw.pttl(key_prefix + "a") <= 50
        deadline = time.monotonic() + DEADLINE_S
        try:
            while time.monotonic() < deadline:
                if await ours.aget("a") is None:
                    return True
                await asyncio.sleep(0.005)
            return False
        finally:
            await ours.aclose()

    assert asyncio.run(main()), "an async 50 ms entry was still served after 3 s"
