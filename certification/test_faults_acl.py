"""Faults: password auth, and a least-privilege ACL user limited to the handler's prefix and commands."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import valkey

from certification.support_faults import (
    ADMIN_PASSWORD,
    APP_PASSWORD,
    BOTH_USER,
    FORBIDDEN_COMMANDS,
    HANDLER_COMMANDS,
    HandlerFactory,
    acl_rule,
    dedicated,
    write_aclfile,
)

pytestmark = [pytest.mark.faults,
              pytest.mark.standalone_only(
                  "requirepass and ACL files on one dedicated server (the local cluster runs without auth)")]

APP_USER = "cacheapp"


def _acl_server(server: Any, tmp_path: Path, prefix: str) -> Any:
    from emmett_valkey_matrix import ServerOptions

    aclfile = write_aclfile(tmp_path / "users.acl", APP_USER, prefix)
    return dedicated(server, tmp_path, ServerOptions(requirepass=ADMIN_PASSWORD, aclfile=aclfile))


def _every_method(h: Any) -> dict[str, Any]:
    """Call every public method of ValkeyCache once, sync and async; return what each gave."""
    out = {
        "set": h.set("a", {"x": 1}, 60), "get": h.get("a"), "get_or_set": h.get_or_set("b", lambda: "B", 60),
        "set_many": h.set_many({"c": 3, "d": [4]}, 60), "get_many": h.get_many(["a", "c", "d", "zz"]),
        "incr": h.incr("n", 5), "decr": h.decr("n", 2), "ttl": h.ttl("a") is not None, "touch": h.touch("a", 90),
        "delete_many": h.delete_many(["c", "zz"]), "clear_key": h.clear("d"), "clear_pattern": h.clear("p*"),
    }

    async def run_async() -> dict[str, Any]:
        try:
            return {
                "aset": await h.aset("e", 5, 60), "aget": await h.aget("e"),
                "aget_or_set": await h.aget_or_set("f", _const, 60), "aset_many": await h.aset_many({"g": 7}),
                "aget_many": await h.aget_many(["e", "g"]), "get_or_set_loop": await h.get_or_set_loop("f", _const),
                "aclear_pattern": await h.aclear("g*"), "aclear": await h.aclear(),
            }
        finally:
            await h.aclose()

    out.update(asyncio.run(run_async()))
    h.set("last", 1)
    out["clear"] = h.clear()
    return out


async def _const() -> str:
    return "F"


EXPECTED = {
    "set": True, "get": {"x": 1}, "get_or_set": "B", "set_many": True, "get_many": {"a": {"x": 1}, "c": 3, "d": [4]},
    "incr": 5, "decr": 3, "ttl": True, "touch": True, "delete_many": 1, "clear_key": 1, "clear_pattern": 0,
    "aset": True, "aget": 5, "aget_or_set": "F", "aset_many": True, "aget_many": {"e": 5, "g": 7},
    "get_or_set_loop": "F", "aclear_pattern": 1, "aclear": 5, "clear": 1,
}


def test_password_auth(server: Any, handler_factory: HandlerFactory, tmp_path: Path) -> None:
    """With requirepass, the right password works; none or a wrong one raises an authentication error."""
    from emmett_valkey_matrix import ServerOptions

    with dedicated(server, tmp_path, ServerOptions(requirepass=ADMIN_PASSWORD)) as srv:
        h = handler_factory(srv, password=ADMIN_PASSWORD)
        h.set("k", "v")
        assert h.get("k") == "v"
        # redis-py 8 retries an authentication failure 10 times with backoff (about 3 s): not what is tested here
        quick = {} if handler_factory.kind == "ValkeyCache" else {"retry": _no_retry()}
        for password in (None, "wrong-password"):
            with pytest.raises(Exception) as info:
                handler_factory(srv, password=password, **quick).get("k")
            assert "AuthenticationError" in {c.__name__ for c in type(info.value).__mro__}, repr(info.value)


def _no_retry() -> Any:
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return Retry(NoBackoff(), 0)


def test_wrong_password_fail_soft(server: Any, key_prefix: str, tmp_path: Path) -> None:
    """With on_error="miss", a wrong password makes get a counted miss and set a no-op (a connection error)."""
    from emmett_valkey_matrix import ServerOptions

    handler_factory = HandlerFactory("ValkeyCache", key_prefix)
    try:
        with dedicated(server, tmp_path, ServerOptions(requirepass=ADMIN_PASSWORD)) as srv:
            h = handler_factory(srv, password="wrong-password", on_error="miss")
            assert (h.get("k"), h.set("k", 1), h.stats()["errors"]) == (None, False, 2)
    finally:
        handler_factory.close()


def test_acl_user_can_use_every_method(server: Any, key_prefix: str, tmp_path: Path) -> None:
    """A user with only ~<prefix>* and the documented command list can use every ValkeyCache method, clear included."""
    handler_factory = HandlerFactory("ValkeyCache", key_prefix)
    try:
        with _acl_server(server, tmp_path, key_prefix) as srv:
            h = handler_factory(srv, username=APP_USER, password=APP_PASSWORD)
            assert _every_method(h) == EXPECTED
    finally:
        handler_factory.close()


def test_acl_user_is_least_privileged(server: Any, key_prefix: str, tmp_path: Path) -> None:
    """The cache user cannot run KEYS, FLUSHDB, FLUSHALL or CONFIG, nor read or write keys of another prefix."""
    handler_factory = HandlerFactory("ValkeyCache", key_prefix)
    with _acl_server(server, tmp_path, key_prefix) as srv:
        admin = srv.client()
        app = valkey.Valkey(host=srv.host, port=srv.port, username=APP_USER, password=APP_PASSWORD)
        try:
            admin.set("other:secret", "not yours")
            for command in FORBIDDEN_COMMANDS:
                with pytest.raises(valkey.exceptions.NoPermissionError):
                    app.execute_command(*command)
            with pytest.raises(valkey.exceptions.NoPermissionError):
                app.get("other:secret")
            other = HandlerFactory("ValkeyCache", "other:")
            try:  # a permission error is not an outage: it is raised even in fail-soft mode
                for mode in ("raise", "miss"):
                    h = other(srv, username=APP_USER, password=APP_PASSWORD, on_error=mode)
                    with pytest.raises(valkey.exceptions.NoPermissionError):
                        h.get("secret")
                    with pytest.raises(valkey.exceptions.NoPermissionError):
                        h.set("secret", "overwritten")
            finally:
                other.close()
            assert admin.get("other:secret") == b"not yours"
        finally:
            app.close()
            admin.close()
            handler_factory.close()


def test_acl_command_list_is_minimal(server: Any, key_prefix: str, tmp_path: Path) -> None:
    """Each command of the documented list is needed: a user without any one of them fails some method."""
    with _acl_server(server, tmp_path, key_prefix) as srv:
        admin = srv.client()
        try:
            unneeded = []
            for dropped in HANDLER_COMMANDS:
                user = f"without_{dropped}"
                rule = acl_rule(key_prefix, tuple(c for c in HANDLER_COMMANDS if c != dropped))
                admin.execute_command("ACL", "SETUSER", user, "reset", *rule.split(), f">{APP_PASSWORD}")
                factory = HandlerFactory("ValkeyCache", key_prefix)
                try:
                    _every_method(factory(srv, username=user, password=APP_PASSWORD))
                    unneeded.append(dropped)
                except valkey.exceptions.ResponseError:  # NoPermissionError, or EXEC without MULTI
                    pass
                finally:
                    factory.close()
            assert not unneeded, f"not needed by any method: {unneeded}"
        finally:
            admin.close()


def test_acl_user_get_set_clear(server: Any, handler_factory: HandlerFactory, tmp_path: Path) -> None:
    """Under a user without KEYS nor FLUSHDB, get, set and every form of clear work (both handlers' common API)."""
    with _acl_server(server, tmp_path, handler_factory.prefix) as srv:
        h = handler_factory(srv, username=BOTH_USER, password=APP_PASSWORD)
        for key in ("a", "b", "pa", "pb"):
            h.set(key, key.upper())
        assert h.get("a") == "A"
        h.clear("a")
        h.clear("p*")
        assert (h.get("a"), h.get("pa"), h.get("b")) == (None, None, "B")
        h.clear()
        assert h.get("b") is None
