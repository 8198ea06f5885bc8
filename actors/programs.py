"""The programs a daemon runs, looked up by name: no code ever crosses the network.

A submit names a program and gives this party's input; every party runs the registered coroutine of
that name with its own input, as one session. Registering::

    @register("count_over", summary="how many values exceed 100, across all parties")
    async def count_over(s: Session, values: np.ndarray) -> int: ...

``values`` is the submitting party's own vector, already checked by the program's ``prepare``
(default: ``integer_vector``, which bounds every value so that the sum of every party's values
cannot wrap around the field). A ``prepare`` raises ``InputError`` with a message for the submitter
only; the daemon then aborts the session at every party without saying why beyond "rejected".

Built in:

* ``sum``: the total of every party's numbers. Integers; each party's input is secret-shared
  (``s.input`` per owner), the shares are summed locally, and only the total is output.
* ``mean``: the mean of every party's numbers, computed exactly as a rational: the secure total is
  output as in ``sum`` and divided in the clear by the element count. The count is public anyway:
  ``s.input`` announces each party's vector length, so every party learns how many values each
  other party has (true of every program here, and said in ``spdz submit --help``).
* ``bench_mul``: benchmark of one secure vector multiplication (``benchmarks/daemon_bench.py``).
* the applications of ``protocols.apps`` (``stats_count/sum/mean/variance/covariance/correlation/
  mean_where/histogram``, ``linreg_train``, ``logreg_train``, ``linreg_predict``, ``logreg_predict``):
  real-valued (fixed-point) statistics and models; their input formats and what each reveals are in
  ``protocols/apps/programs.py``.

The registry is a plain object (``Registry``); ``REGISTRY`` is the process-wide default that the daemon
uses and that ``register``/``get`` act on, the one piece of module-level state here, filled at import.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np

from protocols.field import PrimeField
from protocols.intercept import Stocked
from protocols.online import Session

MAX_INPUT_ELEMENTS = 1 << 22  # per party and submit: ~40 MB of msgpack on the control socket
BENCH_MAX = 1 << 24

Run = Callable[[Session, np.ndarray], Awaitable[Any]]
Prepare = Callable[[Sequence[Any], PrimeField, int], np.ndarray]
Render = Callable[[Any], str]


class InputError(ValueError):
    """This party's input cannot be used by the program; the message is shown to the submitter."""


class UnknownProgram(LookupError):
    """No program of that name is registered (the message lists the ones that are)."""


def value_bound(field: PrimeField, n: int) -> int:
    """The largest magnitude a value may have so that ``n`` parties' sums of ``MAX_INPUT_ELEMENTS``
    values each stay inside the field's signed range (a wrapped total would be a wrong answer)."""
    return field.half // (n * MAX_INPUT_ELEMENTS)


def integer_vector(raw: Sequence[Any], field: PrimeField, n: int) -> np.ndarray:
    """Check ``raw`` is a non-empty list of bounded integers; return it as an int64 or object array.

    Integers arrive as msgpack ints or, beyond 64 bits, as decimal strings (``control.encode_number``);
    a large input as an int64 array (the control socket's chunked upload), checked without a loop.
    """
    bound = value_bound(field, n)
    if isinstance(raw, np.ndarray) and raw.ndim == 1 and raw.dtype.kind == "i" and raw.size:
        if raw.size > MAX_INPUT_ELEMENTS:
            raise InputError(f"input has {raw.size} numbers, above the limit of {MAX_INPUT_ELEMENTS}")
        arr = raw.astype(np.int64, copy=False)
        b = min(bound, (1 << 63) - 1)
        if arr.min() < -b or arr.max() > b:
            i = int(np.argmax((arr < -b) | (arr > b))) + 1
            raise InputError(
                f"value {i} is out of range: |x| must be at most {bound} in field {field.name} "
                f"with {n} parties (so that no total can wrap around the field)"
            )
        return arr
    if isinstance(raw, np.ndarray):  # anything but one column of integers: checked value by value
        raw = raw.tolist()
    if not isinstance(raw, (list, tuple)):
        raise InputError(f"input must be a list of numbers, got {type(raw).__name__}")
    if not raw:
        raise InputError("input is empty: give at least one number")
    if len(raw) > MAX_INPUT_ELEMENTS:
        raise InputError(f"input has {len(raw)} numbers, above the limit of {MAX_INPUT_ELEMENTS}")
    out: list[int] = []
    for i, v in enumerate(raw, 1):
        if isinstance(v, str) and _is_decimal(v):
            v = int(v)
        if not isinstance(v, int) or isinstance(v, bool):
            raise InputError(f"value {i} is not an integer ({type(v).__name__})")
        if not -bound <= v <= bound:
            raise InputError(
                f"value {i} is out of range: |x| must be at most {bound} in field {field.name} "
                f"with {n} parties (so that no total can wrap around the field)"
            )
        out.append(v)
    if -(1 << 63) < min(out) and max(out) < 1 << 63:
        return np.asarray(out, dtype=np.int64)  # the field's fast path; big values need Python ints
    return np.asarray(out, dtype=object)


