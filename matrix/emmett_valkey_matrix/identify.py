"""Which server is this? From ``INFO`` of a running server, or ``--version`` of a binary.

Valkey reports ``redis_version:7.2.4`` on every release (a compatibility constant), so it is identified
by ``server_name:valkey`` and its version read from ``valkey_version``. Redis has no ``server_name``
and is identified by ``redis_version``. Valkey 7.2.4, the very first release, predates ``server_name``
(added in 7.2.5) and is indistinguishable from Redis 7.2.4 by INFO alone.

``--version`` is only a pre-check before a binary is started: it has three real forms (Valkey 7.2.x prints
``Server v=...`` with no product word, Valkey 8.0 and later ``Valkey server v=...``, Redis ``Redis server v=...``),
and a form it does not know leaves the question to ``INFO`` of the running server.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .catalogue import Entry, in_line

_VERSION_RE = re.compile(r"^(?:(Valkey|Redis) server|(Server)) v=(\S+) sha=([0-9a-f]+):\S* malloc=(\S+) .*build=(\S+)")
_SERVER_WORDS_RE = re.compile(r"\b(?:valkey|redis)\b|\bv=\d", re.IGNORECASE)  # what any server's --version mentions


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
                    _sha(server.get("redis_git_sha1")), _opt(malloc))


def from_version_output(text: str) -> Identity | None:
    """Identity from ``valkey-server --version`` / ``redis-server --version``; None for a form it does not know.

    ``Valkey server v=9.1.2 sha=00000000:1 malloc=libc bits=64 build=1536df31c0395150`` (Valkey 8.0+),
    ``Server v=7.2.7 sha=00000000:0 malloc=libc bits=64 build=5d84b84949e8a2f9`` (Valkey 7.2.x),
    ``Redis server v=7.2.6 sha=00000000:0 malloc=libc bits=64 build=fc920215c0c5bf6b``.
    An all-zero sha (a build outside git) is recorded as no sha. Output that names no version at all is not a
    server's (it names neither Valkey nor Redis nor a ``v=`` version): :class:`IntegrityError`.
    """
    text = text.strip()
    match = _VERSION_RE.match(text)
    if not match:
        if not _SERVER_WORDS_RE.search(text):
            first = text.splitlines()[0][:120] if text else ""
            raise IntegrityError(f"not a Valkey or Redis server: its --version printed {first!r}" if first
                                 else "not a Valkey or Redis server: its --version printed nothing")
        return None
    name, bare, version, sha, malloc, build = match.groups()
    product = "valkey" if bare else name.lower()  # only Valkey 7.2.x prints a bare "Server v="
    return Identity(product, version, build, _sha(sha), malloc)


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


def _sha(value: Any) -> str | None:
    """Return a git sha, or None for none (builds outside a git checkout report ``00000000``)."""
    text = _opt(value)
    return None if text is None or set(text) == {"0"} else text
