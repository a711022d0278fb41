"""How a handler connects: valkey-py's connection keywords, URL, pool bound and retry policy, resolved once."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


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
