"""The local cache as the operations see it: on (:class:`Local`, its invalidation connection) or off (:class:`Off`).

Both have the same methods, so an operation never asks whether the local cache is on: ``hit`` and ``hits`` serve
what is stored, ``read`` and ``read_many`` are the steps of a read from the server (storing what may be stored),
``forget`` evicts what this process just wrote. The rules are in :mod:`.local`.

Who reads the invalidation connection: a thread, waiting on the socket, and the read path itself. A hit looks at
the socket at most every :data:`~.local.CHECK_EVERY` seconds (one clock compare in between) and, when something is
pending, reads and applies it before it serves; one lock (``reading``) makes sure the two never parse the stream
at the same time. A thread alone would wait for the GIL while a CPU-bound reader serves old values (up to the
interpreter's 5 ms switch interval per message).
"""

from __future__ import annotations

import logging
import os
import select
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from typing import Any

from .codec import MISSING, Codec
from .local import CHECK_EVERY, LocalCache, LocalStats, Off, Store
from .operations import Operation, command
from .stats import Stats

log = logging.getLogger("emmett_valkey")

CHANNEL = "__redis__:invalidate"
#: seconds a hit waits for whoever is reading the invalidation connection (it holds the lock only while applying)
CATCH_UP_WAIT = 0.002