def _is_decimal(v: str) -> bool:
    body = v[1:] if v[:1] in "+-" else v
    return 0 < len(body) <= 60 and body.isascii() and body.isdigit()


@dataclass(frozen=True)
class Program:
    """A registered program: the coroutine, how to check an input, how to print a result."""

    name: str
    run: Run
    summary: str
    prepare: Prepare = integer_vector
    render: Render = str
    dp: str | None = None  # None: exact outputs only; "plain" or "bounds": takes a declared DP cost
    # Session options the program runs with at every party (``Session(**session)``), e.g.
    # ``{"comparison": "auto"}`` for one whose comparisons and truncations are cheaper on binary material
    session: dict[str, Any] = field(default_factory=dict)


class Registry:
    """Programs by name. Names are what users type and what parties compare: keep them stable."""

    def __init__(self) -> None:
        self._programs: dict[str, Program] = {}

    def register(
        self,
        name: str,
        *,
        summary: str = "",
        prepare: Prepare = integer_vector,
        render: Render = str,
        dp: str | None = None,
        session: dict[str, Any] | None = None,
    ) -> Callable[[Run], Run]:
        """Decorator: register ``coro`` under ``name`` (a second program of one name is an error)."""
        if not name or not name.replace("_", "").isalnum() or not name.isascii():
            raise ValueError(f"program name {name!r}: use letters, digits and '_'")

        def deco(coro: Run) -> Run:
            if name in self._programs:
                raise ValueError(f"a program named {name!r} is already registered")
            doc = summary or (coro.__doc__ or "").strip().split("\n")[0]
            self._programs[name] = Program(name, coro, doc, prepare, render, dp, dict(session or {}))
            return coro

        return deco

    def get(self, name: str) -> Program:
        try:
            return self._programs[name]
        except KeyError:
            known = ", ".join(sorted(self._programs)) or "none"
            raise UnknownProgram(f"no program named {name!r} (registered: {known})") from None

    def names(self) -> list[str]:
        return sorted(self._programs)

    def __contains__(self, name: object) -> bool:
        return name in self._programs


REGISTRY = Registry()
register = REGISTRY.register
get = REGISTRY.get


async def secure_total(s: Session, values: np.ndarray) -> tuple[Any, int]:
    """Every party's vector shared in turn (``s.input`` per owner) and summed locally: the shared
    total, and the number of elements (public: the owners announced their lengths)."""
    total = None
    count = 0
    for owner in range(s.n):
        x = await s.input(values if owner == s.party else None, owner=owner)
        count += x.size
        part = x.sum()
        total = part if total is None else total + part
    return total, count


def _scalar(out: Any) -> int:
    return int(np.asarray(out).reshape(-1)[0])


@register("sum", summary="total of every party's integers")
async def sum_program(s: Session, values: np.ndarray) -> int:
    total, _ = await secure_total(s, values)
    return _scalar(await s.output(total))


def _render_mean(result: Any) -> str:
    return str(result["mean"]) if isinstance(result, dict) and "mean" in result else str(result)


