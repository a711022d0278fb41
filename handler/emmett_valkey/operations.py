"""How a cache operation is written once and run both ways.

An operation is a generator: it yields the steps it needs (a :class:`Command` for the server, carried out by
:class:`~.connections.SyncIO` or :class:`~.connections.AsyncIO`; a :class:`Compute` for the caller's function) and
returns its result. :func:`run` drives it on the thread's client, :func:`arun` on the event loop's, and those two
loops are the only place where synchronous and asynchronous code differ. An operation that fail-soft mode
(``on_error="miss"``) may serve without the server declares its neutral result once, with :func:`operation`.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol, TypeVar

from valkey.exceptions import ClusterError, OutOfMemoryError, TryAgainError, ValkeyClusterException
from valkey.exceptions import ConnectionError as ValkeyConnectionError
from valkey.exceptions import TimeoutError as ValkeyTimeoutError

from .aio import AsyncIO
from .connections import SyncIO
from .stats import Stats

T = TypeVar("T")

log = logging.getLogger("emmett_valkey")

#: errors that fail-soft mode turns into a miss or a no-op: the server is unreachable or too slow, or a cluster is
#: down, moving a slot (TRYAGAIN), out of redirections, without a node for a slot or without a reachable node
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (ValkeyConnectionError, ValkeyTimeoutError, OSError,
                                                     ClusterError, TryAgainError, ValkeyClusterException)
#: errors that fail-soft mode turns into a no-op on writes: the transient ones, and a full server (noeviction)
WRITE_ERRORS: tuple[type[BaseException], ...] = (*TRANSIENT_ERRORS, OutOfMemoryError)

class Command(NamedTuple):
    """One command of an operation: a method of :class:`~.connections.SyncIO` / :class:`~.connections.AsyncIO`."""

    method: str
    args: tuple[Any, ...]


class Compute(NamedTuple):
    """The caller's function of ``get_or_set``: called (sync) or awaited (async) by the driver."""

    function: Callable[[], Any]


Step = Command | Compute
Operation = Generator[Step, Any, T]


@dataclass(frozen=True)
class Neutral:
    """What an operation gives in fail-soft mode when the server fails it with one of ``errors``.

    ``read``: a read, whose keys then count as misses; otherwise a write served as a no-op.
    """

    value: Any
    errors: tuple[type[BaseException], ...]
    read: bool = False


class _Handler(Protocol):
    on_error: str
    stats_counters: Stats


def operation(neutral: Neutral) -> Callable[[Callable[..., Operation[T]]], Callable[..., Operation[T]]]:
    """Declare an operation's neutral result: in fail-soft mode a failure of the server gives it, counted and logged."""

    def wrap(op: Callable[..., Operation[T]]) -> Callable[..., Operation[T]]:
        name = op.__name__.strip("_")

        @functools.wraps(op)
        def soft(self: _Handler, *args: Any) -> Operation[T]:
            try:
                return (yield from op(self, *args))
            except neutral.errors as exc:
                if self.on_error != "miss" or not isinstance(exc, WRITE_ERRORS):
                    raise
                self.stats_counters.errors += 1
                if neutral.read:
                    self.stats_counters.misses += len(args[0]) if isinstance(args[0], list) else 1
                log.warning("emmett_valkey: %s failed, served as %s: %r", name,
                            "a miss" if neutral.read else "a no-op", exc)
                return neutral.value  # type: ignore[no-any-return]

        return soft

    return wrap


def run(io: SyncIO, op: Operation[T]) -> T:
    """Drive *op* on the synchronous client; an error is handed to the operation, which declares what it survives."""
    send, throw = op.send, op.throw
    reply: Any = None
    while True:
        try:
            step = send(reply)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        while True:  # until a step succeeds, throwing each error into the operation
            try:
                reply = step.function() if isinstance(step, Compute) else getattr(io, step.method)(*step.args)
                break
            except Exception as exc:
                try:
                    step = throw(exc)
                except StopIteration as done:
                    return done.value  # type: ignore[no-any-return]


async def arun(io: AsyncIO, op: Operation[T]) -> T:
    """Drive *op* on the running event loop's client: :func:`run`, awaiting each step."""
    send, throw = op.send, op.throw
    reply: Any = None
    while True:
        try:
            step = send(reply)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        while True:
            try:
                reply = await (step.function() if isinstance(step, Compute) else getattr(io, step.method)(*step.args))
                break
            except Exception as exc:
                try:
                    step = throw(exc)
                except StopIteration as done:
                    return done.value  # type: ignore[no-any-return]


def command(method: str, *args: Any) -> Command:
    """Return the :class:`Command` that calls ``io.method(*args)``."""
    return Command(method, args)
