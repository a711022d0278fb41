"""``ValkeyCache``: Emmett's cache handler interface on valkey-py, wire-compatible with ``RedisCache``."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import weakref
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Iterator, Mapping
from typing import Any, Literal, TypeVar

import valkey
import valkey.asyncio as avalkey
from emmett_core.cache.handlers import CacheHandler
from valkey.asyncio.retry import Retry as AsyncRetry
from valkey.backoff import EqualJitterBackoff
from valkey.exceptions import ConnectionError as ValkeyConnectionError
from valkey.exceptions import OutOfMemoryError, ResponseError
from valkey.exceptions import TimeoutError as ValkeyTimeoutError
from valkey.retry import Retry

from .config import settings_from_env
from .durations import check_seconds, to_milliseconds
from .keys import check_key, glob_escape
from .serializers import EmmettPickleSerializer, SerializationError, Serializer
from .stats import Stats

T = TypeVar("T")
OnError = Literal["raise", "miss"]

log = logging.getLogger("emmett_valkey")

#: errors that fail-soft mode turns into a miss or a no-op: the server is unreachable or too slow
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (ValkeyConnectionError, ValkeyTimeoutError, OSError)
#: errors that fail-soft mode turns into a no-op on writes: the transient ones, and a full server (noeviction)
WRITE_ERRORS: tuple[type[BaseException], ...] = (*TRANSIENT_ERRORS, OutOfMemoryError)

#: what a set_many batch can fail with: the transient errors, or the server refusing it (OOM, a too-long value)
_BATCH_ERRORS: tuple[type[BaseException], ...] = (ResponseError, *TRANSIENT_ERRORS)

#: default ``max_value_size``: the server's default ``proto-max-bulk-len`` (512 MB)
MAX_BULK_LEN = 512 * 1024 * 1024

_MISSING: Any = object()
_instances: weakref.WeakSet[ValkeyCache] = weakref.WeakSet()


def _count(reply: Any) -> int:
    return int(reply)


def _without_arguments(exc: ResponseError) -> ResponseError:
    """Drop the command arguments valkey-py writes into a pipeline error: they hold cached values."""
    if exc.args and isinstance(exc.args[0], str) and exc.args[0].startswith("Command # "):
        number, _, rest = exc.args[0].partition(" (")
        exc.args = (f"{number} of pipeline caused error: {rest.partition(' caused error: ')[2]}", *exc.args[1:])
    return exc


async def _close_at_loop_shutdown(client: avalkey.Valkey) -> AsyncGenerator[None, None]:
    """Close *client* when its event loop shuts down (``asyncio.run`` finalizes async generators before closing)."""
    try:
        yield
    finally:
        await _aclose_client(client)


async def _aclose_client(client: avalkey.Valkey) -> None:
    await client.aclose()
    await client.connection_pool.disconnect()  # the client does not own a pool it was given


def _forget_connections_after_fork() -> None:
    for handler in list(_instances):
        handler._drop_clients()


os.register_at_fork(after_in_child=_forget_connections_after_fork)


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
        **pool_kwargs: Any,
    ) -> None:
        if not isinstance(prefix, str):
            raise TypeError(f"prefix must be str, got {type(prefix).__name__}: {prefix!r}")
        check_seconds(default_expire, "default_expire")
        if on_error not in ("raise", "miss"):
            raise ValueError(f"on_error must be 'raise' or 'miss', got {on_error!r}")
        if isinstance(scan_count, bool) or not isinstance(scan_count, int) or scan_count < 1:
            raise ValueError(f"scan_count must be a positive int, got {scan_count!r}")
        if retries < 0:
            raise ValueError(f"retries must be 0 or more, got {retries!r}")
        if max_value_size is not None and (isinstance(max_value_size, bool) or not isinstance(max_value_size, int)
                                           or max_value_size < 1):
            raise ValueError(f"max_value_size must be a positive int or None, got {max_value_size!r}")
        # emmett_core annotates default_expire as int; floats work here because durations are resolved by us
        super().__init__(prefix=prefix, default_expire=default_expire)  # type: ignore[arg-type]
        self.on_error: OnError = on_error
        self.serializer: Serializer = serializer if serializer is not None else EmmettPickleSerializer()
        self.scan_count = scan_count
        self.max_value_size = max_value_size
        self._url = url
        self._ssl = ssl or (url is not None and url.startswith(("valkeys://", "rediss://")))
        self._pool_timeout = pool_timeout
        self._retry_policy = (retries, backoff_cap, backoff_base)
        self._conn_kwargs: dict[str, Any] = {
            "socket_timeout": socket_timeout,
            "socket_connect_timeout": socket_connect_timeout,
            "health_check_interval": health_check_interval,
            "client_name": client_name,
            **pool_kwargs,
        }
        if max_connections is not None:
            self._conn_kwargs["max_connections"] = max_connections
        if url is None:
            self._conn_kwargs.update(host=host, port=port, db=db, password=password, username=username)
        else:
            # explicit credentials win over the URL's; the URL's host, port and db stand
            for name, value in (("password", password), ("username", username)):
                if value is not None:
                    self._conn_kwargs[name] = value
        if self._ssl:
            self._conn_kwargs.update(
                ssl_ca_certs=ssl_ca_certs,
                ssl_certfile=ssl_certfile,
                ssl_keyfile=ssl_keyfile,
                ssl_cert_reqs=ssl_cert_reqs,
                ssl_check_hostname=ssl_check_hostname,
            )
        # a thread keeps one pooled connection for itself (no checkout per call) unless the pool is bounded,
        # where threads holding connections would starve the others
        self._dedicated = dedicated_connections and max_connections is None and pool_timeout is None
        self._lock = threading.Lock()
        self._client: valkey.Valkey | None = None
        self._local = threading.local()
        self._aclients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, avalkey.Valkey] = (
            weakref.WeakKeyDictionary()
        )
        self._aguards: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncGenerator[None, None]] = (
            weakref.WeakKeyDictionary()
        )
        self.stats_counters = Stats()
        _instances.add(self)

    # -- construction -------------------------------------------------------------------------------------------

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> ValkeyCache:
        """Build a handler from ``VALKEY_*`` variables (see the README); keyword arguments override them."""
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

    def _pool_kwargs(self, flavour: Any, retry_cls: Any) -> tuple[Any, dict[str, Any]]:
        retries, cap, base = self._retry_policy
        kwargs = dict(self._conn_kwargs)
        kwargs["retry"] = retry_cls(EqualJitterBackoff(cap=cap, base=base), retries, (ValkeyConnectionError,))
        # without retry_on_error valkey-py disconnects and raises on the first error: the Retry above would never run
        kwargs["retry_on_error"] = [ValkeyConnectionError] if retries else []
        pool_cls = flavour.ConnectionPool
        if self._pool_timeout is not None:
            pool_cls = flavour.BlockingConnectionPool
            kwargs["timeout"] = self._pool_timeout
        if self._ssl and self._url is None:
            kwargs["connection_class"] = flavour.SSLConnection
        return pool_cls, kwargs

    def _make_client(self) -> valkey.Valkey:
        pool_cls, kwargs = self._pool_kwargs(valkey, Retry)
        pool = pool_cls.from_url(self._url, **kwargs) if self._url else pool_cls(**kwargs)
        return valkey.Valkey(connection_pool=pool)

    def _make_aclient(self) -> avalkey.Valkey:
        pool_cls, kwargs = self._pool_kwargs(avalkey, AsyncRetry)
        pool = pool_cls.from_url(self._url, **kwargs) if self._url else pool_cls(**kwargs)
        return avalkey.Valkey(connection_pool=pool)

    @property
    def pool_client(self) -> valkey.Valkey:
        """Return this process's client on its shared connection pool (made on first use)."""
        client = self._client
        if client is None:
            with self._lock:
                if self._client is None:
                    self._client = self._make_client()
                client = self._client
        return client

    @property
    def client(self) -> valkey.Valkey:
        """Return the calling thread's client: one connection of the pool kept for the thread, or the pool itself.

        A thread's connection goes back to the pool when the thread ends. With ``max_connections`` or
        ``pool_timeout`` set (or ``dedicated_connections=False``) every call checks a connection out instead.
        """
        if not self._dedicated:
            return self.pool_client
        try:
            return self._local.client  # type: ignore[no-any-return]
        except AttributeError:
            pool = self.pool_client.connection_pool
            client = valkey.Valkey(connection_pool=pool, single_connection_client=True)
            self._local.client = client
            return client

    @property
    def aclient(self) -> avalkey.Valkey:
        """The async client of the running event loop (one per loop, made on first use)."""
        loop = asyncio.get_running_loop()
        client = self._aclients.get(loop)
        if client is None:
            client = self._aclients[loop] = self._make_aclient()
            self._aguards[loop] = guard = _close_at_loop_shutdown(client)
            try:  # start it without awaiting: it registers with the loop and stops at its only yield
                guard.__anext__().send(None)
            except StopIteration:
                pass
        return client

    def _drop_clients(self) -> None:
        # after fork: the parent's sockets are not ours; valkey-py does not shut them down from another pid
        self._lock = threading.Lock()
        self._client = None
        self._local = threading.local()
        self._aclients = weakref.WeakKeyDictionary()
        self._aguards = weakref.WeakKeyDictionary()

    def close(self) -> None:
        """Close this process's synchronous connections (the handler reconnects on next use)."""
        self._local = threading.local()
        client, self._client = self._client, None
        if client is not None:
            client.close()  # type: ignore[no-untyped-call]
            client.connection_pool.disconnect()

    async def aclose(self) -> None:
        """Close the running loop's async connections."""
        loop = asyncio.get_running_loop()
        client = self._aclients.pop(loop, None)
        self._aguards.pop(loop, None)
        if client is not None:
            await _aclose_client(client)

    # -- encoding -----------------------------------------------------------------------------------------------

    def _encode(self, name: str, value: Any) -> bytes:
        payload = self.serializer.dumps(value)
        if self.max_value_size is not None and len(payload) > self.max_value_size:
            raise ValueError(f"{name!r}: the value takes {len(payload)} bytes, more than max_value_size="
                             f"{self.max_value_size} (the server's proto-max-bulk-len); nothing was written")
        return payload

    def _decode(self, key: str, raw: bytes | None) -> Any:
        if raw is None:
            self.stats_counters.misses += 1
            return _MISSING
        try:
            value = self.serializer.loads(raw)
        except SerializationError as exc:
            self.stats_counters.refused += 1
            self.stats_counters.misses += 1
            log.warning("emmett_valkey: treating %r as a miss: %s", key, exc)
            return _MISSING
        self.stats_counters.hits += 1
        return value

    def _soft(self, operation: str, exc: BaseException) -> None:
        """Fail-soft bookkeeping; re-raises unless ``on_error="miss"``."""
        if self.on_error != "miss" or not isinstance(exc, WRITE_ERRORS):
            raise exc
        self.stats_counters.errors += 1
        log.warning("emmett_valkey: %s failed, served as %s: %r", operation,
                    "a miss" if operation.startswith("get") else "a no-op", exc)

    # -- sync API -----------------------------------------------------------------------------------------------

    def _get_entry(self, key: str) -> Any:
        name = self._prefix + check_key(key)
        try:
            raw: Any = self.client.get(name)
        except TRANSIENT_ERRORS as exc:
            self._soft("get", exc)
            self.stats_counters.misses += 1
            return _MISSING
        return self._decode(name, raw)

    def get(self, key: str) -> Any:
        """Return the cached value, or None on a miss (use ``get_many`` or ``get_or_set`` to tell them apart)."""
        value = self._get_entry(key)
        return None if value is _MISSING else value

    def set(self, key: str, value: Any, duration: int | float | str | None = "default") -> bool:
        """Store *value* for *duration* seconds (``"default"``, ``None`` = one year, or a positive number)."""
        name = self._prefix + check_key(key)
        ms = to_milliseconds(duration, self._default_expire)
        payload = self._encode(name, value)
        try:
            self.client.set(name, payload, px=ms)
        except WRITE_ERRORS as exc:
            self._soft("set", exc)
            return False
        self.stats_counters.sets += 1
        return True

    def get_or_set(self, key: str, function: Callable[[], T], duration: int | float | str | None = "default") -> T:
        """Return the cached value, computing and storing it on a miss only (a cached None is a hit)."""
        value = self._get_entry(key)
        if value is _MISSING:
            value = function()
            self.set(key, value, duration)
        return value  # type: ignore[no-any-return]

    async def get_or_set_loop(  # type: ignore[override]  # emmett_core types the coroutine function loosely
        self, key: str, function: Callable[[], Awaitable[T]], duration: int | float | str | None = "default"
    ) -> T:
        """Serve ``await cache(key, coro_fn)``: the async twin of ``get_or_set``, on the async client."""
        return await self.aget_or_set(key, function, duration)

    def _scan_pattern(self, key: str | None) -> str:
        if key is None:
            return glob_escape(self.prefix) + "*"
        return glob_escape(self.prefix) + key

    def _scan_pages(self, match: str) -> Iterator[list[bytes]]:
        cursor: int = 0
        while True:
            reply: Any = self.client.scan(cursor=cursor, match=match, count=self.scan_count)
            cursor, keys = reply
            if keys:
                yield keys
            if cursor == 0:
                return

    def clear(self, key: str | None = None) -> int:
        """Delete *key*, the keys matching a pattern with ``*`` under the prefix, or every key under the prefix.

        SCAN (full cursor loop) and UNLINK page by page: never KEYS, never FLUSHDB. Returns how many were deleted.
        """
        try:
            if key is not None and "*" not in check_key(key):
                deleted = _count(self.client.unlink(self._prefix + key))
            else:
                deleted = 0
                for page in self._scan_pages(self._scan_pattern(key)):
                    deleted += _count(self.client.unlink(*page))
        except TRANSIENT_ERRORS as exc:
            self._soft("clear", exc)
            return 0
        self.stats_counters.deletes += deleted
        return deleted

    def get_many(self, keys: Iterable[str]) -> dict[str, Any]:
        """Return ``{key: value}`` for the keys that are cached (one MGET); absent keys are misses."""
        keys = [check_key(k) for k in keys]
        if not keys:
            return {}
        try:
            raws: Any = self.client.mget([self._prefix + k for k in keys])
        except TRANSIENT_ERRORS as exc:
            self._soft("get_many", exc)
            self.stats_counters.misses += len(keys)
            return {}
        return self._decode_many(keys, raws)

    def _decode_many(self, keys: list[str], raws: list[bytes | None]) -> dict[str, Any]:
        # one pass, counters once per batch: this loop is most of get_many's own cost
        out: dict[str, Any] = {}
        loads = self.serializer.loads
        for key, raw in zip(keys, raws, strict=True):
            if raw is not None:
                try:
                    out[key] = loads(raw)
                except SerializationError as exc:
                    self.stats_counters.refused += 1
                    log.warning("emmett_valkey: treating %r as a miss: %s", self._prefix + key, exc)
        self.stats_counters.hits += len(out)
        self.stats_counters.misses += len(keys) - len(out)
        return out

    def _encode_many(self, mapping: Mapping[str, Any], duration: Any) -> tuple[int, list[tuple[str, bytes]]]:
        # everything is checked and encoded before the first byte is sent: a bad value writes nothing
        ms = to_milliseconds(duration, self._default_expire)
        names = [(self._prefix + check_key(k), v) for k, v in mapping.items()]
        return ms, [(name, self._encode(name, v)) for name, v in names]

    def set_many(self, mapping: Mapping[str, Any], duration: int | float | str | None = "default") -> bool:
        """Store every pair of *mapping* with one round trip, all or none (MULTI/EXEC)."""
        ms, items = self._encode_many(mapping, duration)
        if not items:
            return True
        try:
            with self.client.pipeline(transaction=True) as pipe:
                for name, payload in items:
                    pipe.set(name, payload, px=ms)
                pipe.execute()  # type: ignore[no-untyped-call]
        except _BATCH_ERRORS as exc:
            self._soft("set_many", _without_arguments(exc) if isinstance(exc, ResponseError) else exc)
            return False
        self.stats_counters.sets += len(items)
        return True

    def delete_many(self, keys: Iterable[str]) -> int:
        """Delete the given keys (literally, no patterns) with one UNLINK; returns how many existed."""
        names = [self._prefix + check_key(k) for k in keys]
        if not names:
            return 0
        try:
            deleted = _count(self.client.unlink(*names))
        except TRANSIENT_ERRORS as exc:
            self._soft("delete_many", exc)
            return 0
        self.stats_counters.deletes += deleted
        return deleted

    def incr(self, key: str, delta: int = 1, duration: int | float | str | None = "default") -> int:
        """Atomically add *delta* (INCRBY); a counter this creates expires after *duration*."""
        if isinstance(delta, bool) or not isinstance(delta, int):
            raise TypeError(f"delta must be an int, got {delta!r}")
        name = self._prefix + check_key(key)
        ms = to_milliseconds(duration, self._default_expire)
        with self.client.pipeline(transaction=True) as pipe:
            pipe.incrby(name, delta)
            pipe.pttl(name)
            value, pttl = pipe.execute()  # type: ignore[no-untyped-call]
        if pttl == -1:  # created by this INCRBY (a cache entry always has a TTL): give it one
            self.client.pexpire(name, ms)
        return int(value)

    def decr(self, key: str, delta: int = 1, duration: int | float | str | None = "default") -> int:
        """Atomically subtract *delta*; see :meth:`incr`."""
        if isinstance(delta, bool) or not isinstance(delta, int):
            raise TypeError(f"delta must be an int, got {delta!r}")
        return self.incr(key, -delta, duration)

    def ttl(self, key: str) -> float | None:
        """Seconds *key* has left (millisecond precision); None if it is not cached, ``inf`` if it never expires."""
        reply: Any = self.client.pttl(self._prefix + check_key(key))
        pttl = int(reply)
        if pttl == -2:
            return None
        if pttl == -1:
            return float("inf")
        return pttl / 1000

    def touch(self, key: str, duration: int | float | str | None = "default") -> bool:
        """Give *key* a new lifetime without rewriting it; False if it is not cached."""
        ms = to_milliseconds(duration, self._default_expire)
        return bool(self.client.pexpire(self._prefix + check_key(key), ms))

    def stats(self) -> dict[str, int]:
        """Hit, miss, set, delete, refused-entry and soft-error counts of this process since start or reset."""
        return self.stats_counters.as_dict()

    # -- async API ----------------------------------------------------------------------------------------------

    async def _aget_entry(self, key: str) -> Any:
        name = self._prefix + check_key(key)
        try:
            raw: bytes | None = await self.aclient.get(name)
        except TRANSIENT_ERRORS as exc:
            self._soft("get", exc)
            self.stats_counters.misses += 1
            return _MISSING
        return self._decode(name, raw)

    async def aget(self, key: str) -> Any:
        """Async :meth:`get`."""
        value = await self._aget_entry(key)
        return None if value is _MISSING else value

    async def aset(self, key: str, value: Any, duration: int | float | str | None = "default") -> bool:
        """Async :meth:`set`."""
        name = self._prefix + check_key(key)
        ms = to_milliseconds(duration, self._default_expire)
        payload = self._encode(name, value)
        try:
            await self.aclient.set(name, payload, px=ms)
        except WRITE_ERRORS as exc:
            self._soft("set", exc)
            return False
        self.stats_counters.sets += 1
        return True

    async def aget_or_set(
        self, key: str, function: Callable[[], Awaitable[T]], duration: int | float | str | None = "default"
    ) -> T:
        """Async :meth:`get_or_set` with a coroutine function; a cached None is a hit."""
        value = await self._aget_entry(key)
        if value is _MISSING:
            value = await function()
            await self.aset(key, value, duration)
        return value  # type: ignore[no-any-return]

    async def aclear(self, key: str | None = None) -> int:
        """Async :meth:`clear`."""
        client = self.aclient
        try:
            if key is not None and "*" not in check_key(key):
                deleted = int(await client.unlink(self._prefix + key))
            else:
                deleted, cursor, match = 0, 0, self._scan_pattern(key)
                while True:
                    cursor, page = await client.scan(cursor=cursor, match=match, count=self.scan_count)
                    if page:
                        deleted += int(await client.unlink(*page))
                    if cursor == 0:
                        break
        except TRANSIENT_ERRORS as exc:
            self._soft("clear", exc)
            return 0
        self.stats_counters.deletes += deleted
        return deleted

    async def aget_many(self, keys: Iterable[str]) -> dict[str, Any]:
        """Async :meth:`get_many`."""
        keys = [check_key(k) for k in keys]
        if not keys:
            return {}
        try:
            raws: list[bytes | None] = await self.aclient.mget([self._prefix + k for k in keys])
        except TRANSIENT_ERRORS as exc:
            self._soft("get_many", exc)
            self.stats_counters.misses += len(keys)
            return {}
        return self._decode_many(keys, raws)

    async def aset_many(self, mapping: Mapping[str, Any], duration: int | float | str | None = "default") -> bool:
        """Async :meth:`set_many`."""
        ms, items = self._encode_many(mapping, duration)
        if not items:
            return True
        try:
            async with self.aclient.pipeline(transaction=True) as pipe:
                for name, payload in items:
                    pipe.set(name, payload, px=ms)
                await pipe.execute()
        except _BATCH_ERRORS as exc:
            self._soft("set_many", _without_arguments(exc) if isinstance(exc, ResponseError) else exc)
            return False
        self.stats_counters.sets += len(items)
        return True
