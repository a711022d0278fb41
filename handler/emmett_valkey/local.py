"""The local cache's configuration and store: hot entries kept in process memory, evicted when the server says so.

The invalidation connection that keeps the store true is :mod:`.tracking`'s. One per process asks the server to
broadcast every change under the handler's prefix to itself (``CLIENT TRACKING ON REDIRECT <its own id> BCAST PREFIX
<prefix>``, then ``SUBSCRIBE __redis__:invalidate``, RESP2): a write, delete, expiry or eviction by any client, or a
flush, reaches it as a message. The data connections are not touched.

The rules (each pinned by ``certification/test_local_cache.py``):

- a read in flight when an invalidation of its key arrives does not store what it read (:meth:`Store.begin` leaves a
  token that an invalidation removes; :meth:`Store.put` stores only while the token is still there);
- an entry is not served after its server TTL (its deadline comes from the PTTL read with the value);
- the read path itself reads what is pending on that connection (at most every :data:`CHECK_EVERY` seconds) before it
  serves a hit, so a reader that never gives up the GIL sees a change as soon as the server has sent it; a thread
  reads it for readers that do;
- the thread PINGs through the connection; an entry is served only while the last PONG answers a PING sent less than
  ``max_staleness`` ago, so a change is never missed for longer than that; a lost connection empties the store and
  the cache reads the server until the connection is back;
- LRU within ``max_entries`` and ``max_bytes``; a value that can be mutated is stored as bytes and decoded per hit;
- a forked child starts empty and makes its own connection.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from .codec import MISSING, Codec
from .operations import Operation, command

#: values of these types cannot be changed by a caller: stored as they are, served without decoding
IMMUTABLE = frozenset((int, float, bool, str, bytes, type(None)))
#: bytes counted per entry beyond its name and payload (dict slot, entry object)
ENTRY_OVERHEAD = 120
#: seconds between two looks of the read path at the invalidation connection (a hit in between costs no syscall)
CHECK_EVERY = 0.00025

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
        self.stale_at = 0.0  # fresh_since + max_staleness: from then on nothing is served or stored

    # -- readers ---------------------------------------------------------------------------------------------

    def lookup(self, name: str, now: float) -> Any:
        """Return the value of *name* if stored and within its TTL at *now*; MISSING otherwise.

        No lock on this path: each dict operation is atomic, and an entry read just before its invalidation is
        served as if the read came first (it did). Freshness (:attr:`stale_at`) is the caller's to check.
        """
        entry = self.entries.get(name)
        if entry is None:
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
            if self.pending.get(name) is not token or not self.active or time.monotonic() >= self.stale_at:
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
            self.heard(since)
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
        self.stale_at = since + self.config.max_staleness

    def _drop(self, name: str) -> None:
        entry = self.entries.pop(name, None)
        if entry is not None:
            self.size -= entry.size

    def _empty(self) -> None:
        self.entries.clear()
        self.pending.clear()
        self.size = 0
        self.stats.emptied += 1


class Off:
    """The local cache when it is off: nothing is served, stored or evicted; reads are plain GET and MGET."""

    def hit(self, name: str) -> Any:
        """MISSING: nothing is stored."""
        return MISSING

    def hits(self, keys: list[str]) -> tuple[dict[str, Any], list[str]]:
        """Nothing found; every key is still to read."""
        return {}, keys

    def read(self, name: str, codec: Codec) -> Operation[Any]:
        """Read *name* from the server (GET)."""
        return codec.decode(name, (yield command("get", name)))

    def read_many(self, keys: list[str], names: list[str], codec: Codec) -> Operation[dict[str, Any]]:
        """Read *names* (the prefixed *keys*) from the server in one MGET."""
        return codec.decode_many(keys, (yield command("mget", names)))

    def forget(self, names: Iterable[str]) -> None:
        """Nothing to evict."""

    def forget_all(self) -> None:
        """Nothing to evict."""

    def stop(self) -> None:
        """Nothing to stop."""


def resolve(local_cache: bool | LocalCache | None) -> LocalCache | None:
    """Return the configuration asked for by ``ValkeyCache(local_cache=...)``: None when off."""
    if local_cache is None or local_cache is False:
        return None
    if local_cache is True:
        return LocalCache()
    if isinstance(local_cache, LocalCache):
        return local_cache
    raise TypeError(f"local_cache must be a bool or a LocalCache, got {type(local_cache).__name__}: {local_cache!r}")
