"""Throughput of the GF(p) vector arithmetic in ``protocols.field``.

Run ``python benchmarks/field_bench.py`` (``--n``, ``--repeats``, ``--quick``). Each operation is timed
on fresh random vectors of ``n`` elements several times and the median is reported, because single
runs on a shared machine are noisy. Two baselines show why the limb code exists: a plain Python-int
loop and numpy object arrays (``(a * b) % p`` on arbitrary-precision ints), both timed on a slice and
scaled, since they are orders of magnitude slower.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from protocols.field import PrimeField, get_field  # noqa: E402
from protocols.prg import PRG  # noqa: E402

OPS = ("mul", "add", "sub", "dot")


def _median_rate(fn: Callable[[], object], n: int, repeats: int) -> float:
    """Elements per second: ``n`` over the median wall time of ``repeats`` runs (after one warm-up)."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return n / statistics.median(times)


def bench_field(field: PrimeField, n: int, repeats: int, base_n: int) -> dict[str, dict[str, float]]:
    """Rates for every op in ``OPS`` for the limb code and the two baselines."""
    prg = PRG(b"field-bench-seed")
    a, b = field.random(n, prg), field.random(n, prg)
    p = field.modulus
    xs, ys = field.to_ints(a[:, :base_n]), field.to_ints(b[:, :base_n])
    ox, oy = np.array(xs, dtype=object), np.array(ys, dtype=object)

    def py_dot() -> int:
        return sum(x * y for x, y in zip(xs, ys, strict=True)) % p

    limb = {
        "mul": lambda: field.mul(a, b),
        "add": lambda: field.add(a, b),
        "sub": lambda: field.sub(a, b),
        "dot": lambda: field.dot(a, b),
    }
    python = {
        "mul": lambda: [x * y % p for x, y in zip(xs, ys, strict=True)],
        "add": lambda: [(x + y) % p for x, y in zip(xs, ys, strict=True)],
        "sub": lambda: [(x - y) % p for x, y in zip(xs, ys, strict=True)],
        "dot": py_dot,
    }
    objarr = {
        "mul": lambda: (ox * oy) % p,
        "add": lambda: (ox + oy) % p,
        "sub": lambda: (ox - oy) % p,
        "dot": lambda: int(np.dot(ox, oy)) % p,
    }
    return {
        "limbs": {op: _median_rate(limb[op], n, repeats) for op in OPS},
        "python": {op: _median_rate(python[op], base_n, max(1, repeats // 2)) for op in OPS},
        "object": {op: _median_rate(objarr[op], base_n, max(1, repeats // 2)) for op in OPS},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="vector length (default 10^6)")
    parser.add_argument("--repeats", type=int, default=7, help="timed runs per op; the median is shown")
    parser.add_argument("--baseline-n", type=int, default=100_000, help="slice length for the baselines")
    parser.add_argument("--fields", default="p61,p127", help="comma-separated field names")
    parser.add_argument("--quick", action="store_true", help="n=10^5, 3 repeats: a smoke run")
    args = parser.parse_args(argv)
    if args.quick:
        args.n, args.repeats, args.baseline_n = 100_000, 3, 10_000
    base_n = min(args.baseline_n, args.n)

    print(f"GF(p) throughput, n = {args.n:,} elements, median of {args.repeats} runs, M elements/s")
    print(f"(baselines timed on {base_n:,} elements)")
    header = f"{'field':<6} {'op':<4} {'limbs':>9} {'python':>9} {'object':>9} {'vs python':>10}"
    print(header)
    print("-" * len(header))
    for name in args.fields.split(","):
        field = get_field(name)
        rates = bench_field(field, args.n, args.repeats, base_n)
        for op in OPS:
            lim, py, obj = rates["limbs"][op], rates["python"][op], rates["object"][op]
            print(
                f"{field.name:<6} {op:<4} {lim / 1e6:9.1f} {py / 1e6:9.2f} {obj / 1e6:9.2f} {lim / py:9.0f}x"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
