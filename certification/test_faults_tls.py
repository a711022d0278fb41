"""Faults: TLS with a throwaway CA, certificate verification on; a wrong CA or a plain-text client fails clearly."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from certification.support_faults import (
    HandlerFactory,
    TLSMaterial,
    tls_server,
)

pytestmark = [pytest.mark.faults,
              pytest.mark.standalone_only(
                  "TLS server options on one dedicated server (the local cluster runs without TLS)")]

TIMEOUT = 0.5


def _tls_server(server: Any, tmp_path: Path, material: TLSMaterial) -> Any:
    return tls_server(server, tmp_path, material)


def _tls_kwargs(kind: str, srv: Any, material: TLSMaterial, ca: Path) -> dict[str, Any]:
    """Verified TLS (CA, hostname), with the client certificate the server asks for (tls-auth-clients yes)."""
    kwargs: dict[str, Any] = {"ssl_ca_certs": str(ca), "ssl_certfile": str(material.client_cert),
                              "ssl_keyfile": str(material.client_key), "socket_timeout": TIMEOUT,
                              "socket_connect_timeout": TIMEOUT}
    if kind == "ValkeyCache":
        assert srv.url.startswith("valkeys://127.0.0.1:")
        return {"url": srv.url, **kwargs}
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    # redis-py 8 retries a failed handshake 10 times with backoff (about 3 s): not what is tested here
    return {"ssl": True, "ssl_cert_reqs": "required", "retry": Retry(NoBackoff(), 0), **kwargs}


def test_tls_roundtrip_with_verification(server: Any, handler_factory: HandlerFactory, tmp_path: Path,
                                         tls_material: TLSMaterial) -> None:
    """Over TLS with the server certificate verified against the throwaway CA, set, get and clear work."""
    with _tls_server(server, tmp_path, tls_material) as srv:
        h = handler_factory(srv, **_tls_kwargs(handler_factory.kind, srv, tls_material, tls_material.ca))
        h.set("k", {"over": "tls"})
        assert h.get("k") == {"over": "tls"}
        h.clear("k")
        assert h.get("k") is None


def test_tls_host_and_port_form(server: Any, key_prefix: str, tmp_path: Path, tls_material: TLSMaterial) -> None:
    """ValkeyCache(host=..., port=..., ssl=True, ssl_ca_certs=...) is the same as a valkeys:// URL."""
    handler_factory = HandlerFactory("ValkeyCache", key_prefix)
    try:
        with _tls_server(server, tmp_path, tls_material) as srv:
            kwargs = _tls_kwargs("ValkeyCache", srv, tls_material, tls_material.ca)
            del kwargs["url"]
            h = handler_factory(srv, ssl=True, **kwargs)
            assert h.set("k", 1) and h.get("k") == 1
    finally:
        handler_factory.close()


def test_tls_wrong_ca_fails_clearly(server: Any, handler_factory: HandlerFactory, tmp_path: Path,
                                    tls_material: TLSMaterial) -> None:
    """A server certificate not signed by the configured CA is refused with a certificate-verify error, quickly."""
    with _tls_server(server, tmp_path, tls_material) as srv:
        h = handler_factory(srv, **_tls_kwargs(handler_factory.kind, srv, tls_material, tls_material.other_ca))
        t0 = time.monotonic()
        with pytest.raises(Exception) as info:
            h.get("k")
        assert time.monotonic() - t0 < 4 * TIMEOUT
        assert type(info.value).__name__ == "ConnectionError", repr(info.value)
        assert "certificate verify failed" in str(info.value), str(info.value)


def test_plaintext_client_on_tls_port_fails_fast(server: Any, key_prefix: str, tmp_path: Path,
                                                 tls_material: TLSMaterial) -> None:
    """A handler without TLS on a TLS-only port gets a connection error within its timeouts, never a hang."""
    handler_factory = HandlerFactory("ValkeyCache", key_prefix)
    try:
        with _tls_server(server, tmp_path, tls_material) as srv:
            h = handler_factory(srv, socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT)
            t0 = time.monotonic()
            with pytest.raises(Exception) as info:
                h.get("k")
            assert time.monotonic() - t0 < 4 * TIMEOUT
            assert type(info.value).__name__ in ("ConnectionError", "TimeoutError"), repr(info.value)
    finally:
        handler_factory.close()


def test_tls_async_stream(server: Any, key_prefix: str, tmp_path: Path, tls_material: TLSMaterial) -> None:
    """Over verified TLS, the async methods run on the loop's multiplexed connection (one, with the client cert)."""
    import asyncio

    handler_factory = HandlerFactory("ValkeyCache", key_prefix)
    try:
        with _tls_server(server, tmp_path, tls_material) as srv:
            h = handler_factory(srv, **_tls_kwargs("ValkeyCache", srv, tls_material, tls_material.ca))

            async def main() -> tuple[list[Any], int]:
                await h.aset("k", {"over": "tls"})
                got = await asyncio.gather(*(h.aget("k") for _ in range(20)))
                writes = h.connections.astream.writes
                await h.aclose()
                return got, writes

            got, writes = asyncio.run(main())
            assert got == [{"over": "tls"}] * 20 and h.get("k") == {"over": "tls"}
            assert writes == 2, "the 20 concurrent agets did not share one write (one write for the aset first)"
    finally:
        handler_factory.close()
