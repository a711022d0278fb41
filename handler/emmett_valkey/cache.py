"""``ValkeyCache``: Emmett's cache handler interface on valkey-py, wire-compatible with ``RedisCache``.

The API is the list of operations below, each written once (see :mod:`.operations`) and driven by a synchronous
and an async method; connections live in :mod:`.connections`, encoding and the hit/miss counts in :mod:`.codec`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, Literal, TypeVar

from emmett_core.cache.handlers import CacheHandler

from .aio import AsyncIO
from .cluster_io import ClusterAsyncIO, ClusterSyncIO
from .codec import MISSING, Codec
from .config import settings_from_env
from .connections import Connections, Settings, SyncIO
from .durations import check_seconds, to_milliseconds
from .keys import check_key, glob_escape
from .local import LocalCache, Off
from .local import resolve as resolve_local
from .local_io import TrackedAsyncIO, TrackedSyncIO
from .operations import TRANSIENT_ERRORS, WRITE_ERRORS, Compute, Neutral, Operation, arun, command, operation, run
from .routes import AsyncRouteCacheRule
from .serializers import EmmettPickleSerializer, Serializer
from .stats import Stats
from .tracking import Local

T = TypeVar("T")
OnError = Literal["raise", "miss"]
Duration = int | float | str | None

#: default ``max_value_size``: the server's default ``proto-max-bulk-len`` (512 MB)
MAX_BULK_LEN = 512 * 1024 * 1024


class ValkeyCache(CacheHandler):
    """An Emmett cache handler on a Valkey (or Redis) server.

    Entries use Emmett's ``RedisCache`` wire format, so both handlers read each other's entries. ``clear()`` walks
    SCAN and UNLINKs page by page, only under the handler's prefix. Connections are made lazily, one pool per
    process (a forked child makes its own), and one async client per event loop.
    """

    def __init__(
        self,
        host: str = "localhost",
        port: int = 6379,
        password: str | None = None,
        db: int = 0,
        prefix: str = "cache:",
        default_expire: int | float = 300,
        *,
        username: str | None = None,
        url: str | None = None,
        ssl: bool = False,
        ssl_ca_certs: str | None = None,
        ssl_certfile: str | None = None,
        ssl_keyfile: str | None = None,
        ssl_cert_reqs: str = "required",
        ssl_check_hostname: bool = True,
        max_connections: int | None = None,
        pool_timeout: float | None = None,
        socket_timeout: float | None = 5.0,
        socket_connect_timeout: float | None = 5.0,
        health_check_interval: int = 0,
        retries: int = 1,
        backoff_base: float = 0.01,
        backoff_cap: float = 0.5,
        client_name: str | None = None,
        on_error: OnError = "raise",
        serializer: Serializer | None = None,
        scan_count: int = 500,
        max_value_size: int | None = MAX_BULK_LEN,
        dedicated_connections: bool = True,
        cluster: bool = False,
        startup_nodes: Sequence[tuple[str, int]] = (),
        read_from_replicas: bool = False,
        local_cache: bool | LocalCache = False,
        **pool_kwargs: Any,
    ) -> None:
        if not isinstance(prefix, str):
            raise TypeError(f"prefix must be str, got {type(prefix).__name__}: {prefix!r}")
        check_seconds(default_expire, "default_expire")
        if on_error not in ("raise", "miss"):
            raise ValueError(f"on_error must be 'raise' or 'miss', got {on_error!r}")
        if isinstance(scan_count, bool) or not isinstance(scan_count, int) or scan_count < 1:
            raise ValueError(f"scan_count must be a positive int, got {scan_count!r}")
        if cluster and (db != 0 or (url is not None and url.rstrip("/").rsplit("/", 1)[-1] not in ("", "0")
                                    and url.count("/") > 2)):
            raise ValueError(f"a cluster has database 0 only, got db={db!r}{f' in {url!r}' if url else ''}")
        if not cluster and (startup_nodes or read_from_replicas):
            raise ValueError("startup_nodes and read_from_replicas need cluster=True")
        local_config = resolve_local(local_cache)
        if local_config is not None and cluster:
            raise ValueError("local_cache is not available with cluster=True (tracking is per node)")
        if retries < 0:
            raise ValueError(f"retries must be 0 or more, got {retries!r}")
        if max_value_size is not None and (isinstance(max_value_size, bool) or not isinstance(max_value_size, int)
                                           or max_value_size < 1):
            raise ValueError(f"max_value_size must be a positive int or None, got {max_value_size!r}")
        # emmett_core annotates default_expire as int; floats work here because durations are resolved by us
        super().__init__(prefix=prefix, default_expire=default_expire)  # type: ignore[arg-type]
        self.on_error: OnError = on_error
        self.scan_count = scan_count
        self.stats_counters = Stats()
        self.codec = Codec(serializer if serializer is not None else EmmettPickleSerializer(), max_value_size,
                           self.stats_counters, prefix)
        self.connections = Connections(Settings.build(
            host=host, port=port, db=db, password=password, username=username, url=url, ssl=ssl,
            ssl_ca_certs=ssl_ca_certs, ssl_certfile=ssl_certfile, ssl_keyfile=ssl_keyfile,
            ssl_cert_reqs=ssl_cert_reqs, ssl_check_hostname=ssl_check_hostname, max_connections=max_connections,
            pool_timeout=pool_timeout, socket_timeout=socket_timeout, socket_connect_timeout=socket_connect_timeout,
            health_check_interval=health_check_interval, retries=retries, backoff_base=backoff_base,
            backoff_cap=backoff_cap, client_name=client_name, dedicated_connections=dedicated_connections,
            pool_kwargs=pool_kwargs, cluster=cluster, startup_nodes=startup_nodes,
            read_from_replicas=read_from_replicas,
        ))
        self._io: SyncIO = (ClusterSyncIO if cluster else TrackedSyncIO)(self.connections)
        self._aio: AsyncIO = (ClusterAsyncIO if cluster else TrackedAsyncIO)(self.connections)
        #: the local cache in front of the server (docs/caching.md, "Local cache"), on or off: same methods
        self._local: Off = Off() if local_config is None else Local(
            local_config, prefix, self.codec.serializer.loads, self.connections.standalone_connection,
            self.stats_counters)

    # -- construction and connections ---------------------------------------------------------------------------

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> ValkeyCache:
        """Build a handler from ``VALKEY_*`` variables (docs/configuration.md); keyword arguments override them."""
        settings = settings_from_env(environ)
        settings.update(overrides)
        return cls(**settings)

    @property
    def prefix(self) -> str:
        """The prefix every key of this handler is stored under."""
        return str(self._prefix)

    @property
    def default_expire(self) -> int | float:
        """Seconds an entry lives when set with the ``"default"`` duration."""
        return self._default_expire

    @property
    def serializer(self) -> Serializer:
        """How values are stored (see :mod:`.serializers`)."""
        return self.codec.serializer

    @property
    def max_value_size(self) -> int | None:
        """The largest stored value, in bytes; a bigger one raises ``ValueError`` and nothing is sent."""
        return self.codec.max_value_size

    @property
    def local(self) -> Local | None:
        """The local cache (its ``stats``, ``wait_active``), or None when it is off."""
        return self._local if isinstance(self._local, Local) else None

    @property
    def client(self) -> Any:
        """The calling thread's valkey-py client (see :class:`~.connections.Connections`)."""
        return self.connections.client

    @property
    def aclient(self) -> Any:
        """The running event loop's valkey-py async client."""
        return self.connections.aclient

    def close(self) -> None:
        """Close this process's synchronous connections and local cache (the handler reconnects on next use)."""
        self._local.stop()
        self.connections.close()

    async def aclose(self) -> None:
        """Close the running loop's async connections."""
        await self.connections.aclose()

    # -- keys, values, counters: the same for every operation ---------------------------------------------------

    def _name(self, key: str) -> str:
        return self._prefix + check_key(key)

    def _ms(self, duration: Duration) -> int:
        return to_milliseconds(duration, self._default_expire)

    def _match(self, key: str | None) -> str:
        return glob_escape(self.prefix) + ("*" if key is None else key)

    # -- the operations, written once -----------------------------------------------------------------------------

    @operation(Neutral(MISSING, TRANSIENT_ERRORS, read=True))
    def _get(self, key: str, looked: bool = False) -> Operation[Any]:
        name = self._name(key)
        if not looked and (value := self._local.hit(name)) is not MISSING:
            return value
        return (yield from self._local.read(name, self.codec))

    @operation(Neutral(False, WRITE_ERRORS))
    def _set(self, key: str, value: Any, duration: Duration) -> Operation[bool]:
        name = self._name(key)
        ms = self._ms(duration)
        try:
            yield command("set", name, self.codec.encode(name, value), ms)
        finally:
            self._local.forget((name,))
        self.stats_counters.sets += 1
        return True

    def _get_or_set(self, key: str, function: Callable[[], Any], duration: Duration) -> Operation[Any]:
        value = yield from self._get(key)
        if value is MISSING:
            value = yield Compute(function)
            yield from self._set(key, value, duration)
        return value

    @operation(Neutral(0, TRANSIENT_ERRORS))
    def _clear(self, key: str | None) -> Operation[int]:
        try:
            return (yield from self._clear_server(key))
        finally:
            if isinstance(key, str) and "*" not in key:
                self._local.forget((self._prefix + key,))
            else:
                self._local.forget_all()

    def _clear_server(self, key: str | None) -> Operation[int]:
        if key is not None and "*" not in check_key(key):
            deleted: int = yield command("unlink", [self._prefix + key])
        else:
            deleted, cursor, match = 0, None, self._match(key)
            while True:
                cursor, page = yield command("scan_page", cursor, match, self.scan_count)
                if page:
                    deleted += yield command("unlink", page)
                if cursor is None:
                    break
        self.stats_counters.deletes += deleted
        return deleted

    @operation(Neutral({}, TRANSIENT_ERRORS, read=True))
    def _get_many(self, keys: list[str]) -> Operation[dict[str, Any]]:
        if not keys:
            return {}
        found, rest = self._local.hits(keys)
        if rest:
            found.update((yield from self._local.read_many(rest, [self._prefix + k for k in rest], self.codec)))
        return found

    @operation(Neutral(False, WRITE_ERRORS))
    def _set_many(self, mapping: Mapping[str, Any], duration: Duration) -> Operation[bool]:
        # everything is checked and encoded before the first byte is sent: a bad value writes nothing
        ms = self._ms(duration)
        items = [(name, self.codec.encode(name, value)) for name, value in
                 [(self._name(k), v) for k, v in mapping.items()]]
        if items:
            try:
                yield command("set_all", items, ms)
            finally:
                self._local.forget(name for name, _ in items)
            self.stats_counters.sets += len(items)
        return True

    @operation(Neutral(0, TRANSIENT_ERRORS))
    def _delete_many(self, keys: list[str]) -> Operation[int]:
        if not keys:
            return 0
        names = [self._prefix + k for k in keys]
        try:
            deleted: int = yield command("unlink", names)
        finally:
            self._local.forget(names)
        self.stats_counters.deletes += deleted
        return deleted

    def _incr(self, key: str, delta: int, duration: Duration) -> Operation[int]:
        if isinstance(delta, bool) or not isinstance(delta, int):
            raise TypeError(f"delta must be an int, got {delta!r}")
        name = self._name(key)
        ms = self._ms(duration)
        try:
            value, pttl = yield command("incr", name, delta)
            if pttl == -1:  # created by this INCRBY (a cache entry always has a TTL): give it one
                yield command("pexpire", name, ms)
        finally:
            self._local.forget((name,))
        return int(value)

    def _ttl(self, key: str) -> Operation[float | None]:
        pttl = yield command("pttl", self._name(key))
        if pttl == -2:
            return None
        if pttl == -1:
            return float("inf")
        return float(pttl / 1000)

    def _touch(self, key: str, duration: Duration) -> Operation[bool]:
        name = self._name(key)
        try:
            return bool((yield command("pexpire", name, self._ms(duration))))
        finally:
            self._local.forget((name,))

    # -- the synchronous API --------------------------------------------------------------------------------------

    def get(self, key: str) -> Any:
        """Return the cached value, or None on a miss (use ``get_many`` or ``get_or_set`` to tell them apart)."""
        value = self._local.hit(self._prefix + check_key(key))
        if value is MISSING:
            value = run(self._io, self._get(key, True))
        return None if value is MISSING else value

    def set(self, key: str, value: Any, duration: Duration = "default") -> bool:
        """Store *value* for *duration* seconds (``"default"``, ``None`` = one year, or a positive number)."""
        return run(self._io, self._set(key, value, duration))

    def get_or_set(self, key: str, function: Callable[[], T], duration: Duration = "default") -> T:
        """Return the cached value, computing and storing it on a miss only (a cached None is a hit)."""
        return run(self._io, self._get_or_set(key, function, duration))  # type: ignore[no-any-return]

    def clear(self, key: str | None = None) -> int:
        """Delete *key*, the keys matching a pattern with ``*`` under the prefix, or every key under the prefix.

        SCAN (full cursor loop) and UNLINK page by page: never KEYS, never FLUSHDB. Returns how many were deleted.
        """
        return run(self._io, self._clear(key))

    def get_many(self, keys: Iterable[str]) -> dict[str, Any]:
        """Return ``{key: value}`` for the keys that are cached (one MGET); absent keys are misses."""
        return run(self._io, self._get_many([check_key(k) for k in keys]))

    def set_many(self, mapping: Mapping[str, Any], duration: Duration = "default") -> bool:
        """Store every pair of *mapping* with one round trip, all or none (MULTI/EXEC)."""
        return run(self._io, self._set_many(mapping, duration))

    def delete_many(self, keys: Iterable[str]) -> int:
        """Delete the given keys (literally, no patterns) with one UNLINK; returns how many existed."""
        return run(self._io, self._delete_many([check_key(k) for k in keys]))

    def incr(self, key: str, delta: int = 1, duration: Duration = "default") -> int:
        """Atomically add *delta* (INCRBY); a counter this creates expires after *duration*."""
        return run(self._io, self._incr(key, delta, duration))

    def decr(self, key: str, delta: int = 1, duration: Duration = "default") -> int:
        """Atomically subtract *delta*; see :meth:`incr`."""
        return run(self._io, self._incr(key, _negated(delta), duration))

    def ttl(self, key: str) -> float | None:
        """Seconds *key* has left (millisecond precision); None if it is not cached, ``inf`` if it never expires."""
        return run(self._io, self._ttl(key))

    def touch(self, key: str, duration: Duration = "default") -> bool:
        """Give *key* a new lifetime without rewriting it; False if it is not cached."""
        return run(self._io, self._touch(key, duration))

    def stats(self) -> dict[str, int]:
        """Hit, miss, set, delete, refused-entry and soft-error counts of this process since start or reset."""
        return self.stats_counters.as_dict()

    # -- the async API: the same operations on the event loop's client ------------------------------------------

    def response(
        self, duration: Duration = "default", query_params: bool = True, language: bool = True,
        hostname: bool = False, headers: list[str] | None = None,
    ) -> AsyncRouteCacheRule:
        """Emmett's ``cache.response()`` rule; on an async route it reads and writes with ``aget``/``aset``.

        Same keys, entries, headers and duration as Emmett's own rule (see :mod:`.routes`); a sync route keeps
        Emmett's synchronous path. A bad *duration* raises ``ValueError`` here, not at the first request.
        """
        self._ms(duration)
        return AsyncRouteCacheRule(self, query_params, language, hostname, headers, duration)

    async def get_or_set_loop(  # type: ignore[override]  # emmett_core types the coroutine function loosely
        self, key: str, function: Callable[[], Awaitable[T]], duration: Duration = "default"
    ) -> T:
        """Serve ``await cache(key, coro_fn)``: the async twin of ``get_or_set``, on the async client."""
        return await self.aget_or_set(key, function, duration)

    async def aget(self, key: str) -> Any:
        """Async :meth:`get`."""
        value = self._local.hit(self._prefix + check_key(key))
        if value is MISSING:
            value = await arun(self._aio, self._get(key, True))
        return None if value is MISSING else value

    async def aset(self, key: str, value: Any, duration: Duration = "default") -> bool:
        """Async :meth:`set`."""
        return await arun(self._aio, self._set(key, value, duration))

    async def aget_or_set(self, key: str, function: Callable[[], Awaitable[T]], duration: Duration = "default") -> T:
        """Async :meth:`get_or_set` with a coroutine function; a cached None is a hit."""
        return await arun(self._aio, self._get_or_set(key, function, duration))

    async def aclear(self, key: str | None = None) -> int:
        """Async :meth:`clear`."""
        return await arun(self._aio, self._clear(key))

    async def aget_many(self, keys: Iterable[str]) -> dict[str, Any]:
        """Async :meth:`get_many`."""
        return await arun(self._aio, self._get_many([check_key(k) for k in keys]))

    async def aset_many(self, mapping: Mapping[str, Any], duration: Duration = "default") -> bool:
        """Async :meth:`set_many`."""
        return await arun(self._aio, self._set_many(mapping, duration))

    async def adelete_many(self, keys: Iterable[str]) -> int:
        """Async :meth:`delete_many`."""
        return await arun(self._aio, self._delete_many([check_key(k) for k in keys]))

    async def aincr(self, key: str, delta: int = 1, duration: Duration = "default") -> int:
        """Async :meth:`incr`."""
        return await arun(self._aio, self._incr(key, delta, duration))

    async def adecr(self, key: str, delta: int = 1, duration: Duration = "default") -> int:
        """Async :meth:`decr`."""
        return await arun(self._aio, self._incr(key, _negated(delta), duration))

    async def attl(self, key: str) -> float | None:
        """Async :meth:`ttl`."""
        return await arun(self._aio, self._ttl(key))

    async def atouch(self, key: str, duration: Duration = "default") -> bool:
        """Async :meth:`touch`."""
        return await arun(self._aio, self._touch(key, duration))


def _negated(delta: int) -> int:
    if isinstance(delta, bool) or not isinstance(delta, int):
        raise TypeError(f"delta must be an int, got {delta!r}")
    return -delta
