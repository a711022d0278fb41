"""Where ``ValkeyCache`` meets the network: connections, and the commands the cache operations are made of.

:class:`Connections` owns a handler's clients: one pool per process (made on first use, dropped in a forked child),
one pooled connection kept per thread unless the pool is bounded, and one async client per event loop (closed when
that loop shuts down). :class:`SyncIO` and :class:`AsyncIO` carry out the handful of commands the cache operations
need, with the same names and arguments; only they know how a topology runs them (one MGET, one SCAN cursor, one
MULTI/EXEC), so another topology plugs in here without touching the operations.
"""

from __future__ import annotations

import asyncio
import os
import threading
import weakref
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from typing import Any

import valkey
import valkey.asyncio as avalkey
from valkey.asyncio.retry import Retry as AsyncRetry
from valkey.backoff import EqualJitterBackoff
from valkey.exceptions import ConnectionError as ValkeyConnectionError
from valkey.exceptions import ResponseError
from valkey.retry import Retry

_instances: weakref.WeakSet[Connections] = weakref.WeakSet()


@dataclass(frozen=True)
class Settings:
    """How to connect: valkey-py connection keywords, the URL if any, the pool's bound and the retry policy."""

    connection: dict[str, Any]
    url: str | None
    ssl: bool  # TLS: asked for, or a valkeys:// or rediss:// URL
    pool_timeout: float | None
    retries: int
    backoff_base: float
    backoff_cap: float
    dedicated: bool  # each thread keeps one pooled connection for itself

    @classmethod
    def build(cls, *, host: str, port: int, db: int, password: str | None, username: str | None, url: str | None,
              ssl: bool, ssl_ca_certs: str | None, ssl_certfile: str | None, ssl_keyfile: str | None,
              ssl_cert_reqs: str, ssl_check_hostname: bool, max_connections: int | None,
              pool_timeout: float | None, socket_timeout: float | None, socket_connect_timeout: float | None,
              health_check_interval: int, retries: int, backoff_base: float, backoff_cap: float,
              client_name: str | None, dedicated_connections: bool, pool_kwargs: dict[str, Any]) -> Settings:
        """Build the settings from ``ValkeyCache``'s arguments; other keywords go to valkey-py's pool."""
        ssl = ssl or (url is not None and url.startswith(("valkeys://", "rediss://")))
        connection: dict[str, Any] = {
            "socket_timeout": socket_timeout,
            "socket_connect_timeout": socket_connect_timeout,
            "health_check_interval": health_check_interval,
            "client_name": client_name,
            **pool_kwargs,
        }
        if max_connections is not None:
            connection["max_connections"] = max_connections
        if url is None:
            connection.update(host=host, port=port, db=db, password=password, username=username)
        else:
            # explicit credentials win over the URL's; the URL's host, port and db stand
            for name, value in (("password", password), ("username", username)):
                if value is not None:
                    connection[name] = value
        if ssl:
            connection.update(
                ssl_ca_certs=ssl_ca_certs,
                ssl_certfile=ssl_certfile,
                ssl_keyfile=ssl_keyfile,
                ssl_cert_reqs=ssl_cert_reqs,
                ssl_check_hostname=ssl_check_hostname,
            )
        return cls(
            connection=connection,
            url=url,
            ssl=ssl,
            pool_timeout=pool_timeout,
            retries=retries,
            backoff_base=backoff_base,
            backoff_cap=backoff_cap,
            # a thread keeps one pooled connection for itself (no checkout per call) unless the pool is bounded,
            # where threads holding connections would starve the others
            dedicated=dedicated_connections and max_connections is None and pool_timeout is None,
        )


