"""Faults: the server is SIGKILLed mid-workload and started again on the same port; and a clean restart with AOF."""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from certification.support_faults import HandlerFactory, dedicated, poll

pytestmark = [pytest.mark.faults,
              pytest.mark.standalone_only(
                  "restarts (SIGKILL, clean shutdown with appendonly) of one dedicated server process")]

TIMEOUT = 0.5  # socket_timeout and socket_connect_timeout of the handlers under test
#: the longest one call may take while the server is down or coming back: two attempts and one backoff, plus slack
CALL_BOUND = 2 * TIMEOUT + 0.5 + 0.5


class Workload:
    """Threads that set and read back their own keys until stopped, timing every call."""

    def __init__(self, h: Any, threads: int = 3) -> None:
        self.h = h
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.calls: list[tuple[int, float, float, str]] = []  # (thread, ended at, seconds, outcome)
        self.in_flight: dict[int, float] = {}  # thread -> when its current call started
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(threads)]

    @contextlib.contextmanager
    def _running(self, i: int) -> Any:  # an iterator of one float
        """Thread *i*'s call in flight, for overdue(); yields when it started."""
        t0 = time.monotonic()
        with self.lock:
            self.in_flight[i] = t0
        try:
            yield t0
        finally:
            with self.lock:
                del self.in_flight[i]

    def _call(self, i: int, fn: Any) -> Any:
        with self._running(i) as t0:
            try:
                value, outcome = fn(), "ok"
            except Exception as exc:
                value, outcome = None, type(exc).__name__
        with self.lock:
            self.calls.append((i, time.monotonic(), time.monotonic() - t0, outcome))
        return value if outcome == "ok" else outcome

    def _run(self, i: int) -> None:
        for n in range(20_000):
            if self.stop.is_set():
                return
            key, value = f"w{i}:{n % 20}", [i, n, "ü" * (n % 7)]
            stored = self._call(i, lambda: self.h.set(key, value, 60))
            got = self._call(i, lambda: self.h.get(key))
            if got not in (value, None) and not isinstance(got, str):
                with self.lock:
                    self.calls.append((i, time.monotonic(), 0.0, f"wrong value {got!r} (set gave {stored!r})"))

    def __enter__(self) -> Workload:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(10)

    def outcomes(self, since: float = 0.0) -> Counter[str]:
        with self.lock:
            return Counter(o for _, end, _, o in self.calls if end >= since)

    def ok_per_thread(self, since: float) -> set[int]:
        with self.lock:
            return {i for i, end, _, o in self.calls if end >= since and o == "ok"}

    def slowest(self) -> float:
        with self.lock:
            return max(s for _, _, s, _ in self.calls)

    def overdue(self) -> bool:
        """Whether a call still running has taken longer than CALL_BOUND (slowest() will say so once it ends)."""
        now = time.monotonic()
        with self.lock:
            return any(now - t0 > CALL_BOUND for t0 in self.in_flight.values())


def _kill_and_restart(srv: Any, load: Workload, failed: Any) -> None:
    """SIGKILL mid-workload; restart once the outage was noticed (or a call has been waiting longer than allowed).

    Both are states observed, not a time waited: the outage is never cut short before the workload met it.
    """
    poll(lambda: load.outcomes()["ok"] >= 60, 10)
    srv.kill(signal.SIGKILL)
    poll(lambda: failed(load.outcomes()) or load.overdue(), 30)
    srv.restart()
    back = time.monotonic()
    poll(lambda: load.ok_per_thread(back) == set(range(len(load.threads))), 15)


def test_sigkill_then_restart_raises_then_reconnects(
        server: Any, handler_factory: HandlerFactory, tmp_path: Path) -> None:
    """With on_error="raise", calls during the outage raise connection errors in bounded time, then succeed again."""
    with dedicated(server, tmp_path) as srv:
        h = handler_factory(srv, socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT)
        with Workload(h) as load:
            _kill_and_restart(srv, load, lambda seen: sum(n for o, n in seen.items() if o != "ok") >= 3)
        seen = load.outcomes()
        assert load.slowest() <= CALL_BOUND, f"a call took {load.slowest():.2f} s; outcomes {dict(seen)}"
        assert set(seen) <= {"ok", "ConnectionError", "TimeoutError"}, seen
        assert len(seen) > 1, f"the outage went unnoticed: {dict(seen)}"


def test_sigkill_then_restart_fail_soft(server: Any, key_prefix: str, tmp_path: Path,
                                        caplog: pytest.LogCaptureFixture) -> None:
    """With on_error="miss", the outage is misses and no-ops only (counted and logged), in bounded time, then hits."""
    handler_factory = HandlerFactory("ValkeyCache", key_prefix)
    caplog.set_level(logging.WARNING, logger="emmett_valkey")
    try:
        with dedicated(server, tmp_path) as srv:
            h = handler_factory(srv, socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT, on_error="miss")
            def logged(text: str) -> bool:
                return any(text in r.getMessage() for r in list(caplog.records))

            # restart only once a read and a write have both met the outage (three threads' sets alone can be first)
            with Workload(h) as load:
                _kill_and_restart(srv, load, lambda _: h.stats()["errors"] >= 3 and logged("served as a miss")
                                  and logged("served as a no-op"))
            seen = load.outcomes()
            assert set(seen) == {"ok"}, seen  # no exception reached the application
            assert load.slowest() <= CALL_BOUND, f"a call took {load.slowest():.2f} s"
            assert h.stats()["errors"] >= 3
            assert any("served as a miss" in r.getMessage() for r in caplog.records)
            assert any("served as a no-op" in r.getMessage() for r in caplog.records)
            assert h.set("after", 1) is True and h.get("after") == 1
    finally:
        handler_factory.close()


def test_appendonly_entries_survive_clean_restart(server: Any, handler_factory: HandlerFactory, tmp_path: Path) -> None:
    """With appendonly yes, entries written before a clean restart read back through the same handler object.

    No retry loop here: the first call after the restart finds its pooled connection dead, and must reconnect itself.
    """
    from emmett_valkey_matrix import ServerOptions

    with dedicated(server, tmp_path, ServerOptions(appendonly=True)) as srv:
        h = handler_factory(srv, socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT)
        values = {f"aof{i}": {"i": i, "s": "✓" * i} for i in range(20)}
        for key, value in values.items():
            h.set(key, value, 600)
        srv.restart()
        assert {key: h.get(key) for key in values} == values
