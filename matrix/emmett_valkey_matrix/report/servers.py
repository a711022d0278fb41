"""The catalogue as the report needs it: ids, products and release lines, in display order.

Reads ``catalogue.toml`` itself (or takes what the caller already loaded), so the report does not depend on
the provisioning code.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

PRODUCT_ORDER = {"valkey": 0, "redis": 1}
PRODUCT_NAMES = {"valkey": "Valkey", "redis": "Redis"}


@dataclass(frozen=True)
class Server:
    """One catalogue id."""

    id: str
    product: str
    line: str

    @property
    def product_name(self) -> str:
        """Display name of the product."""
        return PRODUCT_NAMES.get(self.product, self.product)


def version_key(version: str) -> tuple[int, ...]:
    """Sort key for a dotted version: numeric parts compared as numbers."""
    return tuple(int(part) for part in re.findall(r"\d+", version))


def package_text(relative: str) -> str:
    """Text of a data file shipped in ``emmett_valkey_matrix`` (``catalogue.toml``, ``schemas/...``)."""
    try:
        return resources.files("emmett_valkey_matrix").joinpath(relative).read_text("utf-8")
    except (NotADirectoryError, FileNotFoundError, TypeError):
        # a namespace package under an editable install has no resource reader; read beside this file
        return Path(__file__).resolve().parent.parent.joinpath(relative).read_text("utf-8")


def read_packaged_catalogue() -> dict[str, Any]:
    """Parse the ``catalogue.toml`` shipped in ``emmett_valkey_matrix``."""
    parsed: dict[str, Any] = tomllib.loads(package_text("catalogue.toml"))
    return parsed


def _field(entry: object, name: str) -> str:
    value = entry.get(name) if isinstance(entry, Mapping) else getattr(entry, name, None)
    if not isinstance(value, str):
        raise ValueError(f"catalogue entry has no string {name!r}: {entry!r}")
    return value


def servers_from(catalogue: Mapping[str, Any] | None) -> tuple[Server, ...]:
    """Catalogue ids, Valkey first then Redis, each by release line.

    ``catalogue`` is the parsed TOML (a mapping with ``servers``), a mapping of id to entries (mappings or
    objects with ``product`` and ``line``), or ``None`` for the packaged catalogue.
    """
    if catalogue is None:
        catalogue = read_packaged_catalogue()
    entries = catalogue["servers"] if isinstance(catalogue.get("servers"), Mapping) else catalogue
    servers = [Server(str(sid), _field(e, "product"), _field(e, "line")) for sid, e in entries.items()]
    return tuple(sorted(servers, key=lambda s: (PRODUCT_ORDER.get(s.product, 9), s.product, version_key(s.line), s.id)))
