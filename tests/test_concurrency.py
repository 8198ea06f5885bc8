"""``protocols.concurrency.run_sync``: CPU work in worker threads, at most ``COMPUTE_THREADS`` at once
per trio run (more would only take turns on the GIL), inline inside ``inline_compute()``."""

from __future__ import annotations

import threading
import time

import trio

from protocols import concurrency as cc


async def test_at_most_compute_threads_computations_run_at_once() -> None:
    lock = threading.Lock()
    state = {"now": 0, "peak": 0}

    def work() -> int:
        with lock:
            state["now"] += 1
            state["peak"] = max(state["peak"], state["now"])
        time.sleep(0.02)
        with lock:
            state["now"] -= 1
        return threading.get_ident()

    idents: list[int] = []

    async def one() -> None:
        idents.append(await cc.run_sync(work))

    async with trio.open_nursery() as nursery:
        for _ in range(4 * cc.COMPUTE_THREADS):
            nursery.start_soon(one)
    assert state["peak"] == cc.COMPUTE_THREADS >= 2
    assert threading.get_ident() not in idents  # worker threads, not the event loop's
    assert cc.compute_limiter() is cc.compute_limiter()  # one limiter per run


def test_each_trio_run_gets_its_own_limiter() -> None:
    async def get() -> trio.CapacityLimiter:
        return cc.compute_limiter()

    first, second = trio.run(get), trio.run(get)
    assert first is not second and first.total_tokens == second.total_tokens == cc.COMPUTE_THREADS


async def test_inline_compute_runs_in_the_event_loop_thread() -> None:
    with cc.inline_compute():
        assert await cc.run_sync(threading.get_ident) == threading.get_ident()
