"""Serializers: how a value becomes the bytes stored under a key, and back.

Every serializer stores a value whose type is exactly ``int`` as ASCII digits, so that ``incr``/``decr`` work on it
and Emmett's ``RedisCache`` reads it, and reads ``b"True"``/``b"False"`` (how ``RedisCache`` stores bools) as bools;
everything else is a one-byte tag followed by the payload:

- ``!`` + pickle: :class:`EmmettPickleSerializer`, the default, byte-compatible with Emmett's ``RedisCache``.
- ``j`` + UTF-8 JSON: :class:`JSONSerializer`, for caches shared with other languages or untrusted writers.
- ``$`` + HMAC-SHA256 + pickle: :class:`SignedPickleSerializer`, which refuses entries it did not sign.

Plain pickle executes code chosen by whoever wrote the entry: on a cache that anyone else can write to (a shared
server, a compromised neighbour app), use the signed or the JSON serializer.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import pickle
from typing import Any, Protocol


class SerializationError(ValueError):
    """A stored entry could not be (or must not be) decoded: the handler treats it as a miss."""


class Serializer(Protocol):
    """What a serializer provides: ``dumps`` may raise on values it cannot store, ``loads`` SerializationError."""

    def dumps(self, value: Any) -> bytes:
        """Encode *value* for storage."""

    def loads(self, data: bytes) -> Any:
        """Decode stored *data*; raise :class:`SerializationError` when it is not ours to decode."""


#: Emmett's RedisCache stores a bool through its int path, as ``str(value)``: read those entries as the bools they are
#: (like an int, a bare bool runs no code, so every serializer accepts it)
_REDISCACHE_BOOLS = {b"True": True, b"False": False}


class _IntFastPath:
    tag = b"?"

    def dumps(self, value: Any) -> bytes:
        if type(value) is int:
            try:
                return str(value).encode("ascii")
            except ValueError:  # beyond int->str digit limit: keep it exact as a tagged payload
                pass
        return self.tag + self._dump(value)

    def loads(self, data: bytes) -> Any:
        if data[:1] == self.tag:
            return self._load(data[1:])
        if data in _REDISCACHE_BOOLS:
            return _REDISCACHE_BOOLS[data]
        try:
            return int(data)
        except ValueError:
            raise SerializationError(f"not an entry of {type(self).__name__}: {bytes(data[:16])!r}...") from None

    def _dump(self, value: Any) -> bytes:
        raise NotImplementedError

    def _load(self, payload: bytes) -> Any:
        raise NotImplementedError


class EmmettPickleSerializer(_IntFastPath):
    """Emmett's ``RedisCache`` format: ints as digits, anything else ``b"!" + pickle.dumps(value)``."""

    tag = b"!"

    def _dump(self, value: Any) -> bytes:
        return pickle.dumps(value)

    def _load(self, payload: bytes) -> Any:
        try:
            return pickle.loads(payload)
        except Exception as exc:  # a truncated or foreign payload can raise nearly anything
            raise SerializationError(f"cannot unpickle entry: {exc!r}") from exc


class JSONSerializer(_IntFastPath):
    """JSON values only (tuples come back as lists); no code runs on load."""

    tag = b"j"

    def _dump(self, value: Any) -> bytes:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")

    def _load(self, payload: bytes) -> Any:
        try:
            return json.loads(payload)
        except ValueError as exc:
            raise SerializationError(f"cannot decode JSON entry: {exc}") from exc


class SignedPickleSerializer(_IntFastPath):
    """Pickle signed with HMAC-SHA256: an entry that was tampered with or written by anyone else is refused."""

    tag = b"$"
    _digest_size = hashlib.sha256().digest_size

    def __init__(self, secret: str | bytes) -> None:
        key = secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)
        if len(key) < 16:
            raise ValueError("SignedPickleSerializer needs a secret of at least 16 bytes")
        self._key = key

    def _sign(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()

    def _dump(self, value: Any) -> bytes:
        payload = pickle.dumps(value)
        return self._sign(payload) + payload

    def _load(self, payload: bytes) -> Any:
        mac, body = payload[: self._digest_size], payload[self._digest_size :]
        if len(mac) != self._digest_size or not hmac.compare_digest(mac, self._sign(body)):
            raise SerializationError("refused an entry whose signature does not match (tampered or foreign)")
        return pickle.loads(body)
