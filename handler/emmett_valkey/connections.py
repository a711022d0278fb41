"""Where ``ValkeyCache`` meets the network: connections, and the commands the cache operations are made of.

:class:`Connections` owns a handler's clients: one pool per process (made on first use, dropped in a forked child),
one pooled connection kept per thread unless the pool is bounded, and one async client per event loop (closed when
that loop shuts down); on a cluster, one cluster client per process and per loop instead. :class:`SyncIO` and
:class:`AsyncIO` carry out the handful of commands the cache operations need, with the same names and arguments;
only they know how a topology runs them: on one server one MGET, one SCAN cursor, one MULTI/EXEC; on a cluster
(:class:`ClusterSyncIO`, :class:`ClusterAsyncIO`) an MGET per slot, a SCAN cursor per primary, a MULTI/EXEC per slot
on the node that owns it. The cache operations do not know which.
"""

from __future__ import annotations

import asyncio
import functools
import os
import threading
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import valkey
import valkey.asyncio as avalkey
import valkey.asyncio.cluster as avalkey_cluster
import valkey.cluster as valkey_cluster
from valkey.asyncio.retry import Retry as AsyncRetry
from valkey.backoff import EqualJitterBackoff
from valkey.exceptions import AskError, MovedError, ResponseError, SlotNotCoveredError, TryAgainError
from valkey.exceptions import ConnectionError as ValkeyConnectionError
from valkey.exceptions import TimeoutError as ValkeyTimeoutError
from valkey.retry import Retry

