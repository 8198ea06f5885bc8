"""Online-phase throughput: secure multiplications per second and the cost of a MAC check.

3 parties in one process on the memory transport (2 cores: the parties share them), insecure dealer
preprocessing generated *before* the clock starts (the online phase is what is measured here; MASCOT's
cost is in offline_bench.py). Timed: Beaver multiplication of two secret vectors and the public output
of the product, with every MAC check that output requires. Not timed: inputs, preprocessing.

    python benchmarks/online_bench.py [--sizes 10000,100000,1000000] [--repeat 3] [--moduli p61,p127]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import structlog  # noqa: E402
import trio  # noqa: E402

import actors  # noqa: E402
from protocols.field import get_field  # noqa: E402
from protocols.intercept import PassThrough, Stocked  # noqa: E402


class StockAll(PassThrough):
    """Gives every session a ``Stocked`` preprocessing, so triples can be drawn before timing starts."""

    def wrap_preprocessing(self, session: str, pre: Any) -> Any:
        return Stocked(pre)


async def mul_prog(s: Any, n: int) -> tuple[float, float, float, float, bool]:
    """The timed multiplication: inputs and stocked triples first, then the clock (wall and this
    process's CPU: with all parties in one process, CPU seconds between the first start and the
    last end are the work done, meaningful also on a machine other jobs share) around one ``mul``
    and the output of the product."""
    rng = np.random.default_rng(12345)  # public benchmark data, not a secret
    xs = rng.integers(-(2**20), 2**20, size=n)
    ys = rng.integers(-(2**20), 2**20, size=n)
    x = await s.input(xs if s.party == 0 else None, owner=0)
    y = await s.input(ys if s.party == 1 else None, owner=1)
    await s.pre.stock_triples(n)
    await s.mac_check()  # a synchronizing round: nobody's clock starts while another still stocks
    t0, c0 = time.perf_counter(), time.process_time()
    z = await s.mul(x, y)
    out = await s.output(z)
    t1, c1 = time.perf_counter(), time.process_time()
    return t0, t1, c0, c1, bool(np.array_equal(out, xs * ys))


async def _check_prog(s: Any, n: int) -> tuple[float, float]:
    x = await s.input(np.arange(n) if s.party == 0 else None, owner=0)
    await s._open_raw([x.value], [x.mac])
    await s.pre.stock_triples(1)
    await s.mac_check()  # includes the input broadcast; the timed check below covers only the opening
    await s._open_raw([x.value], [x.mac])
    t0 = time.perf_counter()
    await s.mac_check()
    return t0, time.perf_counter()


async def bench(modulus: str, sizes: list[int], repeat: int) -> list[dict[str, Any]]:
    rows = []
    opts = {"check_bound": 1 << 40}
    async with actors.local_cluster(
        3,
        modulus=modulus,
        preprocessing="dealer",
        interceptors=dict.fromkeys(range(3), StockAll()),
        session_options=opts,
    ) as c:
        for n in sizes:
            rates = []
            for _ in range(repeat):
                res = await c.run(mul_prog, n)
                if not all(r[4] for r in res):
                    raise SystemExit("benchmark produced a wrong product")
                wall = max(r[1] for r in res) - min(r[0] for r in res)
                rates.append(n / wall)
            rows.append(
                {
                    "field": modulus,
                    "what": f"mul+output n={n:.0e}",
                    "value": statistics.median(rates),
                    "unit": "mults/s",
                }
            )
        n = 10**6
        costs = []
        for _ in range(repeat):
            res = await c.run(_check_prog, n)
            costs.append(max(t1 for _, t1 in res) - min(t0 for t0, _ in res))
        rows.append(
            {
                "field": modulus,
                "what": "MAC check of 1e6 opened values",
                "value": statistics.median(costs) * 1e3,
                "unit": "ms (3 parties)",
            }
        )
    return rows


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--moduli", default="p61,p127")
    args = ap.parse_args(argv)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))
    sizes = [int(float(s)) for s in args.sizes.split(",")]
    print("online phase, 3 parties, one process, memory transport, dealer triples stocked before timing")
    print(f"{'field':6} {'measurement':34} {'median':>14}  unit")
    for m in args.moduli.split(","):
        get_field(m)
        for row in trio.run(bench, m, sizes, args.repeat):
            print(f"{row['field']:6} {row['what']:34} {row['value']:>14,.0f}  {row['unit']}")


if __name__ == "__main__":
    main()