class Connections:
    """A handler's clients in this process: see the module docstring."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._reset()
        _instances.add(self)

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._client: valkey.Valkey | None = None
        self._local = threading.local()
        self._aclients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, avalkey.Valkey] = (
            weakref.WeakKeyDictionary()
        )
        self._aguards: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncGenerator[None, None]] = (
            weakref.WeakKeyDictionary()
        )

    def _pool(self, flavour: Any, retry_cls: Any) -> Any:
        s = self.settings
        kwargs = dict(s.connection)
        kwargs["retry"] = retry_cls(EqualJitterBackoff(cap=s.backoff_cap, base=s.backoff_base), s.retries,
                                    (ValkeyConnectionError,))
        # without retry_on_error valkey-py disconnects and raises on the first error: the Retry above would never run
        kwargs["retry_on_error"] = [ValkeyConnectionError] if s.retries else []
        pool_cls = flavour.ConnectionPool
        if s.pool_timeout is not None:
            pool_cls = flavour.BlockingConnectionPool
            kwargs["timeout"] = s.pool_timeout
        if s.ssl and s.url is None:  # a URL's scheme picks the connection class itself
            kwargs["connection_class"] = flavour.SSLConnection
        return pool_cls.from_url(s.url, **kwargs) if s.url else pool_cls(**kwargs)

    @property
    def pool_made(self) -> bool:
        """Whether this process's synchronous pool exists (it is made on first synchronous use)."""
        return self._client is not None

    @property
    def pool_client(self) -> valkey.Valkey:
        """Return this process's client on its shared connection pool (made on first use)."""
        client = self._client
        if client is None:
            with self._lock:
                if self._client is None:
                    self._client = valkey.Valkey(connection_pool=self._pool(valkey, Retry))
                client = self._client
        return client

    @property
    def client(self) -> valkey.Valkey:
        """Return the calling thread's client: one connection of the pool kept for the thread, or the pool itself."""
        if not self.settings.dedicated:
            return self.pool_client
        try:
            return self._local.client  # type: ignore[no-any-return]
        except AttributeError:
            client = valkey.Valkey(connection_pool=self.pool_client.connection_pool, single_connection_client=True)
            self._local.client = client
            return client

    @property
    def aclient(self) -> avalkey.Valkey:
        """The async client of the running event loop (one per loop, made on first use)."""
        loop = asyncio.get_running_loop()
        client = self._aclients.get(loop)
        if client is None:
            client = self._aclients[loop] = avalkey.Valkey(connection_pool=self._pool(avalkey, AsyncRetry))
            self._aguards[loop] = guard = _close_at_loop_shutdown(client)
            try:  # start it without awaiting: it registers with the loop and stops at its only yield
                guard.__anext__().send(None)
            except StopIteration:
                pass
        return client

    def close(self) -> None:
        """Close this process's synchronous connections (they are made again on next use)."""
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
    # the parent's sockets are not the child's; valkey-py does not shut them down from another pid
    for connections in list(_instances):
        connections._reset()


os.register_at_fork(after_in_child=_forget_connections_after_fork)


def without_arguments(exc: ResponseError) -> ResponseError:
    """Drop the command arguments valkey-py writes into a pipeline error: they hold cached values."""
    if exc.args and isinstance(exc.args[0], str) and exc.args[0].startswith("Command # "):
        number, _, rest = exc.args[0].partition(" (")
        exc.args = (f"{number} of pipeline caused error: {rest.partition(' caused error: ')[2]}", *exc.args[1:])
    return exc


#: a SCAN position: None before the first page and after the last
Cursor = Any


