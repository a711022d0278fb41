"""Where ``ValkeyCache`` meets the network: connections, and the synchronous commands on one server.

:class:`Connections` owns a handler's clients: one pool per process (made on first use, dropped in a forked child),
one pooled connection kept per thread unless the pool is bounded, and per event loop (closed when that loop shuts
down) one multiplexed :class:`~.stream.Stream` and an async pool for transactions; on a cluster, one cluster client
per process and per loop instead. :class:`SyncIO` and :class:`~.aio.AsyncIO` carry out the handful of commands the
cache operations need, with the same names and arguments; only they know how a topology runs them: on one server one
MGET, one SCAN cursor, one MULTI/EXEC; on a cluster (:mod:`.cluster_io`) an MGET per slot, a SCAN cursor per
primary, a MULTI/EXEC per slot on the node that owns it. The cache operations do not know which.
"""

from __future__ import annotations

import asyncio
import os
import threading
import weakref
from collections.abc import Sequence
from typing import Any

import valkey
import valkey.asyncio as avalkey
import valkey.asyncio.cluster as avalkey_cluster
import valkey.cluster as valkey_cluster
from valkey.asyncio.retry import Retry as AsyncRetry
from valkey.backoff import EqualJitterBackoff
from valkey.exceptions import ConnectionError as ValkeyConnectionError
from valkey.exceptions import ResponseError
from valkey.retry import Retry

from .aio import Cursor, LoopClients, without_arguments
from .settings import Settings
from .stream import Stream

__all__ = ["Connections", "Settings", "SyncIO"]

_instances: weakref.WeakSet[Connections] = weakref.WeakSet()


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
