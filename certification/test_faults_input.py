"""Faults: strange input. Each gets a clear error or a documented behaviour, never a corrupted entry or half a batch."""

from __future__ import annotations

import math
import threading
from typing import Any

import pytest
import redis
import valkey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from certification.support import scan_delete

pytestmark = pytest.mark.faults

BAD_KEYS = [1, 1.5, b"bytes", ("tuple",), object(), None]
ODD_KEYS = ["ключ", "emoji 🎉", "a\x00b", "\r\n\t", " ", "\x7f\x1b[31m", "*?[]\\", "{slot}"]


def _nothing_under(raw: valkey.Valkey, prefix: str) -> bool:
    return not list(raw.scan_iter(match=prefix.replace("*", "\\*") + "*", count=1000))


@pytest.mark.parametrize("key", BAD_KEYS, ids=[type(k).__name__ for k in BAD_KEYS])
def test_non_string_keys_raise(handler: Any, raw: valkey.Valkey, key_prefix: str, key: Any) -> None:
    """A key that is not a str raises (TypeError for ValkeyCache) on get and set, and nothing is written."""
    errors = (TypeError, redis.DataError, valkey.DataError)
    with pytest.raises(errors) as on_set:
        handler.set(key, "v")
    with pytest.raises(errors) as on_get:
        handler.get(key)
    if type(handler).__name__ == "ValkeyCache":
        assert type(on_set.value) is TypeError and type(on_get.value) is TypeError
    assert _nothing_under(raw, key_prefix)


@pytest.mark.parametrize("key", [*BAD_KEYS[:-1], ""], ids=[*(type(k).__name__ for k in BAD_KEYS[:-1]), "empty"])
def test_bad_key_in_a_batch_writes_nothing(ours: Any, raw: valkey.Valkey, key_prefix: str, key: Any) -> None:
    """A bad or empty key anywhere in set_many, get_many or delete_many raises before anything is sent."""
    ours.set("keep", 1)
    with pytest.raises((TypeError, ValueError)):
        ours.set_many({"a": 1, key: 2, "b": 3})
    with pytest.raises((TypeError, ValueError)):
        ours.get_many(["keep", key])
    with pytest.raises((TypeError, ValueError)):
        ours.delete_many(["keep", key])
    assert ours.get_many(["a", "b", "keep"]) == {"keep": 1}


def test_empty_key_raises(ours: Any, raw: valkey.Valkey, key_prefix: str) -> None:
    """An empty key raises ValueError on get, set and clear instead of naming the bare prefix."""
    for call in (lambda: ours.set("", 1), lambda: ours.get(""), lambda: ours.clear("")):
        with pytest.raises(ValueError, match="empty"):
            call()
    assert _nothing_under(raw, key_prefix)


def test_very_long_key_roundtrip(handler: Any, raw: valkey.Valkey, key_prefix: str) -> None:
    """A 100 000-character key (with multi-byte characters) stores, reads back and clears like any other."""
    key = ("long-ü-" * 15_000)[:100_000]
    handler.set(key, "v")
    assert handler.get(key) == "v"
    assert raw.exists((key_prefix + key).encode()) == 1
    handler.clear(key)
    assert handler.get(key) is None


@pytest.mark.parametrize("key", ODD_KEYS, ids=[f"odd{i}" for i in range(len(ODD_KEYS))])
def test_unicode_and_control_character_keys(handler: Any, raw: valkey.Valkey, key_prefix: str, key: str) -> None:
    """Unicode, NUL, CR/LF, escape sequences and glob characters in a key are stored literally, as its UTF-8 bytes."""
    handler.set(key, [key])
    assert handler.get(key) == [key]
    assert raw.exists((key_prefix + key).encode("utf-8")) == 1