from .aio import AsyncIO, Cursor, LoopClients, without_arguments
from .stream import Stream

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
    cluster: bool = False
    startup_nodes: tuple[tuple[str, int], ...] = ()
    read_from_replicas: bool = False

    @classmethod
    def build(cls, *, host: str, port: int, db: int, password: str | None, username: str | None, url: str | None,
              ssl: bool, ssl_ca_certs: str | None, ssl_certfile: str | None, ssl_keyfile: str | None,
              ssl_cert_reqs: str, ssl_check_hostname: bool, max_connections: int | None,
              pool_timeout: float | None, socket_timeout: float | None, socket_connect_timeout: float | None,
              health_check_interval: int, retries: int, backoff_base: float, backoff_cap: float,
              client_name: str | None, dedicated_connections: bool, pool_kwargs: dict[str, Any],
              cluster: bool = False, startup_nodes: Sequence[tuple[str, int]] = (),
              read_from_replicas: bool = False) -> Settings:
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
            dedicated=dedicated_connections and max_connections is None and pool_timeout is None and not cluster,
            cluster=cluster,
            startup_nodes=tuple((str(h), int(p)) for h, p in startup_nodes) or ((host, port),),
            read_from_replicas=read_from_replicas,
        )

    def cluster_kwargs(self) -> dict[str, Any]:
        """Keywords of valkey-py's cluster clients: the connection's, without what a cluster does not take."""
        kwargs = {k: v for k, v in self.connection.items() if k not in ("host", "port", "db", "max_connections")}
        # one behaviour for both clients (their defaults differ): serve the slots that are covered while a
        # primary is down, rather than refusing every command until the whole cluster is back
        kwargs.update(require_full_coverage=False, read_from_replicas=self.read_from_replicas,
                      cluster_error_retry_attempts=max(self.retries, 1) + 2)
        if self.ssl:
            kwargs["ssl"] = True
        return kwargs


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
        self._aloops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, LoopClients] = weakref.WeakKeyDictionary()

    def _loop_clients(self) -> LoopClients:
        """Return the running loop's async clients (closed when that loop shuts down)."""
        loop = asyncio.get_running_loop()
        clients = self._aloops.get(loop)
        if clients is None:
            clients = self._aloops[loop] = LoopClients()
            clients.guard_loop()
        return clients

    def _pool(self, flavour: Any, retry_cls: Any, reserved: int = 0) -> Any:
        s = self.settings
        kwargs = dict(s.connection)
        if reserved and "max_connections" in kwargs:  # the stream's connection counts within max_connections
            kwargs["max_connections"] = max(1, kwargs["max_connections"] - reserved)
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

    def standalone_connection(self) -> Any:
        """Return a new connection outside the pools, connected (the local cache's invalidation connection)."""
        conn = self._pool(valkey, Retry).make_connection()
        conn.connect()
        return conn

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
                    self._client = (self._cluster_client() if self.settings.cluster
                                    else valkey.Valkey(connection_pool=self._pool(valkey, Retry)))
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
        """The async client of the running event loop on its own pool (one per loop, made on first use)."""
        clients = self._loop_clients()
        if clients.client is None:
            clients.client = (self._async_cluster_client() if self.settings.cluster
                              else avalkey.Valkey(connection_pool=self._pool(avalkey, AsyncRetry, reserved=1)))
        return clients.client  # type: ignore[no-any-return]

    @property
    def astream(self) -> Stream:
        """The running event loop's multiplexed connection to the server (one per loop, made on first use)."""
        clients = self._loop_clients()
        stream = clients.stream
        if stream is None or stream.closed:
            s = self.settings
            stream = clients.stream = Stream(
                self._pool(avalkey, AsyncRetry).make_connection, s.connection.get("socket_timeout"), s.retries,
                EqualJitterBackoff(cap=s.backoff_cap, base=s.backoff_base))
        return stream

    def _cluster_client(self) -> Any:
        s = self.settings
        if s.url:
            return valkey_cluster.ValkeyCluster.from_url(s.url, **s.cluster_kwargs())  # type: ignore[no-untyped-call]
        nodes = [valkey_cluster.ClusterNode(host, port) for host, port in s.startup_nodes]  # type: ignore[no-untyped-call]
        return valkey_cluster.ValkeyCluster(startup_nodes=nodes, **s.cluster_kwargs())

    def _async_cluster_client(self) -> Any:
        s = self.settings
        kwargs = {k: v for k, v in s.cluster_kwargs().items() if k in _ASYNC_CLUSTER_KEYWORDS}
        if s.url:
            return avalkey_cluster.ValkeyCluster.from_url(s.url, **kwargs)
        nodes = [avalkey_cluster.ClusterNode(host, port) for host, port in s.startup_nodes]
        return avalkey_cluster.ValkeyCluster(startup_nodes=nodes, **kwargs)

    def node_aclient(self, host: str, port: int) -> avalkey.Valkey:
        """Return a plain async client of one cluster node on the running loop (for a MULTI/EXEC on its slots)."""
        clients = self._loop_clients().nodes
        client = clients.get((host, port))
        if client is None:
            # the pool of one server's: bounded by max_connections, and waiting pool_timeout for a free connection
            # when given (a plain pool refuses at once with "Too many connections" under concurrent tasks)
            s = self.settings
            kwargs = {k: v for k, v in s.connection.items() if k not in ("host", "port", "db")}
            pool_cls: type[avalkey.ConnectionPool] = avalkey.ConnectionPool
            if s.pool_timeout is not None:
                pool_cls, kwargs["timeout"] = avalkey.BlockingConnectionPool, s.pool_timeout
            if s.ssl:
                kwargs["connection_class"] = avalkey.SSLConnection
            pool = pool_cls(host=host, port=port, **kwargs)
            client = clients[(host, port)] = avalkey.Valkey(connection_pool=pool)
        return client

    def close(self) -> None:
        """Close this process's synchronous connections (they are made again on next use)."""
        self._local = threading.local()
        client, self._client = self._client, None
        if client is not None:
            client.close()  # type: ignore[no-untyped-call]
            pool = getattr(client, "connection_pool", None)  # a cluster client closes its nodes' pools itself
            if pool is not None:
                pool.disconnect()

    async def aclose(self) -> None:
        """Close the running loop's async connections."""
        clients = self._aloops.pop(asyncio.get_running_loop(), None)
        if clients is not None:
            await clients.aclose()


#: what valkey-py's async cluster client takes (it has no catch-all for connection keywords)
_ASYNC_CLUSTER_KEYWORDS = frozenset((
    "require_full_coverage", "read_from_replicas", "cluster_error_retry_attempts", "username", "password",
    "client_name", "health_check_interval", "socket_connect_timeout", "socket_keepalive",
    "socket_keepalive_options", "socket_timeout", "retry", "ssl", "ssl_ca_certs", "ssl_ca_data", "ssl_cert_reqs",
    "ssl_certfile", "ssl_check_hostname", "ssl_keyfile", "ssl_min_version", "ssl_ciphers", "protocol",
))


