"""Helpers of the local cache suite.

Handlers with the local cache on, holds on the invalidation thread, and the processes of the staleness measurement
(spawned: each builds its own handler).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import threading
import time
from collections.abc import Iterator
from typing import Any

from emmett_valkey import LocalCache, ValkeyCache

from certification.support_faults import poll

ACTIVE_TIMEOUT = 10.0  # seconds for the invalidation connection to come up on a busy machine


def local_handler(host: str, port: int, prefix: str, **kwargs: Any) -> ValkeyCache:
    """A ValkeyCache with the local cache on, its invalidation connection up."""
    kwargs.setdefault("local_cache", LocalCache(max_staleness=2.0))
    h = ValkeyCache(host=host, port=port, prefix=prefix, **kwargs)
    assert h.local is not None and h.local.wait_active(ACTIVE_TIMEOUT), "the invalidation connection did not come up"
    return h


def cached_locally(h: ValkeyCache, key: str) -> bool:
    """Whether *key* is in the handler's local store now."""
    assert h.local is not None
    return h.prefix + key in h.local.store.entries


def warm(h: ValkeyCache, key: str) -> Any:
    """Read *key* until it is stored locally (a read may race an invalidation of an earlier write); its value."""
    poll(lambda: h.get(key) is not None and cached_locally(h, key), 5, interval=0.005)
    return h.get(key)


@contextlib.contextmanager
def held_invalidations(h: ValkeyCache) -> Iterator[threading.Event]:
    """Hold the invalidation connection unread until the event is set (or the block ends).

    A helper thread holds the lock that whoever parses the connection takes (the invalidation thread, or a read
    path catching up), so the server's messages, PONGs included, wait; the handler's own evictions after its writes
    go through at once.
    """
    local = h.local
    assert local is not None
    release, held = threading.Event(), threading.Event()

    def hold() -> None:
        with local.reading:
            held.set()
            release.wait(30)

    holder = threading.Thread(target=hold, name="held-invalidations", daemon=True)
    holder.start()
    try:
        assert held.wait(10), "the invalidation connection's lock was not free within 10 s"
        yield release
    finally:
        release.set()
        holder.join(10)


@contextlib.contextmanager
def held_reconnection(h: ValkeyCache) -> Iterator[threading.Event]:
    """Hold the invalidation thread's next connection attempt until the event is set (or the block ends)."""
    local = h.local
    assert local is not None
    release, real = threading.Event(), local.connect

    def connect() -> Any:
        release.wait(30)
        return real()

    local.connect = connect  # type: ignore[method-assign]
    try:
        yield release
    finally:
        release.set()
        local.connect = real  # type: ignore[method-assign]


# -- the staleness measurement: one writer, readers in other processes ------------------------------------------


def reader_main(host: str, port: int, prefix: str, ready: Any, start: Any, last: int, out: Any) -> None:
    """Read the counter key until the last value is seen; report, per value, when it was first and last read."""
    h = local_handler(host, port, prefix, local_cache=LocalCache(max_staleness=0.5))
    warm(h, "counter")
    ready.release()
    start.wait(60)
    first: dict[int, float] = {}
    last_start: dict[int, float] = {}
    clock, deadline = time.monotonic, time.monotonic() + 60
    value = -1
    pace = threading.Event()
    while value < last and clock() < deadline:
        pace.wait(0.0002)  # a read every fraction of a millisecond, leaving the invalidation thread the GIL
        t0 = clock()
        got = h.get("counter")
        t1 = clock()
        value = -1 if got is None else got
        first.setdefault(value, t1)
        last_start[value] = t0
    assert h.local is not None
    out.put((first, last_start, h.local.stats.hits))
    h.close()


def writer_main(host: str, port: int, prefix: str, start: Any, count: int, period: float, out: Any) -> None:
    """Write 0..count-1 to the counter key every *period* seconds; report when each write was acknowledged."""
    h = ValkeyCache(host=host, port=port, prefix=prefix)
    acks: list[float] = []
    pace = threading.Event()
    start.wait(60)
    for i in range(count):
        assert h.set("counter", i, 120)
        acks.append(time.monotonic())
        pace.wait(period)  # a steady write rate, not a synchronisation
    out.put(acks)
    h.close()


def spawn() -> Any:
    """The spawn context: children build their own clients."""
    return multiprocessing.get_context("spawn")


# -- the staleness measurement with a reader that never sleeps -------------------------------------------------

#: the value the writer sets last: the busy reader stops when it reads it
END = -2


def busy_reader_main(host: str, port: int, prefix: str, ready: Any, start: Any, out: Any) -> None:
    """Read the counter key in a tight loop (no sleep: a CPU-bound handler) until END; report every change seen.

    Each change is ``[value, first read of it ended, that read started, last read of it started]``.
    """
    h = local_handler(host, port, prefix, local_cache=LocalCache(max_staleness=0.5))
    warm(h, "counter")
    ready.release()
    start.wait(60)
    get, clock = h.get, time.monotonic
    deadline = clock() + 60
    runs: list[list[Any]] = []
    previous: Any = object()
    t0 = last = clock()
    while True:
        t0 = clock()
        got = get("counter")
        if got != previous:
            t1 = clock()
            if runs:
                runs[-1][3] = last
            runs.append([got, t1, t0, t0])
            previous = got
            if got == END or t1 > deadline:
                break
        last = t0
    assert h.local is not None
    out.put((runs, h.local.stats.hits))
    h.close()


def versions_writer_main(host: str, port: int, prefix: str, start: Any, count: int, clears: int, period: float,
                         out: Any) -> None:
    """Write 0..count-1 every *period* seconds, then *clears* times a new version followed by clear(); then END.

    Reports when each write and each clear was acknowledged.
    """
    h = ValkeyCache(host=host, port=port, prefix=prefix)
    writes: list[float] = []
    cleared: list[tuple[float, float]] = []  # (the set before the clear acknowledged, the clear acknowledged)
    pace = threading.Event()
    start.wait(60)
    for i in range(count):
        assert h.set("counter", i, 120)
        writes.append(time.monotonic())
        pace.wait(period)  # a steady write rate, not a synchronisation
    for j in range(clears):
        assert h.set("counter", count + j, 120)
        set_at = time.monotonic()
        pace.wait(period)
        assert h.clear() == 1
        cleared.append((set_at, time.monotonic()))
        pace.wait(period)
    h.set("counter", END, 120)
    out.put((writes, cleared))
    h.close()
