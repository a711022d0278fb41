"""Debian packages as a server source: ``apt-get download`` into a private apt setup, ``dpkg-deb -x`` to unpack.

Nothing here needs root or touches the machine's apt state. Every run writes its own apt configuration under
``dest`` (sources list, lists, caches, an empty ``apt.conf.d``, preferences and trusted parts), points
``APT_CONFIG`` at it, runs ``apt-get update`` and ``apt-get download`` against it, and unpacks each ``.deb``
into one tree with ``dpkg-deb -x``. From the machine it reads only which Debian mirror to use (its own apt
sources, or ``EMMETT_VALKEY_DEBIAN_MIRROR``) and the archive keyring (``EMMETT_VALKEY_DEBIAN_KEYRING``
overrides the default path).

Debian ships the servers as multi-call binaries: ``usr/bin/redis-check-rdb`` (package ``redis-tools``) and
``usr/bin/valkey-check-rdb`` (``valkey-tools``) act as the server when started under the name
``redis-server`` / ``valkey-server``; the ``*-server`` packages only add that symlink and a systemd unit.
They link ``libjemalloc.so.2`` and ``liblzf.so.1``, which a host rarely has: pass their packages in
``with_libs``. After unpacking, every executable under ``usr/bin`` is checked with ``ldd`` against the
system plus the fetched libraries, and a missing shared library is an error that names it.

The same fetch gives a server (a catalogue ``debian`` source) or only shared libraries (a wheel's ``libs``).
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from .. import binary_cache
from ..catalogue import Libs, Source
from .base import Download, Fetched, Progress, SourceError, run, sha256_file

MIRROR_ENV = "EMMETT_VALKEY_DEBIAN_MIRROR"
KEYRING_ENV = "EMMETT_VALKEY_DEBIAN_KEYRING"
DEFAULT_KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")

# Debian release names and aliases; a sources entry whose suite (less -updates/-backports) is none of these is
# someone else's archive (nodesource's "nodistro", a vendor's "cloud-sdk-bookworm", ...).
_DEBIAN_SUITES = frozenset(
    "buzz rex bo hamm slink potato woody sarge etch lenny squeeze wheezy jessie stretch buster bullseye "
    "bookworm trixie forky duke sid oldoldstable oldstable stable testing unstable experimental".split()
)
_SUITE_SUFFIXES = ("-updates", "-backports", "-backports-sloppy", "-proposed-updates")
TREE = "root"  # where, under dest, every .deb is unpacked


def obtain(source: Source, *, fetch: bool, progress: Progress) -> Fetched:
    """Return the server of a catalogue ``debian`` source, from the binary cache or fetched into it."""
    assert source.suite and source.binary
    return _obtain(source.suite, source.packages, source.with_libs, source.binary, source.download_mb, fetch,
                   progress)


def obtain_libs(libs: Libs, *, fetch: bool, progress: Progress) -> Fetched:
    """Return the shared libraries of a wheel's ``libs``, from the binary cache or fetched into it."""
    return _obtain(libs.suite, libs.packages, (), None, libs.download_mb, fetch, progress)


def obtain_packages(suite: str, packages: tuple[str, ...], with_libs: tuple[str, ...], binary: str, *,
                    download_mb: float | None, fetch: bool, progress: Progress) -> Fetched:
    """Return any Debian tool (``usr/bin/wrk`` of ``wrk``), from the binary cache or fetched into it like a server."""
    return _obtain(suite, packages, with_libs, binary, download_mb, fetch, progress)


def downloads(source: Source) -> list[Download]:
    """Return the one download: the suite's package lists and the packages (with their libraries)."""
    assert source.suite
    return [_download(source.suite, source.packages, source.with_libs, source.download_mb)]


def libs_download(libs: Libs) -> Download:
    """Return the download a first fetch of a wheel's ``libs`` starts."""
    return _download(libs.suite, libs.packages, (), libs.download_mb)


def _download(suite: str, packages: tuple[str, ...], with_libs: tuple[str, ...], mb: float | None) -> Download:
    return Download(binary_cache.cache_key("debian", suite, *packages, *with_libs),
                    f"Debian {suite} package lists and {', '.join((*packages, *with_libs))}", mb)