def test_lone_surrogate_key_raises(handler: Any, raw: valkey.Valkey, key_prefix: str) -> None:
    """A key that is not valid Unicode (a lone surrogate) raises UnicodeEncodeError, and nothing is written."""
    with pytest.raises(UnicodeEncodeError):
        handler.set("bad\udcff", 1)
    assert _nothing_under(raw, key_prefix)


UNPICKLABLE = [lambda: None, threading.Lock(), (i for i in range(3))]


@pytest.mark.parametrize("value", UNPICKLABLE, ids=["lambda", "lock", "generator"])
def test_unpicklable_value_keeps_the_old_entry(handler: Any, value: Any) -> None:
    """Setting a value that cannot be pickled raises, and the entry already under that key is left as it was."""
    handler.set("k", {"old": True})
    with pytest.raises((TypeError, AttributeError, Exception)) as info:
        handler.set("k", value)
    assert "pickle" in repr(info.value).lower() or isinstance(info.value, TypeError)
    assert handler.get("k") == {"old": True}


def test_unpicklable_value_in_a_batch_writes_nothing(ours: Any) -> None:
    """set_many with one value that cannot be pickled raises and writes none of the pairs."""
    with pytest.raises(Exception, match="pickle"):
        ours.set_many({"a": 1, "b": threading.Lock(), "c": 3})
    assert ours.get_many(["a", "b", "c"]) == {}


@pytest.mark.parametrize("bad", [0, -1, math.nan, math.inf, "soon", [], True])
def test_bad_duration_changes_nothing(ours: Any, raw: valkey.Valkey, key_prefix: str, bad: Any) -> None:
    """A bad duration raises ValueError in set_many, incr and touch, and writes or re-times nothing."""
    ours.set("timed", 1, 30)
    before = raw.pttl(key_prefix + "timed")
    for call in (lambda: ours.set_many({"a": 1, "b": 2}, bad), lambda: ours.incr("n", 1, bad),
                 lambda: ours.touch("timed", bad)):
        with pytest.raises(ValueError, match="duration"):
            call()
    assert ours.get_many(["a", "b", "n"]) == {}
    assert before - 2000 < raw.pttl(key_prefix + "timed") <= before


# -- property-based round trips ------------------------------------------------------------------------------------

KEYS = st.text(min_size=1, max_size=40)
SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30) | st.binary(
    max_size=30)
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4) | st.tuples(inner, inner)
                      | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)
#: top-level booleans aside: RedisCache reads them back as None (deviation bool_read_back_as_none, unit suite)
TOP_VALUES = VALUES.filter(lambda v: type(v) is not bool)
PROPERTY = settings(max_examples=40, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


def _same(got: Any, value: Any) -> bool:
    return bool(got == value and type(got) is type(value))


@PROPERTY
@given(key=KEYS, value=TOP_VALUES)
def test_roundtrip_arbitrary_keys_and_values(handler: Any, key: str, value: Any) -> None:
    """Any non-empty str key and any picklable value read back equal and of the same type."""
    handler.set(key, value, 60)
    assert _same(handler.get(key), value)


@PROPERTY
@given(key=KEYS, value=TOP_VALUES)
def test_roundtrip_across_handlers(ours: Any, baseline: Any, key: str, value: Any) -> None:
    """An entry written by either handler reads back equal through the other, for any key and value."""
    ours.set(key, value, 60)
    assert _same(baseline.get(key), value)
    baseline.set(key, value, 60)
    assert _same(ours.get(key), value)


@PROPERTY
@given(mapping=st.dictionaries(KEYS, TOP_VALUES, max_size=6))
def test_set_many_get_many_roundtrip(ours: Any, raw: valkey.Valkey, key_prefix: str, mapping: dict[str, Any]) -> None:
    """set_many then get_many gives back exactly the mapping, for any keys and values."""
    scan_delete(raw, key_prefix)
    ours.set_many(mapping, 60)
    got = ours.get_many(list(mapping))
    assert got.keys() == mapping.keys() and all(_same(got[k], v) for k, v in mapping.items())
