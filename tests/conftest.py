"""Shared helpers for the protocol and actor tests.

Every helper that runs a cluster puts a deadline on it: a protocol bug in this system shows up as a
party waiting forever for a message, and a test must fail on that, not hang. Tests that take the
``autojump_clock`` fixture turn a deadlock into an immediate ``TooSlowError`` (virtual time jumps as
soon as every task is blocked); the others rely on a generous wall-clock deadline.

Import the helpers with ``from conftest import ...`` (pytest puts ``tests/`` on ``sys.path``).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
import structlog
import trio

import actors
from actors.engine import Interceptor, Program
from protocols.errors import AbortError
from protocols.field import P61, P127

N_PARTIES = [2, 3, 5]
MODULI = [P61, P127]
MODULUS_IDS = {P61: "p61", P127: "p127"}
DEADLINE = 60.0


def preprocessing_kind() -> str:
    """``dealer`` (default) or ``mascot``: test_online_mascot.py re-runs the online suite with MASCOT."""
    return os.environ.get("SPDZ_TEST_PREPROCESSING", "dealer")


def cluster_options() -> dict[str, Any]:
    """``local_cluster`` keywords for the selected preprocessing (small MASCOT pools: fast set-up)."""
    if preprocessing_kind() == "mascot":
        from actors.offline import Watermarks

        sizes = {k: 256 for k in ("triple", "mask", "square", "bit", "random")}
        marks = Watermarks(triple=(256, 512), mask=(64, 256), batch=sizes)
        return {"preprocessing": "mascot", "watermarks": marks}
    return {"preprocessing": "dealer"}


def quiet_logs() -> None:
    """Keep structlog quiet: warnings and errors only, printed to whatever stdout is current (pytest
    swaps and closes its capture streams between tests, so the stream must not be bound once)."""
    structlog.reset_defaults()
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        logger_factory=lambda *args: structlog.PrintLogger(sys.stdout),
        cache_logger_on_first_use=False,
    )


def pytest_configure(config: pytest.Config) -> None:
    quiet_logs()


@pytest.fixture(autouse=True)
def _restore_logging() -> Any:
    """A test that runs the CLI (which configures logging for a terminal) must not leave that set-up
    to the tests after it."""
    yield
    quiet_logs()


def mod_id(p: int) -> str:
    return MODULUS_IDS.get(p, str(p))


def half(p: int) -> int:
    """The largest magnitude the field's signed encoding accepts: (p - 1) / 2."""
    return (p - 1) // 2


async def run_cluster(
    n: int,
    modulus: int,
    prog: Program,
    *args: Any,
    per_party: Sequence[Sequence[Any]] | None = None,
    session: str | None = None,
    interceptors: dict[int, Interceptor] | None = None,
    session_options: dict[str, Any] | None = None,
    deadline: float = DEADLINE,
) -> list[Any]:
    """Run ``prog`` at every party of a fresh cluster (``cluster_options``); return the results.

    The failure is raised after the cluster has shut down, so that it is not wrapped in the cluster
    nursery's ExceptionGroup (``test_errors_from_a_cluster_block_are_catchable_as_themselves`` checks
    the cluster itself on that).
    """
    error: BaseException | None = None
    with trio.fail_after(deadline):
        async with actors.local_cluster(
            n,
            modulus=modulus,
            interceptors=interceptors,
            session_options=session_options,
            **cluster_options(),
        ) as c:
            try:
                results = await c.run(prog, *args, per_party=per_party, session=session)
            except Exception as e:
                error = e
    if error is not None:
        raise error
    return results


async def run_each(
    n: int,
    modulus: int,
    prog: Program,
    *args: Any,
    per_party: Sequence[Sequence[Any]] | None = None,
    interceptors: dict[int, Interceptor] | None = None,
    session_options: dict[str, Any] | None = None,
    deadline: float = DEADLINE,
) -> list[Any]:
    """Like ``run_cluster`` but return each party's result or exception (``Cluster.run_each``)."""
    with trio.fail_after(deadline):
        async with actors.local_cluster(
            n,
            modulus=modulus,
            interceptors=interceptors,
            session_options=session_options,
            **cluster_options(),
        ) as c:
            return await c.run_each(prog, *args, per_party=per_party)


def assert_all_aborted(results: Sequence[Any], honest: Sequence[int], what: str = "") -> None:
    """Every honest party raised an ``AbortError`` and none returned a value."""
    for i in honest:
        r = results[i]
        assert isinstance(r, AbortError), (
            f"honest party {i} {'returned' if not isinstance(r, BaseException) else 'raised'} "
            f"{r!r} instead of an AbortError{' (' + what + ')' if what else ''}"
        )


def assert_same(results: Sequence[Any], expected: Any) -> None:
    """Every party's result equals ``expected`` (numpy arrays compared elementwise, shape included)."""
    for i, r in enumerate(results):
        assert_array_eq(r, expected, f"party {i}")


def assert_array_eq(got: Any, expected: Any, where: str = "") -> None:
    if isinstance(expected, (tuple, list)) and not isinstance(got, np.ndarray):
        assert isinstance(got, (tuple, list)) and len(got) == len(expected), f"{where}: {got!r}"
        for k, (g, e) in enumerate(zip(got, expected, strict=True)):
            assert_array_eq(g, e, f"{where}[{k}]")
        return
    if expected is None:
        assert got is None, f"{where}: expected None, got {got!r}"
        return
    g = np.asarray(got)
    e = np.asarray(expected)
    if e.dtype.kind == "f" and isinstance(expected, list):  # big Python ints: keep them exact
        e = np.asarray(expected, dtype=object)
    assert g.shape == e.shape, f"{where}: shape {g.shape} != {e.shape}"
    assert [int(v) for v in g.reshape(-1).tolist()] == [int(v) for v in e.reshape(-1).tolist()], (
        f"{where}: {g!r} != {e!r}"
    )


def pmod_signed(v: int, p: int) -> int:
    """``v`` reduced into the signed range of GF(p)."""
    r = v % p
    return r - p if r > half(p) else r
