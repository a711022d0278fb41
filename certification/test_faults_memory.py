"""Faults: a full server. noeviction refuses writes clearly (or as no-ops in fail-soft mode); allkeys-lru evicts."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from certification.support_faults import HandlerFactory, dedicated

pytestmark = [pytest.mark.faults,
              pytest.mark.standalone_only(
                  "maxmemory and the eviction policy set on one dedicated server")]

MAXMEMORY = "4mb"
CHUNK = 16 * 1024
SECRET = "s3cr3t-cached-value"  # marks values, to check that no error message or log line carries them


def _full(policy: str) -> Any:
    from emmett_valkey_matrix import ServerOptions

    return ServerOptions(maxmemory=MAXMEMORY, maxmemory_policy=policy)


def _fill(h: Any, limit: int = 1000) -> tuple[int, BaseException | None]:
    """Set 16 KiB values until one is refused (an exception, or False in fail-soft mode); bounded."""
    for i in range(limit):
        try:
            if h.set(f"fill{i}", SECRET + "x" * CHUNK, 600) is False:
                return i, None
        except Exception as exc:
            return i, exc
    raise AssertionError(f"{limit} x {CHUNK} bytes fit in maxmemory {MAXMEMORY}: the limit is not in force")


def _refused_batch(h: Any, tried: list[dict[str, Any]], limit: int = 200) -> dict[str, Any]:
    """Send batches (a small pair, then big ones) until one is refused (raises, or False); the last is in *tried*."""
    for j in range(limit):
        batch = {f"small{j}": SECRET, **{f"big{j}.{i}": SECRET + "y" * CHUNK for i in range(8)}}
        tried.append(batch)
        if h.set_many(batch) is False:
            return batch
    raise AssertionError(f"{limit} batches fit in maxmemory {MAXMEMORY}: the limit is not in force")


def test_noeviction_set_raises_out_of_memory(server: Any, handler_factory: HandlerFactory, tmp_path: Path) -> None:
    """On a full noeviction server, set raises OutOfMemoryError naming maxmemory; reads and deletes still work."""
    with dedicated(server, tmp_path, _full("noeviction")) as srv:
        h = handler_factory(srv)
        n, exc = _fill(h)
        assert type(exc).__name__ == "OutOfMemoryError" and "maxmemory" in str(exc), repr(exc)
        assert h.get(f"fill{n}") is None  # the refused entry was not written, not even partly
        assert h.get("fill0") == SECRET + "x" * CHUNK
        for i in range(n // 2):
            h.clear(f"fill{i}")
        assert h.set("again", 1) in (True, None) and h.get("again") == 1  # RedisCache's set returns None


def test_noeviction_fail_soft(server: Any, key_prefix: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """With on_error="miss", a full server makes set and set_many no-ops (counted, logged without values)."""
    handler_factory = HandlerFactory("ValkeyCache", key_prefix)
    caplog.set_level(logging.WARNING, logger="emmett_valkey")
    try:
        with dedicated(server, tmp_path, _full("noeviction")) as srv:
            h = handler_factory(srv, on_error="miss")
            _, exc = _fill(h)
            assert exc is None and h.stats()["errors"] == 1
            batch = _refused_batch(h, [])
            assert h.get_many(list(batch)) == {}  # the batch is all or nothing
            assert h.stats()["errors"] == 2
            assert h.get("fill0") == SECRET + "x" * CHUNK
            messages = [r.getMessage() for r in caplog.records]
            assert len(messages) == 2 and all("OutOfMemoryError" in m for m in messages), messages
            assert not any(SECRET in m for m in messages), messages
    finally:
        handler_factory.close()


def test_noeviction_set_many_is_all_or_nothing(server: Any, key_prefix: str, tmp_path: Path) -> None:
    """On a full server set_many raises OutOfMemoryError, writes none of its pairs, and its message shows no value."""
    from valkey.exceptions import OutOfMemoryError

    handler_factory = HandlerFactory("ValkeyCache", key_prefix)
    try:
        with dedicated(server, tmp_path, _full("noeviction")) as srv:
            h = handler_factory(srv)
            _fill(h)
            h.clear("fill0")  # room for the first pairs of a batch, not for all of it
            tried: list[dict[str, Any]] = []
            with pytest.raises(OutOfMemoryError) as info:
                _refused_batch(h, tried)
            assert SECRET not in str(info.value)
            assert h.get_many(list(tried[-1])) == {}
    finally:
        handler_factory.close()


def test_allkeys_lru_keeps_working_and_reports_evictions(server: Any, handler_factory: HandlerFactory, tmp_path: Path,
                                                         record_property: Any) -> None:
    """With allkeys-lru, every set succeeds past maxmemory, the newest entry reads back, and evictions are counted."""
    with dedicated(server, tmp_path, _full("allkeys-lru")) as srv:
        h = handler_factory(srv)
        refused = [i for i in range(600) if h.set(f"lru{i}", "z" * CHUNK, 600) is False]
        assert not refused
        assert h.get("lru599") == "z" * CHUNK
        admin = srv.client()
        try:
            evicted = int(admin.info("stats")["evicted_keys"])
        finally:
            admin.close()
        record_property("evicted_keys", evicted)
        assert evicted > 0
