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
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .base import NotAvailable, sha256_file

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
_TAIL_LINES = 25


class SourceError(NotAvailable):
    """Fetching or unpacking Debian packages failed; the message names the step and ends with the tool's output."""


@dataclass(frozen=True)
class DebianTree:
    """Debian packages unpacked into one tree."""

    root: Path  # where the .debs were unpacked (dpkg-deb -x), all into one tree
    packages: dict[str, str]  # name -> exact Debian version fetched
    debs_sha256: dict[str, str]  # .deb file name -> sha256
    lib_dirs: list[Path]  # dirs under root holding shared libraries (for LD_LIBRARY_PATH)


def fetch_debian(
    packages: Sequence[str],
    suite: str,
    dest: Path,
    *,
    progress: Callable[[str], None] = lambda s: None,
    with_libs: Sequence[str] = (),
) -> DebianTree:
    """Download ``packages`` (and ``with_libs``) from ``suite`` and unpack them all into ``dest / "root"``.

    ``dest`` must be an empty directory owned by the caller. Packages may pin a version (``name=version``).
    For a derived suite (``bookworm-backports``) its base suite is listed too, at lower priority, so that
    libraries only the base suite has resolve.
    """
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
    _run(
        ["apt-get", "update", "-q", "-o", "APT::Update::Error-Mode=any"],
        env=env,
        what=f"apt-get update for suite {suite!r} from mirror {mirror}",
    )
    debs = dest / "debs"
    debs.mkdir()
    wanted = [*packages, *with_libs]
    progress(f"apt-get download ({suite}): {' '.join(wanted)}")
    _run(
        ["apt-get", "download", "-q", "-t", suite, *wanted],
        env=env,
        cwd=debs,
        what=f"apt-get download {' '.join(wanted)} from {suite} ({mirror})",
    )
    for scratch in ("state", "cache"):  # package lists and apt's binary caches: tens of MB nobody reads again
        shutil.rmtree(dest / "apt" / scratch)
    root = dest / "root"
    root.mkdir()
    fetched: dict[str, str] = {}
    digests: dict[str, str] = {}
    for deb in sorted(debs.glob("*.deb")):
        fields = _run(
            ["dpkg-deb", "--showformat=${Package}\\t${Version}\\n", "-W", str(deb)], what=f"dpkg-deb -W {deb.name}"
        )
        name, _, version = fields.strip().partition("\t")
        fetched[name] = version
        digests[deb.name] = sha256_file(deb)
        _run(["dpkg-deb", "-x", str(deb), str(root)], what=f"dpkg-deb -x {deb.name}")
        progress(f"unpacked {name} {version}")
    lib_dirs = _lib_dirs(root)
    missing = missing_libraries(root, lib_dirs)
    if missing:
        lines = "; ".join(f"{exe} needs {', '.join(libs)}" for exe, libs in sorted(missing.items()))
        raise SourceError(
            f"unpacked {', '.join(packages)} from {suite} but shared libraries are missing: {lines}."
            " Add the Debian packages that ship them to with_libs (e.g. libjemalloc2, liblzf1)"
        )
    return DebianTree(root=root, packages=fetched, debs_sha256=digests, lib_dirs=lib_dirs)


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
    arch = _run(["dpkg", "--print-architecture"], what="dpkg --print-architecture").strip()
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


def _run(cmd: Sequence[str], *, what: str, env: Mapping[str, str] | None = None, cwd: Path | None = None) -> str:
    try:
        proc = subprocess.run(list(cmd), env=env, cwd=cwd, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise SourceError(f"{what}: cannot run {cmd[0]}: {exc}") from exc
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-_TAIL_LINES:])
        raise SourceError(f"{what} failed (exit {proc.returncode}):\n{tail}")
    return proc.stdout
