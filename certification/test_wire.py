"""Wire compatibility with Emmett's RedisCache on one server: entries written by either read back through the other."""

from __future__ import annotations

from typing import Any

import pytest
import valkey

pytestmark = pytest.mark.unit

VALUES = ["text", "ünï ✓", b"\x00\xff", 0, -12, 2**64, 1.25, None, [1, [2]], {"a": (1, 2)}, {3}, ""]
IDS = [f"{type(v).__name__}{i}" for i, v in enumerate(VALUES)]


@pytest.mark.parametrize("value", VALUES, ids=IDS)
def test_same_bytes_on_the_wire(ours: Any, baseline: Any, raw: valkey.Valkey, key_prefix: str, value: Any) -> None:
    """Both handlers store the same bytes for the same value (bools aside, see the deviations)."""
    ours.set("ours", value)
    baseline.set("base", value)
    assert raw.get(key_prefix + "ours") == raw.get(key_prefix + "base")


@pytest.mark.parametrize("value", VALUES, ids=IDS)
def test_ours_reads_baseline_entries(ours: Any, baseline: Any, value: Any) -> None:
    """An entry written by RedisCache reads back equal through ValkeyCache."""
    baseline.set("k", value)
    got = ours.get("k")
    assert got == value and type(got) is type(value)


@pytest.mark.parametrize("value", [*VALUES, True, False], ids=[*IDS, "True", "False"])
def test_baseline_reads_our_entries(ours: Any, baseline: Any, value: Any) -> None:
    """An entry written by ValkeyCache reads back equal through RedisCache (our booleans included)."""
    ours.set("k", value)
    got = baseline.get("k")
    assert got == value and type(got) is type(value)


def test_same_ttl_on_the_wire(ours: Any, baseline: Any, raw: valkey.Valkey, key_prefix: str) -> None:
    """Both handlers give the default and explicit durations the same lifetime."""
    ours.set("o", 1)
    baseline.set("b", 1)
    ours.set("o30", 1, 30)
    baseline.set("b30", 1, 30)
    assert abs(raw.pttl(key_prefix + "o") - raw.pttl(key_prefix + "b")) < 2000
    assert abs(raw.pttl(key_prefix + "o30") - raw.pttl(key_prefix + "b30")) < 2000


@pytest.mark.parametrize("value", [True, False])
def test_baseline_bool_entry_reads_as_the_bool(ours: Any, baseline: Any, raw: valkey.Valkey, key_prefix: str,
                                               value: bool) -> None:
    """RedisCache stores a bool as b"True"/b"False" (and cannot read it back); ValkeyCache reads the bool."""
    baseline.set("b", value)
    assert raw.get(key_prefix + "b") == str(value).encode()
    assert ours.get("b") is value
    assert ours.get_many(["b"]) == {"b": value}
    assert ours.stats()["refused"] == 0


def test_counter_shared_by_both(ours: Any, baseline: Any) -> None:
    """A counter incremented by ValkeyCache reads as an int through RedisCache, and the other way."""
    baseline.set("c", 10)
    assert ours.incr("c", 5) == 15
    assert baseline.get("c") == 15


def test_clear_by_ours_removes_baseline_entries(ours: Any, baseline: Any) -> None:
    """clear() on the shared prefix removes entries whichever handler wrote them."""
    baseline.set("a", 1)
    ours.set("b", 2)
    assert ours.clear() == 2
    assert baseline.get("a") is None and baseline.get("b") is None