def _obtain(suite: str, packages: tuple[str, ...], with_libs: tuple[str, ...], binary: str | None,
            download_mb: float | None, fetch: bool, progress: Progress) -> Fetched:
    download = _download(suite, packages, with_libs, download_mb)

    def fill(dest: Path) -> dict[str, Any]:
        binary_cache.announce_download(download.what, download.mb, about=True)
        return _fetch(packages, suite, dest, progress=progress, with_libs=with_libs)

    root, marker = binary_cache.cached(download.key, fill, fetch=fetch)
    return _load(root, marker, packages, binary)


def fetch_debian(
    packages: Sequence[str],
    suite: str,
    dest: Path,
    *,
    progress: Callable[[str], None] = lambda s: None,
    with_libs: Sequence[str] = (),
    binary: str | None = None,
) -> Fetched:
    """Download ``packages`` (and ``with_libs``) from ``suite`` and unpack them all into ``dest / "root"``.

    ``dest`` must be an empty directory owned by the caller. Packages may pin a version (``name=version``).
    For a derived suite (``bookworm-backports``) its base suite is listed too, at lower priority, so that
    libraries only the base suite has resolve. ``binary`` is the server executable inside the unpacked tree
    (``usr/bin/valkey-check-rdb``); without it the fetch gives shared libraries only.
    """
    return _load(dest, _fetch(packages, suite, dest, progress=progress, with_libs=with_libs), packages, binary)


def _load(root: Path, marker: dict[str, Any], packages: Sequence[str], binary: str | None) -> Fetched:
    """Read a filled entry (its marker: kind, suite, packages, debs_sha256, root, lib_dirs) as :class:`Fetched`.

    The detail pins the versions of ``packages`` (not of ``with_libs``): ``valkey-tools=8.0.1+dfsg1-1~bpo12+1
    (bookworm-backports)``.
    """
    tree = root / marker["root"]
    fetched: dict[str, str] = marker["packages"]
    pins = " ".join(f"{n}={v}" for n, v in sorted(fetched.items()) if n in packages)
    record = {"kind": "debian", "detail": f"{pins} ({marker['suite']})", "sha256": marker["debs_sha256"],
              "packages": fetched}
    return Fetched(root, tree / binary if binary else None, record,
                   lib_dirs=tuple(root / p for p in marker["lib_dirs"]))


def _fetch(packages: Sequence[str], suite: str, dest: Path, *, progress: Callable[[str], None],
           with_libs: Sequence[str]) -> dict[str, Any]:
    """Fetch and unpack as :func:`fetch_debian` says; return the cache marker (paths relative to ``dest``)."""
    if not packages:
        raise ValueError("fetch_debian needs at least one package")
    mirror = debian_mirror()
    keyring = Path(os.environ.get(KEYRING_ENV) or DEFAULT_KEYRING)
    if not keyring.is_file():
        raise SourceError(
            f"Debian archive keyring {keyring} not found; install debian-archive-keyring or set {KEYRING_ENV}"
        )
    env = _private_apt(dest / "apt", mirror, _suites_for(suite), keyring)
    progress(f"apt-get update: {suite} from {mirror}")
    run(
        ["apt-get", "update", "-q", "-o", "APT::Update::Error-Mode=any"],
        env=env,
        what=f"apt-get update for suite {suite!r} from mirror {mirror}",
    )
    debs = dest / "debs"
    debs.mkdir()
    wanted = [*packages, *with_libs]
    progress(f"apt-get download ({suite}): {' '.join(wanted)}")
    run(
        ["apt-get", "download", "-q", "-t", suite, *wanted],
        env=env,
        cwd=debs,
        what=f"apt-get download {' '.join(wanted)} from {suite} ({mirror})",
    )
    for scratch in ("state", "cache"):  # package lists and apt's binary caches: tens of MB nobody reads again
        shutil.rmtree(dest / "apt" / scratch)
    root = dest / TREE
    root.mkdir()
    fetched: dict[str, str] = {}
    digests: dict[str, str] = {}
    for deb in sorted(debs.glob("*.deb")):
        fields = run(
            ["dpkg-deb", "--showformat=${Package}\\t${Version}\\n", "-W", str(deb)], what=f"dpkg-deb -W {deb.name}"
        )
        name, _, version = fields.strip().partition("\t")
        fetched[name] = version
        digests[deb.name] = sha256_file(deb)
        run(["dpkg-deb", "-x", str(deb), str(root)], what=f"dpkg-deb -x {deb.name}")
        progress(f"unpacked {name} {version}")
    lib_dirs = _lib_dirs(root)
    missing = missing_libraries(root, lib_dirs)
    if missing:
        lines = "; ".join(f"{exe} needs {', '.join(libs)}" for exe, libs in sorted(missing.items()))
        raise SourceError(
            f"unpacked {', '.join(packages)} from {suite} but shared libraries are missing: {lines}."
            " Add the Debian packages that ship them to with_libs (e.g. libjemalloc2, liblzf1)"
        )
    return {"kind": "debian", "suite": suite, "packages": fetched, "debs_sha256": digests, "root": TREE,
            "lib_dirs": [str(p.relative_to(dest)) for p in lib_dirs]}


