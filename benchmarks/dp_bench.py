"""What one differentially private output costs: ``Session.output(x, dp=DP(...))`` at 3 parties, MASCOT.

For each mechanism (the distributed discrete Gaussian, the binomial from shared random bits), each
``epsilon`` (``--epsilons``, default 0.1 and 1; ``delta = 1e-9``) and each output size (``--sizes``,
default 1 and 100 elements), a program inputs ``size`` integers at party 0 and opens them with noise
for a sensitivity of one unit (a count, a histogram's bins). A row ``none`` opens them without
noise: the difference is what DP costs. Every row runs in a fresh ``local_cluster`` (3 parties in this
process, memory transport, 2 cores shared), as ``local_bench.py --transport memory`` does:

* the preprocessing the program draws (a dry run on the INSECURE dealer, ``actors.plan``): random
  **bits** (the binomial's coins) and input **masks** (the Gaussian's inputs, and party 0's values);
* **offline**: MASCOT making exactly that (``Watermarks.for_plan``, ``Cluster.stock``), its set-up
  (base OTs) included, in seconds and MB sent per party (mean over parties);
* **online**: the program on the full pools (noise, MAC checks, the opening), seconds and MB per
  party;
* **calibration**: the accountant finding ``sigma2`` or the coins, cold (its caches cleared first).

A binomial row whose coins exceed ``--max-bits`` is not run: its offline time and MB are estimated
from the bits it needs and the cost per bit measured on the largest binomial row that was run,
marked ``est.``. Below the table: cold calibration at the sensitivities the statistics use (1,024
units for the Gaussian's sums, 8 for the binomial's; ``protocols.dp.apps``).

    python benchmarks/dp_bench.py [--epsilons 0.1,1] [--sizes 1,100] [--max-bits 200000]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import structlog  # noqa: E402
import trio  # noqa: E402

from protocols.dp import DP  # noqa: E402
from protocols.dp import accounting as acc  # noqa: E402
from protocols.online import Session  # noqa: E402

N = 3
DELTA = 1e-9


async def dp_output(s: Session, size: int, dp: DP | None) -> list[int]:
    x = await s.input(np.arange(size, dtype=np.int64) if s.party == 0 else None, owner=0)
    out = await s.output(x, dp=dp)
    assert out is not None
    return [int(v) for v in out]


def cold_calibration(dp: DP) -> tuple[float, float]:
    """Seconds to calibrate ``dp`` with every cache cleared; the noise parameter (sigma2 or coins)."""
    for f in (
        acc.calibrate_sigma2,
        acc.calibrate_coins,
        acc.calibrate_group,
        acc._gaussian_pld,
        acc._binomial_pld,
    ):
        f.cache_clear()
    t = time.perf_counter()
    value = float(dp.sigma2()) if dp.mechanism == "gaussian" else float(dp.coins())
    return time.perf_counter() - t, value


async def measure(size: int, dp: DP | None) -> dict[str, Any]:
    import actors
    from actors.offline import Watermarks
    from actors.plan import preprocessing_plan

    need = await preprocessing_plan(dp_output, N, size, dp)
    marks = Watermarks.for_plan(need)
    t0 = time.perf_counter()
    async with actors.local_cluster(N, transport="memory", preprocessing="mascot", watermarks=marks) as c:
        assert c.hub is not None
        await c.stock(need, poll=0.05)
        t1 = time.perf_counter()
        ready = list(c.hub.bytes_sent)
        outs = await c.run(dp_output, size, dp)
        t2 = time.perf_counter()
        done = list(c.hub.bytes_sent)
    if any(o != outs[0] for o in outs):
        raise RuntimeError("the parties opened different values: a bug")
    return {
        "bits": need.get("bit", 0),
        "masks": sum(v for k, v in need.items() if k.startswith("mask")),
        "offline_s": t1 - t0,
        "offline_mb": sum(ready) / N / 1e6,
        "online_s": t2 - t1,
        "online_mb": (sum(done) - sum(ready)) / N / 1e6,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epsilons", default="0.1,1")
    ap.add_argument("--sizes", default="1,100")
    ap.add_argument("--max-bits", type=int, default=200_000)
    args = ap.parse_args(argv)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))
    epsilons = [float(e) for e in args.epsilons.split(",")]
    sizes = [int(v) for v in args.sizes.split(",")]
    head = (
        f"{'mechanism':9} {'eps':>4} {'size':>5} {'noise':>14} {'calib ms':>8} {'bits':>10} {'masks':>6} "
        f"{'offline s':>10} {'off MB/pty':>11} {'online s':>9} {'on MB/pty':>10}"
    )
    print(f"One DP output, sensitivity 1, delta {DELTA:g}, {N} parties, MASCOT, memory transport")
    print(head)
    print("-" * len(head))
    per_bit: tuple[float, float] | None = None  # (s, MB per party) per coin, from the largest run
    most = 0
    for size in sizes:
        r = trio.run(measure, size, None)
        print(
            f"{'none':9} {'':>4} {size:>5} {'':>14} {'':>8} {r['bits']:>10,} {r['masks']:>6} "
            f"{r['offline_s']:>10.2f} {r['offline_mb']:>11.2f} {r['online_s']:>9.3f} {r['online_mb']:>10.3f}",
            flush=True,
        )
        base = r
        for mechanism in ("gaussian", "binomial"):
            for eps in epsilons:
                dp = DP(epsilon=eps, delta=DELTA, mechanism=mechanism)
                calib, value = cold_calibration(dp)
                noise = f"sigma2 {value:,.1f}" if mechanism == "gaussian" else f"m {value:,.0f}"
                coins = int(value) * size if mechanism == "binomial" else 0
                if coins > args.max_bits and per_bit is not None:
                    off_s = base["offline_s"] + coins * per_bit[0]
                    off_mb = base["offline_mb"] + coins * per_bit[1]
                    print(
                        f"{mechanism:9} {eps:>4g} {size:>5} {noise:>14} {calib * 1e3:>8.1f} {coins:>10,} "
                        f"{base['masks']:>6} {'est. ' + format(off_s, '.0f'):>10} "
                        f"{'est. ' + format(off_mb, ',.0f'):>11} {'not run':>9} {'':>10}",
                        flush=True,
                    )
                    continue
                r = trio.run(measure, size, dp)
                if mechanism == "binomial" and r["bits"] > most:
                    most = r["bits"]
                    per_bit = (
                        (r["offline_s"] - base["offline_s"]) / r["bits"],
                        (r["offline_mb"] - base["offline_mb"]) / r["bits"],
                    )
                print(
                    f"{mechanism:9} {eps:>4g} {size:>5} {noise:>14} {calib * 1e3:>8.1f} {r['bits']:>10,} "
                    f"{r['masks']:>6} {r['offline_s']:>10.2f} {r['offline_mb']:>11.2f} "
                    f"{r['online_s']:>9.3f} {r['online_mb']:>10.3f}",
                    flush=True,
                )
    print()
    print("Cold calibration at the statistics' sensitivities (protocols.dp.apps), delta 1e-9:")
    for mechanism, units in (("gaussian", 1024), ("binomial", 8)):
        for eps in epsilons:
            dp = DP(sensitivity=units, epsilon=eps, delta=DELTA, mechanism=mechanism)
            calib, value = cold_calibration(dp)
            what = f"sigma2 {value:,.0f}" if mechanism == "gaussian" else f"m {value:,.0f}"
            print(f"  {mechanism:9} {units:>5} units  epsilon {eps:<4g} {calib:>7.2f} s   {what}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
