"""Faults: values above the server's proto-max-bulk-len (a dedicated server limited to 1 MB, not 512 MB sent)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from certification.support_faults import HandlerFactory, dedicated, quick_retry

pytestmark = [pytest.mark.faults, pytest.mark.standalone_only("proto-max-bulk-len set on one dedicated server")]

LIMIT = 1024 * 1024  # the dedicated server's proto-max-bulk-len


def _refused_bulk(exc: BaseException) -> None:
    """Check the error of a too long bulk: the server replies and closes the connection.

    The client sees the broken pipe or, when it finished writing first, "Protocol error: invalid bulk length".
    """
    name = type(exc).__name__
    assert name == "ConnectionError" or (name == "ResponseError" and "bulk length" in str(exc)), repr(exc)


def _bulk_limited(server: Any, tmp_path: Path) -> Any:
    from emmett_valkey_matrix import ServerOptions

    return dedicated(server, tmp_path, ServerOptions(extra=(("proto-max-bulk-len", "1mb"),)))


def test_value_above_max_value_size_raises(server: Any, key_prefix: str, tmp_path: Path) -> None:
    """With max_value_size set to the server's proto-max-bulk-len, a bigger value raises ValueError before sending."""
    handler_factory = HandlerFactory("ValkeyCache", key_prefix)
    try:
        with _bulk_limited(server, tmp_path) as srv:
            h = handler_factory(srv, max_value_size=LIMIT)
            h.set("fits", b"x" * (LIMIT - 64))
            assert h.get("fits") == b"x" * (LIMIT - 64)
            with pytest.raises(ValueError, match="max_value_size"):
                h.set("big", b"x" * LIMIT)
            with pytest.raises(ValueError, match="max_value_size"):
                h.set_many({"small": 1, "big": b"x" * LIMIT})
            assert h.get_many(["big", "small"]) == {}
            assert h.stats()["errors"] == 0
    finally:
        handler_factory.close()


def test_value_above_server_bulk_limit(server: Any, handler_factory: HandlerFactory, tmp_path: Path) -> None:
    """Without max_value_size, a value above proto-max-bulk-len fails the call, stores nothing, and the next works."""
    with _bulk_limited(server, tmp_path) as srv:
        h = handler_factory(srv, socket_timeout=2, **quick_retry(handler_factory.kind))
        h.set("before", 1)
        with pytest.raises(Exception) as info:
            h.set("big", b"x" * (LIMIT + 1))
        _refused_bulk(info.value)
        assert h.get("big") is None and h.get("before") == 1  # the handler carries on
        if handler_factory.kind == "ValkeyCache":
            with pytest.raises(Exception) as info:
                h.set_many({"small": 1, "big": b"x" * (LIMIT + 1)})
            _refused_bulk(info.value)
            assert h.get_many(["small", "big"]) == {}  # MULTI was never EXECuted: no half-written batch