def debian_mirror(etc_apt: Path = Path("/etc/apt")) -> str:
    """Return the Debian archive URI: ``$EMMETT_VALKEY_DEBIAN_MIRROR``, else the machine's own Debian entry.

    The machine's entry is the first enabled ``deb`` source whose suites include a Debian release (not
    ``-security``, not a third-party archive) with component ``main``, from ``sources.list``, then
    ``sources.list.d/*.list`` and ``*.sources`` (deb822) in name order.
    """
    override = os.environ.get(MIRROR_ENV, "").strip()
    if override:
        return override.rstrip("/")
    for uri, suites, components in _apt_sources(etc_apt):
        if "main" in components and any(_is_debian_suite(s) for s in suites):
            return uri.rstrip("/")
    raise SourceError(
        f"no Debian archive entry in {etc_apt}/sources.list or {etc_apt}/sources.list.d; "
        f"set {MIRROR_ENV} to a Debian mirror URI"
    )


def missing_libraries(root: Path, lib_dirs: Iterable[Path]) -> dict[str, list[str]]:
    """Map each executable under ``root/usr/bin`` (relative path) to the shared libraries ``ldd`` cannot find."""
    env = dict(os.environ, LD_LIBRARY_PATH=os.pathsep.join(str(d) for d in lib_dirs))
    missing: dict[str, list[str]] = {}
    for exe in sorted((root / "usr" / "bin").glob("*")) if (root / "usr" / "bin").is_dir() else []:
        if exe.is_symlink() or not exe.is_file() or not _is_elf(exe):
            continue
        out = subprocess.run(["ldd", str(exe)], env=env, capture_output=True, text=True, check=False).stdout
        libs = [line.split("=>")[0].strip() for line in out.splitlines() if "not found" in line]
        if libs:
            missing[str(exe.relative_to(root))] = libs
    return missing


def _is_elf(path: Path) -> bool:
    with path.open("rb") as fh:
        return fh.read(4) == b"\x7fELF"


def _is_debian_suite(suite: str) -> bool:
    for suffix in _SUITE_SUFFIXES:
        if suite.endswith(suffix):
            suite = suite[: -len(suffix)]
            break
    return suite in _DEBIAN_SUITES


def _suites_for(suite: str) -> list[str]:
    base = suite.split("-", 1)[0]
    return [suite] if base == suite else [suite, base]


def _apt_sources(etc_apt: Path) -> list[tuple[str, list[str], list[str]]]:
    """(uri, suites, components) of every enabled binary (``deb``) source, in apt's reading order."""
    entries: list[tuple[str, list[str], list[str]]] = []
    parts = etc_apt / "sources.list.d"
    one_line = (
        [etc_apt / "sources.list", *sorted(parts.glob("*.list"))] if parts.is_dir() else [etc_apt / "sources.list"]
    )
    for path in one_line:
        if path.is_file():
            entries += _parse_one_line(path.read_text(errors="replace"))
    for path in sorted(parts.glob("*.sources")) if parts.is_dir() else []:
        entries += _parse_deb822(path.read_text(errors="replace"))
    return entries