def _forget_connections_after_fork() -> None:
    # the parent's sockets are not the child's; valkey-py does not shut them down from another pid
    for connections in list(_instances):
        connections._reset()


os.register_at_fork(after_in_child=_forget_connections_after_fork)


def _get_pttl(conn: Any, name: str) -> tuple[bytes | None, int]:
    key = conn.encoder.encode(name)
    head = b"$%d\r\n" % len(key)
    # both commands packed by hand in one buffer: pack_commands costs more than the second reply's read
    conn.send_packed_command([b"".join((b"*2\r\n$3\r\nGET\r\n", head, key, b"\r\n*2\r\n$4\r\nPTTL\r\n", head,
                                        key, b"\r\n"))])
    try:
        raw = conn.read_response()
    except ResponseError as exc:  # WRONGTYPE: read PTTL's reply too, so that the connection stays in step
        conn.read_response()
        raise exc from None
    return raw, int(conn.read_response())


class SyncIO:
    """The cache's commands on one server, synchronously (the calling thread's client)."""

    def __init__(self, connections: Connections) -> None:
        self.connections = connections

    def get(self, name: str) -> bytes | None:
        """GET."""
        return self.connections.client.get(name)  # type: ignore[return-value]

    def get_pttl(self, name: str) -> tuple[bytes | None, int]:
        """GET and PTTL in one round trip (sent together, no pipeline object): the local cache's miss path."""
        client = self.connections.client
        conn = client.connection
        if conn is not None:
            return conn.retry.call_with_retry(lambda: _get_pttl(conn, name),  # type: ignore[no-any-return]
                                              lambda _error: conn.disconnect())
        pool = client.connection_pool
        conn = pool.get_connection("GET")
        try:
            return conn.retry.call_with_retry(lambda: _get_pttl(conn, name),  # type: ignore[no-any-return]
                                              lambda _error: conn.disconnect())
        finally:
            pool.release(conn)

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


def _by_slot(client: Any, names: Sequence[str]) -> dict[int, list[int]]:
    """Indexes of *names* grouped by hash slot, each group in the order given."""
    slots: dict[int, list[int]] = {}
    for index, name in enumerate(names):
        slots.setdefault(client.keyslot(name), []).append(index)
    return slots


def _next_scan(primaries: list[Any], index: int, node_cursor: int) -> Cursor:
    """Where a cluster SCAN goes on: the same primary, the next one, or nowhere (None)."""
    if node_cursor:
        return (index, node_cursor)
    return (index + 1, 0) if index + 1 < len(primaries) else None


def _primaries(client: Any) -> list[Any]:
    return sorted(client.get_primaries(), key=lambda node: node.name)


class ClusterSyncIO(SyncIO):
    """:class:`SyncIO` on a cluster: an MGET per slot, a MULTI/EXEC per slot, a SCAN cursor per primary."""

    @property
    def cluster(self) -> Any:
        """The process's ``valkey.cluster.ValkeyCluster``."""
        return self.connections.client

    def mget(self, names: Sequence[str]) -> list[bytes | None]:
        """MGET per slot (in parallel by valkey-py), in the order asked."""
        return self.cluster.mget_nonatomic(names)  # type: ignore[no-any-return]

    def _node(self, name: str) -> valkey.Valkey:
        client = self.cluster
        return client.get_valkey_connection(client.get_node_from_key(name))  # type: ignore[no-any-return]

    def set_all(self, items: Sequence[tuple[str, bytes]], ms: int) -> None:
        """SET every pair: all or none within each slot (a MULTI/EXEC per slot, on the node that owns it)."""
        for indexes in _by_slot(self.cluster, [name for name, _ in items]).values():
            try:
                with self._node(items[indexes[0]][0]).pipeline(transaction=True) as pipe:
                    for index in indexes:
                        pipe.set(items[index][0], items[index][1], px=ms)
                    pipe.execute()  # type: ignore[no-untyped-call]
            except ResponseError as exc:
                raise without_arguments(exc) from None

    def scan_page(self, cursor: Cursor, match: str, count: int) -> tuple[Cursor, list[bytes]]:
        """One SCAN page of one primary; the cursor is (primary index, that primary's cursor)."""
        primaries = _primaries(self.cluster)
        index, node_cursor = cursor or (0, 0)
        node = self.cluster.get_valkey_connection(primaries[index])
        reply: Any = node.scan(cursor=node_cursor, match=match, count=count)
        return _next_scan(primaries, index, reply[0]), reply[1]

    def incr(self, name: str, delta: int) -> tuple[int, int]:
        """INCRBY and PTTL in one MULTI/EXEC on the node that owns the key's slot."""
        with self._node(name).pipeline(transaction=True) as pipe:
            pipe.incrby(name, delta)
            pipe.pttl(name)
            value, pttl = pipe.execute()  # type: ignore[no-untyped-call]
        return int(value), int(pttl)


