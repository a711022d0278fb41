"""The local cache: hot entries kept in process memory, evicted when the server says they changed.

One invalidation connection per process asks the server to broadcast every change under the handler's prefix to
itself (``CLIENT TRACKING ON REDIRECT <its own id> BCAST PREFIX <prefix>``, then ``SUBSCRIBE
__redis__:invalidate``, RESP2): a write, delete, expiry or eviction by any client, or a flush, reaches it as a
message, and a background thread evicts those keys. The data connections are not touched.

The rules (each pinned by ``certification/test_local_cache.py``):

- a read in flight when an invalidation of its key arrives does not store what it read (:meth:`Store.begin` leaves a
  token that an invalidation removes; :meth:`Store.put` stores only while the token is still there);
- an entry is not served after its server TTL (its deadline comes from the PTTL read with the value);
- the thread PINGs through the connection; an entry is served only while the last PONG answers a PING sent less than
  ``max_staleness`` ago, so a change is never missed for longer than that; a lost connection empties the store and
  the cache reads the server until the connection is back;
- LRU within ``max_entries`` and ``max_bytes``; a value that can be mutated is stored as bytes and decoded per hit;
- a forked child starts empty and makes its own connection.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .codec import MISSING

log = logging.getLogger("emmett_valkey")

#: values of these types cannot be changed by a caller: stored as they are, served without decoding
IMMUTABLE = frozenset((int, float, bool, str, bytes, type(None)))
#: bytes counted per entry beyond its name and payload (dict slot, entry object)
ENTRY_OVERHEAD = 120
CHANNEL = "__redis__:invalidate"



@dataclass(frozen=True)
class LocalCache:
    """How the local cache is bounded.

    ``max_entries`` and ``max_bytes`` bound the store (least recently used entries go first); ``max_staleness``
    (seconds) bounds how long a change on the server can go unseen if the invalidation connection falls silent.
    """

    max_entries: int = 10_000
    max_bytes: int = 64 * 1024 * 1024
    max_staleness: float = 1.0

    def __post_init__(self) -> None:
        for name in ("max_entries", "max_bytes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        staleness = self.max_staleness
        if isinstance(staleness, bool) or not isinstance(staleness, (int, float)) or not 0.01 <= staleness <= 3600:
            raise ValueError(f"max_staleness must be seconds between 0.01 and 3600, got {staleness!r}")

    @property
    def ping_interval(self) -> float:
        """Seconds between PINGs through the invalidation connection."""
        return self.max_staleness / 4


@dataclass
class LocalStats:
    """What the local cache did in this process.

    Hits served, entries stored, stores refused by a race, keys invalidated, times emptied (a flush, a lost or
    silent connection, a clear) and times the connection came up.
    """

    hits: int = 0
    stores: int = 0
    raced: int = 0
    invalidated: int = 0
    emptied: int = 0
    connected: int = 0


@dataclass
class _Entry:
    value: Any  # the value (immutable types) or its stored bytes
    decode: bool
    deadline: float
    size: int


@dataclass
class Store:
    """The entries of one process, and the tokens of reads in flight."""

    config: LocalCache
    loads: Callable[[bytes], Any]
    stats: LocalStats = field(default_factory=LocalStats)

    def __post_init__(self) -> None:
        self.lock = threading.Lock()
        self.entries: OrderedDict[str, _Entry] = OrderedDict()
        self.pending: dict[str, object] = {}
        self.size = 0
        self.active = False  # the invalidation connection is up: entries may be stored and served
        self.fresh_since = 0.0  # when the PING of the last PONG was sent: changes before it have been seen

    # -- readers ---------------------------------------------------------------------------------------------

    def lookup(self, name: str) -> Any:
        """Return the value of *name* if stored, fresh and within its TTL; MISSING otherwise.

        No lock on this path: each dict operation is atomic, and an entry read just before its invalidation is
        served as if the read came first (it did).
        """
        entry = self.entries.get(name)
        if entry is None:
            return MISSING
        now = time.monotonic()
        if now - self.fresh_since > self.config.max_staleness:  # the connection is silent: trust nothing
            self.empty()
            return MISSING
        if now >= entry.deadline:
            with self.lock:
                if self.entries.get(name) is entry:
                    self._drop(name)
            return MISSING
        try:
            self.entries.move_to_end(name)
        except KeyError:  # evicted meanwhile
            pass
        self.stats.hits += 1
        return self.loads(entry.value) if entry.decode else entry.value

    def begin(self, name: str) -> object | None:
        """Mark a read of *name* in flight; None when nothing may be stored now.

        Without a lock: a connection lost meanwhile clears the mark or leaves ``active`` false, and :meth:`put`
        checks both under the lock.
        """
        if not self.active:
            return None
        token = object()
        self.pending[name] = token
        return token

    def put(self, name: str, token: object, value: Any, raw: bytes, started: float, pttl: int) -> None:
        """Store what a read begun at *started* found, unless an invalidation came in the meantime."""
        if pttl == -2 or pttl == 0:
            return
        deadline = started + pttl / 1000 if pttl > 0 else float("inf")
        decode = type(value) not in IMMUTABLE
        size = len(name) + (len(raw) if decode else len(raw) + 8) + ENTRY_OVERHEAD
        if size > self.config.max_bytes:
            return
        with self.lock:
            if self.pending.get(name) is not token or not self.active:
                self.stats.raced += 1
                return
            del self.pending[name]
            self._drop(name)
            self.entries[name] = _Entry(raw if decode else value, decode, deadline, size)
            self.size += size
            self.stats.stores += 1
            while len(self.entries) > self.config.max_entries or self.size > self.config.max_bytes:
                _, old = self.entries.popitem(last=False)
                self.size -= old.size

    def end(self, name: str, token: object) -> None:
        """Forget the token of a read that stored nothing (an error, a miss); a newer read's token may go too."""
        if self.pending.get(name) is token:
            self.pending.pop(name, None)

    # -- invalidations -------------------------------------------------------------------------------------

    def invalidate(self, names: list[str]) -> None:
        """Evict *names* and spoil the reads of them in flight."""
        with self.lock:
            for name in names:
                self._drop(name)
                self.pending.pop(name, None)
            self.stats.invalidated += len(names)

    def empty(self) -> None:
        """Evict everything and spoil every read in flight."""
        with self.lock:
            self._empty()

    def up(self, since: float) -> None:
        """Serve and store entries: the connection sees every change made after *since*."""
        with self.lock:
            self._empty()
            self.fresh_since = since
            self.active = True
            self.stats.connected += 1

    def down(self) -> None:
        """Empty, and store nothing until the connection is back (it is lost)."""
        with self.lock:
            self.active = False
            self._empty()

    def heard(self, since: float) -> None:
        """Record a PONG to a PING sent at *since*: every change before it has been seen."""
        self.fresh_since = since

    def _drop(self, name: str) -> None:
        entry = self.entries.pop(name, None)
        if entry is not None:
            self.size -= entry.size

    def _empty(self) -> None:
        self.entries.clear()
        self.pending.clear()
        self.size = 0
        self.stats.emptied += 1


