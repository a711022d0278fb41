"""Unit suite: every handler method and rule, on the real server, for ours and (where it applies) the baseline."""

from __future__ import annotations

import asyncio
import math
import os
import pickle
import re
import socket
from decimal import Decimal
from typing import Any

import pytest
import valkey
from emmett_core.cache import Cache
from emmett_valkey import ConfigError, ValkeyCache

from certification.support import make_handler, scan_delete

pytestmark = pytest.mark.unit

VALUES = [
    "text", "ünïcode ✓", b"\x00\xffbytes", 3.5, -7, 0, 2**70, [1, "a", None], {"k": [1, 2]}, (1, 2), {1, 2},
    Decimal("1.10"), "",
]


@pytest.mark.parametrize("value", VALUES, ids=[type(v).__name__ + str(i) for i, v in enumerate(VALUES)])
def test_roundtrip_values(handler: Any, value: Any) -> None:
    """A value set through the handler reads back equal and of the same type."""
    handler.set("k", value)
    got = handler.get("k")
    assert got == value and type(got) is type(value)


def test_int_stored_as_ascii_digits(handler: Any, raw: valkey.Valkey, key_prefix: str) -> None:
    """A value whose type is exactly int is stored as ASCII digits (Emmett's wire format)."""
    handler.set("n", -42)
    assert raw.get(key_prefix + "n") == b"-42"


@pytest.mark.parametrize("value", ["s", 2.5, [1], {"a": 1}, None])
def test_other_values_stored_as_bang_pickle(handler: Any, raw: valkey.Valkey, key_prefix: str, value: Any) -> None:
    """Anything but an exact int is stored as b"!" + pickle.dumps(value) (Emmett's wire format)."""
    handler.set("v", value)
    assert raw.get(key_prefix + "v") == b"!" + pickle.dumps(value)


def test_bool_roundtrip(handler: Any) -> None:
    """True and False read back as booleans, not None and not 1/0."""
    handler.set("t", True)
    handler.set("f", False)
    assert handler.get("t") is True
    assert handler.get("f") is False


def test_missing_key_is_none(handler: Any) -> None:
    """A key never set reads as None."""
    assert handler.get("absent") is None


def test_default_duration_uses_default_expire(handler: Any, raw: valkey.Valkey, key_prefix: str) -> None:
    """The "default" duration means the handler's default_expire (300 s)."""
    handler.set("d", "x")
    assert 299_000 < raw.pttl(key_prefix + "d") <= 300_000


def test_none_duration_is_one_year(handler: Any, raw: valkey.Valkey, key_prefix: str) -> None:
    """A duration of None means one year, as Emmett's RedisCache."""
    handler.set("y", "x", None)
    year_ms = 365 * 24 * 3600 * 1000
    assert year_ms - 5_000 < raw.pttl(key_prefix + "y") <= year_ms


def test_explicit_duration_seconds(handler: Any, raw: valkey.Valkey, key_prefix: str) -> None:
    """A positive number is a lifetime in seconds."""
    handler.set("e", "x", 30)
    assert 29_000 < raw.pttl(key_prefix + "e") <= 30_000


def test_float_duration_subsecond(handler: Any, raw: valkey.Valkey, key_prefix: str) -> None:
    """Fractional seconds are kept to the millisecond."""
    handler.set("f", "x", 0.25)
    assert 0 < raw.pttl(key_prefix + "f") <= 250


@pytest.mark.parametrize("bad", [0, -1, -0.5, math.nan, math.inf, "soon", [], True])
def test_bad_durations_raise(handler: Any, raw: valkey.Valkey, key_prefix: str, bad: Any) -> None:
    """Zero, negatives, NaN, infinity and non-numbers raise ValueError naming the value, and write nothing."""
    with pytest.raises(ValueError, match=re.escape(repr(bad))):
        handler.set("bad", "x", bad)
    assert raw.exists(key_prefix + "bad") == 0


@pytest.mark.parametrize("bad", [0, -3, math.nan, "300", None])
def test_bad_default_expire_raises(server: Any, bad: Any) -> None:
    """A default_expire that is not a positive number is refused when the handler is made."""
    with pytest.raises(ValueError, match="default_expire"):
        ValkeyCache(**server.handler_args(), default_expire=bad)


def test_cached_none_is_a_hit(handler: Any) -> None:
    """get_or_set computes once: a cached None is a hit, not a reason to recompute."""
    calls = []
    for _ in range(3):
        assert handler.get_or_set("none", lambda: calls.append(1)) is None
    assert len(calls) == 1


def test_cached_none_is_a_hit_async(handler: Any) -> None:
    """``await cache(key, coro_fn)`` computes once, also when the result is None."""
    calls = []

    async def compute() -> None:
        calls.append(1)

    async def main() -> None:
        for _ in range(3):
            assert await handler("anone", compute) is None

    asyncio.run(main())
    assert len(calls) == 1


