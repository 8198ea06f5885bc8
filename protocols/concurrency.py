"""Concurrent sub-protocol tasks whose failures surface as one plain exception.

Sub-protocols run their per-peer conversations in a nursery. When a peer cheats, several of those tasks
may fail at once, and trio reports them as an ``ExceptionGroup``; callers (the engine, the offline
service, users' ``except AbortError``) must instead see one ``AbortError``. ``task_group`` is a nursery
that collapses its group: the first ``AbortError`` wins (the others are attached as notes), then the
first other error; a group of nothing but cancellations propagates unchanged so that cancel scopes
outside still catch it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio

from .errors import AbortError


def _leaves(e: BaseException) -> list[BaseException]:
    if isinstance(e, BaseExceptionGroup):
        return [leaf for sub in e.exceptions for leaf in _leaves(sub)]
    return [e]


def collapse(group: BaseExceptionGroup) -> BaseException | None:
    """The one exception to raise for ``group``, or ``None`` if it holds only cancellations."""
    leaves = [e for e in _leaves(group) if not isinstance(e, trio.Cancelled)]
    if not leaves:
        return None
    fatal = [e for e in leaves if not isinstance(e, Exception)]  # KeyboardInterrupt, SystemExit
    aborts = [e for e in leaves if isinstance(e, AbortError)]
    chosen = (fatal or aborts or leaves)[0]
    for other in leaves:
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
