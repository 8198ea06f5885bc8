"""Throughput of KOS OT extension (``protocols.ot.kos``): random OTs per second and where the time goes.

Run ``python benchmarks/ot_bench.py`` (``--log2m``, ``--repeats``). Both parties run in this process
over ``local_cluster``'s memory transport, so one extend's wall time includes *both* parties' work (on
one core, interleaved): the sender's and the receiver's PRG, transposes, check and hashing. The rate is
m over the mean wall time of ``repeats`` back-to-back extends (after one warm-up): the two parties'
extends overlap, so per-extend spans would double-count. The split sums each phase over both parties,
per extend (medians of the per-extend values), timing compute only (never across an ``await``, where
the peer runs); "other" is the xor of u into the matrix, choice-bit packing and the commitment. The
gap between the split's sum and the wall time is allocation, messaging and Python overhead.
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
import trio  # noqa: E402

import actors  # noqa: E402
from protocols.commitments import context_bytes  # noqa: E402
from protocols.net import PairChannel  # noqa: E402
from protocols.ot.kos import KOSReceiver, KOSSender, Timings  # noqa: E402
from protocols.prg import PRG  # noqa: E402

PHASES = ("prg", "transpose", "check", "hash", "other")


def _snapshot(tm: Timings) -> dict[str, float]:
    return {p: getattr(tm, p) for p in PHASES}


async def _prog(s: Any, m: int, repeats: int) -> dict[str, Any]:
    ch = PairChannel(s.net, 1 - s.party, 1)
    ctx = context_bytes(s.session_id, "ot-bench")
    t0 = time.perf_counter()
    if s.party == 0:
        end: Any = KOSSender(ctx)
    else:
        end = KOSReceiver(ctx)
    await end.setup(ch)
    setup = time.perf_counter() - t0
    choices = PRG().random_words((m + 63) // 64)
    bits = np.unpackbits(choices.view(np.uint8), count=m, bitorder="little").astype(bool)
    spans: list[tuple[float, float]] = []
    phases: list[dict[str, float]] = []
    for _ in range(repeats + 1):
        before = _snapshot(end.timings)
        start = time.perf_counter()
        if s.party == 0:
            await end.extend(ch, m)
        else:
            await end.extend(ch, bits)
        spans.append((start, time.perf_counter()))
        after = _snapshot(end.timings)
        phases.append({p: after[p] - before[p] for p in PHASES})
    return {"setup": setup, "spans": spans[1:], "phases": phases[1:]}


async def bench(m: int, repeats: int) -> dict[str, Any]:
    async with actors.local_cluster(2, preprocessing="dealer") as c:
        res = await c.run(_prog, m, repeats)
    # the parties' extends overlap (the receiver starts the next one while the sender still hashes), so
    # per-extend spans overstate the cost: use the whole run of timed extends
    spans = res[0]["spans"] + res[1]["spans"]
    wall = (max(e for _, e in spans) - min(s for s, _ in spans)) / repeats
    split = {
        p: statistics.median(a[p] + b[p] for a, b in zip(res[0]["phases"], res[1]["phases"], strict=True))
        for p in PHASES
    }
    return {"m": m, "wall": wall, "split": split, "setup": max(r["setup"] for r in res)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--log2m", type=int, default=20, help="OTs per extend: 2^LOG2M (default 20)")
    ap.add_argument("--repeats", type=int, default=5, help="timed extends (default 5)")
    args = ap.parse_args(argv)
    import logging

    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    r = trio.run(bench, 1 << args.log2m, args.repeats)
    m, wall = r["m"], r["wall"]
    print(f"KOS OT extension, m = 2^{args.log2m} = {m}, both parties in one process (memory transport)")
    print(f"  base-OT setup (128 Chou-Orlandi OTs): {r['setup'] * 1e3:8.1f} ms")
    rate = m / wall
    print(f"  extend, mean of {args.repeats}:            {wall * 1e3:8.1f} ms  -> {rate:,.0f} random OTs/s")
    total = sum(r["split"].values())
    print("  time split, both parties (median per extend):")
    for p in PHASES:
        v = r["split"][p]
        print(f"    {p:<10} {v * 1e3:8.1f} ms  {100 * v / total:5.1f} %")
    print(f"    {'(sum)':<10} {total * 1e3:8.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