class ClusterAsyncIO(AsyncIO):
    """:class:`ClusterSyncIO`'s commands, awaited on the running loop."""

    @property
    def cluster(self) -> Any:
        """The running loop's ``valkey.asyncio.cluster.ValkeyCluster``."""
        return self.connections.aclient

    async def mget(self, names: Sequence[str]) -> list[bytes | None]:
        """MGET per slot, in the order asked: one pipeline per primary on its node client, all concurrently.

        Not valkey-py's ``mget_nonatomic``: its async pipeline fails with an AttributeError when a redirection
        makes the client reload its slot map mid-pipeline (seen while slots move). A slot answered with a
        redirection (MOVED, ASK, TRYAGAIN), or on a node that cannot be reached, is asked again through the cluster
        client, which follows redirections and reloads its slot map.
        """
        client = self.cluster
        await client.initialize()
        by_node: dict[tuple[str, int], list[list[int]]] = {}
        for indexes in _by_slot(client, names).values():
            node = client.get_node_from_key(names[indexes[0]])
            by_node.setdefault((node.host, node.port), []).append(indexes)

        async def on_node(address: tuple[str, int], groups: list[list[int]]) -> list[Any]:
            try:
                async with self.connections.node_aclient(*address).pipeline(transaction=False) as pipe:
                    for indexes in groups:
                        pipe.mget([names[i] for i in indexes])
                    return await pipe.execute(raise_on_error=False)  # type: ignore[no-any-return]
            except (ValkeyConnectionError, ValkeyTimeoutError, OSError) as exc:
                return [exc] * len(groups)

        replies = await asyncio.gather(*(on_node(address, groups) for address, groups in by_node.items()))
        values: list[bytes | None] = [None] * len(names)
        for groups, node_replies in zip(by_node.values(), replies, strict=True):
            for indexes, reply in zip(groups, node_replies, strict=True):
                if isinstance(reply, Exception):
                    if isinstance(reply, ResponseError) and _redirection(reply) is None:
                        raise reply  # not a redirection: the same answer through the cluster client
                    reply = await client.execute_command("MGET", *(names[i] for i in indexes))
                for index, value in zip(indexes, reply, strict=True):
                    values[index] = value
        return values

    def _node(self, name: str) -> avalkey.Valkey:
        node = self.cluster.get_node_from_key(name)
        return self.connections.node_aclient(node.host, node.port)

    async def set_all(self, items: Sequence[tuple[str, bytes]], ms: int) -> None:
        """SET every pair: all or none within each slot (a MULTI/EXEC per slot, on the node that owns it)."""
        client = self.cluster
        await client.initialize()  # the slot map, before keyslot and get_node_from_key use it
        for indexes in _by_slot(client, [name for name, _ in items]).values():
            try:
                async with self._node(items[indexes[0]][0]).pipeline(transaction=True) as pipe:
                    for index in indexes:
                        pipe.set(items[index][0], items[index][1], px=ms)
                    await pipe.execute()
            except ResponseError as exc:
                raise without_arguments(exc) from None

    async def scan_page(self, cursor: Cursor, match: str, count: int) -> tuple[Cursor, list[bytes]]:
        """One SCAN page of one primary; the cursor is (primary index, that primary's cursor)."""
        client = self.cluster
        await client.initialize()
        primaries = _primaries(client)
        index, node_cursor = cursor or (0, 0)
        node = self.connections.node_aclient(primaries[index].host, primaries[index].port)
        reply: Any = await node.scan(cursor=node_cursor, match=match, count=count)
        return _next_scan(primaries, index, reply[0]), reply[1]

    async def incr(self, name: str, delta: int) -> tuple[int, int]:
        """INCRBY and PTTL in one MULTI/EXEC on the node that owns the key's slot."""
        await self.cluster.initialize()
        async with self._node(name).pipeline(transaction=True) as pipe:
            pipe.incrby(name, delta)
            pipe.pttl(name)
            value, pttl = await pipe.execute()
        return int(value), int(pttl)


