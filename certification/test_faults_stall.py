"""Faults: a stalled server (SIGSTOP, CLIENT PAUSE): calls end within socket_timeout, and work again after."""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path
from typing import Any

import pytest
import valkey
from emmett_valkey import ValkeyCache

from certification.support_faults import HandlerFactory, bounded, dedicated, poll

pytestmark = [pytest.mark.faults, pytest.mark.standalone_only("SIGSTOP and CLIENT PAUSE of one dedicated server")]

TIMEOUT = 0.3  # ValkeyCache's socket_timeout here; RedisCache runs with its (redis-py's) defaults
BOUND = 2 * TIMEOUT + 0.4  # one timed-out attempt (timeouts are not retried), with slack for a busy machine
PAUSE = BOUND + 0.5  # CLIENT PAUSE length: longer than the bound, so a handler without timeout is seen waiting


def _ours_or_defaults(handler_factory: HandlerFactory, srv: Any, **kwargs: Any) -> Any:
    if handler_factory.kind == "ValkeyCache":
        return handler_factory(srv, socket_timeout=TIMEOUT, **kwargs)
    return handler_factory(srv)  # as an Emmett application configures it: RedisCache(host=..., port=...)


def test_sigstop_call_ends_within_socket_timeout(server: Any, handler_factory: HandlerFactory, tmp_path: Path) -> None:
    """A get on a SIGSTOPped server raises a timeout within socket_timeout, and the handler works after SIGCONT."""
    with dedicated(server, tmp_path) as srv:
        h = _ours_or_defaults(handler_factory, srv)
        h.set("k", 1)
        srv.kill(signal.SIGSTOP)
        try:
            call = bounded(lambda: h.get("k"), BOUND)
            in_time = call.done
        finally:
            srv.kill(signal.SIGCONT)
        call.join(30)
        assert in_time, f"get on a stopped server did not end within {BOUND} s"
        assert isinstance(call.error, (valkey.TimeoutError, valkey.ConnectionError)), call.error
        assert poll(lambda: h.get("k") == 1, 5)


def test_sigstop_fail_soft(server: Any, key_prefix: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """With on_error="miss", every call on a stopped server is a miss or no-op within the bound, counted and logged."""
    handler_factory = HandlerFactory("ValkeyCache", key_prefix)
    caplog.set_level(logging.WARNING, logger="emmett_valkey")
    calls = {
        "get": (lambda h: h.get("k"), None),
        "set": (lambda h: h.set("k2", 2), False),
        "get_many": (lambda h: h.get_many(["k", "k2"]), {}),
        "set_many": (lambda h: h.set_many({"a": 1, "b": 2}), False),
        "clear": (lambda h: h.clear(), 0),
        "aget": (lambda h: asyncio.run(_aget_and_close(h, "k")), None),
    }
    try:
        with dedicated(server, tmp_path) as srv:
            h = handler_factory(srv, socket_timeout=TIMEOUT, on_error="miss")
            h.set("k", 1)
            results = {}
            srv.kill(signal.SIGSTOP)
            try:
                for name, (fn, _) in calls.items():  # all at once, each on its own connection
                    results[name] = bounded(lambda fn=fn: fn(h), 0)
                for call in results.values():
                    call.join(BOUND)
            finally:
                srv.kill(signal.SIGCONT)
            for call in results.values():
                call.join(30)
            late = [name for name, call in results.items() if not call.elapsed or call.elapsed > BOUND]
            assert not late, f"calls that did not end within {BOUND} s: {late}"
            assert {n: (c.value, c.error) for n, c in results.items()} == {n: (v, None) for n, (_, v) in calls.items()}
            assert h.stats()["errors"] == len(calls)
            assert sum("failed, served as" in r.getMessage() for r in caplog.records) == len(calls)
            assert poll(lambda: h.get("k") == 1, 5)
    finally:
        handler_factory.close()


async def _aget_and_close(h: Any, key: str) -> Any:
    try:
        return await h.aget(key)
    finally:
        await h.aclose()


def test_client_pause_call_ends_within_socket_timeout(
        server: Any, handler_factory: HandlerFactory, tmp_path: Path) -> None:
    """A set during CLIENT PAUSE ALL ends within socket_timeout, and the handler works once the pause is over."""
    with dedicated(server, tmp_path) as srv:
        h = _ours_or_defaults(handler_factory, srv)
        h.set("k", 1)
        # the set must reach the server while it is paused: a set that succeeded within the bound came after the
        # pause had run out (a busy machine can starve this thread that long), proves nothing, and is tried again
        for _ in range(5):
            admin = srv.client()
            try:  # CLIENT UNPAUSE is itself held by PAUSE ALL on some servers: let the pause run out instead
                admin.execute_command("CLIENT", "PAUSE", str(int(PAUSE * 1000)), "ALL")
            finally:
                admin.close()
            call = bounded(lambda: h.set("k", 2), BOUND)
            in_time = call.done
            call.join(30)
            if not (in_time and call.error is None):
                break
        assert in_time, f"set on a paused server did not end within {BOUND} s"
        assert call.error is not None, "the set never reached the server while it was paused, in 5 tries"
        assert isinstance(call.error, valkey.TimeoutError), call.error
        assert poll(lambda: h.set("k", 3) and h.get("k") == 3, 5)


def test_default_socket_timeouts_are_bounded(server: Any) -> None:
    """ValkeyCache's default socket_timeout and socket_connect_timeout are 5 s, so no call can wait forever."""
    h = ValkeyCache(host=server.host, port=server.port)
    try:
        kwargs = h.client.connection_pool.connection_kwargs
        assert (kwargs["socket_timeout"], kwargs["socket_connect_timeout"]) == (5.0, 5.0)
    finally:
        h.close()