class Local:
    """A handler's local cache in this process: the store and the thread that keeps it true."""

    def __init__(self, config: LocalCache, prefix: str, loads: Callable[[bytes], Any],
                 connect: Callable[[], Any]) -> None:
        self.config, self.prefix, self.loads, self.connect = config, prefix, loads, connect
        self.stats = LocalStats()
        self._reset()
        _instances.add(self)

    def _reset(self) -> None:
        self.store = Store(self.config, self.loads, self.stats)
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None
        self.stopping = threading.Event()
        self.client_id: int | None = None  # the invalidation connection's CLIENT ID while it is up
        self.pid = os.getpid()

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
        self.store.down()

    # -- the thread ------------------------------------------------------------------------------------------

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
        self.client_id = client_id
        self.store.up(since)
        interval, limit = self.config.ping_interval, self.config.max_staleness
        ping_at: float | None = None  # when the PING in flight was sent
        next_ping = time.monotonic() + interval
        while not stopping.is_set():
            now = time.monotonic()
            if ping_at is None and now >= next_ping:
                ping_at = now
                conn.send_command("PING")
            elif ping_at is not None and now - ping_at > limit:
                raise TimeoutError(f"no PONG through the invalidation connection within {limit} s")
            wait = (next_ping - now) if ping_at is None else (ping_at + limit - now)
            if conn.can_read(timeout=max(min(wait, interval), 0.001)) and self._handle(conn.read_response()):
                if ping_at is not None:
                    self.store.heard(ping_at)
                    next_ping = ping_at + interval
                    ping_at = None

    def _handle(self, message: Any) -> bool:
        """Apply one message of the connection; True for a PONG."""
        kind = message[0]
        if kind == b"message":
            names = message[2]
            if names is None:  # a flush
                self.store.empty()
            else:
                self.store.invalidate([n.decode() if isinstance(n, bytes) else n for n in names])
        return bool(kind == b"pong")


_instances: weakref.WeakSet[Local] = weakref.WeakSet()


def _fresh_after_fork() -> None:
    # the parent's thread and socket are not the child's: start empty, connect on first use
    for local in list(_instances):
        local._reset()


os.register_at_fork(after_in_child=_fresh_after_fork)


def resolve(local_cache: bool | LocalCache | None) -> LocalCache | None:
    """Return the configuration asked for by ``ValkeyCache(local_cache=...)``: None when off."""
    if local_cache is None or local_cache is False:
        return None
    if local_cache is True:
        return LocalCache()
    if isinstance(local_cache, LocalCache):
        return local_cache
    raise TypeError(f"local_cache must be a bool or a LocalCache, got {type(local_cache).__name__}: {local_cache!r}")
