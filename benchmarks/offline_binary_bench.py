"""Binary material through the offline service: AND triples/s, daBits/s, edaBits/s at n = 2 and 3.

Run ``python benchmarks/offline_binary_bench.py`` (``--only 3``, ``--kinds and_triple,dabit``,
``--modulus p61``, ``--quick``). For each party count and kind it starts a fresh ``local_cluster``
(all parties in this process, memory transport, MASCOT; the default ``[memory]`` bounds), sets the
kind's watermarks to a target (field kinds 0: only what the binary batches draw inside themselves is
made) and waits until every party's pool holds the target. It reports the service's own rate (items
per second of that kind's batch time, ``OfflineService.metrics``), the batch count and size the
planner chose under the memory bound, payload kB per item per party (the memory hub's count,
MASCOT's field material included) and the set-up time (MASCOT and binary, one epoch).

Correctness: a session then draws a few items of the kind from the pools and opens them with MAC
checks (``c = a AND b``; a daBit's two halves; an edaBit's value the sum of its bits); a failure
exits non-zero.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import trio  # noqa: E402

CHECK = 16
TARGETS = {"and_triple": 1 << 18, "dabit": 8192, "edabit": 128, "loose": 128}  # items per row, by family
QUICK_TARGETS = {"and_triple": 8192, "dabit": 512, "edabit": 16, "loose": 16}  # --quick


async def _check(s: Any, kind: str) -> bool:
    from protocols.binary.circuits import checker

    async def bits(x: Any) -> np.ndarray:
        (b,) = await checker(s).open([x])
        await s.mac_check()
        return b.astype(np.int64)

    pre = s.pre
    if kind == "and_triple":
        a, b, c = await pre.and_triples(CHECK)
        return bool(np.array_equal((await bits(a)) & (await bits(b)), await bits(c)))
    if kind == "dabit":
        f, x = await pre.dabits(CHECK)
        return [int(v) for v in await s.output(f)] == (await bits(x)).tolist()
    family, _, k = kind.partition(":")
    f, x = await (pre.edabits if family == "edabit" else pre.loose_edabits)(CHECK, int(k))
    values = [int(v) % 2 ** int(k) for v in await s.output(f)]
    composed = [sum(int(v) << j for j, v in enumerate(row)) for row in (await bits(x)).reshape(CHECK, -1)]
    return values == composed


async def _row(n: int, kind: str, target: int, modulus: int) -> dict[str, Any]:
    import actors
    from actors.offline import Watermarks
    from protocols.preprocessing import mixed

    marks = Watermarks(triple=(0, 0), mask=(0, 0), mixed={kind: (target, target)})
    t0 = time.perf_counter()
    async with actors.local_cluster(n, modulus=modulus, watermarks=marks) as c:
        svcs = [p.offline for p in c.parties]
        await svcs[0].wait_ready()
        setup = time.perf_counter() - t0
        hub = c.hub
        sent0 = sum(hub.bytes_sent[i] for i in range(n))
        t1 = time.perf_counter()
        while any(s.pool.level(kind) < target for s in svcs):
            await trio.sleep(0.05)
        wall = time.perf_counter() - t1
        sent = sum(hub.bytes_sent[i] for i in range(n)) - sent0
        m = svcs[0].metrics()
        sizes = sorted({b.size for b in svcs[0].pool.by_id.values() if b.kind == kind})
        ok = all(await c.run(_check, kind))
        made = m["generated"][kind]
        field = svcs[0].field
    return {
        "n": n,
        "kind": kind,
        "made": made,
        "rate": m["per_second"].get(kind, 0.0),
        "wall_rate": made / wall,
        "batches": len(sizes) and made // max(sizes),
        "batch": max(sizes) if sizes else 0,
        "max_batch": mixed.max_count(field, n, kind, marks.batch_bytes),
        "kb_item": sent / n / made / 1e3,
        "setup": setup,
        "ok": ok,
    }


def main(argv: list[str] | None = None) -> int:
    import structlog

    from protocols.field import P61, P127

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", type=int, default=0, help="one party count (2 or 3)")
    ap.add_argument("--kinds", default="and_triple,dabit,edabit:32,loose:32")
    ap.add_argument("--modulus", default="p127", choices=("p127", "p61"))
    ap.add_argument("--quick", action="store_true", help="small targets, for a smoke test")
    args = ap.parse_args(argv)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    modulus = P127 if args.modulus == "p127" else P61
    targets = QUICK_TARGETS if args.quick else TARGETS
    print(f"binary material through the offline service, {args.modulus}, MASCOT, memory transport")
    print(
        f"{'n':>2} {'kind':>11}{'made':>9}{'items/s':>11}{'wall/s':>10}{'batch':>8}{'max':>8}"
        f"{'kB/item':>9}{'set-up s':>10}  check"
    )
    ok = True
    for n in (2, 3):
        if args.only and n != args.only:
            continue
        for kind in args.kinds.split(","):
            r = trio.run(_row, n, kind, targets[kind.partition(":")[0]], modulus)
            print(
                f"{n:>2} {kind:>11}{r['made']:>9}{r['rate']:>11,.0f}{r['wall_rate']:>10,.0f}{r['batch']:>8}"
                f"{r['max_batch']:>8}{r['kb_item']:>9.2f}{r['setup']:>10.2f}  {'ok' if r['ok'] else 'FAIL'}"
            )
            ok &= r["ok"]
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