def test_emmett_cache_api(handler: Any) -> None:
    """Cache(name=handler) works unchanged: cache(key, fn, ttl), the decorator, get_or_set."""
    cache = Cache(backend=handler)
    assert cache("k", lambda: 41, 30) == 41
    assert cache("k", lambda: 0, 30) == 41
    calls = []

    @cache("deco", duration=30)
    def compute(x: int) -> int:
        calls.append(x)
        return x * 2

    assert compute(2) == 4 and compute(2) == 4 and compute(3) == 6
    assert calls == [2, 3]
    assert cache.get_or_set("gos", lambda: "v") == "v"


def test_emmett_cache_api_async(handler: Any) -> None:
    """``await cache(key, coro_fn)`` and the decorator on a coroutine function cache their result."""
    cache = Cache(backend=handler)
    calls = []

    @cache("adeco", duration=30)
    async def compute() -> str:
        calls.append(1)
        return "done"

    async def main() -> tuple[str, str, dict[str, int]]:
        async def value() -> dict[str, int]:
            return {"a": 1}

        return await compute(), await compute(), await cache("aval", value, 30)

    assert asyncio.run(main()) == ("done", "done", {"a": 1})
    assert calls == [1]


# -- clear ------------------------------------------------------------------------------------------------------


def test_clear_key_deletes_that_key(handler: Any) -> None:
    """clear(key) deletes exactly that key."""
    handler.set("a", 1)
    handler.set("ab", 2)
    handler.clear("a")
    assert handler.get("a") is None and handler.get("ab") == 2


def test_clear_all_only_under_prefix(handler: Any, server: Any, key_prefix: str) -> None:
    """clear() removes every key under the handler's prefix, and no other (across SCAN pages)."""
    neighbour = make_handler("ValkeyCache", server, key_prefix[:-1] + "-other-app:")  # shares the text, not the prefix
    try:
        for i in range(1500):
            handler.set(f"k{i}", i)
        neighbour.set("keep", "me")
        handler.clear()
        assert all(handler.get(f"k{i}") is None for i in range(0, 1500, 97))
        assert neighbour.get("keep") == "me"
    finally:
        neighbour.clear()


def test_clear_pattern(handler: Any) -> None:
    """clear("user:*") deletes the matching keys under the prefix only."""
    for k in ("user:1", "user:2", "usr:3"):
        handler.set(k, k)
    handler.clear("user:*")
    assert handler.get("user:1") is None and handler.get("user:2") is None
    assert handler.get("usr:3") == "usr:3"


def test_clear_pattern_inside_key(handler: Any) -> None:
    """A ``*`` anywhere in the key makes it a pattern (``a*z``), not only at the end."""
    for k in ("abz", "a-long-z", "abc"):
        handler.set(k, 1)
    handler.clear("a*z")
    assert handler.get("abz") is None and handler.get("a-long-z") is None and handler.get("abc") == 1


def test_clear_literal_glob_chars_without_star(handler: Any) -> None:
    """A key with ``?`` or ``[`` but no ``*`` is deleted literally, not as a pattern."""
    handler.set("a?b[c]", 1)
    handler.set("axbc", 2)
    handler.clear("a?b[c]")
    assert handler.get("a?b[c]") is None and handler.get("axbc") == 2


def test_clear_all_with_glob_prefix(handler: Any, server: Any, key_prefix: str, raw: valkey.Valkey) -> None:
    """A prefix with glob characters (``app[1]:``) is matched literally by clear()."""
    kind = type(handler).__name__
    mine = make_handler(kind, server, key_prefix + "app[1]:")
    lookalike = make_handler("ValkeyCache", server, key_prefix + "app1:")
    mine.set("x", 1)
    lookalike.set("x", 2)
    mine.clear()
    try:
        assert raw.exists(key_prefix + "app[1]:x") == 0, "the handler's own key survived clear()"
        assert lookalike.get("x") == 2, "clear() deleted another prefix's key"
    finally:
        scan_delete(raw, key_prefix)


@pytest.mark.standalone_only("SELECT of database 9 (a cluster has database 0 only)")
def test_clear_empty_prefix_empties_db_with_scan(server: Any) -> None:
    """With an empty prefix, clear() empties the selected db (here db 9, used by no other test) by SCAN."""
    h = ValkeyCache(**server.handler_args(), db=9, prefix="", scan_count=100)
    for i in range(450):
        h.set(f"k{i}", i)
    assert h.clear() == 450
    assert h.client.dbsize() == 0
    h.close()


