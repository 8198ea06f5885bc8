"""Throughput of the binary MAC'd domain (``protocols.binary``): authenticated bits/s, AND triples/s, and
bytes per bit and per triple.

Run ``python benchmarks/binary_bench.py`` (``--bits``, ``--triples``, ``--repeats``, ``--quick``,
``--only 3`` for one party count). For n = 2 and 3 it starts a fresh process per row, runs every party
of a ``local_cluster`` over the in-process memory transport, and measures

* **setup**: the base OTs of every ordered pair (one KOS instance per direction, each party's senders
  with its key share as Delta);
* **bits**: ``BitSession.random_bits(--bits)``, i.e. correlated OTs with every peer in both roles,
  the consistency check (coin toss, announcements, commit and reveal); the median of ``--repeats``;
* **triples**: ``BitSession.and_triples(--triples)``: ``B`` times as many leaky triples (3 bits
  authenticated per leaky triple, the half-AND and leaky-AND messages, the check), the bucketing and
  its checked openings; the median of ``--repeats``;
* **bytes**: payload bytes each party sent during the timed calls (the memory hub's count), divided by
  the bits or triples produced, the mean over parties; set-up bytes apart.

All parties share this process and its cores, so a rate is the whole n-party system's on one machine.
Correctness: every row opens some of its bits and triples with MAC checks and checks ``z = x AND y``;
a failure makes the benchmark exit non-zero.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import trio  # noqa: E402

CHECK = 64  # bits and triples opened at the end of each row


async def _run(n: int, bits: int, triples: int, repeats: int) -> dict[str, Any]:
    import numpy as np

    import actors
    from protocols.binary import BinaryParty, BitSession, bucket_size

    parties = [BinaryParty(i, n) for i in range(n)]
    hub_box: list[Any] = []

    async def prog(s: Any) -> dict[str, Any]:
        me, hub = parties[s.party], hub_box[0]
        t0 = time.perf_counter()
        await me.setup(s)
        setup = time.perf_counter() - t0
        bs = BitSession(s, me)
        out: dict[str, Any] = {"setup": setup, "setup_bytes": hub.bytes_sent[s.party]}
        for name, call, count in (
            ("bits", bs.random_bits, bits),
            ("triples", bs.and_triples, triples),
        ):
            b0 = hub.bytes_sent[s.party]
            times, last = [], None
            for _ in range(repeats):
                t = time.perf_counter()
                last = await call(count)
                times.append(time.perf_counter() - t)
            out[name] = {"times": times, "bytes": hub.bytes_sent[s.party] - b0}
            out[name + "_last"] = last
        r = out.pop("bits_last")[:CHECK]
        x, y, z = (v[:CHECK] for v in out.pop("triples_last"))
        out["opened"] = [(await bs.output(v)).tolist() for v in (r, x, y, z)]
        await bs.finish()
        return out

    async with actors.local_cluster(n, preprocessing="dealer") as cl:
        hub_box.append(cl.hub)
        res = await cl.run(prog)
    r, x, y, z = (np.array(v, dtype=np.uint8) for v in res[0]["opened"])
    ok = all(o["opened"] == res[0]["opened"] for o in res) and np.array_equal(z, x & y) and r.size == CHECK
    row: dict[str, Any] = {
        "n": n,
        "setup": max(o["setup"] for o in res),
        "setup_bytes": statistics.mean(o["setup_bytes"] for o in res),
        "bucket": bucket_size(triples),
        "ok": bool(ok),
    }
    for name, count in (("bits", bits), ("triples", triples)):
        per_call = [max(o[name]["times"][k] for o in res) for k in range(repeats)]  # the slowest party
        row[name] = {
            "count": count,
            "first": per_call[0],
            "median": statistics.median(per_call),
            "bytes_each": statistics.mean(o[name]["bytes"] for o in res) / (count * repeats),
        }
    return row


def _one(args: argparse.Namespace) -> int:
    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    print(json.dumps(trio.run(_run, args.n, args.bits, args.triples, args.repeats)))
    return 0


def _subprocess(argv: list[str]) -> dict[str, Any]:
    out = subprocess.run(  # noqa: S603 (our own script, with our own arguments)
        [sys.executable, str(Path(__file__).resolve()), *argv], capture_output=True, text=True, check=False
    )
    if out.returncode:
        raise RuntimeError(f"benchmark child {argv} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bits", type=int, default=1 << 20, help="random bits per call (default 2^20)")
    ap.add_argument("--triples", type=int, default=1 << 18, help="AND triples per call (default 2^18)")
    ap.add_argument("--repeats", type=int, default=3, help="calls per measurement (default 3)")
    ap.add_argument("--quick", action="store_true", help="small batches, for a smoke test")
    ap.add_argument("--only", type=int, default=0, help="one party count (2 or 3)")
    ap.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # child mode
    ap.add_argument("--n", type=int, default=2, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.quick:
        args.bits, args.triples, args.repeats = 1 << 14, 1 << 12, 2
    if args.one:
        return _one(args)
    print("binary MAC'd domain, all parties in one process (memory transport); fresh process per row")
    print(
        f"{'n':>2}{'setup s':>9}{'bits/call':>11}{'bits/s':>12}{'B/bit':>8}"
        f"{'triples/call':>14}{'B':>3}{'triples/s':>11}{'kB/triple':>11}{'setup kB':>10}  check"
    )
    failed = False
    for n in (2, 3):
        if args.only and n != args.only:
            continue
        r = _subprocess(
            ["--one", "--n", str(n), "--bits", str(args.bits), "--triples", str(args.triples),
             "--repeats", str(args.repeats)]
        )  # fmt: skip
        b, t = r["bits"], r["triples"]
        print(
            f"{n:>2}{r['setup']:9.3f}{b['count']:>11}{b['count'] / b['median']:12,.0f}{b['bytes_each']:8.1f}"
            f"{t['count']:>14}{r['bucket']:>3}{t['count'] / t['median']:11,.0f}{t['bytes_each'] / 1e3:11.2f}"
            f"{r['setup_bytes'] / 1e3:10.1f}  {'ok' if r['ok'] else 'FAIL'}"
        )
        failed |= not r["ok"]
    if failed:
        print("CORRECTNESS CHECK FAILED: some opened triple has z != x AND y")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