@register("mean", summary="mean of every party's integers (exact: total / count)", render=_render_mean)
async def mean_program(s: Session, values: np.ndarray) -> dict[str, Any]:
    total, count = await secure_total(s, values)
    t = _scalar(await s.output(total))
    exact = Fraction(t, count)
    return {"mean": float(exact), "exact": str(exact), "sum": t, "count": count}


def _bench_prepare(raw: Sequence[Any], field: PrimeField, n: int) -> np.ndarray:
    if (
        not isinstance(raw, (list, tuple))
        or len(raw) != 1
        or not isinstance(raw[0], int)
        or isinstance(raw[0], bool)
        or not 1 <= raw[0] <= BENCH_MAX
    ):
        raise InputError(f"bench_mul takes one number, the vector length in 1..{BENCH_MAX}")
    if n < 2:
        raise InputError("bench_mul needs at least 2 parties")
    return np.asarray(raw, dtype=np.int64)


def bench_vectors(length: int) -> tuple[np.ndarray, np.ndarray]:
    """The benchmark's factors: PUBLIC data from a fixed seed, so every party can check the product."""
    rng = np.random.default_rng(20260)
    return rng.integers(-(2**20), 2**20, size=length), rng.integers(-(2**20), 2**20, size=length)


@register("bench_mul", summary="benchmark: one secure multiplication of two vectors", prepare=_bench_prepare)
async def bench_mul(s: Session, values: np.ndarray) -> dict[str, Any]:
    """Party 0 inputs x, party 1 inputs y (public benchmark vectors), everyone multiplies and outputs.

    Timed (``time.monotonic``: one clock for every process on the machine, so the harness can take
    the span from the first start to the last end): the Beaver multiplication of the whole vector and
    the output of the product with its MAC checks, i.e. the online phase. The triples are drawn
    before the clock starts (from the pool, or made by a dealer), and a MAC check lines the parties
    up, as in ``benchmarks/online_bench.py``. Every party checks the product against the public data.
    """
    length = int(values[0])
    xs, ys = bench_vectors(length)
    x = await s.input(xs if s.party == 0 else None, owner=0)
    y = await s.input(ys if s.party == 1 else None, owner=1)
    pre = s.pre
    stocked = Stocked(pre)
    await stocked.stock_triples(length)
    s.pre = stocked  # type: ignore[assignment]
    try:
        await s.mac_check()
        t0 = time.monotonic()
        z = await s.mul(x, y)
        out = await s.output(z)
        t1 = time.monotonic()
    finally:
        s.pre = pre
    return {"n": length, "t0": t0, "t1": t1, "ok": bool(np.array_equal(out, xs * ys))}


# ---------------------------------------------------------------------------------------- applications
def _app_prepare(parse: Callable[[Sequence[Any]], np.ndarray]) -> Prepare:
    """An app's input parser as a ``prepare``: its complaints go to the submitter as ``InputError``.

    Its ``decimals`` attribute is True: ``spdz submit`` reads decimals for these programs (and
    integers for every other one; ``control.takes_decimals``). A float array from the control
    socket's chunked upload reaches ``parse`` as it is, and is checked there without a Python loop.
    """
    from protocols.apps.programs import AppInputError

    def prepare(raw: Sequence[Any], field: PrimeField, n: int) -> np.ndarray:
        try:
            return parse(raw)
        except AppInputError as e:
            raise InputError(str(e)) from None

    prepare.decimals = True  # type: ignore[attr-defined]
    return prepare


def _register_apps(registry: Registry) -> None:
    """Statistics and regression (``protocols.apps``): ``stats_*``, ``linreg_*``, ``logreg_*``. Their
    inputs and what each reveals: ``protocols/apps/programs.py``."""
    from protocols.apps.programs import PROGRAMS

    for spec in PROGRAMS:
        deco = registry.register(
            spec.name,
            summary=spec.summary,
            prepare=_app_prepare(spec.parse),
            render=spec.render,
            dp=spec.dp,
            session=spec.session,
        )
        deco(spec.run)


_register_apps(REGISTRY)