@pytest.mark.standalone_only("ACL SETUSER of a restricted user on one server (ACLs are per node)")
def test_clear_needs_no_keys_nor_flushdb(handler: Any, server: Any, key_prefix: str, raw: valkey.Valkey) -> None:
    """Every method, clear included, works for an ACL user denied KEYS, FLUSHDB and FLUSHALL."""
    user = "cert-" + key_prefix.replace(":", "-").strip("-")
    raw.acl_setuser(user, enabled=True, passwords=["+pw-" + user], keys=[key_prefix + "*"],
                    commands=["+@all", "-keys", "-flushdb", "-flushall"])
    try:
        h = make_handler(type(handler).__name__, server, key_prefix, username=user, password="pw-" + user)
        h.set("a:1", 1)
        h.set("b", 2)
        h.clear("a:*")
        h.clear()
        assert h.get("b") is None
    finally:
        raw.acl_deluser(user)


# -- ours only ----------------------------------------------------------------------------------------------------


def test_keys_are_checked(ours: ValkeyCache) -> None:
    """Non-string and empty keys raise an error naming them."""
    with pytest.raises(TypeError, match="int"):
        ours.set(5, "x")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="bytes"):
        ours.get(b"k")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="empty"):
        ours.set("", "x")


def test_get_many_set_many_delete_many(ours: ValkeyCache, raw: valkey.Valkey, key_prefix: str) -> None:
    """set_many writes every pair with its TTL; get_many returns the hits only; delete_many counts."""
    data = {f"m{i}": i if i % 2 else {"i": i} for i in range(100)}
    data["none"] = None
    ours.set_many(data, 60)
    assert ours.get_many([*data, "absent"]) == data
    assert 59_000 < raw.pttl(key_prefix + "m7") <= 60_000
    assert ours.delete_many(["m1", "m2", "absent"]) == 2
    assert ours.get_many(["m1", "m3"]) == {"m3": 3}
    assert ours.get_many([]) == {} and ours.set_many({}) is True and ours.delete_many([]) == 0


def test_set_many_writes_nothing_when_a_value_fails(ours: ValkeyCache, raw: valkey.Valkey, key_prefix: str) -> None:
    """A value that cannot be serialized fails the batch before anything is written."""
    with pytest.raises(Exception, match="pickle"):
        ours.set_many({"ok": 1, "bad": lambda: None})
    assert raw.exists(key_prefix + "ok") == 0


def test_incr_decr(ours: ValkeyCache, raw: valkey.Valkey, key_prefix: str) -> None:
    """incr/decr are atomic INCRBY on the int wire format; a counter they create gets the duration."""
    assert ours.incr("c") == 1
    assert ours.incr("c", 5) == 6
    assert ours.decr("c", 2) == 4
    assert ours.get("c") == 4
    assert 299_000 < raw.pttl(key_prefix + "c") <= 300_000
    ours.set("c2", 10, 20)
    assert ours.incr("c2") == 11 and raw.pttl(key_prefix + "c2") <= 20_000
    ours.set("p", "text")
    with pytest.raises(valkey.ResponseError):
        ours.incr("p")
    with pytest.raises(TypeError):
        ours.incr("c", 1.5)  # type: ignore[arg-type]


def test_ttl_and_touch(ours: ValkeyCache) -> None:
    """ttl() reports seconds left (None if absent); touch() renews a lifetime without rewriting."""
    assert ours.ttl("t") is None
    assert ours.touch("t", 10) is False
    ours.set("t", "v", 5)
    assert 4 < (ours.ttl("t") or 0) <= 5
    assert ours.touch("t", 50) is True
    assert 49 < (ours.ttl("t") or 0) <= 50 and ours.get("t") == "v"


def test_stats_count_hits_and_misses(ours: ValkeyCache) -> None:
    """stats() counts hits, misses, sets and deletes."""
    ours.set("s", 1)
    ours.get("s")
    ours.get("s")
    ours.get("nope")
    ours.clear("s")
    assert ours.stats() == {"hits": 2, "misses": 1, "sets": 1, "deletes": 1, "refused": 0, "errors": 0}


def test_async_methods(ours: ValkeyCache) -> None:
    """aget, aset, aclear, aget_or_set, aget_many, aset_many behave as their sync twins."""

    async def main() -> None:
        assert await ours.aset("a", {"x": 1}) is True
        assert await ours.aget("a") == {"x": 1}
        await ours.aset_many({"b": 2, "c": None})
        assert await ours.aget_many(["a", "b", "c", "d"]) == {"a": {"x": 1}, "b": 2, "c": None}

        async def seven() -> int:
            return 7

        assert await ours.aget_or_set("g", seven) == 7
        assert await ours.aclear("a") == 1
        assert await ours.aclear("*") == 3
        assert await ours.aget("b") is None
        await ours.aclose()

    asyncio.run(main())


