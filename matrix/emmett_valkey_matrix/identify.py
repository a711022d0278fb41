"""Which server is this? From ``INFO`` of a running server, or ``--version`` of a binary.

Valkey reports ``redis_version:7.2.4`` on every release (a compatibility constant), so it is identified
by ``server_name:valkey`` and its version read from ``valkey_version``. Redis has no ``server_name``
and is identified by ``redis_version``. Valkey 7.2.4, the very first release, predates ``server_name``
(added in 7.2.5) and is indistinguishable from Redis 7.2.4 by INFO alone.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .catalogue import Entry, in_line

_VERSION_RE = re.compile(r"^(Valkey|Redis) server v=(\S+) sha=([0-9a-f]+):\S* malloc=(\S+) .*build=(\S+)")


class IntegrityError(RuntimeError):
    """A source gave a server of the wrong product, line or exact version; nothing is substituted."""


@dataclass(frozen=True)
class Identity:
    """What a server or binary says it is."""

    product: str
    version: str
    build_id: str | None = None
    git_sha: str | None = None
    malloc: str | None = None

    def __str__(self) -> str:
        return f"{self.product.capitalize()} {self.version}"


def from_info(server: Mapping[str, Any], memory: Mapping[str, Any] | None = None) -> Identity:
    """Identity from parsed ``INFO server`` (and ``INFO memory`` for the allocator)."""
    if str(server.get("server_name", "")).lower() == "valkey":
        product, version = "valkey", server.get("valkey_version")
    else:
        product, version = "redis", server.get("redis_version")
    if not version:
        raise IntegrityError(f"INFO server reports no version field: {dict(server)!r:.300}")
    malloc = (memory or {}).get("mem_allocator")
    return Identity(product, str(version), _opt(server.get("redis_build_id")),
                    _opt(server.get("redis_git_sha1")), _opt(malloc))


def from_version_output(text: str) -> Identity:
    """Identity from ``valkey-server --version`` / ``redis-server --version``.

    ``Valkey server v=9.1.2 sha=00000000:1 malloc=libc bits=64 build=1536df31c0395150``
    """
    match = _VERSION_RE.match(text.strip())
    if not match:
        raise IntegrityError(f"unrecognised --version output: {text.strip()[:200]!r}")
    name, version, sha, malloc, build = match.groups()
    return Identity(name.lower(), version, build, sha, malloc)


def check(entry: Entry, found: Identity, source: str, exact: str | None = None) -> None:
    """Raise :class:`IntegrityError` unless ``found`` is ``entry``'s product and line (and ``exact`` if given).

    Registry sources pass the catalogued ``exact`` version; user-supplied servers need only the line.
    """
    expected = f"{entry.product.capitalize()} {exact or entry.line + '.x'}"
    wrong = (found.product != entry.product or not in_line(found.version, entry.line)
             or (exact is not None and found.version != exact))
    if wrong:
        hint = ""
        if entry.product == "valkey" and found.product == "redis" and found.version == "7.2.4":
            hint = " (Valkey 7.2.4 does not report server_name; use Valkey 7.2.5 or later)"
        raise IntegrityError(f"{entry.id}: expected {expected}, found {found} from {source}{hint}")


def _opt(value: Any) -> str | None:
    return None if value in (None, "") else str(value)