#: the cluster commands that route by the client's slot map
_ROUTED = ("get", "set", "mget", "set_all", "unlink", "scan_page", "incr", "pexpire", "pttl")


def _redirection(exc: BaseException) -> str | None:
    """Return MOVED, ASK or TRYAGAIN when *exc* is that answer (typed, or plain from a node client), else None."""
    if isinstance(exc, MovedError):
        return "MOVED"
    if isinstance(exc, AskError):
        return "ASK"
    if isinstance(exc, TryAgainError):
        return "TRYAGAIN"
    word = str(exc).split(" ", 1)[0]
    return word if isinstance(exc, ResponseError) and word in ("MOVED", "ASK", "TRYAGAIN") else None


def _stale(exc: BaseException) -> bool:
    return isinstance(exc, SlotNotCoveredError) or _redirection(exc) == "MOVED"


def _in_migration(exc: BaseException) -> BaseException:
    """ASK or TRYAGAIN to a transaction as TryAgainError (fail-soft serves it); any other error as it is."""
    if _redirection(exc) in ("ASK", "TRYAGAIN") and not isinstance(exc, TryAgainError):
        return TryAgainError(f"slot being migrated, a transaction cannot follow it: {exc}")  # type: ignore[no-untyped-call]
    return exc


def _reloads_slot_map(method: Callable[..., Any]) -> Callable[..., Any]:
    """Reload the slot map and try once more when it is found stale; a transaction in a migrating slot: TRYAGAIN.

    valkey-py raises SlotNotCoveredError, without asking any node, for a slot its map has no node for: a map
    loaded while slots were unassigned (CLUSTERDOWN) would refuse them for ever after they are served again. And a
    MULTI/EXEC sent to a node straight (set_many, incr) gets MOVED when the slot has moved, which valkey-py's
    cluster client never sees. ASK to a transaction (its slot is being migrated, some of its keys are gone) cannot
    be followed: it becomes TryAgainError, the server's answer to a multi-key command in a migrating slot, which
    fail-soft mode serves as a no-op.
    """

    @functools.wraps(method)
    def call(self: ClusterSyncIO, *args: Any) -> Any:
        try:
            return method(self, *args)
        except (SlotNotCoveredError, ResponseError) as exc:
            if _stale(exc):
                self.cluster.nodes_manager.initialize()
                return method(self, *args)
            raise _in_migration(exc) from None

    return call


def _areloads_slot_map(method: Callable[..., Any]) -> Callable[..., Any]:
    """:func:`_reloads_slot_map` for :class:`ClusterAsyncIO`."""

    @functools.wraps(method)
    async def call(self: ClusterAsyncIO, *args: Any) -> Any:
        try:
            return await method(self, *args)
        except (SlotNotCoveredError, ResponseError) as exc:
            if _stale(exc):
                await self.cluster.nodes_manager.initialize()
                return await method(self, *args)
            raise _in_migration(exc) from None

    return call


for _name in _ROUTED:
    setattr(ClusterSyncIO, _name, _reloads_slot_map(getattr(ClusterSyncIO, _name)))
    setattr(ClusterAsyncIO, _name, _areloads_slot_map(getattr(ClusterAsyncIO, _name)))