def test_async_survives_new_event_loops(ours: ValkeyCache) -> None:
    """Async connections belong to the loop that made them: a second asyncio.run works."""

    async def roundtrip(v: int) -> Any:
        await ours.aset("loop", v)
        return await ours.aget("loop")

    assert asyncio.run(roundtrip(1)) == 1
    assert asyncio.run(roundtrip(2)) == 2
    loop = asyncio.new_event_loop()
    try:
        assert loop.run_until_complete(roundtrip(3)) == 3
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())  # what asyncio.run does: the handler's connections close
        loop.close()


def test_get_or_set_loop_uses_async_client(ours: ValkeyCache) -> None:
    """``await cache(key, coro_fn)`` goes through the async client: the sync pool is never made."""

    async def compute() -> str:
        return "v"

    assert asyncio.run(ours("gsl", compute)) == "v"
    assert not ours.connections.pool_made, "the synchronous pool was made"


def test_pool_is_per_process_after_fork(ours: ValkeyCache, raw: valkey.Valkey, key_prefix: str) -> None:
    """A forked child does not use its parent's sockets: it makes its own connection and works."""
    ours.set("parent", 1)
    parent_id = ours.client.client_id()
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        code = 1
        try:
            fresh = not ours.connections.pool_made
            ours.set("child", os.getpid())
            ok = fresh and ours.client.client_id() != parent_id and ours.get("parent") == 1
            code = 0 if ok else 2
        finally:
            os.write(write_fd, bytes([code]))
            os._exit(code)
    os.close(write_fd)
    status = os.read(read_fd, 1)
    os.close(read_fd)
    _, exit_status = os.waitpid(pid, 0)
    assert status == b"\x00" and os.waitstatus_to_exitcode(exit_status) == 0
    assert ours.get("child") == pid and ours.client.client_id() == parent_id


def test_from_env_reads_variables(server: Any, key_prefix: str, raw: valkey.Valkey) -> None:
    """from_env() reads VALKEY_HOST, _PORT, _DB, _PREFIX, _EXPIRE, _CLUSTER (and VALKEY_URL)."""
    cluster = "1" if server.cluster else "0"
    env = {"VALKEY_HOST": server.host, "VALKEY_PORT": str(server.port), "VALKEY_DB": "0",
           "VALKEY_PREFIX": key_prefix, "VALKEY_EXPIRE": "45", "VALKEY_CLUSTER": cluster}
    h = ValkeyCache.from_env(env)
    h.set("e", 1)
    assert 44_000 < raw.pttl(key_prefix + "e") <= 45_000
    h2 = ValkeyCache.from_env({"VALKEY_URL": f"valkey://{server.host}:{server.port}/0", "VALKEY_PREFIX": key_prefix,
                               "VALKEY_CLUSTER": cluster})
    assert h2.get("e") == 1
    h.close()
    h2.close()


@pytest.mark.parametrize(("name", "value"), [("VALKEY_PORT", "abc"), ("VALKEY_PORT", "70000"), ("VALKEY_DB", "-1"),
                                             ("VALKEY_EXPIRE", "-5"), ("VALKEY_EXPIRE", "soon"), ("VALKEY_HOST", " ")])
def test_from_env_bad_values_name_the_variable(name: str, value: str) -> None:
    """A bad variable raises ConfigError naming the variable and its value."""
    with pytest.raises(ConfigError, match=f"{name}={value!r}"):
        ValkeyCache.from_env({name: value})


@pytest.mark.parametrize("scheme", ["valkey", "redis"])
def test_url_schemes(server: Any, scheme: str, key_prefix: str) -> None:
    """valkey:// and redis:// URLs connect; valkeys:// and rediss:// turn TLS on."""
    h = ValkeyCache(url=f"{scheme}://{server.host}:{server.port}/0", prefix=key_prefix, cluster=server.cluster)
    h.set("u", scheme)
    assert h.get("u") == scheme
    h.clear()
    h.close()
    assert ValkeyCache(url=f"{scheme}s://{server.host}:{server.port}/0").connections.settings.ssl is True


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_connection_error_raises_by_default() -> None:
    """By default a connection error raises, as RedisCache does."""
    h = ValkeyCache(host="127.0.0.1", port=_closed_port(), retries=0)
    with pytest.raises(valkey.ConnectionError):
        h.get("x")


def test_fail_soft_mode_serves_misses() -> None:
    """With on_error="miss" an unreachable server gives misses and no-op writes, counted in stats()."""
    h = ValkeyCache(host="127.0.0.1", port=_closed_port(), retries=0, on_error="miss")
    assert h.get("x") is None
    assert h.set("x", 1) is False
    assert h.clear() == 0
    assert h.get_or_set("x", lambda: "computed") == "computed"
    assert h.stats()["errors"] == 5


def test_on_error_value_is_checked() -> None:
    """An unknown on_error value is refused."""
    with pytest.raises(ValueError, match="on_error"):
        ValkeyCache(on_error="ignore")  # type: ignore[arg-type]