class Local(Off):
    """A handler's local cache in this process: the store, and the invalidation connection that keeps it true."""

    def __init__(self, config: LocalCache, prefix: str, loads: Callable[[bytes], Any],
                 connect: Callable[[], Any], counts: Stats | None = None) -> None:
        self.config, self.prefix, self.loads, self.connect = config, prefix, loads, connect
        self.counts = counts if counts is not None else Stats()  # the handler's hit counts
        self.stats = LocalStats()
        self._reset()
        _instances.add(self)

    def _reset(self) -> None:
        self.store = Store(self.config, self.loads, self.stats)
        self.entries = self.store.entries  # the same dict, read on the hot path without the attribute hop
        self.lock = threading.Lock()
        self.reading = threading.Lock()  # held by whoever parses the invalidation connection
        self.thread: threading.Thread | None = None
        self.stopping = threading.Event()
        self.client_id: int | None = None  # the invalidation connection's CLIENT ID while it is up
        self.conn: Any = None  # that connection while it serves (set and cleared under ``reading``)
        self.sock: Any = None  # its socket: readable means invalidations are pending
        self.ping_at: float | None = None  # when the PING in flight was sent
        self.next_ping = 0.0
        self.check_at = 0.0  # the next hit at or after this monotonic time looks at the connection
        self.pid = os.getpid()

    # -- the operations' side ----------------------------------------------------------------------------------

    def hit(self, name: str) -> Any:
        """Return the stored value of *name* (a counted hit), or MISSING; applies pending invalidations first."""
        now = time.monotonic()
        if now >= self.check_at:
            self._attend(now)
        value = self.store.lookup(name, now)
        if value is not MISSING:
            self.counts.hits += 1
        return value

    def hits(self, keys: list[str]) -> tuple[dict[str, Any], list[str]]:
        """Return the stored values of *keys* (``{key: value}``, counted hits) and the keys still to read."""
        now = time.monotonic()
        if now >= self.check_at:
            self._attend(now)
        found: dict[str, Any] = {}
        rest: list[str] = []
        entries, prefix, loads = self.entries, self.prefix, self.loads
        get, touch = entries.get, entries.move_to_end
        for key in keys:  # Store.lookup inlined: this loop is all of a local get_many's cost
            name = prefix + key
            entry = get(name)
            if entry is None or now >= entry.deadline:
                rest.append(key)
                continue
            try:
                touch(name)
            except KeyError:  # evicted meanwhile: served as read a moment ago
                pass
            found[key] = loads(entry.value) if entry.decode else entry.value
        self.stats.hits += len(found)
        self.counts.hits += len(found)
        return found, rest

    def read(self, name: str, codec: Codec) -> Operation[Any]:
        """Read *name* with its PTTL (one round trip) and store it, unless an invalidation overtook the read."""
        store = self.store
        token = store.begin(name)
        if token is None:
            return (yield from super().read(name, codec))
        try:
            started = time.monotonic()
            raw, pttl = yield command("get_pttl", name)
            value = codec.decode(name, raw)
            if value is not MISSING:
                store.put(name, token, value, raw, started, pttl)
            return value
        finally:
            store.end(name, token)

    def read_many(self, keys: list[str], names: list[str], codec: Codec) -> Operation[dict[str, Any]]:
        """Read *names* with their PTTLs (one round trip) and store each under :meth:`read`'s rule."""
        store = self.store
        if not store.active:
            return (yield from super().read_many(keys, names, codec))
        tokens = [store.begin(name) for name in names]
        try:
            started = time.monotonic()
            raws, pttls = yield command("mget_pttl", names)
            out = codec.decode_many(keys, raws)
            for key, name, token, raw, pttl in zip(keys, names, tokens, raws, pttls, strict=True):
                if token is not None and raw is not None and key in out:
                    store.put(name, token, out[key], raw, started, pttl)
            return out
        finally:
            for name, token in zip(names, tokens, strict=True):
                if token is not None:
                    store.end(name, token)

    def forget(self, names: Iterable[str]) -> None:
        """Evict what this process just wrote, before the server's invalidation arrives."""
        self.store.invalidate(list(names))

    def forget_all(self) -> None:
        """Evict everything (this process cleared a pattern or the prefix)."""
        self.store.empty()

    # -- the read path's look at the invalidation connection ---------------------------------------------------

    def _attend(self, now: float) -> None:
        self.check_at = now + CHECK_EVERY
        if self.thread is None:
            self.start()
        store = self.store
        if not store.active:
            return
        if now >= store.stale_at:  # the connection is silent: trust nothing until a PONG comes back
            if store.entries:
                store.empty()
            self.check_at = now
            return
        sock = self.sock
        if self.reading.locked() or (sock is not None and _readable(sock)):
            self._catch_up()
        self.check_at = min(self.check_at, store.stale_at)

    def _catch_up(self) -> None:
        """Apply what is pending on the connection, on this thread (or wait briefly for the one applying it)."""
        if not self.reading.acquire(timeout=CATCH_UP_WAIT):
            return  # held for longer than that (stuck): the staleness bound still holds
        try:
            conn = self.conn
            if conn is not None:
                try:
                    self._drain(conn)
                except Exception as exc:  # the thread reconnects
                    log.warning("emmett_valkey: local cache bypassed, invalidation connection lost: %r", exc)
                    self.conn = self.sock = None
                    self.store.down()
        finally:
            self.reading.release()

    def _drain(self, conn: Any) -> None:
        """Apply every complete message that has arrived; under ``reading``."""
        while conn.can_read(timeout=0):
            self._handle(conn.read_response())

    def _handle(self, message: Any) -> None:
        kind = message[0]
        if kind == b"message":
            names = message[2]
            if names is None:  # a flush
                self.store.empty()
            else:
                self.store.invalidate([n.decode() if isinstance(n, bytes) else n for n in names])
        elif kind == b"pong" and self.ping_at is not None:
            self.store.heard(self.ping_at)
            self.next_ping = self.ping_at + self.config.ping_interval
            self.ping_at = None

    # -- the thread ------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the invalidation thread if it is not running (entries are served once it is connected)."""
        if self.thread is not None:
            return
        with self.lock:
            if self.thread is None:
                self.stopping = threading.Event()
                self.thread = threading.Thread(target=self._run, args=(self.stopping,),
                                               name="emmett-valkey-invalidation", daemon=True)
                self.thread.start()

    def wait_active(self, timeout: float) -> bool:
        """Start the thread and wait until the cache serves entries (for tests and warm-ups)."""
        self.start()
        deadline = time.monotonic() + timeout
        while not self.store.active:
            if time.monotonic() > deadline:
                return False
            self.stopping.wait(0.005)
        return True

    def stop(self) -> None:
        """Stop the thread and empty the store (:meth:`start` begins again)."""
        thread, stopping = self.thread, self.stopping
        stopping.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)
        self.thread = None
        self.check_at = 0.0
        self.store.down()

    def _run(self, stopping: threading.Event) -> None:
        failures = 0
        while not stopping.is_set():
            conn = None
            try:
                conn = self.connect()
                self._serve(conn, stopping)
                failures = 0
            except Exception as exc:  # lost, refused or silent: empty, then connect again
                failures += 1
                if self.store.active or failures == 1:
                    log.warning("emmett_valkey: local cache bypassed, invalidation connection lost: %r", exc)
            finally:
                with self.reading:
                    self.conn = self.sock = None
                    self.store.down()
                self.client_id = None
                if conn is not None:
                    conn.disconnect()
            stopping.wait(min(0.01 * 2 ** min(failures, 7), 1.0))

    def _serve(self, conn: Any, stopping: threading.Event) -> None:
        since = time.monotonic()
        conn.send_command("CLIENT", "ID")
        client_id = int(conn.read_response())
        tracking: list[Any] = ["CLIENT", "TRACKING", "ON", "REDIRECT", client_id, "BCAST"]
        if self.prefix:
            tracking += ["PREFIX", self.prefix]
        conn.send_command(*tracking)
        conn.read_response()
        conn.send_command("SUBSCRIBE", CHANNEL)
        conn.read_response()
        interval, limit = self.config.ping_interval, self.config.max_staleness
        sock = conn._sock
        with self.reading:
            self.conn, self.sock, self.client_id = conn, sock, client_id
            self.ping_at, self.next_ping = None, time.monotonic() + interval
            self.store.up(since)
            self.check_at = 0.0
        while not stopping.is_set():
            with self.reading:
                if self.conn is not conn:
                    raise ConnectionError("the invalidation connection failed on a read path")
                self._drain(conn)
                now = time.monotonic()
                if self.ping_at is None and now >= self.next_ping:
                    self.ping_at = now
                    conn.send_command("PING")
                elif self.ping_at is not None and now - self.ping_at > limit:
                    raise TimeoutError(f"no PONG through the invalidation connection within {limit} s")
                wait = (self.next_ping - now) if self.ping_at is None else (self.ping_at + limit - now)
            select.select((sock,), (), (), max(min(wait, interval), 0.001))


def _readable(sock: Any) -> bool:
    """Whether *sock* has bytes to read now (a closed socket counts: the reader then finds out)."""
    try:
        return bool(select.select((sock,), (), (), 0)[0])
    except (OSError, ValueError):
        return True


_instances: weakref.WeakSet[Local] = weakref.WeakSet()


def _fresh_after_fork() -> None:
    # the parent's thread and socket are not the child's: start empty, connect on first use
    for local in list(_instances):
        local._reset()


os.register_at_fork(after_in_child=_fresh_after_fork)
