"""Concurrent sub-protocol tasks whose failures surface as one plain exception.

Sub-protocols run their per-peer conversations in a nursery. When a peer cheats, several of those tasks
may fail at once, and trio reports them as an ``ExceptionGroup``; callers (the engine, the offline
service, users' ``except AbortError``) must instead see one ``AbortError``. ``task_group`` is a nursery
that collapses its group: the first ``AbortError`` wins (the others are attached as notes), then the
first other error; a group of nothing but cancellations propagates unchanged so that cancel scopes
outside still catch it.

``run_sync`` is how protocol code hands a CPU-heavy computation to a worker thread (libsodium and
numpy release the GIL, so other parties' work overlaps). At most ``COMPUTE_THREADS`` (the cores this
process may use, at least 2) such computations run at once per trio run: more only take turns on the
GIL, and every hand-over is a context switch (three parties' MASCOT in one process on 2 cores: 3.2
million switches and 35 s of system time with trio's default of 40 threads, 0.8 million and 15 s with
2; the example's 4 iterations went from 117 s to 82-94 s; one process per party was unchanged).

A simulation in virtual time must not do
that: under trio's autojump ``MockClock`` a task waiting for a thread counts as blocked, so the clock
would jump while honest work is computing and fire timeouts that no real network would. Inside
``inline_compute()`` the same calls run in the event-loop thread instead, so virtual time stands still
while they compute (netsim's runner sets it; nothing else should).
"""

from __future__ import annotations

import os
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


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not every platform has it
        return os.cpu_count() or 2


COMPUTE_THREADS = max(2, _cores())
_COMPUTE: trio.lowlevel.RunVar[trio.CapacityLimiter] = trio.lowlevel.RunVar("trio_spdz_compute")


def compute_limiter() -> trio.CapacityLimiter:
    """This trio run's limiter of ``run_sync`` computations (``COMPUTE_THREADS`` at once)."""
    try:
        return _COMPUTE.get()
    except LookupError:
        limiter = trio.CapacityLimiter(COMPUTE_THREADS)
        _COMPUTE.set(limiter)
        return limiter


async def run_sync(fn: Callable[..., T], *args: object) -> T:
    """``fn(*args)`` in a worker thread, or inline (after a checkpoint) inside ``inline_compute()``."""
    if _INLINE.get():
        await trio.lowlevel.checkpoint()
        return fn(*args)
    return await trio.to_thread.run_sync(fn, *args, limiter=compute_limiter())


@contextmanager
def inline_compute() -> Iterator[None]:
    """Make ``run_sync`` compute in the calling thread for this context and the tasks it starts."""
    token = _INLINE.set(True)
    try:
        yield
    finally:
        _INLINE.reset(token)
