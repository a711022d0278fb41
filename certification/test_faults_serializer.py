"""Faults: poisoned, tampered and foreign entries. Signed pickle and JSON never unpickle them; plain pickle does."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import pickle
from pathlib import Path
from typing import Any

import pytest
import valkey
from emmett_valkey import JSONSerializer, SignedPickleSerializer

from certification.support import close_handler, make_handler
from certification.support_faults import MARKS, SideEffect

pytestmark = pytest.mark.faults

SECRET = "a-secret-of-more-than-16-bytes"
OTHER_SECRET = "another-secret-of-16-bytes-too"
#: a pickle of a class whose module does not exist (protocol 0: GLOBAL, EMPTY_TUPLE, NEWOBJ, STOP)
UNKNOWN_CLASS = b"cno_such_module_e7f1\nThing\n)\x81."


@pytest.fixture
def make(server: Any, key_prefix: str, raw: valkey.Valkey) -> Any:
    """Build ValkeyCache with given options on the session server and this test's prefix; close and clean after."""
    from certification.support import scan_delete

    made: list[Any] = []

    def build(**kwargs: Any) -> Any:
        made.append(make_handler("ValkeyCache", server, key_prefix, **kwargs))
        return made[-1]

    yield build
    for h in made:
        close_handler(h)
    scan_delete(raw, key_prefix)


def _poison(tmp_path: Path, name: str = "unpickled") -> tuple[bytes, Path]:
    marker = tmp_path / name
    return pickle.dumps(SideEffect(marker)), marker


def _signed(secret: str, payload: bytes) -> bytes:
    return b"$" + hmac.new(secret.encode(), payload, hashlib.sha256).digest() + payload


def test_plain_pickle_runs_a_poisoned_entry(handler: Any, raw: valkey.Valkey, key_prefix: str,
                                            tmp_path: Path) -> None:
    """The default (Emmett) format unpickles whatever is stored: a poisoned entry runs its code (documented risk)."""
    payload, marker = _poison(tmp_path)
    raw.set(key_prefix + "p", b"!" + payload)
    assert handler.get("p") == str(marker)
    assert marker.exists() and str(marker) in MARKS


def test_signed_pickle_refuses_without_unpickling(make: Any, raw: valkey.Valkey, key_prefix: str, tmp_path: Path,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    """Signed pickle reads unsigned, forged, re-keyed, tampered and truncated entries as misses, never unpickled."""
    caplog.set_level(logging.WARNING, logger="emmett_valkey")
    h = make(serializer=SignedPickleSerializer(SECRET))
    payload, marker = _poison(tmp_path)
    h.set("good", {"ok": [1, 2]})
    good = raw.get(key_prefix + "good")
    assert good is not None and good[:1] == b"$"
    entries = {
        "emmett_format": b"!" + payload,  # what RedisCache (or any plain-pickle writer) stores
        "unsigned": b"$" + payload,
        "forged": b"$" + bytes(32) + payload,
        "other_secret": _signed(OTHER_SECRET, payload),
        "tampered": good[:33] + payload,  # a valid signature over another payload
        "truncated": good[:-1],
        "mac_only": good[:20],
    }
    for key, data in entries.items():
        raw.set(key_prefix + key, data)
    assert {key: h.get(key) for key in entries} == dict.fromkeys(entries)
    assert h.get_many(list(entries)) == {}

    async def aget_all() -> list[Any]:
        try:
            return [await h.aget(key) for key in entries]
        finally:
            await h.aclose()

    assert asyncio.run(aget_all()) == [None] * len(entries)
    assert not marker.exists() and str(marker) not in MARKS  # never unpickled
    assert h.stats()["refused"] == 3 * len(entries)
    warned = [r.getMessage() for r in caplog.records if "treating" in r.getMessage()]
    assert len(warned) == 3 * len(entries) and all("refused" in m or "not an entry" in m for m in warned), warned
    assert h.get("good") == {"ok": [1, 2]}


def test_json_serializer_never_unpickles(make: Any, raw: valkey.Valkey, key_prefix: str, tmp_path: Path) -> None:
    """JSONSerializer reads a pickled entry as a counted miss without unpickling it, and refuses non-JSON values."""
    h = make(serializer=JSONSerializer())
    payload, marker = _poison(tmp_path)
    raw.set(key_prefix + "p", b"!" + payload)
    assert h.get("p") is None and h.stats()["refused"] == 1
    assert not marker.exists()
    h.set("v", {"a": [1, "ü", None, 2.5]})
    assert h.get("v") == {"a": [1, "ü", None, 2.5]}
    with pytest.raises(TypeError):
        h.set("bad", {1, 2})
    assert raw.exists(key_prefix + "bad") == 0


def test_signed_pickle_ints_are_plain_digits(make: Any, raw: valkey.Valkey, key_prefix: str) -> None:
    """Under the signed serializer ints stay ASCII digits (so incr works): unauthenticated, but no code can run."""
    h = make(serializer=SignedPickleSerializer(SECRET))
    h.set("n", 41)
    assert raw.get(key_prefix + "n") == b"41" and h.incr("n") == 42
    raw.set(key_prefix + "planted", b"7")
    assert h.get("planted") == 7


@pytest.mark.parametrize("data", [b"!not a pickle", b"!\x80\x05\x95", b"plain text", b""],
                         ids=["garbage", "truncated", "untagged", "empty"])
def test_undecodable_entry_is_a_miss(handler: Any, raw: valkey.Valkey, key_prefix: str, data: bytes) -> None:
    """An entry that does not decode reads as a miss, not an exception."""
    raw.set(key_prefix + "x", data)
    assert handler.get("x") is None


def test_entry_of_unknown_class_is_a_miss(handler: Any, raw: valkey.Valkey, key_prefix: str) -> None:
    """A pickled entry of a class this process does not have (another app's, an old release's) reads as a miss."""
    raw.set(key_prefix + "x", b"!" + UNKNOWN_CLASS)
    assert handler.get("x") is None
