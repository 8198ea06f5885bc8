"""Concurrent sub-protocol tasks whose failures surface as one plain exception.

Sub-protocols run their per-peer conversations in a nursery. When a peer cheats, several of those tasks
may fail at once, and trio reports them as an ``ExceptionGroup``; callers (the engine, the offline
service, users' ``except AbortError``) must instead see one ``AbortError``. ``task_group`` is a nursery
that collapses its group: the first ``AbortError`` wins (the others are attached as notes), then the
first other error; a group of nothing but cancellations propagates unchanged so that cancel scopes
outside still catch it.

``run_sync`` is how protocol code hands a CPU-heavy computation to a worker thread (libsodium and
numpy release the GIL, so other parties' work overlaps). A simulation in virtual time must not do
that: under trio's autojump ``MockClock`` a task waiting for a thread counts as blocked, so the clock
would jump while honest work is computing and fire timeouts that no real network would. Inside
``inline_compute()`` the same calls run in the event-loop thread instead, so virtual time stands still
while they compute (netsim's runner sets it; nothing else should).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from typing import TypeVar

import trio

from .errors import AbortError

T = TypeVar("T")

_INLINE: ContextVar[bool] = ContextVar("trio_spdz_inline_compute", default=False)


def leaves(e: BaseException) -> list[BaseException]:
    if isinstance(e, BaseExceptionGroup):
        return [leaf for sub in e.exceptions for leaf in leaves(sub)]
    return [e]


def only_cancelled(e: BaseException) -> bool:
    """``e`` is a cancellation, or a group of nothing else."""
    return all(isinstance(x, trio.Cancelled) for x in leaves(e))


def collapse(group: BaseExceptionGroup) -> BaseException | None:
    """The one exception to raise for ``group``, or ``None`` if it holds only cancellations."""
    errors = [e for e in leaves(group) if not isinstance(e, trio.Cancelled)]
    if not errors:
        return None
    fatal = [e for e in errors if not isinstance(e, Exception)]  # KeyboardInterrupt, SystemExit
    aborts = [e for e in errors if isinstance(e, AbortError)]
    chosen = (fatal or aborts or errors)[0]
    for other in errors:
        if other is not chosen:
            chosen.add_note(f"at the same time: {type(other).__name__}: {other}")
    return chosen


@asynccontextmanager
async def task_group() -> AsyncIterator[trio.Nursery]:
    """``async with task_group() as nursery``: a nursery that raises one exception, not a group."""
    try:
        async with trio.open_nursery() as nursery:
            yield nursery
    except BaseExceptionGroup as group:
        chosen = collapse(group)
        if chosen is None:
            raise
        raise chosen from None


async def run_sync(fn: Callable[..., T], *args: object) -> T:
    """``fn(*args)`` in a worker thread, or inline (after a checkpoint) inside ``inline_compute()``."""
    if _INLINE.get():
        await trio.lowlevel.checkpoint()
        return fn(*args)
    return await trio.to_thread.run_sync(fn, *args)


@contextmanager
def inline_compute() -> Iterator[None]:
    """Make ``run_sync`` compute in the calling thread for this context and the tasks it starts."""
    token = _INLINE.set(True)
    try:
        yield
    finally:
        _INLINE.reset(token)