def _parse_one_line(text: str) -> list[tuple[str, list[str], list[str]]]:
    entries = []
    for raw in text.splitlines():
        line = re.sub(r"\[[^\]]*\]", " ", raw.split("#", 1)[0]).split()
        if len(line) >= 3 and line[0] == "deb":
            entries.append((line[1], [line[2]], line[3:]))
    return entries


def _parse_deb822(text: str) -> list[tuple[str, list[str], list[str]]]:
    entries = []
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        key = ""
        for line in stanza.splitlines():
            if line.startswith("#"):
                continue
            if line[:1] in (" ", "\t") and key:
                fields[key] += " " + line.strip()
            elif ":" in line:
                key, _, value = line.partition(":")
                key = key.strip().lower()
                fields[key] = value.strip()
        if "deb" not in fields.get("types", "").split() or fields.get("enabled", "yes").lower() == "no":
            continue
        for uri in fields.get("uris", "").split():
            entries.append((uri, fields.get("suites", "").split(), fields.get("components", "").split()))
    return entries


def _private_apt(base: Path, mirror: str, suites: Sequence[str], keyring: Path) -> dict[str, str]:
    """Write an apt configuration that reads and writes only under ``base``; return the env selecting it."""
    dirs = {name: base / name for name in ("parts", "sourceparts", "preferencesparts", "trustedparts")}
    for path in [*dirs.values(), base / "state" / "lists" / "partial", base / "cache" / "archives" / "partial"]:
        path.mkdir(parents=True, exist_ok=True)
    (base / "state" / "status").touch()
    (base / "sources.list").write_text(
        "".join(f"deb [signed-by={keyring}] {mirror} {suite} main\n" for suite in suites)
    )
    arch = run(["dpkg", "--print-architecture"], what="dpkg --print-architecture").strip()
    try:
        user = pwd.getpwuid(os.getuid()).pw_name
    except KeyError:  # a uid without a passwd entry: not root, so apt does not try to drop privileges anyway
        user = ""
    settings: dict[str, str] = {
        "Dir::Etc::main": "/dev/null",
        "Dir::Etc::parts": str(dirs["parts"]),
        "Dir::Etc::sourcelist": str(base / "sources.list"),
        "Dir::Etc::sourceparts": str(dirs["sourceparts"]),
        "Dir::Etc::preferences": "/dev/null",
        "Dir::Etc::preferencesparts": str(dirs["preferencesparts"]),
        "Dir::Etc::trusted": "/dev/null",
        "Dir::Etc::trustedparts": str(dirs["trustedparts"]),
        "Dir::State": str(base / "state"),
        "Dir::State::lists": str(base / "state" / "lists"),
        "Dir::State::status": str(base / "state" / "status"),
        "Dir::Cache": str(base / "cache"),
        "Dir::Cache::archives": str(base / "cache" / "archives"),
        "APT::Architecture": arch,
        "Acquire::Languages": "none",
        "Acquire::PDiffs": "false",
        "Acquire::GzipIndexes": "true",
        "Acquire::Retries": "2",
        "Acquire::http::Timeout": "30",
    }
    if user:
        settings["APT::Sandbox::User"] = user  # no privilege drop to _apt, which could not write under dest
    conf = "".join(f'{key} "{value}";\n' for key, value in settings.items())
    conf += f'APT::Architectures {{ "{arch}"; }};\n'
    (base / "apt.conf").write_text(conf)
    # apt reads $APT_CONFIG first, so its Dir::Etc::parts/main keep the machine's apt.conf(.d) out entirely.
    return dict(os.environ, APT_CONFIG=str(base / "apt.conf"), LC_ALL="C")


def _lib_dirs(root: Path) -> list[Path]:
    return sorted({p.parent for p in root.rglob("lib*.so*") if p.is_file() or p.is_symlink()})

