"""Route caching on the async API: ``@cache.response()`` on an async route never blocks the event loop.

Emmett serves a route under ``cache.response()`` with emmett_core's ``CacheDispatcher``, whose ``get_data`` calls
the handler's synchronous ``get`` and ``set`` inside the async dispatch: each miss and each hit then holds the
worker's event loop for a network round trip (a whole timeout on a stalled server). Emmett chooses the dispatcher
class itself, so the one seam is that method: :func:`install` replaces ``CacheDispatcher.get_data`` (once per
process) with a function that hands a rule of ours on an async route to :meth:`AsyncRouteCacheRule.get_data`, and
every other rule (Emmett's own, RamCache's, RedisCache's, or ours on a sync route) to Emmett's own code, unchanged.

:class:`AsyncRouteCacheRule` is Emmett's ``RouteCacheRule`` (same key: route name and the hash of the kwargs,
hostname, language, query string and headers strategies; same entry: ``{"content": ..., "headers": ...}``; stored
only on status 200, for the rule's duration), read with ``aget`` and written with ``aset``: an entry written by
``RedisCache`` is served by ``ValkeyCache`` and the other way round. Only the handler's public async methods are
called, so this works with the local cache, on a cluster and in fail-soft mode as those methods do.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from emmett_core.routing.cache import CacheDispatcher, RouteCacheRule

if TYPE_CHECKING:
    from .cache import ValkeyCache

#: Emmett's ``CacheDispatcher.get_data``, kept to serve every rule that is not ours on an async route
_emmett_get_data: Callable[..., Any] = CacheDispatcher.get_data


class _Dispatcher(Protocol):
    """What emmett_core's cache dispatchers carry: the route, its (pipelined) function and the request context."""

    route: Any
    f: Callable[..., Any]
    current: Any


class AsyncRouteCacheRule(RouteCacheRule):
    """Emmett's route cache rule, served with ``aget``/``aset`` on async routes (sync routes: Emmett's sync path)."""

    cache: ValkeyCache

    def __init__(self, handler: ValkeyCache, query_params: bool = True, language: bool = True,
                 hostname: bool = False, headers: list[str] | None = None,
                 duration: int | float | str | None = "default") -> None:
        # emmett_core annotates duration as int | str | None; ValkeyCache also takes float seconds
        super().__init__(handler, query_params, language, hostname, list(headers or []),
                         duration)  # type: ignore[arg-type]
        self._async: dict[Callable[..., Any], bool] = {}  # route function -> written as a coroutine function
        install()

    def serves_async(self, dispatcher: _Dispatcher) -> bool:
        """Tell whether the route's own function (under its pipeline wrappers) is a coroutine function."""
        f = dispatcher.f
        known = self._async.get(f)
        if known is None:
            known = self._async[f] = inspect.iscoroutinefunction(inspect.unwrap(f))
        return known

    async def get_data(self, dispatcher: _Dispatcher, reqargs: dict[str, Any], response: Any) -> Any:
        """Emmett's ``CacheDispatcher.get_data`` on the async API: the same key, entry and rules, awaited."""
        route = dispatcher.route
        key = self._build_ctx_key(route, **self._build_ctx(reqargs, route, dispatcher.current))
        data = await self.cache.aget(key)
        if data is not None:
            response.headers.update(data["headers"])
            return data["content"]
        content = await dispatcher.f(**reqargs)
        if response.status == 200:
            await self.cache.aset(key, {"content": content, "headers": response.headers}, self.duration)
        return content


async def _get_data(self: Any, reqargs: dict[str, Any], response: Any) -> Any:
    """``CacheDispatcher.get_data`` as installed: ours on an async route, Emmett's own for everything else."""
    rule = self.cache_rule
    if isinstance(rule, AsyncRouteCacheRule) and rule.serves_async(self):
        return await rule.get_data(self, reqargs, response)
    return await _emmett_get_data(self, reqargs, response)


def install() -> None:
    """Route emmett_core's cache dispatchers through :func:`_get_data` (idempotent; other rules are unaffected)."""
    if CacheDispatcher.get_data is not _get_data:
        CacheDispatcher.get_data = _get_data  # type: ignore[method-assign]

