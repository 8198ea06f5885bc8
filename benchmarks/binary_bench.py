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

A second table, **daBits and edaBits** (``protocols.binary.dabits``/``edabits``; ``--skip-mixed`` leaves it
out), runs ``generate_dabits(--dabits)`` and ``generate_edabits(--edabits, k)`` for k = 32 and 64, a
fresh process per row (the median of ``--mixed-repeats`` calls), and reports items/s, payload bytes per
item per party, and what one item draws: binary AND triples, daBits (per edaBit) and field material
(triples, input masks, random bits, counted at party 0's preprocessing). By default the field side comes
from the INSECURE dealer, which costs nothing; ``--mascot`` runs the rows on MASCOT instead, with pools
sized to what the row draws (``Watermarks.for_plan``): the rate then includes making the field material
while the row runs, and the bytes include MASCOT's.

All parties share this process and its cores, so a rate is the whole n-party system's on one machine.
Correctness: every row opens some of its bits and triples with MAC checks and checks ``z = x AND y``
(daBits: both domains agree; edaBits: ``r = sum_j 2^j r_j``); a failure makes the benchmark exit non-zero.
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


async def _run_mixed(n: int, item: str, count: int, repeats: int, mascot: bool) -> dict[str, Any]:
    """One row of the daBit/edaBit table: ``item`` is ``dabits`` or ``k<bits>`` (edaBits)."""
    import numpy as np

    import actors
    from actors.offline import Watermarks
    from protocols.binary import BinaryParty, BitSession
    from protocols.binary.dabits import dabit_cost, generate_dabits
    from protocols.binary.edabits import (
        edabit_cost,
        edabit_parameters,
        generate_edabits,
        generate_loose_edabits,
        loose_edabit_cost,
    )
    from protocols.field import P127, get_field
    from protocols.intercept import Forwarding, PassThrough

    class Counting(Forwarding):
        def __init__(self, inner: Any, counts: dict[str, int]) -> None:
            super().__init__(inner)
            self.counts = counts

        def drawn(self, kind: str, n: int, owner: int | None = None) -> None:
            self.counts[kind] = self.counts.get(kind, 0) + n

    class CountAll(PassThrough):
        def __init__(self) -> None:
            self.counts: dict[str, int] = {}

        def wrap_preprocessing(self, session: str, pre: Any) -> Any:
            return Counting(pre, self.counts) if session.startswith("s-") else pre

    k = 0 if item == "dabits" else int(item[1:])
    loose = item.startswith("l")
    field = get_field(P127)
    if k:
        edabit_parameters(count)  # the parameter search is cached: keep it out of the timings
        cost = (loose_edabit_cost if loose else edabit_cost)(count, k, n)
        das = cost["dabits"]
        need = dabit_cost(das, field, n)
        per_owner = need["input_masks"] // n + cost["items"]
    else:
        need = dabit_cost(count, field, n)
        per_owner = need["input_masks"] // n
    options: dict[str, Any] = {"preprocessing": "dealer"}
    if mascot:  # pools that hold what the row draws and hardly more: its bytes are what it costs
        plan = {"triple": need["triples"] * repeats, "bit": need["field_bits"] * repeats}
        plan.update({f"mask{o}": per_owner * repeats for o in range(n)})
        options = {"preprocessing": "mascot", "watermarks": Watermarks.for_plan(plan, batch=8192)}
    counter = CountAll()
    parties = [BinaryParty(i, n) for i in range(n)]
    hub_box: list[Any] = []

    async def prog(s: Any) -> dict[str, Any]:
        me, hub = parties[s.party], hub_box[0]
        await me.setup(s)
        bs = BitSession(s, me)
        b0 = hub.bytes_sent[s.party]
        times, last = [], None
        for _ in range(repeats):
            t = time.perf_counter()
            make = generate_loose_edabits if loose else generate_edabits
            last = await (make(s, bs, count, k) if k else generate_dabits(s, bs, count))
            times.append(time.perf_counter() - t)
        out: dict[str, Any] = {"times": times, "bytes": hub.bytes_sent[s.party] - b0, "p": s.field.modulus}
        assert last is not None
        a, bits = last
        few = min(CHECK, count)
        out["opened"] = [
            [int(v) for v in await s.open(a[np.arange(few)])],
            (await bs.output(bits[: few * max(k, 1)])).tolist(),
        ]
        await bs.finish()
        return out

    async with actors.local_cluster(n, interceptors={0: counter}, **options) as cl:
        hub_box.append(cl.hub)
        res = await cl.run(prog)
    values, bits = res[0]["opened"]
    p, width = res[0]["p"], max(k, 1)
    ok = all(o["opened"] == res[0]["opened"] for o in res)
    low = (1 << width) if loose else p  # loose: only R mod 2^k is in the binary domain
    ok &= all(
        v % p % low == sum(bits[e * width + j] << j for j in range(width)) for e, v in enumerate(values)
    )
    per_call = [max(o["times"][i] for o in res) for i in range(repeats)]
    items = count * repeats
    row: dict[str, Any] = {
        "n": n,
        "item": item,
        "ok": bool(ok),
        "count": count,
        "median": statistics.median(per_call),
        "bytes_each": statistics.mean(o["bytes"] for o in res) / items,
        "drawn": {kind: v / items for kind, v in counter.counts.items()},
    }
    if k:
        row.update(B=cost["B"], C=cost["C"], ands=cost["and_triples"] / count, dabits=cost["dabits"] / count)
    return row


def _one(args: argparse.Namespace) -> int:
    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    if args.mixed:
        count = args.dabits if args.item == "dabits" else args.edabits
        row = trio.run(_run_mixed, args.n, args.item, count, args.mixed_repeats, args.mascot)
    else:
        row = trio.run(_run, args.n, args.bits, args.triples, args.repeats)
    print(json.dumps(row))
    return 0


def _print_mixed(args: argparse.Namespace) -> bool:
    """The daBit/edaBit table, one fresh process per row; False if a correctness check failed."""
    print()
    source = (
        "MASCOT (pools sized to the row)"
        if args.mascot
        else "the INSECURE dealer: free here, see 'field/item'"
    )
    print(f"daBits and edaBits, p = 2^127 - 1, field side from {source}")
    print(
        f"{'n':>2} {'item':>8}{'per call':>10}{'B,C':>9}{'items/s':>11}{'kB/item':>9}"
        f"{'ANDs/item':>11}{'daBits/item':>13}  field/item (triples, input masks, bits)  check"
    )
    ok = True
    for n in (2, 3):
        if args.only and n != args.only:
            continue
        for item in ("dabits", "k32", "k64", "l33"):
            argv = ["--one", "--mixed", "--n", str(n), "--item", item, "--dabits", str(args.dabits),
                    "--edabits", str(args.edabits), "--mixed-repeats", str(args.mixed_repeats)]  # fmt: skip
            e = _subprocess(argv + (["--mascot"] if args.mascot else []))
            label = "daBit" if item == "dabits" else f"{'loose' if item[0] == 'l' else 'edaBit'}{item[1:]}"
            bc = f"{e['B']},{e['C']}" if "B" in e else "-"
            ands = f"{e['ands']:.0f}" if "ands" in e else "-"
            das = f"{e['dabits']:.2f}" if "dabits" in e else "-"
            d = e["drawn"]
            field = f"{d.get('triples', 0):.2f}, {d.get('input_masks', 0):.2f}, {d.get('bits', 0):.3f}"
            print(
                f"{n:>2} {label:>8}{e['count']:>10}{bc:>9}{e['count'] / e['median']:11,.0f}"
                f"{e['bytes_each'] / 1e3:9.2f}{ands:>11}{das:>13}  {field:<40} {'ok' if e['ok'] else 'FAIL'}"
            )
            ok &= e["ok"]
    return ok


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
    ap.add_argument("--dabits", type=int, default=1 << 15, help="daBits per call (default 2^15)")
    ap.add_argument("--edabits", type=int, default=1 << 11, help="edaBits per call (default 2^11)")
    ap.add_argument("--mixed-repeats", type=int, default=2, help="calls per daBit/edaBit measurement")
    ap.add_argument("--skip-mixed", action="store_true", help="leave out the daBit/edaBit table")
    ap.add_argument("--mascot", action="store_true", help="daBit/edaBit rows on MASCOT, not the dealer")
    ap.add_argument("--mixed", action="store_true", help=argparse.SUPPRESS)  # child mode
    ap.add_argument("--item", default="dabits", help=argparse.SUPPRESS)
    ap.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # child mode
    ap.add_argument("--n", type=int, default=2, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.quick:
        args.bits, args.triples, args.repeats = 1 << 14, 1 << 12, 2
        args.dabits, args.edabits, args.mixed_repeats = 1 << 10, 64, 1
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
    if not args.skip_mixed and not _print_mixed(args):
        print("CORRECTNESS CHECK FAILED: some daBit or edaBit does not match in both domains")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