class SyncIO:
    """The cache's commands on one server, synchronously (the calling thread's client)."""

    def __init__(self, connections: Connections) -> None:
        self.connections = connections

    def get(self, name: str) -> bytes | None:
        """GET."""
        return self.connections.client.get(name)  # type: ignore[return-value]

    def set(self, name: str, payload: bytes, ms: int) -> None:
        """SET with a lifetime in milliseconds."""
        self.connections.client.set(name, payload, px=ms)

    def mget(self, names: Sequence[str]) -> list[bytes | None]:
        """MGET, in the order asked."""
        return self.connections.client.mget(names)  # type: ignore[return-value]

    def set_all(self, items: Sequence[tuple[str, bytes]], ms: int) -> None:
        """SET every pair, all or none (MULTI/EXEC); an error names no value."""
        try:
            with self.connections.client.pipeline(transaction=True) as pipe:
                for name, payload in items:
                    pipe.set(name, payload, px=ms)
                pipe.execute()  # type: ignore[no-untyped-call]
        except ResponseError as exc:
            raise without_arguments(exc) from None

    def unlink(self, names: Sequence[str | bytes]) -> int:
        """UNLINK the names; how many existed."""
        return int(self.connections.client.unlink(*names))  # type: ignore[arg-type]

    def scan_page(self, cursor: Cursor, match: str, count: int) -> tuple[Cursor, list[bytes]]:
        """One SCAN page of names matching *match*, and where the next one starts (None: no more)."""
        reply: Any = self.connections.client.scan(cursor=cursor or 0, match=match, count=count)
        return reply[0] or None, reply[1]

    def incr(self, name: str, delta: int) -> tuple[int, int]:
        """INCRBY and PTTL in one MULTI/EXEC: the new value, and the lifetime left (-1: none)."""
        with self.connections.client.pipeline(transaction=True) as pipe:
            pipe.incrby(name, delta)
            pipe.pttl(name)
            value, pttl = pipe.execute()  # type: ignore[no-untyped-call]
        return int(value), int(pttl)

    def pexpire(self, name: str, ms: int) -> bool:
        """PEXPIRE; False when the name does not exist."""
        return bool(self.connections.client.pexpire(name, ms))

    def pttl(self, name: str) -> int:
        """PTTL (-2: no such name, -1: no lifetime)."""
        return int(self.connections.client.pttl(name))  # type: ignore[arg-type]


class AsyncIO:
    """The cache's commands on one server, on the running event loop's client: :class:`SyncIO`'s, awaited."""

    def __init__(self, connections: Connections) -> None:
        self.connections = connections

    async def get(self, name: str) -> bytes | None:
        """GET."""
        return await self.connections.aclient.get(name)  # type: ignore[no-any-return]

    async def set(self, name: str, payload: bytes, ms: int) -> None:
        """SET with a lifetime in milliseconds."""
        await self.connections.aclient.set(name, payload, px=ms)

    async def mget(self, names: Sequence[str]) -> list[bytes | None]:
        """MGET, in the order asked."""
        return await self.connections.aclient.mget(names)  # type: ignore[no-any-return]

    async def set_all(self, items: Sequence[tuple[str, bytes]], ms: int) -> None:
        """SET every pair, all or none (MULTI/EXEC); an error names no value."""
        try:
            async with self.connections.aclient.pipeline(transaction=True) as pipe:
                for name, payload in items:
                    pipe.set(name, payload, px=ms)
                await pipe.execute()
        except ResponseError as exc:
            raise without_arguments(exc) from None

    async def unlink(self, names: Sequence[str | bytes]) -> int:
        """UNLINK the names; how many existed."""
        return int(await self.connections.aclient.unlink(*names))

    async def scan_page(self, cursor: Cursor, match: str, count: int) -> tuple[Cursor, list[bytes]]:
        """One SCAN page of names matching *match*, and where the next one starts (None: no more)."""
        reply: Any = await self.connections.aclient.scan(cursor=cursor or 0, match=match, count=count)
        return reply[0] or None, reply[1]

    async def incr(self, name: str, delta: int) -> tuple[int, int]:
        """INCRBY and PTTL in one MULTI/EXEC: the new value, and the lifetime left (-1: none)."""
        async with self.connections.aclient.pipeline(transaction=True) as pipe:
            pipe.incrby(name, delta)
            pipe.pttl(name)
            value, pttl = await pipe.execute()
        return int(value), int(pttl)

    async def pexpire(self, name: str, ms: int) -> bool:
        """PEXPIRE; False when the name does not exist."""
        return bool(await self.connections.aclient.pexpire(name, ms))

    async def pttl(self, name: str) -> int:
        """PTTL (-2: no such name, -1: no lifetime)."""
        return int(await self.connections.aclient.pttl(name))
